"""Topology: what is connected, as a networkx MultiGraph. No numpy state.

Nodes are keyed by their node GUID (int). Each node carries:

``kind``        ``"switch"``, ``"ca"`` or ``"router"``
``nports``      number of external ports (switch port 0 is implicit)
``desc``        NodeDescription (``"node042 HCA-1"``, ``"leaf03"``)
``sysimgguid``  system image GUID (defaults to the node GUID)
``vendid``      VendorID (24 bits)
``devid``       DeviceID (16 bits)
``port_guids``  CA/router: {port: GUID}; a switch's ports all use the node GUID
``enhanced_port0``  switch only: whether port 0 is an enhanced port
``lids``        LIDs preset by a file ({port: lid}; switch port 0 holds the switch LID)
``lmc``         LMC preset by a file

Each edge is one cable between ``(guid_a, port_a)`` and ``(guid_b, port_b)``
with ``width`` (``"4x"``) and ``speed`` (``"EDR"``): the active width and
speed of the link. Parallel cables are separate edges.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import networkx as nx

from ..errors import TopologyError
from ..linkrate import DEFAULT_SPEED, DEFAULT_WIDTH, parse_speed, parse_width, rate_label

__all__ = ["Topology", "Link", "NODE_KINDS"]

NODE_KINDS = ("switch", "ca", "router")
MAX_PORTS = 254  # IB: port numbers are 8 bits, 255 is reserved


@dataclass(frozen=True, slots=True)
class Link:
    """One cable: two (node GUID, port number) ends and the active rate."""

    a: tuple[int, int]
    b: tuple[int, int]
    width: str
    speed: str

    @property
    def rate(self) -> str:
        """``"4xEDR"``."""
        return rate_label(self.width, self.speed)


def _fmt_end(topo: "Topology", guid: int, port: int) -> str:
    if guid in topo.graph:
        desc = topo.graph.nodes[guid].get("desc", "")
        return f"{desc!r} (0x{guid:016x}) port {port}"
    return f"0x{guid:016x} port {port}"


class Topology:
    """An InfiniBand fabric description: switches, CAs and cables.

    Parameters
    ----------
    name : str, optional
        A label for summaries and run directories.

    Examples
    --------
    >>> t = Topology("tiny")
    >>> t.add_switch(0x10, nports=8, desc="leaf01")
    >>> t.add_ca(0x20, nports=1, desc="node01 HCA-1")
    >>> t.add_link(0x10, 1, 0x20, 1)
    >>> t.summary()["links"]
    1
    """

    def __init__(self, name: str = "fabric"):
        self.name = name
        self.graph = nx.MultiGraph()
        # (guid, port) -> (peer guid, peer port); both directions present
        self._peer: dict[tuple[int, int], tuple[int, int]] = {}
        self._edge_of_end: dict[tuple[int, int], tuple[int, int, int]] = {}
        # node and port GUIDs -> (node GUID, port): for the duplicate check and lookups
        self._guid_owner: dict[int, tuple[int, int]] = {}

    # ------------------------------------------------------------------ nodes
    def _add_node(self, guid: int, kind: str, nports: int, desc: str | None,
                  sysimgguid: int | None, vendid: int, devid: int,
                  port_guids: dict[int, int] | None, enhanced_port0: bool,
                  lids: dict[int, int] | None, lmc: int) -> None:
        if not isinstance(guid, int) or not 0 < guid < 2**64:
            raise TopologyError(f"node GUID {guid!r} must be an integer in 1..2^64-1")
        if kind not in NODE_KINDS:
            raise TopologyError(f"node kind {kind!r} must be one of {', '.join(NODE_KINDS)}")
        if guid in self.graph:
            raise TopologyError(
                f"duplicate node GUID 0x{guid:016x}: already used by {self.graph.nodes[guid]['desc']!r}")
        if guid in self._guid_owner:
            og, op = self._guid_owner[guid]
            raise TopologyError(
                f"duplicate GUID 0x{guid:016x}: node {desc!r} reuses the GUID of {_fmt_end(self, og, op)}")
        if not isinstance(nports, int) or not 1 <= nports <= MAX_PORTS:
            raise TopologyError(f"node 0x{guid:016x} ({desc!r}): nports={nports!r} must be 1..{MAX_PORTS}")
        if kind == "switch":
            pg = {p: guid for p in range(0, nports + 1)}
        else:
            pg = {p: guid + p for p in range(1, nports + 1)}
            if port_guids:
                for p, g in port_guids.items():
                    if not 1 <= p <= nports:
                        raise TopologyError(
                            f"node 0x{guid:016x} ({desc!r}): port GUID given for port {p}, "
                            f"but the node has ports 1..{nports}")
                    pg[p] = int(g)
        owned = {guid: (guid, 0)}
        for p, g in pg.items():
            prev = self._guid_owner.get(g)
            if prev is not None:
                raise TopologyError(
                    f"duplicate GUID 0x{g:016x}: port {p} of {desc!r} (0x{guid:016x}) "
                    f"and {_fmt_end(self, *prev)}")
            if g in owned and kind != "switch" and owned[g][1] != 0:
                raise TopologyError(f"duplicate GUID 0x{g:016x}: two ports of {desc!r} share it")
            owned.setdefault(g, (guid, p))
        if not 0 <= vendid < 2**24 or not 0 <= devid < 2**16:
            raise TopologyError(f"node 0x{guid:016x}: vendid/devid out of range ({vendid:#x}/{devid:#x})")
        self._guid_owner.update(owned)
        self.graph.add_node(
            guid, kind=kind, nports=nports,
            desc=desc if desc is not None else f"{kind}-{guid:016x}",
            sysimgguid=sysimgguid if sysimgguid else guid,
            vendid=vendid, devid=devid, port_guids=pg if kind != "switch" else None,
            enhanced_port0=bool(enhanced_port0) if kind == "switch" else False,
            lids=dict(lids or {}), lmc=int(lmc))

    def add_switch(self, guid: int, nports: int, desc: str | None = None, *,
                   sysimgguid: int | None = None, vendid: int = 0x02C9, devid: int = 0xCB20,
                   enhanced_port0: bool = False, lid: int | None = None, lmc: int = 0) -> None:
        """Add a switch with ports 1..nports (and management port 0)."""
        self._add_node(guid, "switch", nports, desc, sysimgguid, vendid, devid, None,
                       enhanced_port0, {0: lid} if lid else None, lmc)

    def add_ca(self, guid: int, nports: int = 1, desc: str | None = None, *,
               sysimgguid: int | None = None, vendid: int = 0x02C9, devid: int = 0x1021,
               port_guids: dict[int, int] | None = None, lids: dict[int, int] | None = None,
               lmc: int = 0, kind: str = "ca") -> None:
        """Add a channel adapter (HCA), or a router with ``kind="router"``.

        Port GUIDs default to node GUID + port number, as on ConnectX HCAs.
        """
        if kind == "switch":
            raise TopologyError("use add_switch for switches")
        self._add_node(guid, kind, nports, desc, sysimgguid, vendid, devid, port_guids,
                       False, lids, lmc)

    # ------------------------------------------------------------------ links
    def _check_end(self, guid: int, port: int) -> None:
        if guid not in self.graph:
            raise TopologyError(f"link end 0x{guid:016x} port {port}: no such node")
        node = self.graph.nodes[guid]
        if not isinstance(port, int) or not 1 <= port <= node["nports"]:
            lo = 1
            raise TopologyError(
                f"link end {_fmt_end(self, guid, port)}: port number out of range; "
                f"{node['kind']} {node['desc']!r} has ports {lo}..{node['nports']}"
                + (" (port 0 is the switch management port and cannot be cabled)"
                   if port == 0 and node["kind"] == "switch" else ""))
        if (guid, port) in self._peer:
            pg, pp = self._peer[(guid, port)]
            raise TopologyError(
                f"port cabled twice: {_fmt_end(self, guid, port)} is already linked to "
                f"{_fmt_end(self, pg, pp)}")

    def add_link(self, guid_a: int, port_a: int, guid_b: int, port_b: int,
                 width: str = DEFAULT_WIDTH, speed: str = DEFAULT_SPEED) -> None:
        """Cable ``(guid_a, port_a)`` to ``(guid_b, port_b)``.

        Raises
        ------
        TopologyError
            For a self-link, an unknown node, a port number beyond the node's
            port count, or a port that is already cabled.
        """
        if guid_a == guid_b:
            raise TopologyError(
                f"self-link: {_fmt_end(self, guid_a, port_a)} cabled to its own port {port_b}")
        self._check_end(guid_a, port_a)
        self._check_end(guid_b, port_b)
        w, s = parse_width(width), parse_speed(speed)
        if (guid_b, port_b) < (guid_a, port_a):
            guid_a, port_a, guid_b, port_b = guid_b, port_b, guid_a, port_a
        key = self.graph.add_edge(guid_a, guid_b, a=(guid_a, port_a), b=(guid_b, port_b),
                                  width=w, speed=s)
        self._peer[(guid_a, port_a)] = (guid_b, port_b)
        self._peer[(guid_b, port_b)] = (guid_a, port_a)
        self._edge_of_end[(guid_a, port_a)] = (guid_a, guid_b, key)
        self._edge_of_end[(guid_b, port_b)] = (guid_a, guid_b, key)

    def remove_link(self, guid: int, port: int) -> None:
        """Remove the cable at ``(guid, port)``."""
        if (guid, port) not in self._peer:
            raise TopologyError(f"no cable at {_fmt_end(self, guid, port)}")
        peer = self._peer.pop((guid, port))
        self._peer.pop(peer)
        u, v, k = self._edge_of_end.pop((guid, port))
        self._edge_of_end.pop(peer)
        self.graph.remove_edge(u, v, k)

    # ---------------------------------------------------------------- queries
    def peer(self, guid: int, port: int) -> tuple[int, int] | None:
        """The (GUID, port) cabled to this port, or None."""
        return self._peer.get((guid, port))

    def link_at(self, guid: int, port: int) -> Link | None:
        """The cable plugged into this port, or None."""
        e = self._edge_of_end.get((guid, port))
        if e is None:
            return None
        d = self.graph.edges[e]
        return Link(d["a"], d["b"], d["width"], d["speed"])

    def node(self, guid: int) -> dict:
        """The attribute dict of a node."""
        return self.graph.nodes[guid]

    def nodes(self, kind: str | None = None) -> list[int]:
        """Node GUIDs in insertion order, optionally of one kind."""
        if kind is None:
            return list(self.graph.nodes)
        return [g for g, k in self.graph.nodes(data="kind") if k == kind]

    def switches(self) -> list[int]:
        """Switch GUIDs."""
        return self.nodes("switch")

    def cas(self) -> list[int]:
        """CA (and router) GUIDs."""
        return [g for g, k in self.graph.nodes(data="kind") if k != "switch"]

    def links(self) -> Iterator[Link]:
        """Every cable once."""
        for _, _, d in self.graph.edges(data=True):
            yield Link(d["a"], d["b"], d["width"], d["speed"])

    def find(self, name: str) -> int:
        """Resolve a node by GUID (``0x..`` or decimal text) or by description.

        Raises
        ------
        TopologyError
            When nothing matches, or a description matches several nodes.
        """
        text = str(name).strip()
        try:
            g = int(text, 0)
            if g in self.graph:
                return g
        except ValueError:
            pass
        hits = [g for g, d in self.graph.nodes(data="desc") if d == text]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise TopologyError(f"node description {text!r} is not unique ({len(hits)} nodes); "
                                f"name the node by GUID instead")
        raise TopologyError(f"no node with GUID or description {text!r}")

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<Topology {self.name!r}: {s['switches']} switches, {s['cas']} CAs, "
                f"{s['links']} links>")

    # ------------------------------------------------------------- checking
    def validate(self) -> "Topology":
        """Check whole-graph consistency; return self.

        Raises
        ------
        TopologyError
            Naming the nodes and ports at fault.
        """
        for u, v, d in self.graph.edges(data=True):
            (ga, pa), (gb, pb) = d["a"], d["b"]
            if {ga, gb} != {u, v}:
                raise TopologyError(f"link between 0x{u:016x} and 0x{v:016x} has ends "
                                    f"{_fmt_end(self, ga, pa)} / {_fmt_end(self, gb, pb)}")
            for g, p in (d["a"], d["b"]):
                if not 1 <= p <= self.graph.nodes[g]["nports"]:
                    raise TopologyError(f"link end {_fmt_end(self, g, p)}: port number out of range")
        return self

    def summary(self) -> dict:
        """Counts: switches, cas, links, connected_ports and the speed histogram.

        ``speeds`` counts cables by active ``<width><speed>`` (``{"4xEDR": 1295,
        "4xDDR": 1}``).
        """
        kinds = Counter(k for _, k in self.graph.nodes(data="kind"))
        speeds = Counter(rate_label(d["width"], d["speed"]) for _, _, d in self.graph.edges(data=True))
        links = self.graph.number_of_edges()
        return {
            "name": self.name,
            "switches": kinds.get("switch", 0),
            "cas": kinds.get("ca", 0) + kinds.get("router", 0),
            "routers": kinds.get("router", 0),
            "links": links,
            "connected_ports": 2 * links,
            "speeds": dict(sorted(speeds.items())),
        }

    def canonical(self, *, attrs: tuple[str, ...] = ("kind", "nports", "desc", "sysimgguid",
                                                      "vendid", "devid", "port_guids")) -> tuple:
        """A hashable, order-independent form for equality tests.

        Parameters
        ----------
        attrs : tuple of str
            Node attributes to include (LIDs are left out by default: a
            subnet manager may change them).
        """
        nodes = tuple(sorted(
            (g, tuple((a, tuple(sorted(v.items())) if isinstance(v, dict) else v)
                      for a, v in ((a, self.graph.nodes[g].get(a)) for a in attrs)))
            for g in self.graph.nodes))
        links = tuple(sorted((d["a"], d["b"], d["width"], d["speed"])
                             for _, _, d in self.graph.edges(data=True)))
        return nodes, links

    def __eq__(self, other) -> bool:
        if not isinstance(other, Topology):
            return NotImplemented
        return self.canonical() == other.canonical()

    __hash__ = None  # mutable
