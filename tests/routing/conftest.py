"""Routing test helpers: hand-built topologies and route walkers.

Tests get this module through the ``rh`` fixture (the suite runs with
``--import-mode=importlib``, so test files cannot import each other).
Builders use the Topology API directly so each test fabric's shape is
visible here; ``all_routes`` walks every (switch, LID) pair with the
library's vectorised walker.
"""

from __future__ import annotations

import sys

import networkx as nx
import numpy as np
import pytest

from ibsim.routing import walk
from ibsim.topology import Topology, fat_tree

SW = 0x0002C90302100000
CA = 0x0002C90301100000


def ring(n: int = 6, hosts: int = 2) -> Topology:
    """``n`` 8-port switches in a ring (port 7 -> next switch's port 8), ``hosts`` CAs each."""
    t = Topology(f"ring{n}")
    for i in range(n):
        t.add_switch(SW + i, 8, f"ring-sw{i + 1}")
    for i in range(n):
        t.add_link(SW + i, 7, SW + (i + 1) % n, 8)
        for h in range(hosts):
            g = CA + 8 * (i * hosts + h)
            t.add_ca(g, 1, f"node{i * hosts + h + 1:03d} HCA-1")
            t.add_link(SW + i, h + 1, g, 1)
    return t.validate()


def torus2d(nx_: int = 3, ny: int = 3) -> Topology:
    """A 2-D torus of 8-port switches (ports 5..8 to +x, -x, +y, -y), one CA each."""
    t = Topology(f"torus{nx_}x{ny}")
    idx = lambda x, y: SW + (y % ny) * nx_ + (x % nx_)  # noqa: E731
    for y in range(ny):
        for x in range(nx_):
            t.add_switch(idx(x, y), 8, f"torus-{x}-{y}")
    for y in range(ny):
        for x in range(nx_):
            t.add_link(idx(x, y), 5, idx(x + 1, y), 6)
            t.add_link(idx(x, y), 7, idx(x, y + 1), 8)
            g = CA + 8 * (y * nx_ + x)
            t.add_ca(g, 1, f"node{y * nx_ + x + 1:03d} HCA-1")
            t.add_link(idx(x, y), 1, g, 1)
    return t.validate()


def leaf_spine(leaves: int = 4, spines: int = 2, hosts: int = 2, radix: int = 12) -> Topology:
    """A 2-level tree with spare ports: leaf ports 1..hosts CAs, hosts+1.. uplinks."""
    t = Topology("leaf-spine")
    for i in range(leaves):
        t.add_switch(SW + i, radix, f"leaf{i + 1}")
    for j in range(spines):
        t.add_switch(SW + 0x100 + j, radix, f"spine{j + 1}")
    for i in range(leaves):
        for j in range(spines):
            t.add_link(SW + i, hosts + 1 + j, SW + 0x100 + j, i + 1)
        for h in range(hosts):
            g = CA + 8 * (i * hosts + h)
            t.add_ca(g, 1, f"node{i * hosts + h + 1:03d} HCA-1")
            t.add_link(SW + i, h + 1, g, 1)
    return t.validate()


def three_level(radix: int = 8) -> Topology:
    """fat_tree(radix, 3) rebuilt with radix+2-port switches (two spare ports each)."""
    base = fat_tree(radix, 3)
    t = Topology("three-level")
    for g in base.switches():
        d = base.node(g)
        t.add_switch(g, d["nports"] + 2, d["desc"])
    for g in base.cas():
        t.add_ca(g, 1, base.node(g)["desc"])
    for link in base.links():
        t.add_link(*link.a, *link.b)
    return t.validate()


