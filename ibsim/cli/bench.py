"""``python -m ibsim bench monitoring``: which InfiniBand monitoring approach scales.

Runs every approach of :data:`ibsim.bench.approaches.APPROACHES` one after
another against the same live simulated fabric at each size and writes
``results.json``, ``results.csv``, ``report.md`` and plots into ``--out``.
"""

from __future__ import annotations

import platform
import sys
import time

from ..errors import BenchError, ScenarioError
from ..units import parse_duration

__all__ = ["add_parsers", "cmd_bench_monitoring"]


def add_parsers(sub) -> None:
    p = sub.add_parser("bench", help="benchmark suites (monitoring: PerfMgr plugins vs tool sweeps vs "
                       "per-host collectors vs direct export)")
    bsub = p.add_subparsers(dest="suite", metavar="SUITE")
    bsub.required = True
    m = bsub.add_parser("monitoring", help="compare monitoring approaches on fabrics of growing size",
                        description=__doc__.split("\n\n")[0])
    m.add_argument("--sizes", default="648,3456", help="fabric sizes in CAs, comma-separated "
                   "(32, 648, 3456, 11664; default 648,3456)")
    m.add_argument("--approaches", default="all", help="comma-separated approaches or 'all' (default)")
    m.add_argument("--interval", default="10s", help="sweep interval of every approach (default 10s)")
    m.add_argument("--sweeps", type=int, default=3, help="measured sweeps per approach (default 3)")
    m.add_argument("--seed", type=int, default=7, help="scenario seed (default 7)")
    m.add_argument("--load", type=float, default=0.5, help="all-to-all load per host (default 0.5)")
    m.add_argument("--quick", action="store_true",
                   help="every approach on fat_tree(8,2) (32 CAs), 2 sweeps at 2 s")
    m.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    m.add_argument("--out", required=True, help="output directory (created)")
    m.set_defaults(func=cmd_bench_monitoring)


def _bar(k: int, total: int, line: str, width: int = 24) -> str:
    done = int(width * (k - 1) / max(total, 1))
    return f"[{'#' * done}{'.' * (width - done)}] {k}/{total} {line}"


def cmd_bench_monitoring(args) -> int:
    from ..bench.approaches import parse_approaches
    from ..bench.live import parse_sizes
    from ..bench.report import render_table, write_results
    from ..bench.suite import run_suite
    try:
        interval = parse_duration(args.interval)
    except ScenarioError as exc:
        raise BenchError(f"--interval: {exc.message}") from None
    if interval < 1:
        raise BenchError(f"--interval: at least 1 s, got {args.interval}")
    if args.sweeps < 1:
        raise BenchError(f"--sweeps: at least 1, got {args.sweeps}")
    if args.quick:
        sizes, interval, sweeps = parse_sizes("32"), 2.0, 2
    else:
        sizes, sweeps = parse_sizes(args.sizes), args.sweeps
    approaches = parse_approaches(args.approaches)
    for ap in approaches:
        ap.check()
    quiet = getattr(args, "quiet", False)

    tty = sys.stderr.isatty()

    def progress(k, total, line):
        if quiet:
            return
        if tty:
            print("\r" + _bar(k, total, line)[:110].ljust(110), end="", file=sys.stderr, flush=True)
        else:
            print(_bar(k, total, line), file=sys.stderr, flush=True)

    t0 = time.time()
    # SIGTERM and SIGHUP stop the suite like Ctrl-C: every approach's finally removes what it
    # started (OpenSM, carbon-cache, collectors, containers) before the exit
    import signal

    def _stop(signum, frame):
        raise KeyboardInterrupt
    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGHUP)
           if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        rows = run_suite(sizes, approaches, args.out, interval=interval, sweeps=sweeps, seed=args.seed,
                         load=args.load, progress=progress)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if not quiet and tty:
        print(file=sys.stderr)
    meta = {"command": "python -m ibsim bench monitoring " + " ".join(sys.argv[3:] if sys.argv[1:3] ==
                                                                      ["bench", "monitoring"] else []),
            "machine": f"{platform.node()} ({platform.machine()}, {_cpus()} CPUs)",
            "interval_s": interval, "sweeps": sweeps, "seed": args.seed, "load": args.load,
            "started": t0, "wall_s": round(time.time() - t0, 1)}
    paths = write_results(rows, args.out, meta=meta, plots=not args.no_plots)
    print(render_table(rows))
    if not quiet:
        print(f"ibsim: wrote {paths['md']} ({len(rows)} rows, {meta['wall_s']:.0f} s)", file=sys.stderr)
    return 0


def _cpus() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
