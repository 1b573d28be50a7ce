"""``python -m ibsim sweep SWEEP.yml``: run a parameter sweep on Dask.

Without ``--scheduler`` the points run on a LocalCluster on 127.0.0.1 (one
single-threaded worker process per core, or ``--workers N``); with
``--scheduler tcp://HOST:8786`` on that existing cluster. Progress goes to
stderr (a bar on a terminal, a line per point otherwise); the output
directory is printed at the end.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

__all__ = ["add_parsers", "cmd_sweep"]


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _seconds(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return x


def add_parsers(sub) -> None:
    """Add the ``sweep`` subcommand to ``python -m ibsim``'s subparsers."""
    p = sub.add_parser(
        "sweep", help="run a parameter sweep (base scenario x axes) on Dask",
        description="Run every point of a sweep file (a base scenario plus a grid and/or a list of "
                    "overrides) on Dask and write results.parquet, results.csv, sweep.png and report.md.")
    p.add_argument("sweep", metavar="SWEEP", help="sweep YAML file (see topologies/sweep-routing.yml)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: sweeps/<sweep name>)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                        "(default: a LocalCluster on this machine)")
    p.add_argument("--workers", type=_count, metavar="N",
                   help="worker processes of the LocalCluster (default: one per core)")
    p.add_argument("--connect-timeout", type=_seconds, default=5.0, metavar="SECONDS",
                   help="how long to wait for --scheduler (default 5)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows already in DIR and run only the points without an ok row")
    p.add_argument("--serial", action="store_true", help="run the points one by one in this process (no Dask)")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress; print only the output directory")
    p.set_defaults(func=cmd_sweep)
    p.error = _usage_error


def _usage_error(message: str):
    sys.stderr.write(f"ibsim: error: sweep: {message} (see: python -m ibsim sweep --help)\n")
    sys.exit(2)


class _Progress:
    """A ``\\r`` bar on a terminal, one line per finished point otherwise."""

    def __init__(self, total: int, stream, skipped: int = 0):
        self.stream = stream
        self.tty = stream.isatty()
        self.total = total
        self.t0 = time.monotonic()
        self.first = None
        self.errors = 0

    def __call__(self, row: dict, done: int, total: int) -> None:
        if self.first is None:
            self.first = done - 1
        if row.get("status") != "ok":
            self.errors += 1
        el = time.monotonic() - self.t0
        ran = done - self.first
        left = el / ran * (total - done) if ran else 0.0
        err = f", {self.errors} failed" if self.errors else ""
        if self.tty:
            width = 28
            fill = int(round(done / total * width)) if total else width
            self.stream.write(f"\r[{'#' * fill}{'-' * (width - fill)}] {done}/{total} points{err}  "
                              f"{el:6.1f} s, ~{left:.0f} s left ")
        else:
            what = "ok" if row.get("status") == "ok" else f"error: {row.get('error', '')}"
            self.stream.write(f"ibsim: point {row.get('point')} ({row.get('point_id')}) {what}; "
                              f"{done}/{total} done{err}, {el:.1f} s\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _quiet_dask() -> None:
    """Dask logs connection attempts and worker restarts; the sweep reports what matters."""
    try:
        import distributed  # noqa: F401 - its import configures its loggers; override them after
    except ImportError:
        return
    for name in ("distributed", "tornado", "asyncio", "bokeh"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def cmd_sweep(args) -> int:
    """Run the sweep of ``args``; returns 0 (failed points are rows, not an exit code)."""
    from ..errors import ScenarioError
    from ..sweeps import check_output_dir, connect, load_sweep_file, run_sweep
    quiet = bool(getattr(args, "quiet", False))
    if not args.debug:
        _quiet_dask()
    if args.scheduler and (args.workers or args.serial):
        raise ScenarioError(f"--{'workers' if args.workers else 'serial'} does not go with --scheduler "
                            f"(the cluster's workers run the points)")
    spec = load_sweep_file(args.sweep)
    out = args.out or f"sweeps/{spec.name}"
    check_output_dir(out, args.resume)
    err = sys.stderr
    client = cluster = None
    if not args.serial:
        # connect first: an unreachable scheduler is one line and nothing written
        client, cluster = connect(args.scheduler, workers=args.workers, timeout=args.connect_timeout)
    progress = None
    try:
        if not quiet:
            if args.serial:
                where = "this process"
            elif args.scheduler:
                where = f"{args.scheduler} ({len(client.scheduler_info()['workers'])} workers now)"
            else:
                where = f"a LocalCluster of {len(cluster.workers)} workers on 127.0.0.1"
            bad = sum(p.error is not None for p in spec.points)
            err.write(f"ibsim: sweep {spec.name}: {len(spec.points)} points over {', '.join(spec.axes)}"
                      + (f" ({bad} rejected by the scenario checker)" if bad else "") + f" on {where}\n")
            err.flush()
            progress = _Progress(len(spec.points), err)
        df = run_sweep(spec, out, client=client, resume=args.resume, serial=args.serial, on_row=progress)
    finally:
        if progress is not None:
            progress.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    if quiet:
        print(out)
        return 0
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    print(f"{n_ok}/{len(df)} points ok; results: {out}/results.parquet (and results.csv), "
          f"figure: {out}/sweep.png, report: {out}/report.md")
    return 0
