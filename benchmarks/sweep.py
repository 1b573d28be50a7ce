"""Benchmark: a sweep's points on a 2-worker Dask LocalCluster against the same points run serially.

    python benchmarks/sweep.py --json

The sweep: ``--points`` points (default 8: 4 loads x 2 seeds) of a uniform
random pattern redrawn every tick on ``fat_tree(8, 3)`` (128 CAs, 80
switches), ``--duration`` simulated seconds at 10 ms ticks, so every tick
reallocates. First every point runs serially in this process
(:func:`ibsim.sweeps.run_point`); then a LocalCluster of ``--workers``
single-threaded worker processes on 127.0.0.1 is started (its start-up is
timed apart, ``cluster_start_s``) and :func:`ibsim.sweeps.run_sweep` runs
the same points, results files and all.

For reference the same points also run on ``--workers`` plain processes
(``concurrent.futures.ProcessPoolExecutor``, no Dask): ``speedup_plain_processes``
is what the machine itself gives two CPU-bound processes, the ceiling of ``speedup``.

Keys: ``serial_s``, ``dask_s`` (first submit to last row written),
``speedup`` = serial_s / dask_s, ``overhead_per_point_s`` = (dask_s x
workers - the points' own run time measured on the workers) / points: the
worker time a point costs beyond running it (scheduling, transfer, the
results rewrite, idle tail), ``worker_cpu_share`` (CPU seconds over wall seconds
of the points on the workers: below 1 when other programs take the cores),
``rows_equal`` (the Dask rows equal the serial ones but for wall_s, cpu_s and
worker), ``cpu_count`` and ``loadavg_1m`` at the start (what else the machine
was doing).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SWEEP = """\
name: bench
base:
  clock: {{tick: 10ms, duration: {duration}}}
  topology: {{generate: fat-tree, radix: {radix}, levels: 3}}
  routing: {{engine: minhop, sweep_delay: 1s}}
  traffic:
    - {{name: u, pattern: uniform, interval: 10ms, hosts: all, load: 0.5}}
  output: {{every: 500ms}}
grid:
  traffic[0].load: {loads}
  seed: {seeds}
"""


def _warm(_):
    import ibsim.sweeps.worker  # noqa: F401 - imports done before timing
    time.sleep(0.2)             # so that every pool process takes one


def _same(a: dict, b: dict, skip) -> bool:
    for k in (set(a) | set(b)) - set(skip):
        x, y = a.get(k), b.get(k)
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=8, help="points (even: loads x 2 seeds)")
    ap.add_argument("--duration", default="30s", help="simulated time per point")
    ap.add_argument("--radix", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from ibsim.sweeps import NONDETERMINISTIC, PointTask, connect, load_sweep_file, run_point, run_sweep
    logging.getLogger("distributed").setLevel(logging.ERROR)

    n_loads = max(args.points // 2, 1)
    loads = [round(0.2 + 0.7 * i / max(n_loads - 1, 1), 3) for i in range(n_loads)]
    tmp = Path(tempfile.mkdtemp(prefix="ibsim-bench-sweep-"))
    try:
        path = tmp / "bench.yml"
        path.write_text(SWEEP.format(duration=args.duration, radix=args.radix, loads=loads, seeds=[1, 2]))
        spec = load_sweep_file(path)
        load1 = os.getloadavg()[0]

        tasks = [PointTask(p, spec.source, spec.base_dir, spec.name, spec.recovery) for p in spec.points]
        t0 = time.perf_counter()
        serial = {t.point.id: run_point(t) for t in tasks}
        serial_s = time.perf_counter() - t0

        # the machine's own ceiling: the same points on plain worker processes, no Dask
        with ProcessPoolExecutor(args.workers) as pool:
            list(pool.map(_warm, range(args.workers)))
            t0 = time.perf_counter()
            list(pool.map(run_point, tasks))
            plain_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        client, cluster = connect(None, workers=args.workers)
        client.run(lambda: __import__("ibsim.sweeps.worker"))        # imports done before timing
        start_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            df = run_sweep(spec, tmp / "out", client=client, report=False)
            dask_s = time.perf_counter() - t0
        finally:
            client.close()
            cluster.close()
        rows = {r["point_id"]: r for r in df.to_dict("records")}
        own = float(df["wall_s"].sum())
        cpu = float(df["cpu_s"].sum())
        out = {
            "points": len(spec.points), "workers": args.workers, "fabric": f"fat_tree({args.radix}, 3)",
            "duration": args.duration, "tick": "10ms",
            "cpu_count": os.cpu_count(), "loadavg_1m": round(load1, 2),
            "serial_s": round(serial_s, 3), "serial_per_point_s": round(serial_s / len(spec.points), 3),
            "cluster_start_s": round(start_s, 3), "dask_s": round(dask_s, 3),
            "speedup": round(serial_s / dask_s, 3),
            "plain_processes_s": round(plain_s, 3),
            "speedup_plain_processes": round(serial_s / plain_s, 3),
            "overhead_per_point_s": round((dask_s * args.workers - own) / len(spec.points), 3),
            # CPU the points got while they ran on the workers (1.0: a core each, all the time)
            "worker_cpu_share": round(cpu / own, 3) if own > 0 else None,
            "rows_ok": int((df["status"] == "ok").sum()),
            "rows_equal": all(_same(rows[k], serial[k], NONDETERMINISTIC) for k in serial),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
