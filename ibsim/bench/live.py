"""The live fabric every approach of the monitoring benchmark watches.

:class:`LiveFabric` builds the same scenario for every approach (a fat tree,
all-to-all traffic, one seed), runs its clock in real time in a thread,
serves it to the OFED tools (ibsim's MAD server on a private unix socket)
and attaches a real OpenSM as the subnet manager, so every approach sees the
same fabric, routed the same way. It also holds the ground truth
(:meth:`LiveFabric.truth`: what every port counted, resets undone), the
fault used to time event latency, and the counts of MADs the server
answered.

Sizes are named by their number of CAs (:data:`SIZES`).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BenchError
from ..scenario import Scenario
from .ofed import OpenSM, have_tools

__all__ = ["SIZES", "FabricSize", "LiveFabric", "parse_sizes", "port_key", "metric_ports"]


@dataclass(frozen=True)
class FabricSize:
    """A fat tree of the suite: ``fat_tree(radix, levels)`` with ``cas`` CAs."""

    radix: int
    levels: int

    @property
    def cas(self) -> int:
        return 2 * (self.radix // 2) ** self.levels

    @property
    def label(self) -> str:
        return f"fat_tree({self.radix},{self.levels})"


#: the suite's fabrics by number of CAs (the quick mode uses 32)
SIZES: dict[int, FabricSize] = {s.cas: s for s in (FabricSize(8, 2), FabricSize(36, 2), FabricSize(24, 3),
                                                     FabricSize(36, 3))}


def parse_sizes(text) -> list[FabricSize]:
    """``"648,3456"`` -> fabric sizes; unknown sizes list the valid ones (:class:`BenchError`)."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            n = int(item)
        except ValueError:
            raise BenchError(f"--sizes: {item!r} is not a number of CAs; use "
                             f"{', '.join(map(str, SIZES))}") from None
        if n not in SIZES:
            raise BenchError(f"--sizes: no fabric of {n} CAs; choose from "
                             + ", ".join(f"{k} ({v.label})" for k, v in SIZES.items()))
        out.append(SIZES[n])
    if not out:
        raise BenchError("--sizes: no size given")
    return out


def port_key(metric: str) -> tuple[int, int, str] | None:
    """``ib.0x0002c90300000001.p03.port_xmit_data`` -> (node GUID, port number, counter); None if not a port series."""
    parts = metric.split(".")
    if len(parts) < 4 or not parts[-2].startswith("p"):
        return None
    try:
        return int(parts[-3], 16), int(parts[-2][1:]), parts[-1]
    except ValueError:
        return None


def metric_ports(fabric, prefix: str, counter: str, ports, guid_style: str = "plain") -> list[str]:
    """Carbon names of ``counter`` on ``ports`` (port indices) in the suite's scheme."""
    guid = fabric.node_guid[fabric.node_of_port[np.asarray(ports)]]
    fmt = "0x{:016x}" if guid_style == "0x" else "{:016x}"
    return [f"{prefix}.{fmt.format(int(g))}.p{int(n):02d}.{counter}"
            for g, n in zip(guid, fabric.port_num[np.asarray(ports)])]


