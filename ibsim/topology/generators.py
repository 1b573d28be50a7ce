"""Topology generators: plain functions with deterministic GUIDs and descriptions.

Every generator takes ``speed=`` and ``width=`` (default 4x EDR) and returns a
validated :class:`~ibsim.topology.graph.Topology`. GUIDs use the Mellanox OUI
(00:02:c9): switch *i* gets ``0x0002c90302000000 + i``; CA *i* gets
``0x0002c90301000000 + 8 i`` and its ports ``node GUID + port``, as on
ConnectX HCAs. Host descriptions read ``node042 HCA-1``. May import: graph,
errors, linkrate.
"""

from __future__ import annotations

from ..errors import TopologyError
from ..linkrate import DEFAULT_SPEED, DEFAULT_WIDTH, parse_speed, parse_width
from .graph import Topology

__all__ = ["GENERATORS", "fat_tree", "single_switch", "Builder"]

SWITCH_GUID_BASE = 0x0002C90302000000
CA_GUID_BASE = 0x0002C90301000000
CA_GUID_STEP = 8          # leaves room for up to 7 port GUIDs per CA


class Builder:
    """Allocates GUIDs and descriptions while a generator builds a topology.

    Parameters
    ----------
    name : str
        Topology name.
    width, speed : str
        Default link width and speed.
    n_hosts : int
        Expected host count, only to choose the zero padding of ``nodeNNN``.
    """

    def __init__(self, name: str, width: str = DEFAULT_WIDTH, speed: str = DEFAULT_SPEED,
                 n_hosts: int = 0):
        self.topo = Topology(name)
        self.width = parse_width(width)
        self.speed = parse_speed(speed)
        self._n_switches = 0
        self._n_cas = 0
        self._host_digits = max(3, len(str(max(n_hosts, 1))))

    def switch(self, nports: int, desc: str) -> int:
        """Add a switch; return its GUID."""
        guid = SWITCH_GUID_BASE + self._n_switches
        self._n_switches += 1
        self.topo.add_switch(guid, nports, desc)
        return guid

    def host(self, nports: int = 1, desc: str | None = None) -> int:
        """Add a CA named ``node<NNN> HCA-1`` (numbered from 1); return its GUID."""
        if nports >= CA_GUID_STEP:
            raise TopologyError(f"generated CAs have at most {CA_GUID_STEP - 1} ports, got {nports}")
        guid = CA_GUID_BASE + CA_GUID_STEP * self._n_cas
        self._n_cas += 1
        if desc is None:
            desc = f"node{self._n_cas:0{self._host_digits}d} HCA-1"
        self.topo.add_ca(guid, nports, desc)
        return guid

    def link(self, a: int, pa: int, b: int, pb: int) -> None:
        """Cable two ports at the default width and speed."""
        self.topo.add_link(a, pa, b, pb, self.width, self.speed)

    def done(self) -> Topology:
        """Validate and return the topology."""
        return self.topo.validate()


def _check_radix(radix: int) -> None:
    if not isinstance(radix, int) or radix < 2 or radix % 2 or radix > 254:
        raise TopologyError(f"radix must be an even integer in 2..254, got {radix!r}")


def fat_tree(radix: int = 36, levels: int = 2, *, width: str = DEFAULT_WIDTH,
             speed: str = DEFAULT_SPEED) -> Topology:
    """The maximal non-blocking folded Clos built from radix-R switches.

    Parameters
    ----------
    radix : int
        Ports per switch (even).
    levels : int
        1: one switch with R CAs. 2: R leaves with R/2 CAs and R/2 uplinks
        each, R/2 spines (R^2/2 CAs). 3: R pods of R/2 leaves and R/2 spines,
        (R/2)^2 core switches (R^3/4 CAs, 5R^2/4 switches).
    width, speed : str
        Link width and speed of every cable.

    Notes
    -----
    Leaf ports 1..R/2 hold CAs and R/2+1..R are uplinks; a spine's port *j*
    goes to the *j*-th switch below it; a core switch's port *p* goes to pod *p*.

    Examples
    --------
    >>> fat_tree(36, 2).summary()["cas"]
    648
    """
    _check_radix(radix)
    half = radix // 2
    if levels == 1:
        b = Builder(f"fat-tree-r{radix}-l1", width, speed, radix)
        sw = b.switch(radix, "switch01")
        for p in range(1, radix + 1):
            b.link(sw, p, b.host(), 1)
        return b.done()
    if levels == 2:
        b = Builder(f"fat-tree-r{radix}-l2", width, speed, radix * half)
        d = len(str(radix))
        leaves = [b.switch(radix, f"leaf{i + 1:0{d}d}") for i in range(radix)]
        spines = [b.switch(radix, f"spine{i + 1:0{d}d}") for i in range(half)]
        for li, leaf in enumerate(leaves):
            for si, spine in enumerate(spines):
                b.link(leaf, half + 1 + si, spine, li + 1)
        for leaf in leaves:
            for p in range(1, half + 1):
                b.link(leaf, p, b.host(), 1)
        return b.done()
    if levels == 3:
        b = Builder(f"fat-tree-r{radix}-l3", width, speed, radix * half * half)
        d = len(str(radix))
        dh = len(str(half))
        dc = len(str(half * half))
        pods = []
        for p in range(radix):
            edges = [b.switch(radix, f"pod{p + 1:0{d}d}-leaf{i + 1:0{dh}d}") for i in range(half)]
            aggs = [b.switch(radix, f"pod{p + 1:0{d}d}-spine{i + 1:0{dh}d}") for i in range(half)]
            pods.append((edges, aggs))
        cores = [b.switch(radix, f"core{i + 1:0{dc}d}") for i in range(half * half)]
        for p, (edges, aggs) in enumerate(pods):
            for ei, edge in enumerate(edges):
                for ai, agg in enumerate(aggs):
                    b.link(edge, half + 1 + ai, agg, ei + 1)
            for ai, agg in enumerate(aggs):
                for c in range(half):
                    b.link(agg, half + 1 + c, cores[ai * half + c], p + 1)
        for edges, _ in pods:
            for edge in edges:
                for port in range(1, half + 1):
                    b.link(edge, port, b.host(), 1)
        return b.done()
    raise TopologyError(f"fat_tree levels must be 1, 2 or 3, got {levels!r} (use xgft for deeper trees)")


def single_switch(ports: int = 8, *, hosts: int | None = None, width: str = DEFAULT_WIDTH,
                  speed: str = DEFAULT_SPEED) -> Topology:
    """One switch of ``ports`` ports with ``hosts`` CAs (default: every port)."""
    hosts = ports if hosts is None else hosts
    if not 1 <= hosts <= ports:
        raise TopologyError(f"single_switch: hosts={hosts} must be 1..ports ({ports})")
    b = Builder(f"single-switch-{ports}", width, speed, hosts)
    sw = b.switch(ports, "switch01")
    for p in range(1, hosts + 1):
        b.link(sw, p, b.host(), 1)
    return b.done()


#: generator name (as on the command line, kebab-case) -> function
GENERATORS = {
    "fat-tree": fat_tree,
    "single-switch": single_switch,
}
