"""Benchmark: monitoring approaches side by side (the suite of ``python -m ibsim bench monitoring``).

    python benchmarks/monitoring.py --json                              # 648 and 3,456 CAs
    python benchmarks/monitoring.py --quick --json                      # fat_tree(8,2), ~2 min
    python benchmarks/monitoring.py --sizes 648 --approaches direct,perfmgr-batched --json

Runs :func:`ibsim.bench.suite.run_suite` (every approach one after another on
the same live fabric, see the README's "Monitoring benchmark") into ``--out``
(default: a temporary directory, removed) and prints one JSON object: ``meta``
and ``results`` (one row per approach and size: ``sweep_s_median``,
``sweep_s_p95``, ``completeness``, ``final_sweep_complete``,
``cpu_s_per_sweep``, ``perf_mads_per_sweep``, ``opensm_fds_max``,
``staleness_s_max``, ``data_rel_err_max``, ``event_latency_trap_s``,
``event_latency_counter_s``, ``points_per_s``, ...).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

# this directory holds exporters.py, which would shadow the exporters package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="648,3456")
    p.add_argument("--approaches", default="all")
    p.add_argument("--interval", default="10s")
    p.add_argument("--sweeps", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", help="keep the outputs here (default: a temporary directory)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (the default)")
    args = p.parse_args(argv)
    from ibsim.cli import main as ibsim_main
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ibsim-bench-"))
    try:
        cmd = ["-q", "bench", "monitoring", "--sizes", args.sizes, "--approaches", args.approaches,
               "--interval", args.interval, "--sweeps", str(args.sweeps), "--no-plots", "--out", str(out)]
        if args.quick:
            cmd.append("--quick")
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            rc = ibsim_main(cmd)
        if rc != 0:
            return rc
        print(json.dumps(json.loads((out / "results.json").read_text()), indent=1))
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
