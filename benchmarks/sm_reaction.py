"""Benchmark: how long OpenSM takes to bring a returned link back to Active, by fabric size.

    python benchmarks/sm_reaction.py --json                   # fat_tree(r, 2) for r = 8, 16, 24
    python benchmarks/sm_reaction.py --radix 4 --json         # one quick size

Per size: our MAD server serves ``fat_tree(radix, 2)`` cold (``routing=
"opensm"``); OpenSM (``-s 0``: no periodic sweeps, only traps wake it)
brings it up; then one leaf uplink goes down and, once OpenSM has routed
around it, comes back. Measured in wall time (the simulation runs in real
time): ``trap_to_active_s``, from the link coming up (trap 128 on its way)
to the port being Active again, i.e. OpenSM's heavy sweep plus its trap
handling; and ``initial_up_s``, OpenSM start to the first SUBNET UP from its
log. ``fit`` is the least-squares line ``trap_to_active_s = a + b * ports``
over the sizes: the law :data:`ibsim.engine.sm.REACTION_PER_PORT_S` is
derived from (the embedded SM's ``sweep_delay: auto``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(radix: int, workdir: Path, timeout: float = 300.0) -> dict:
    import uuid

    import numpy as np

    from ibsim.bench.ofed import OpenSM
    from ibsim.engine.simulation import Simulation
    from ibsim.fabric import compile_fabric
    from ibsim.fabric.state import ACTIVE
    from ibsim.mad import start_mad_server
    from ibsim.topology import fat_tree

    sim = Simulation(compile_fabric(fat_tree(radix, 2)), seed=1, routing="opensm", tick=0.05)
    f = sim.fabric
    sock = f"ibsimpy-smreact-{uuid.uuid4().hex[:10]}"
    srv = start_mad_server(sim, sockname=sock)
    th = threading.Thread(target=sim.run, kwargs={"until": math.inf, "realtime": 1.0}, daemon=True)
    th.start()
    try:
        with OpenSM(workdir / f"osm-{radix}", sockname=sock, sim_host="node001 HCA-1",
                    extra=["-s", "0"]) as osm:
            osm.wait_up(timeout)
            initial = osm.up_span_s()
            isl = f.is_switch & (f.peer_of_port >= 0) & (f.port_num > 0)
            isl &= f.is_switch[np.maximum(f.peer_of_port, 0)]
            up = int(np.flatnonzero(isl)[0])                       # the first switch-to-switch port
            ups = osm.count("SUBNET UP")
            sim.inject("link_down", f.port_label(up))
            osm.wait_up(timeout, count=ups + 1)
            time.sleep(0.5)
            t0 = time.monotonic()
            sim.inject("link_up", f.port_label(up))
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                with sim.lock:
                    if sim.state.port_state[up] == ACTIVE:
                        break
                time.sleep(0.005)
            dt = time.monotonic() - t0
    finally:
        sim.stop()
        th.join(timeout=10)
        srv.close()
    return {"radix": radix, "ports": int(f.n_ports), "nodes": int(f.n_nodes),
            "trap_to_active_s": round(dt, 3), "initial_up_s": initial}


def fit(rows: list[dict]) -> dict:
    """Least-squares a + b * ports over the rows (b in seconds per port)."""
    xs = [r["ports"] for r in rows]
    ys = [r["trap_to_active_s"] for r in rows]
    n = len(xs)
    if n < 2:
        return {"a_s": ys[0], "b_s_per_port": None}
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return {"a_s": round(my - b * mx, 4), "b_s_per_port": float(f"{b:.3g}")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--radix", type=int, action="append", help="fat_tree radix (repeatable)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    radixes = args.radix or [8, 16, 24]
    work = Path(tempfile.mkdtemp(prefix="ibsim-smreact-"))
    try:
        rows = [measure(r, work) for r in radixes]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {"sizes": rows, "fit": fit(rows)}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
