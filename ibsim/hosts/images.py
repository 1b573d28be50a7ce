"""The container images of a virtual cluster, built from local material only.

``images/<name>/`` of the checkout holds one build context per image
(:data:`IMAGES`): ``host`` (a compute host: infiniband-diags through
libumad2sim, node_exporter, tini) and ``graphite`` (carbon-cache and
graphite-web). Each is tagged ``ibsim-<name>:<hash>``, where ``<hash>`` is
the first 12 hex digits of the SHA-256 of its build context (paths, modes
and contents), so an unchanged context is never rebuilt; ``ibsim-<name>:latest``
points at the newest build. Images carry the label ``org.ibsim.image=<name>``.

Building uses the classic builder (``pull=False``; no BuildKit). The base
``debian:bookworm-slim`` is used when present, pulled when a registry
answers, and otherwise made here: ``debootstrap --variant=minbase bookworm``
into a scratch directory, then ``docker import`` (needs root and the Debian
package ``debootstrap``; about two minutes). The scratch tree is removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import HostError
from .engine import docker_client, docker_errors

__all__ = ["IMAGES", "BASE_IMAGE", "images_dir", "context_hash", "image_tag", "find_image",
           "ensure_base", "build_image", "build_images", "require_image"]

log = logging.getLogger(__name__)

#: images ibsim builds, in build order
IMAGES = ("host", "graphite")
#: the base image every Dockerfile starts FROM
BASE_IMAGE = "debian:bookworm-slim"
_LABEL = "org.ibsim.image"
_DEBIAN_MIRROR = os.environ.get("IBSIM_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def images_dir() -> Path:
    """The directory of the build contexts: ``$IBSIM_IMAGES`` or the checkout's ``images/``."""
    env = os.environ.get("IBSIM_IMAGES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "images"


def _context(name: str) -> Path:
    if name not in IMAGES:
        raise HostError(f"unknown image {name!r}; choose one of: {', '.join(IMAGES)}")
    d = images_dir() / name
    if not (d / "Dockerfile").is_file():
        raise HostError(f"no build context for image {name!r} at {d} (set IBSIM_IMAGES to the "
                        "checkout's images/ directory)")
    return d


def context_hash(path) -> str:
    """SHA-256 (hex) of a build context: every file's relative path, mode and bytes, sorted."""
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + oct(p.stat().st_mode & 0o777).encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def image_tag(name: str) -> str:
    """``ibsim-<name>:<12 hex digits of the context hash>``."""
    return f"ibsim-{name}:{context_hash(_context(name))[:12]}"


def find_image(client, tag: str):
    """The image called ``tag``, or None."""
    try:
        return client.images.get(tag)
    except docker_errors().ImageNotFound:
        return None


def require_image(client, name: str) -> str:
    """The current tag of image ``name``; HostError when it is not built."""
    tag = image_tag(name)
    if find_image(client, tag) is None:
        raise HostError(f"image {tag} is not built; run: python -m ibsim images build --only {name}")
    return tag


def ensure_base(client, say=log.info) -> None:
    """Make sure :data:`BASE_IMAGE` exists: present, pulled, or made with debootstrap.

    Parameters
    ----------
    client : docker.DockerClient
    say : callable
        Receives one line per step (what is being done and why).

    Raises
    ------
    HostError
        When it is absent, cannot be pulled and cannot be made here.
    """
    if find_image(client, BASE_IMAGE) is not None:
        return
    errors = docker_errors()
    try:
        repo, tag = BASE_IMAGE.split(":")
        client.images.pull(repo, tag=tag)
        say(f"pulled {BASE_IMAGE}")
        return
    except errors.APIError as exc:
        reason = str(getattr(exc, "explanation", None) or exc).splitlines()[0][:160]
    say(f"{BASE_IMAGE} is absent and cannot be pulled ({reason}); making it locally with "
        "debootstrap --variant=minbase bookworm (about 2 minutes)")
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        raise HostError(f"{BASE_IMAGE} is missing and no registry answers; making it needs root "
                        "and the Debian package 'debootstrap' (apt-get install debootstrap), then "
                        "rerun: python -m ibsim images build")
    scratch = Path(tempfile.mkdtemp(prefix="ibsim-debootstrap-", dir="/var/tmp"))
    try:
        tree = scratch / "rootfs"
        r = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(tree), _DEBIAN_MIRROR],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise HostError(f"debootstrap failed (exit {r.returncode}): {tail[0]}")
        for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
            for p in tree.glob(pattern):
                if p.is_file():
                    p.unlink()
        tarball = scratch / "rootfs.tar"
        subprocess.run(["tar", "-C", str(tree), "--numeric-owner", "-cf", str(tarball), "."],
                       check=True, capture_output=True)
        shutil.rmtree(tree, ignore_errors=True)
        client.api.import_image_from_file(str(tarball), repository="debian", tag="bookworm-slim",
                                          changes=['CMD ["bash"]', f"LABEL {_LABEL}=base"])
        say(f"made {BASE_IMAGE} with debootstrap")
    except subprocess.CalledProcessError as exc:
        raise HostError(f"packing the debootstrap tree failed: {exc.stderr.decode(errors='replace')[:200]}") \
            from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def build_image(client, name: str, *, say=log.info, prune: bool = True) -> tuple[str, bool]:
    """Build image ``name`` unless its tag exists; returns ``(tag, built)``.

    Parameters
    ----------
    client : docker.DockerClient
    name : str
        One of :data:`IMAGES`.
    say : callable
        Receives progress lines.
    prune : bool
        Remove older ``ibsim-<name>`` images (other context hashes) that no
        container uses.
    """
    ctx = _context(name)
    digest = context_hash(ctx)
    tag = f"ibsim-{name}:{digest[:12]}"
    if find_image(client, tag) is not None:
        say(f"{tag} is up to date")
        return tag, False
    ensure_base(client, say)
    say(f"building {tag} from {ctx} (classic builder, no pull)")
    errors = docker_errors()
    try:
        image, _ = client.images.build(path=str(ctx), tag=tag, pull=False, rm=True, forcerm=True,
                                       labels={_LABEL: name, "org.ibsim.context": digest})
    except errors.BuildError as exc:
        lines = [str(c.get("stream") or c.get("error") or "").strip() for c in exc.build_log]
        lines = [x for x in lines if x]
        raise HostError(f"building {tag} failed: {exc.msg}" + (f" (last output: {lines[-1][:200]})"
                                                              if lines else "")) from None
    except errors.APIError as exc:
        raise HostError(f"building {tag} failed: {exc.explanation or exc}") from None
    image.tag(f"ibsim-{name}", "latest")
    if prune:
        for old in client.images.list(filters={"label": f"{_LABEL}={name}"}):
            if old.id != image.id and not any(t.startswith(f"ibsim-{name}:") and t == tag for t in old.tags):
                try:
                    client.images.remove(old.id, noprune=False)
                except errors.APIError:
                    pass                 # still used by a container, or by another tag
    say(f"built {tag}")
    return tag, True


def build_images(only=None, *, say=log.info, client=None) -> dict:
    """Build every image (or those in ``only``); returns ``{name: (tag, built)}``."""
    names = list(IMAGES) if not only else list(only)
    for n in names:
        _context(n)
    client = client or docker_client()
    return {n: build_image(client, n, say=say) for n in names}
