"""``python -m ibsim images build [--only NAME]``: build the virtual cluster's images."""

from __future__ import annotations

import sys

__all__ = ["add_parsers", "cmd_images_build"]


def add_parsers(sub) -> None:
    """Add the ``images`` subcommand to ``python -m ibsim``'s subparsers."""
    from ..hosts.images import IMAGES
    p = sub.add_parser("images", help="build the container images of the virtual cluster",
                       description="Build ibsim's Docker images from images/ with the classic builder "
                                   "(no registry needed; the Debian base is made with debootstrap "
                                   "when it cannot be pulled). Unchanged images are not rebuilt.")
    isub = p.add_subparsers(dest="images_command", metavar="ACTION")
    isub.required = True
    b = isub.add_parser("build", help="build the images (skipped when their build context is unchanged)")
    b.add_argument("--only", choices=IMAGES, action="append", metavar="NAME",
                   help=f"build only this image ({', '.join(IMAGES)}); repeatable")
    b.set_defaults(func=cmd_images_build)


def cmd_images_build(args) -> int:
    """Build the images of ``args.only`` (default all)."""
    from ..hosts import build_images

    def say(line: str) -> None:
        sys.stderr.write(f"ibsim: {line}\n")
        sys.stderr.flush()

    for name, (tag, built) in build_images(args.only, say=say).items():
        print(f"{name}\t{tag}\t{'built' if built else 'up to date'}")
    return 0
