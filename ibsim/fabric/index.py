"""The topology compiled to numbers: a frozen, dense port index.

:func:`compile_fabric` turns a :class:`~ibsim.topology.Topology` into a
:class:`FabricIndex`. Nodes are ordered switches first, then CAs and routers,
each by GUID; every node's ports follow one another (a switch from its
management port 0, a CA from port 1), unconnected ports included. Index
arrays follow the ``<value>_of_<key>`` pattern and are read-only, and the
index refuses new attributes, so snapshots and adapters can share it. The
live part (port states, LIDs, counters, LFTs) is a
:class:`~ibsim.fabric.state.FabricState`, owned and written by the
simulation alone.
"""

from __future__ import annotations

import numpy as np

from ..errors import TopologyError
from ..linkrate import SPEEDS, WIDTHS
from ..topology.graph import Topology
from .devices import device_caps

__all__ = ["FabricIndex", "compile_fabric", "lid_to_port", "lft_width", "NODE_TYPE", "SPEED_NAMES",
           "WIDTH_NAMES", "MAX_UNICAST_LID"]

#: IB NodeType codes (NodeInfo)
NODE_TYPE = {"ca": 1, "switch": 2, "router": 3}
#: speed code (array value) -> name; code 0 means "no link"
SPEED_NAMES: tuple[str, ...] = ("",) + tuple(SPEEDS)
_SPEED_CODE = {n: i for i, n in enumerate(SPEED_NAMES)}
#: lanes -> width name
WIDTH_NAMES: dict[int, str] = {v: k for k, v in WIDTHS.items()}
#: data rate per lane (bytes/s) by speed code
_LANE_BYTES = np.array([0.0] + [s.data_gbps * 1e9 / 8 for s in SPEEDS.values()])

MAX_UNICAST_LID = 0xBFFF   # 49151: the top of the unicast LID space


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def lid_to_port(fabric: "FabricIndex", lid: np.ndarray) -> np.ndarray:
    """Map LID -> port index (-1 where unused) for the port LIDs ``lid``; a switch LID maps to port 0.

    Parameters
    ----------
    fabric : FabricIndex
    lid : ndarray of uint16, (n_ports,)
        Port LIDs (a switch's ports all carry its port-0 LID; 0 = unassigned).

    Returns
    -------
    ndarray of int64, (max LID + 1,)
    """
    top = int(lid.max()) if lid.size else 0
    out = np.full(top + 1, -1, dtype=np.int64)
    targets = np.flatnonzero((fabric.is_switch & (fabric.port_num == 0)) | (~fabric.is_switch & (lid > 0)))
    out[lid[targets]] = targets
    out[0] = -1
    return out


