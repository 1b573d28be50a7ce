"""Regenerate the golden tool outputs of tests/bench/test_sweeps_parsers.py.

Run from the repository root: ``PYTHONPATH=$PWD python3 tests/bench/data/sweeps/capture.py``.
A fat_tree(4, 2) with an all-to-all and an incast job and a bit-error rate on
leaf2:1 runs in real time under OpenSM for 3 s, its clock is stopped, and the
real infiniband-diags tools read it through ibsim's MAD server (``*.txt``).
``ibqueryerrors-nosa.txt`` is the same line without OpenSM (stdout, then
stderr after a ``#stderr`` line). The tests check hand-read values of these
files, so regenerating means updating those values.
"""

from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from ibsim.bench.ofed import OpenSM, run_tool
from ibsim.engine.simulation import Simulation
from ibsim.fabric import compile_fabric
from ibsim.mad import start_mad_server
from ibsim.topology import fat_tree
from ibsim.traffic import Job

OUT = Path(__file__).resolve().parent
IQE = ["ibqueryerrors", "--verbose", "--details", "--suppress-common", "--data", "--report-port",
       "--switch", "--ca"]


def _sim(routing):
    sim = Simulation(compile_fabric(fat_tree(4, 2)), tick=0.1, seed=1, routing=routing)
    sim.add_job(Job("a2a", "all_to_all", load=0.3))
    sim.add_job(Job("hot", "incast", load=0.5))
    return sim


def main() -> int:
    host = "node002 HCA-1"
    with tempfile.TemporaryDirectory() as tmp:
        sim = _sim("opensm")
        name = f"capture-{uuid.uuid4().hex[:8]}"
        srv = start_mad_server(sim, sockname=name)
        th = threading.Thread(target=sim.run, kwargs={"until": math.inf, "realtime": 1.0}, daemon=True)
        th.start()
        sim.inject("ber", "leaf2:1", rate=1e-8)
        with OpenSM(Path(tmp) / "osm", sockname=name, sim_host="node001 HCA-1") as osm:
            osm.wait_up(120)
            time.sleep(3)
            sim.stop()
            th.join(10)

            def run(args):
                r = run_tool(args, sockname=name, sim_host=host, cwd=tmp, timeout=60)
                assert r.returncode in (0, 1), (args, r.returncode, r.stderr)
                return r.stdout

            (OUT / "ibnetdiscover-ports.txt").write_text(run(["ibnetdiscover", "--ports"]))
            (OUT / "ibnetdiscover.txt").write_text(run(["ibnetdiscover"]))
            (OUT / "perfquery-switch.txt").write_text(
                run(["perfquery", "-l", "-x", "-G", "0x0002c90302000001", "1,2,3,4"]))
            (OUT / "perfquery-ca.txt").write_text(run(["perfquery", "-x", "-G", "0x0002c90301000011", "1"]))
            (OUT / "ibqueryerrors.txt").write_text(run(IQE))
        srv.close()
        sim = _sim("minhop")
        name = f"capture-{uuid.uuid4().hex[:8]}"
        srv = start_mad_server(sim, sockname=name)
        r = run_tool(IQE, sockname=name, sim_host=host, cwd=tmp, timeout=60)
        (OUT / "ibqueryerrors-nosa.txt").write_text(r.stdout + "#stderr\n" + r.stderr)
        srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
