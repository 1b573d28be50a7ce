"""Fixtures for the MAD server tests: servers on private socket names, ticking simulations.

Every server is started by the test on an abstract unix socket name of its
own (or a 127.0.0.1 UDP port) and stopped through its handle; tool and
OpenSM processes are stopped by their PIDs (:mod:`ibsim.bench.ofed`).
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from contextlib import contextmanager

import pytest

from ibsim.engine.simulation import Simulation
from ibsim.fabric import compile_fabric
from ibsim.mad import start_mad_server
from ibsim.bench.ofed import have_tools, run_tool

HAVE_TOOLS = have_tools("ibnetdiscover", "smpquery", "perfquery")
needs_tools = [pytest.mark.requires_ibsim_c,
               pytest.mark.skipif(not HAVE_TOOLS, reason="needs libumad2sim and infiniband-diags")]


def unique_sockname(tag: str = "mad") -> str:
    return f"ibsimpy-{tag}-{os.getpid()}-{uuid.uuid4().hex[:10]}"


@contextmanager
def serving(sim, *, udp: int | None = None, **kw):
    """Serve ``sim`` on a fresh socket name; yield (server, sockname)."""
    name = unique_sockname()
    srv = start_mad_server(sim, sockname=name, udp=udp, **kw)
    try:
        yield srv, name
    finally:
        srv.close()


@contextmanager
def ticking(sim, realtime: float = 1.0):
    """Run the simulation's clock in a thread (real time) until the block ends."""
    th = threading.Thread(target=sim.run, kwargs={"until": math.inf, "realtime": realtime}, daemon=True)
    th.start()
    try:
        yield sim
    finally:
        sim.stop()
        th.join(timeout=10)


def make_sim(topo, **kw) -> Simulation:
    kw.setdefault("seed", 1)
    return Simulation(compile_fabric(topo), **kw)


def tool(sock: str, *args, sim_host: str | None = None, cwd=None, udp=None, check: bool = True,
         timeout: float = 60.0):
    """Run an infiniband-diags tool against a server; assert success unless check=False."""
    r = run_tool(list(args), sockname=sock if udp is None else None, udp=udp, sim_host=sim_host,
                 cwd=cwd, timeout=timeout)
    if check:
        assert r.returncode == 0, f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


def field(text: str, name: str) -> str:
    """The value of a ``Name:......value`` line of smpquery/perfquery output."""
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].lstrip(".").strip()
    raise AssertionError(f"no {name!r} in:\n{text}")