def looping_ring(n: int = 9):
    """A ring of ``n`` switches with one CA on the first, and an LFT in which every switch
    forwards that CA's LID clockwise (nobody delivers): ``(fabric, lft, lid)``."""
    from ibsim.fabric import compile_fabric
    from ibsim.routing import compute_lfts
    t = Topology("chain")
    for i in range(n):
        t.add_switch(0x10 + i, 4, f"sw{i}")
    for i in range(n):
        t.add_link(0x10 + i, 1, 0x10 + (i + 1) % n, 2)
    t.add_ca(0x100, 1, "h")
    t.add_link(0x10, 3, 0x100, 1)
    fab = compile_fabric(t)
    lft = compute_lfts(fab)
    lid = int(fab.default_lid[fab.port_index(0x100, 1)])
    lft[:, lid] = 1
    return fab, lft, lid


def ca_lids(fab) -> np.ndarray:
    """LIDs of every CA port."""
    ca = np.flatnonzero(~fab.is_switch & (fab.default_lid > 0))
    return fab.default_lid[ca].astype(np.int64)


def all_routes(fab, lft, lids=None, *, record=False, up=None):
    """Walk every (switch row, LID) pair; returns (src rows, lids, Walk)."""
    lids = ca_lids(fab) if lids is None else np.asarray(lids, dtype=np.int64)
    src = np.repeat(np.arange(fab.n_switches), lids.size)
    dst = np.tile(lids, fab.n_switches)
    return src, dst, walk(fab, lft, src, dst, record=record, up=up)


def switch_graph(fab, up=None) -> nx.MultiGraph:
    """networkx graph of switch rows over usable switch-to-switch links."""
    up = (fab.peer_of_port >= 0) if up is None else up
    g = nx.MultiGraph()
    g.add_nodes_from(range(fab.n_switches))
    for a, b in fab.link_ends:
        if fab.is_switch[a] and fab.is_switch[b] and up[a] and up[b]:
            g.add_edge(int(fab.switch_of_node[fab.node_of_port[a]]),
                       int(fab.switch_of_node[fab.node_of_port[b]]))
    return g


def attach_row(fab, lid: int) -> int:
    """Switch row a CA LID hangs off (or the switch row owning a switch LID)."""
    p = int(fab.lid_to_port()[lid])
    if fab.is_switch[p]:
        return int(fab.switch_of_node[fab.node_of_port[p]])
    q = int(fab.peer_of_port[p])
    return int(fab.switch_of_node[fab.node_of_port[q]])


@pytest.fixture
def rh():
    """The helpers of this module (``rh.ring(6)``, ``rh.all_routes(...)``)."""
    return sys.modules[__name__]


def edr_cluster(seed: int = 0, cables: int = 6, hosts: int = 24) -> Topology:
    """A production-like dump: 2 spines, 4 leaves, ``cables`` parallel cables per leaf-spine
    pair, up to ``hosts`` CAs per leaf on scattered ports, random GUIDs, LIDs in no order."""
    rng = np.random.default_rng(seed)
    guids = iter(int(g) << 8 for g in rng.choice(1 << 40, size=200, replace=False))
    t = Topology("edr-cluster")
    radix = hosts + 2 * cables
    spines = [next(guids) for _ in range(2)]
    leaves = [next(guids) for _ in range(4)]
    for i, g in enumerate(spines):
        t.add_switch(g, 4 * cables + 4, f"spine{i + 1}")
    for i, g in enumerate(leaves):
        t.add_switch(g, radix, f"leaf{i + 1}")
    n = 0
    for i, g in enumerate(leaves):
        for j, s in enumerate(spines):
            for c in range(cables):
                t.add_link(g, hosts + 1 + j * cables + c, s, 1 + i * cables + c)
        ports = rng.permutation(hosts)[:hosts - int(rng.integers(0, 4))] + 1
        for p in ports.tolist():
            n += 1
            h = next(guids)
            t.add_ca(h, 1, f"cn{n:03d} mlx5_0")
            t.add_link(g, p, h, 1)
    return shuffle_lids(t.validate(), seed)