def lft_width(lid: np.ndarray) -> int:
    """LFT entries needed for the LIDs ``lid``: LIDs 0..max, in whole 64-entry blocks."""
    top = int(lid.max()) if lid.size else 0
    return (top // 64 + 1) * 64


def _assign_lids(f: "FabricIndex", preset: dict[int, int]) -> np.ndarray:
    """LIDs as a subnet manager assigns them: presets kept when unique, then the lowest free, LMC 0."""
    lid = np.zeros(f.n_ports, dtype=np.uint16)
    used: set[int] = set()
    # a switch is addressed through port 0; a CA through each cabled port
    targets = np.flatnonzero((f.is_switch & (f.port_num == 0)) | (~f.is_switch & (f.peer_of_port >= 0)))
    for p in targets:
        v = preset.get(int(p))
        if v and 1 <= v <= MAX_UNICAST_LID and v not in used:
            lid[p] = v
            used.add(v)
    free = (x for x in range(1, MAX_UNICAST_LID + 1) if x not in used)
    for p in targets:
        if lid[p] == 0:
            try:
                lid[p] = next(free)
            except StopIteration:
                raise TopologyError("more than 49151 LIDs needed: the unicast LID space is full") from None
    sw_nodes = f.node_of_switch
    sw_lid = lid[f.first_port[sw_nodes]]
    lid[f.is_switch] = np.repeat(sw_lid, f.first_port[sw_nodes + 1] - f.first_port[sw_nodes])
    return lid


class FabricIndex:
    """A compiled fabric: frozen index arrays (``n_ports`` long), no live state.

    Attributes
    ----------
    topology : Topology
        The description it was compiled from.
    node_guid : ndarray of uint64, (n_nodes,)
    node_type : ndarray of uint8, (n_nodes,)
        IB NodeType: 1 CA, 2 switch, 3 router.
    node_nports : ndarray of uint8, (n_nodes,)
    node_desc : tuple of str
    first_port : ndarray of int64, (n_nodes + 1,)
        Ports of node *n* are ``first_port[n]:first_port[n+1]``.
    node_of_port : ndarray of int32, (n_ports,)
    port_num : ndarray of uint8, (n_ports,)
        Physical port number (0 is a switch's management port).
    peer_of_port : ndarray of int32, (n_ports,)
        Port at the other end of the cable, -1 when unconnected (this is the
        cabling; whether the link is up is in ``state``).
    is_switch : ndarray of bool, (n_ports,)
        The port belongs to a switch.
    port_guid : ndarray of uint64, (n_ports,)
    switch_of_node : ndarray of int32, (n_nodes,)
        Row of the node in the LFT array, -1 for CAs.
    node_of_switch : ndarray of int32, (n_switches,)
    cable_width, cable_speed : ndarray of uint8, (n_ports,)
        Lanes and speed code each cable supports (0 when unconnected).
    node_speed_cap, node_width_cap : ndarray of uint8, (n_nodes,)
        Fastest speed code and most lanes the node's device supports
        (:mod:`ibsim.fabric.devices`): what its ports advertise as supported,
        whatever their cables trained at.
    node_mtu_cap : ndarray of uint16, (n_nodes,)
        Largest MTU of the node's device, bytes.
    preset_lid : ndarray of uint16, (n_ports,)
        LIDs the topology file gives (0 where it gives none).
    default_lid : ndarray of uint16, (n_ports,)
        LIDs the embedded subnet manager assigns: unique presets kept, every
        other switch (port 0) and cabled CA port the lowest free LID, LMC 0;
        a switch's ports all carry its LID.
    """

    def __setattr__(self, name, value):
        if getattr(self, "_sealed", False):
            raise AttributeError(f"FabricIndex is frozen: cannot set {name!r} (live state belongs "
                                 "to the simulation's FabricState)")
        object.__setattr__(self, name, value)

    def __init__(self, topology: Topology):
        self.topology = topology
        g = topology.graph
        sw = sorted(topology.switches())
        others = sorted(topology.cas())
        order = sw + others
        n_nodes = len(order)
        self.n_nodes = n_nodes
        self.n_switches = len(sw)
        nodes = [g.nodes[x] for x in order]
        self.node_guid = _frozen(np.array(order, dtype=np.uint64))
        self.node_type = _frozen(np.array([NODE_TYPE[d["kind"]] for d in nodes], dtype=np.uint8))
        self.node_nports = _frozen(np.array([d["nports"] for d in nodes], dtype=np.uint8))
        self.node_desc: tuple[str, ...] = tuple(d["desc"] for d in nodes)
        self.node_sysimgguid = _frozen(np.array([d["sysimgguid"] for d in nodes], dtype=np.uint64))
        self.node_vendid = _frozen(np.array([d["vendid"] for d in nodes], dtype=np.uint32))
        self.node_devid = _frozen(np.array([d["devid"] for d in nodes], dtype=np.uint16))
        self.node_enhanced_port0 = _frozen(np.array([d["enhanced_port0"] for d in nodes], dtype=bool))
        is_sw_node = self.node_type == NODE_TYPE["switch"]
        self.node_is_switch = _frozen(is_sw_node.copy())
        # switch: ports 0..N (N+1 ports); CA/router: ports 1..N
        base = np.where(is_sw_node, 0, 1).astype(np.int64)
        counts = self.node_nports.astype(np.int64) + 1 - base
        first = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(counts, out=first[1:])
        self.first_port = _frozen(first)
        self._port_base = _frozen(base)
        n_ports = int(first[-1])
        self.n_ports = n_ports
        node_of_port = np.repeat(np.arange(n_nodes, dtype=np.int32), counts)
        self.node_of_port = _frozen(node_of_port)
        self.port_num = _frozen((np.arange(n_ports, dtype=np.int64) - first[node_of_port]
                                 + base[node_of_port]).astype(np.uint8))
        self.is_switch = _frozen(is_sw_node[node_of_port])
        self.node_index: dict[int, int] = {guid: i for i, guid in enumerate(order)}

        port_guid = np.repeat(self.node_guid, counts)
        for i, d in enumerate(nodes):
            if d["port_guids"]:
                for p, pg in d["port_guids"].items():
                    port_guid[first[i] + p - base[i]] = pg
        self.port_guid = _frozen(port_guid)

        # cabling
        n_links = g.number_of_edges()
        ends = np.empty((n_links, 2), dtype=np.int64)
        widths = np.empty(n_links, dtype=np.uint8)
        speeds = np.empty(n_links, dtype=np.uint8)
        idx = self.node_index
        for k, (_, _, d) in enumerate(g.edges(data=True)):
            (ga, pa), (gb, pb) = d["a"], d["b"]
            na, nb = idx[ga], idx[gb]
            ends[k, 0] = first[na] + pa - base[na]
            ends[k, 1] = first[nb] + pb - base[nb]
            widths[k] = WIDTHS[d["width"]]
            speeds[k] = _SPEED_CODE[d["speed"]]
        peer = np.full(n_ports, -1, dtype=np.int32)
        peer[ends[:, 0]] = ends[:, 1]
        peer[ends[:, 1]] = ends[:, 0]
        self.peer_of_port = _frozen(peer)
        #: cable k joins ports link_ends[k, 0] and link_ends[k, 1] (topology edge order)
        self.link_ends = _frozen(ends)
        self.n_links = n_links

        sw_of_node = np.full(n_nodes, -1, dtype=np.int32)
        sw_of_node[is_sw_node] = np.arange(self.n_switches, dtype=np.int32)
        self.switch_of_node = _frozen(sw_of_node)
        self.node_of_switch = _frozen(np.flatnonzero(is_sw_node).astype(np.int32))

        # cabled width/speed per port (what the link trains to when it comes up)
        cw = np.zeros(n_ports, dtype=np.uint8)
        cs = np.zeros(n_ports, dtype=np.uint8)
        cw[ends[:, 0]] = widths
        cw[ends[:, 1]] = widths
        cs[ends[:, 0]] = speeds
        cs[ends[:, 1]] = speeds
        self.cable_width = _frozen(cw)
        self.cable_speed = _frozen(cs)
        sc, wc, mc = device_caps(self.node_devid, node_of_port, cw, cs)
        self.node_speed_cap = _frozen(sc)
        self.node_width_cap = _frozen(wc)
        self.node_mtu_cap = _frozen(mc)

        preset = np.zeros(n_ports, dtype=np.uint16)
        for i, d in enumerate(nodes):
            for p, lid in (d.get("lids") or {}).items():
                if lid:
                    preset[int(self.first_port[i] + p - self._port_base[i])] = int(lid)
        self.preset_lid = _frozen(preset)
        self.default_lid = _frozen(_assign_lids(self, {int(p): int(preset[p])
                                                        for p in np.flatnonzero(preset)}))
        self._sealed = True

    # -------------------------------------------------------------- helpers
    def capacity_bytes(self, width_lanes: np.ndarray, speed_code: np.ndarray) -> np.ndarray:
        """Data capacity in bytes/s for arrays of lanes and speed codes."""
        return width_lanes.astype(np.float64) * _LANE_BYTES[speed_code]

    def port_index(self, guid: int, port: int) -> int:
        """Dense index of (node GUID, port number).

        Raises
        ------
        TopologyError
            For an unknown GUID or a port the node does not have.
        """
        try:
            n = self.node_index[int(guid)]
        except KeyError:
            raise TopologyError(f"no node with GUID 0x{int(guid):016x}") from None
        b = int(self._port_base[n])
        if not b <= port <= int(self.node_nports[n]):
            raise TopologyError(f"{self.node_desc[n]!r} has ports {b}..{int(self.node_nports[n])}, "
                                f"not {port}")
        return int(self.first_port[n]) + port - b

    def ports_of_node(self, node: int) -> np.ndarray:
        """Port indices of a node index."""
        return np.arange(self.first_port[node], self.first_port[node + 1])

    def find_node(self, name: str) -> int:
        """Node index by GUID text or description (see :meth:`Topology.find`)."""
        return self.node_index[self.topology.find(name)]

    def find_port(self, spec: str) -> int:
        """Port index from ``"<description or GUID>:<port>"`` (``"leaf03:17"``).

        Raises
        ------
        TopologyError
            Naming what was not found.
        """
        text = str(spec)
        if ":" not in text:
            raise TopologyError(f"port {spec!r} must be '<node description or GUID>:<port>'")
        name, _, port = text.rpartition(":")
        try:
            p = int(port)
        except ValueError:
            raise TopologyError(f"port {spec!r}: {port!r} is not a port number") from None
        return self.port_index(int(self.node_guid[self.find_node(name)]), p)

    def port_label(self, p: int) -> str:
        """``"leaf03:17"``-style label of a port index."""
        return f"{self.node_desc[self.node_of_port[p]]}:{int(self.port_num[p])}"

    def lid_to_port(self) -> np.ndarray:
        """LID -> port index of the default LIDs (see :func:`lid_to_port`)."""
        return lid_to_port(self, self.default_lid)

    def nbytes(self) -> int:
        """Bytes held by the index arrays."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    def __repr__(self) -> str:
        return (f"<FabricIndex {self.topology.name!r}: {self.n_nodes} nodes "
                f"({self.n_switches} switches), {self.n_ports} ports, {self.n_links} links>")


def compile_fabric(topology: Topology) -> FabricIndex:
    """Compile a topology into its frozen :class:`FabricIndex`.

    Default LIDs (:attr:`FabricIndex.default_lid`): preset LIDs from the
    topology (e.g. read from ``ibnetdiscover``) are kept when unique; every
    other switch (port 0) and cabled CA port gets the lowest free LID in node
    order, LMC 0, as a subnet manager would. A simulation starts from a
    :class:`~ibsim.fabric.state.FabricState` with every cabled link Active
    and these LIDs.

    Examples
    --------
    >>> from ibsim.topology import fat_tree
    >>> f = compile_fabric(fat_tree(4, 2))
    >>> f.n_ports, f.n_links
    (38, 16)
    """
    if not isinstance(topology, Topology):
        raise TopologyError(f"compile_fabric needs a Topology, got {type(topology).__name__}")
    return FabricIndex(topology)
