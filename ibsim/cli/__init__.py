"""The command line: ``python -m ibsim ...``. The only module that prints or exits.

Subcommands
-----------
``topo generate NAME [--param ...] -o FILE``   write a generated topology
``topo info FILE [--json]``                    counts and the link-rate histogram
``topo convert IN OUT``                        ibnetdiscover <-> YAML
``routes FILE --engine NAME [--json]``         route quality metrics, LFT dump
``run SCENARIO [--mad-server] [--graphite ...]`` simulate, record, export, serve MADs
``serve TOPOLOGY_OR_SCENARIO``                 serve the ibsim MAD protocol, no traffic
``bench monitoring [--sizes ...] --out DIR``   compare monitoring approaches (PerfMgr plugins, sweeps, ...)
``sweep SWEEP [--scheduler ADDR] [--out DIR]`` a parameter sweep on Dask: one row of metrics per point

Exit codes: 0 ok, 2 bad input or usage (one line ``ibsim: error: ...``), 1
runtime failure.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import IbsimError
from . import bench, cluster, images, run, serve, sweep, topo

__all__ = ["main"]

log = logging.getLogger("ibsim")


# -------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of ``python -m ibsim``."""
    parser = argparse.ArgumentParser(prog="ibsim", description="InfiniBand fabric simulator")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="print less")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for module in (topo, run, serve, cluster, images, bench, sweep):
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ibsim``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="ibsim: %(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except IbsimError as exc:
        if args.debug:
            raise
        print(f"ibsim: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ibsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if args.debug:
            raise
        print(f"ibsim: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the one top-level handler
        if args.debug:
            raise
        print(f"ibsim: internal error: {type(exc).__name__}: {exc}; rerun with --debug for the traceback",
              file=sys.stderr)
        return 1