def random_fabric(seed: int, n: int = 10, degree: int = 4, hosts: int = 2) -> Topology:
    """``n`` 16-port switches: a ring plus random chords (some doubled), ``hosts`` CAs each,
    random GUIDs, LIDs in no order."""
    rng = np.random.default_rng(seed)
    t = Topology(f"random{seed}")
    sw = [int(x) << 4 for x in rng.choice(1 << 30, n, replace=False)]
    for i, g in enumerate(sw):
        t.add_switch(g, 16, f"sw{i}")
    free = {g: hosts + 1 for g in sw}
    pairs = {(i, (i + 1) % n) for i in range(n)}
    while len(pairs) < n * degree // 2:
        a, b = rng.choice(n, 2, replace=False)
        pairs.add((int(a), int(b)))
    for a, b in sorted(pairs):
        for _ in range(1 + int(rng.integers(0, 2))):
            ga, gb = sw[a], sw[b]
            if free[ga] <= 16 and free[gb] <= 16:
                t.add_link(ga, free[ga], gb, free[gb])
                free[ga] += 1
                free[gb] += 1
    for i, g in enumerate(sw):
        for h in range(hosts):
            c = CA + 16 * (i * hosts + h)
            t.add_ca(c, 1, f"h{i * hosts + h + 1}")
            t.add_link(g, h + 1, c, 1)
    return shuffle_lids(t.validate(), seed)


# ----------------------------------------------------------- OpenSM on our MAD server
def shuffle_lids(topo: Topology, seed: int = 0) -> Topology:
    """Preset LIDs in a random order (switch port 0 and every cabled CA port), in place."""
    rng = np.random.default_rng(seed)
    ends = [(g, 0) for g in topo.switches()]
    ends += [(g, p) for g in topo.cas() for p in range(1, topo.node(g)["nports"] + 1)
             if topo.peer(g, p) is not None]
    lids = rng.permutation(np.arange(1, len(ends) + 1)) + int(rng.integers(0, 40))
    for (g, p), lid in zip(ends, lids.tolist()):
        topo.node(g)["lids"][p] = lid
    return topo


def opensm_lfts(topo: Topology, workdir, engine: str = "minhop", roots=None):
    """Route ``topo`` with the real OpenSM attached to our MAD server.

    The simulation starts with our default LIDs (OpenSM keeps LIDs it finds
    in PortInfo) and our LFTs (which OpenSM ignores on its first sweep).

    Returns
    -------
    (FabricIndex, lid, lft)
        The compiled fabric, the port LIDs after OpenSM's sweep (must equal
        ``fabric.default_lid``) and OpenSM's ``opensm-lfts.dump`` translated
        into rows and LIDs of the fabric.
    """
    import math
    import os
    import threading
    import uuid
    from pathlib import Path

    from ibsim.bench.ofed import OpenSM
    from ibsim.engine.simulation import Simulation
    from ibsim.fabric import compile_fabric
    from ibsim.mad import start_mad_server
    from ibsim.routing import lft_from_dump

    workdir = Path(workdir)
    fab = compile_fabric(topo)
    sim = Simulation(fab, seed=1, tick=0.05, routing="minhop")
    sock = f"ibsimpy-osmcmp-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    extra = []
    if roots is not None:
        rf = workdir / "roots.txt"
        workdir.mkdir(parents=True, exist_ok=True)
        rf.write_text("".join(f"0x{int(g):016x}\n" for g in roots))
        extra = ["-a", str(rf)]
    host = fab.node_desc[int(np.flatnonzero(~fab.node_is_switch)[0])]
    srv = start_mad_server(sim, sockname=sock)
    th = threading.Thread(target=sim.run, kwargs={"until": math.inf, "realtime": 1.0}, daemon=True)
    th.start()
    try:
        with OpenSM(workdir / "osm", sockname=sock, sim_host=host, routing=engine,
                    extra=["-s", "0", *extra]) as osm:
            osm.wait_up(120.0)
            text = (osm.dump_dir / "opensm-lfts.dump").read_text()
            log = osm.log_text()
    finally:
        sim.stop()
        th.join(timeout=10)
        srv.close()
    with sim.lock:
        lid = sim.state.lid.copy()
    assert f"{engine} tables configured on all switches" in log, \
        f"OpenSM did not route with {engine} (fell back or failed)"
    return fab, lid, lft_from_dump(fab, text, lid=lid)