class LiveFabric:
    """One live simulated fabric with its MAD server and OpenSM.

    Parameters
    ----------
    size : FabricSize
    workdir : path
        OpenSM's files go under it.
    seed : int
        Seed of the scenario (traffic placement).
    load : float
        Offered all-to-all load per host (fraction of the host link's rate).
    tick : float
        Simulated seconds per tick (s); the clock runs in real time.
    opensm_config : str
        Text of OpenSM's config file (PerfMgr and plugin lines for those approaches).
    opensm_env : dict, optional
        More environment for OpenSM (``LD_LIBRARY_PATH`` of a plugin).
    sim : Simulation, optional
        Serve this simulation (container hosts bring their own) instead of building one.
    udp : (host, port), optional
        Where ``sim``'s server already listens (with ``sim``).
    server : MadServer, optional
        That server (its MAD counts are read; it is not closed here).
    """

    def __init__(self, size: FabricSize, workdir, *, seed: int = 7, load: float = 0.5, tick: float = 1.0,
                 opensm_config: str = "", opensm_env: dict | None = None, sim=None, udp=None,
                 server=None, up_timeout: float = 600.0):
        if not have_tools("opensm"):
            raise BenchError("opensm and libumad2sim are needed: apt-get install opensm libumad2sim0")
        self.size = size
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.server = server
        self._own_server = None
        self.opensm = None
        self._thread = None
        self.sockname = None
        self.udp = udp
        if sim is None:
            sim = scenario(size, seed=seed, load=load, tick=tick).build()
            from ..mad import start_mad_server
            self.sockname = f"ibsim-bench-{os.getpid()}-{id(self):x}"
            self.server = self._own_server = start_mad_server(sim, sockname=self.sockname)
            self._thread = threading.Thread(target=sim.run, args=(math.inf,), kwargs={"realtime": 1.0},
                                            name="ibsim-bench-clock", daemon=True)
            self._thread.start()
        self.sim = sim
        self.fabric = sim.fabric
        f = self.fabric
        self.cabled = np.flatnonzero(f.peer_of_port >= 0)
        ca = np.flatnonzero(~f.is_switch[self.cabled])
        self.ca_ports = self.cabled[ca]
        self.sm_node = f.node_desc[f.node_of_port[self.ca_ports[-1]]]
        try:
            self.opensm = OpenSM(self.dir / "opensm", sockname=self.sockname, udp=udp, sim_host=self.sm_node,
                                 config=opensm_config, env=opensm_env)
            self.up_s = self.opensm.wait_up(timeout=up_timeout)
        except RuntimeError as exc:
            self.close()
            raise BenchError(f"OpenSM did not bring the fabric up: {str(exc).splitlines()[0]}") from None

    # ------------------------------------------------------------ attachment for tools
    def tool_args(self) -> list[str]:
        """Where the server is, as the collector's arguments."""
        if self.sockname:
            return ["--sockname", self.sockname]
        return ["--udp", f"{self.udp[0]}:{self.udp[1]}"]

    def frames(self) -> int:
        """Management datagrams the MAD server has received so far."""
        srv = self.server
        return int(srv.dispatcher.stats.get("frames", 0)) if srv is not None else 0

    # ------------------------------------------------------------ truth and faults
    def truth(self) -> np.ndarray:
        """Counters every port counted since the start (resets undone), uint64 [counter, port]."""
        return self.sim.counted_totals()

    def freeze(self, timeout: float = 60.0) -> np.ndarray:
        """Stop the clock: traffic stops, counters change only by the MADs monitoring sends.

        Returns the ground truth (:meth:`truth`) at the last tick, taken in the
        clock's thread as it stops (when observers get their final snapshot),
        so nothing counted after it is traffic.
        """
        done = threading.Event()
        box = {}

        def last(_snap):
            if not done.is_set():
                box["truth"] = self.sim.counted_totals()
                done.set()
        self.sim.observe(1e12, last)
        self.sim.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        done.wait(timeout)
        return box.get("truth", self.truth())

    def fault_link(self) -> str:
        """The link the suite takes down to time event latency: the first CA's cable."""
        f = self.fabric
        return f.port_label(int(self.ca_ports[0]))

    # ------------------------------------------------------------ teardown
    def close(self) -> None:
        """Stop OpenSM (by PID), the clock and the server."""
        if self.opensm is not None:
            self.opensm.stop()
            self.opensm = None
        if self._thread is not None:
            self.sim.stop()
            self._thread.join(30)
        if self._own_server is not None:
            self._own_server.close()
            self._own_server = None

    def __enter__(self) -> LiveFabric:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scenario(size: FabricSize, *, seed: int = 7, load: float = 0.5, tick: float = 1.0,
             cluster: dict | None = None, output: str | None = None) -> Scenario:
    """The suite's scenario: ``size``'s fat tree, routed by an external OpenSM, all-to-all at ``load``
    and an incast of an eighth of the hosts into one (congestion, XmitWait)."""
    doc = {"name": f"bench-{size.cas}", "seed": seed, "clock": {"tick": f"{tick}s"},
           "topology": {"generate": "fat-tree", "radix": size.radix, "levels": size.levels},
           "routing": {"engine": "opensm"},
           "traffic": [{"name": "a2a", "pattern": "all_to_all", "load": load},
                       # congestion, so PortXmitWait counts somewhere (what ibqueryerrors reports)
                       {"name": "io", "pattern": "incast", "hosts": max(size.cas // 8, 4), "targets": 1,
                        "load": 0.8}]}
    if cluster is not None:
        doc["cluster"] = cluster
    if output is not None:
        doc["output"] = output
    return Scenario.from_dict(doc, source=f"<bench {size.label}>")


def wait_until(pred, timeout: float, interval: float = 0.05):
    """Poll ``pred`` until it returns something true or ``timeout`` s pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)
