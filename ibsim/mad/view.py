"""The management plane's view of a live fabric: what every port's SMA and PMA know.

The engine's arrays (``sim.state``: port and physical states, LIDs,
LFTs, counters) stay the truth for everything the data plane uses. This
module adds what only the management plane needs (stored PortInfo fields
such as SMLID, GID prefix and LMC, SwitchInfo, P_Key, SL2VL, VLArb, MFT and
GUIDInfo tables), precomputed reply bytes (NodeInfo per port,
NodeDescription per node) and the packet routing of the wire protocol:
directed routes and LID routes with their liveness rules.

Every method expects the simulation's lock to be held by the caller (the
dispatcher takes it per frame). Lookups on the per-MAD path use Python lists
and memoryviews, never numpy scalars.

The C fast path reads the same state through :meth:`FabricView.fast_tables`
(a :class:`~ibsim.mad.fasttables.FastTables`). A hot directed-route Get of
another attribute is served in C by touching:

1. ``_fastpath_smp.c``: a ``case ATTR_...`` in ``fast_answer`` (the attribute
   ID and its fields come from ``_fastpath_layout.h``, generated from
   :mod:`ibsim.mad.codec`; after adding a layout or constant there, list it
   in :mod:`ibsim.mad.cheader` and run ``python -m ibsim.mad.cheader``);
2. only if it needs state no table holds yet: a :class:`FastTables` field,
   its row in ``TABLE_SPECS`` (and a ``T_`` index in ``_fastpath.h``, or an
   object name in ``_fastpath_tables.c``), and its buffer here in
   :meth:`FabricView.fast_tables`;
3. ``tests/mad/test_fastpath.py``: the attribute in ``GETS``, so the C
   answers are compared byte for byte with the Python handler's.
"""

from __future__ import annotations


import numpy as np

from ..fabric.index import SPEED_NAMES
from ..fabric.state import ACTIVE, LINKUP
from ..linkrate import SPEEDS
from ..topology.devices import MTU_CODE
from . import codec as C
from .fasttables import FastTables

__all__ = ["FabricView", "node_id"]

_ID_PREFIX = {1: "H", 2: "S", 3: "R"}
MAX_HOPS = 64                 # LID-routing hop bound (a loop in the LFTs ends here)
DR_CACHE_MAX = 65536         # directed routes remembered (a big fabric's SM uses ~1 per port)
LINEAR_FDB_CAP = 0xC000       # 49152 LIDs = 768 LFT blocks
MCAST_FDB_CAP = 1024
PARTITION_CAP_CA = 64
PARTITION_CAP_SW0 = 8
PARTITION_ENF_CAP = 64
CAPMASK_IS_SM = 0x2
CAPMASK_CA = 0x0040C048       # trap, SL map, ext. speeds, capmask2, capmask notice
CAPMASK_SW0 = 0x0000C048
CAPMASK2 = 0x0430             # 2x width, HDR and NDR supported
FW_VERSION = 1
HW_REVISION = 0xA1

# PortInfo enabled width for the trained width (lanes), as ibsim derives it
_WIDTH_ENABLED = {1: 0x01, 2: 0x10, 4: 0x03, 8: 0x04, 12: 0x0B}
_WIDTH_ACTIVE = {1: 0x01, 2: 0x10, 4: 0x02, 8: 0x04, 12: 0x08}


def node_id(node_type: int, guid: int) -> str:
    """The node id of the ibnetdiscover writer: ``S-``/``H-``/``R-`` + 16 hex digits."""
    return f"{_ID_PREFIX.get(node_type, 'H')}-{guid:016x}"


def _speed_fields(code: int) -> tuple[int, int, int, int, int]:
    """(LinkSpeedEnabled, LinkSpeedActive, ExtEnabled, ExtActive, ExtSupported) of a speed code."""
    if code <= 0:
        return 1, 1, 0, 0, 0
    sp = SPEEDS[SPEED_NAMES[code]]
    if sp.speed_code:                         # SDR, DDR, QDR, FDR10
        enabled = (sp.speed_code << 1) - 1
        return enabled, sp.speed_code, 0, 0, 0
    ext = min(sp.ext_code, 8)                 # XDR has no classic PortInfo code: NDR
    return 7, 4, (ext << 1) - 1, ext, (ext << 1) - 1


def _supported_fields(code: int) -> tuple[int, int]:
    """(LinkSpeedSupported, LinkSpeedExtSupported) of a device whose fastest speed is ``code``."""
    ena, _, xena, _, _ = _speed_fields(code)
    return ena, xena


class FabricView:
    """SMA/PMA state of every port of a fabric, beside the engine's arrays.

    Parameters
    ----------
    sim : Simulation
        The live simulation; its ``state`` is read (with ``sim.lock`` held)
        and written only through its ``sm_*`` and ``reset_counters`` methods.
    """

    def __init__(self, sim):
        self.sim = sim
        f = self.fabric = sim.fabric
        self.n_ports = f.n_ports
        self.n_nodes = f.n_nodes
        self.node_of_port: list[int] = f.node_of_port.tolist()
        self.port_num: list[int] = f.port_num.tolist()
        self.peer: list[int] = f.peer_of_port.tolist()
        self.first_port: list[int] = f.first_port.tolist()
        self.node_type: list[int] = f.node_type.tolist()
        self.nports: list[int] = f.node_nports.tolist()
        self.is_switch_port: list[bool] = f.is_switch.tolist()
        self.is_switch_node: list[bool] = f.node_is_switch.tolist()
        self.switch_row: list[int] = f.switch_of_node.tolist()
        self.node_guid: list[int] = [int(g) for g in f.node_guid]
        self.port_guid: list[int] = [int(g) for g in f.port_guid]
        self.node_ids: list[str] = [node_id(t, g) for t, g in zip(self.node_type, self.node_guid)]
        self._by_id = {s: i for i, s in enumerate(self.node_ids)}
        self._build_nodes()
        self._build_port_info()
        st = sim.state
        trained = (st.width > 0) & ((st.width != f.cable_width) | (st.speed != f.cable_speed))
        self.sync_rates(np.flatnonzero(trained).tolist())   # links degraded before we started
        self._build_tables()
        self._lft_arr = self._lid_arr = None
        self._refresh()
        self._dr_cache: dict = {}
        self._dr_version = -1
        self._build_lid_map()

    # ------------------------------------------------------------ build
    def _build_nodes(self) -> None:
        f = self.fabric
        topo = f.topology.graph.nodes
        self.node_desc_bytes: list[bytes] = []
        self.node_info_base: list[bytearray] = []
        self.lmc0: list[int] = []
        for n in range(self.n_nodes):
            guid = self.node_guid[n]
            d = topo[guid]
            self.node_desc_bytes.append(f.node_desc[n].encode("utf-8", "replace")[:64].ljust(64, b"\0"))
            sw = self.is_switch_node[n]
            ni = C.NODE_INFO.encode({
                "BaseVersion": 1, "ClassVersion": 1, "NodeType": self.node_type[n],
                "NumPorts": self.nports[n], "SystemImageGUID": int(f.node_sysimgguid[n]) or guid,
                "NodeGUID": guid, "PortGUID": guid,
                "PartitionCap": PARTITION_CAP_SW0 if sw else PARTITION_CAP_CA,
                "DeviceID": int(f.node_devid[n]), "Revision": HW_REVISION,
                "VendorID": int(f.node_vendid[n])}, size=64)
            self.node_info_base.append(ni)
            self.lmc0.append(int(d.get("lmc") or 0))
        # NodeInfo as seen through each port (PortGUID, LocalPortNum differ)
        self.node_info: list[bytes] = []
        for p in range(self.n_ports):
            n = self.node_of_port[p]
            b = bytearray(self.node_info_base[n])
            b[20:28] = C.be64(self.port_guid[p])
            b[36] = self.port_num[p]
            self.node_info.append(bytes(b))
        self._node_info_buf = b"".join(self.node_info)
        self._node_desc_buf = b"".join(self.node_desc_bytes)
        self._fast_static = None

    def _build_port_info(self) -> None:
        f = self.fabric
        cw = f.cable_width.tolist()
        cs = f.cable_speed.tolist()
        dev_speed = f.node_speed_cap.tolist()
        dev_width = f.node_width_cap.tolist()
        dev_mtu = [MTU_CODE[int(m)] for m in f.node_mtu_cap]
        #: stored PortInfo of every port, 64 bytes each, in one buffer (the C fast path reads it);
        #: ``pi[p]`` is port p's writable 64-byte memoryview
        self.pi_buf = bytearray(64 * self.n_ports)
        whole = memoryview(self.pi_buf)
        self.pi: list[memoryview] = [whole[64 * p:64 * p + 64] for p in range(self.n_ports)]
        self.mlnx_fdr10: set[int] = set()
        fdr10 = SPEED_NAMES.index("FDR10")
        for p in range(self.n_ports):
            n = self.node_of_port[p]
            sw = self.is_switch_node[n]
            port0 = sw and self.port_num[p] == 0
            q = self.peer[p]
            cabled = q >= 0
            b = bytearray(64)
            v = {"M_KeyLeasePeriod": 0, "LinkDownDefaultState": 2, "VLCap": 4,
                 "VLArbitrationHighCap": 8, "VLArbitrationLowCap": 8, "OperationalVLs": 4,
                 "LinkWidthSupported": 0x1F, "LinkSpeedSupported": 7}
            if port0:
                v.update(CapabilityMask=CAPMASK_SW0, M_KeyLeasePeriod=0x0FF9, NeighborMTU=1, MTUCap=3,
                         LinkWidthEnabled=2, LinkWidthActive=2, LinkSpeedEnabled=1, LinkSpeedActive=1,
                         GUIDCap=1, SubnetTimeOut=31, RespTimeValue=8, CapabilityMask2=CAPMASK2,
                         LMC=self.lmc0[n])
            else:
                width = cw[p] if cabled else 4
                _, act, _, xact, _ = _speed_fields(cs[p] if cabled else 0)
                v.update(NeighborMTU=min(dev_mtu[n], dev_mtu[self.node_of_port[q]]) if cabled else dev_mtu[n],
                         MTUCap=dev_mtu[n], VLStallCount=7, LinkWidthActive=_WIDTH_ACTIVE.get(width, 2),
                         LinkSpeedActive=act, LinkSpeedExtActive=xact)
                if cabled:
                    # a cabled port supports (and enables) what its device does; Active is what
                    # the link trained at, so a degraded link shows "Could be ..." in iblinkinfo
                    sup, xsup = _supported_fields(dev_speed[n])
                    wsup = _WIDTH_ENABLED.get(dev_width[n], 3)
                    v.update(LinkWidthSupported=wsup, LinkWidthEnabled=wsup, LinkSpeedSupported=sup,
                             LinkSpeedEnabled=sup, LinkSpeedExtSupported=xsup, LinkSpeedExtEnabled=xsup)
                else:
                    v.update(LinkWidthEnabled=2, LinkSpeedEnabled=1)
                if not cabled and sw:
                    v["LocalPhyErrors"] = 4
                if not sw:
                    v.update(CapabilityMask=CAPMASK_CA, M_KeyLeasePeriod=0x0FF9, GUIDCap=32,
                             SubnetTimeOut=31, CapabilityMask2=CAPMASK2, LMC=self.lmc0[n])
                if cabled and cs[p] == fdr10:
                    self.mlnx_fdr10.add(p)
            for k, val in v.items():
                C.PORT_INFO.put(b, k, val)
            self.pi[p][:] = b

    def _build_tables(self) -> None:
        f = self.fabric
        self.switch_info_buf = bytearray(64 * f.n_switches)
        whole = memoryview(self.switch_info_buf)
        self.switch_info: list[memoryview] = [whole[64 * r:64 * r + 64] for r in range(f.n_switches)]
        for r in range(f.n_switches):
            n = int(f.node_of_switch[r])
            self.switch_info[r][:] = bytes(C.SWITCH_INFO.encode({
                "LinearFDBCap": LINEAR_FDB_CAP, "MulticastFDBCap": MCAST_FDB_CAP,
                "PortStateChange": 1, "PartitionEnforcementCap": PARTITION_ENF_CAP,
                "FilterRawInboundCap": 1, "FilterRawOutboundCap": 1,
                "EnhancedPort0": int(bool(f.node_enhanced_port0[n]))}, size=64))
        # the SM-set tables are the engine's (FabricState.sma): read here, written through sim.sm_set_*
        sma = self.sim.state.sma
        self.fdb_top = sma.fdb_top                              # LinearFDBTop per switch row
        self.pkeys = sma.pkeys
        self.sl2vl = sma.sl2vl
        self.vlarb = sma.vlarb
        self.mft = sma.mft
        self.guid_info = sma.guid_info
        self.mlnx_ext = sma.mlnx_ext

    def _build_lid_map(self) -> None:
        """LID -> owning port (switch port 0 or a CA port, LMC ranges included)."""
        self.lid_owner: dict[int, int] = {}
        st = self.sim.state
        owners = np.flatnonzero((self.fabric.is_switch & (self.fabric.port_num == 0))
                                | (~self.fabric.is_switch & (st.lid > 0)))
        base = [(int(st.lid[p]), int(p)) for p in owners if st.lid[p] > 0]
        for lid, p in base:
            self.lid_owner[lid] = p
        for lid, p in base:
            for k in range(1, 1 << self.lmc(p)):
                self.lid_owner.setdefault(lid + k, p)

    # ------------------------------------------------------------ live arrays
    def sync(self) -> None:
        """Re-take memoryviews if the engine replaced an array (two identity checks).

        The engine replaces ``lft`` when it reroutes or an LFT grows, and
        ``lid`` when it assigns LIDs; port and physical states are only ever
        written in place.
        """
        st = self.sim.state
        if st.lft is not self._lft_arr or st.lid is not self._lid_arr:
            self._refresh()

    def _refresh(self) -> None:
        st = self.sim.state
        self.ps = memoryview(st.port_state)
        self.phys = memoryview(st.phys_state)
        self._lid_arr = st.lid
        self.lids = memoryview(st.lid)
        self._lft_arr = st.lft                  # C-contiguous: the engine installs it so
        self.lft = memoryview(st.lft.reshape(-1))
        self.lft_width = st.lft.shape[1]

    # ------------------------------------------------------------ addressing
    def lid_of(self, p: int) -> int:
        """LID a port answers to (a switch's port-0 LID for any of its ports)."""
        return self.lids[p]

    def lmc(self, p: int) -> int:
        return self.pi[p][34] & 0x07

    def port0(self, p: int) -> int:
        """Port 0 of a switch port's node (the port itself for a CA)."""
        return self.first_port[self.node_of_port[p]] if self.is_switch_port[p] else p

    def attach_key(self, p: int) -> int:
        """What identifies an attach point: the node for a switch (all ports share its
        GUID), the port for a CA. Encoded as an int (node -1 - n, or the port)."""
        return -1 - self.node_of_port[p] if self.is_switch_port[p] else p

    def default_port(self) -> int:
        """The attach point when SIM_HOST is unset, as the C ibsim picks it: the first node
        of the file (topology insertion order), switch port 0 or CA port 1."""
        nodes = self.fabric.topology.nodes()
        return self.first_port[self.fabric.node_index[nodes[0]]] if nodes else 0

    def find_attach(self, name: str) -> int | None:
        """Attach port of a node named by node id, GUID or NodeDescription; None if unknown."""
        text = name.strip()
        n = self._by_id.get(text)
        if n is None:
            try:
                g = int(text, 16) if text.lower().startswith("0x") else int(text, 0)
                n = self.fabric.node_index.get(g)
            except ValueError:
                n = None
        if n is None:
            hits = [i for i, d in enumerate(self.fabric.node_desc) if d == text]
            n = hits[0] if hits else None
        if n is None:
            return None
        return self.first_port[n]

    # ------------------------------------------------------------ routing
    def dr_out(self, src: int, ipath: bytes, hops: int):
        """Walk a directed route out of port ``src``.

        Returns (dest port, return path, egress ports of the way out, egress
        ports of the same way back) or None. Results are cached per (source,
        path) until a link changes state: a subnet manager or ibnetdiscover
        asks several attributes along each path.
        """
        key = (src, ipath)
        lv = self.sim.link_version
        if lv != self._dr_version:
            self._dr_cache.clear()
            self._dr_version = lv
        hit = self._dr_cache.get(key, self)
        if hit is not self:
            return hit
        if len(self._dr_cache) >= DR_CACHE_MAX:
            self._dr_cache.clear()
        r = self._dr_walk(src, ipath, hops)
        self._dr_cache[key] = r
        return r

    def _dr_walk(self, src: int, ipath: bytes, hops: int):
        rp = bytearray(hops + 1)
        rp[0] = self.port_num[src]
        cur = src
        phys = self.phys
        out_ports: list[int] = []
        back_ports: list[int] = []
        for i in range(1, hops + 1):
            n = self.node_of_port[cur]
            sw = self.is_switch_node[n]
            if i > 1 and not sw:
                return None                   # a directed route cannot pass through a CA
            out = ipath[i]
            if sw:
                if out == 0 or out > self.nports[n]:
                    return None
                e = self.first_port[n] + out
            else:
                if out == 0 or out > self.nports[n]:
                    return None
                e = self.first_port[n] + out - 1
            q = self.peer[e]
            if q < 0 or phys[e] != LINKUP or phys[q] != LINKUP:
                return None
            rp[i] = self.port_num[q]
            out_ports.append(e)
            back_ports.append(q)
            cur = q
        back_ports.reverse()
        return cur, bytes(rp), out_ports, back_ports

    def dr_back(self, src: int, rpath: bytes, hops: int, crossed: list | None = None):
        """Walk a return path back from port ``src``; the port it arrives at, or None.

        The egress port of every link crossed is appended to ``crossed`` (if given).
        """
        cur = src
        phys = self.phys
        for i in range(hops, 0, -1):
            n = self.node_of_port[cur]
            out = rpath[i]
            if out == 0 or out > self.nports[n]:
                return None
            e = self.first_port[n] + (out if self.is_switch_node[n] else out - 1)
            q = self.peer[e]
            if q < 0 or phys[e] != LINKUP or phys[q] != LINKUP:
                return None
            if crossed is not None:
                crossed.append(e)
            cur = q
        return cur

    def lid_route(self, src: int, dlid: int, crossed: list | None = None):
        """Route a LID-addressed packet from port ``src``; the port that owns ``dlid``, or None.

        The egress port of every link crossed is appended to ``crossed`` (if
        given; on failure it holds the links crossed before the packet died).
        """
        if dlid == 0 or dlid >= 0xC000:
            return None
        owner = self.lid_owner.get(dlid)
        if owner is None:
            return None
        node_of_port, peer, ps, phys = self.node_of_port, self.peer, self.ps, self.phys
        lft, width = self.lft, self.lft_width
        external = self.sim.routing == "opensm"
        if self.is_switch_port[src]:
            e, cur_node = -1, node_of_port[src]     # at a switch: its LFT picks the egress port
        elif owner == src:
            return src
        else:
            e, cur_node = src, -1                   # a CA sends on its own link
        for _ in range(MAX_HOPS + (e >= 0)):
            if e < 0:
                if node_of_port[owner] == cur_node:
                    return owner
                row = self.switch_row[cur_node]
                if dlid >= width or (external and dlid > self.fdb_top[row]):
                    return None
                out = lft[row * width + dlid]
                if out == 0 or out > self.nports[cur_node]:
                    return None
                e = self.first_port[cur_node] + out
            q = peer[e]
            if (q < 0 or phys[e] != LINKUP or phys[q] != LINKUP or ps[e] != ACTIVE
                    or ps[q] != ACTIVE):
                return None
            if crossed is not None:
                crossed.append(e)
            if not self.is_switch_port[q]:
                return q if owner == q else None
            e, cur_node = -1, node_of_port[q]
        return None

    def same_attach(self, a: int, b: int) -> bool:
        """Whether ports a and b are the same attach point (same port GUID)."""
        return self.port_guid[a] == self.port_guid[b]

    # ------------------------------------------------------------ SM-driven changes
    def set_lid(self, p: int, lid: int, lmc: int) -> None:
        """A PortInfo Set gave port p (CA port or switch port 0) a LID and LMC."""
        old, old_lmc = self.lids[p], self.lmc(p)
        self.pi[p][34] = (self.pi[p][34] & 0xF8) | (lmc & 7)
        if old == lid and old_lmc == lmc:
            return
        if old:
            for k in range(1 << old_lmc):
                if self.lid_owner.get(old + k) == p:
                    del self.lid_owner[old + k]
        if lid != old:
            self.sim.sm_set_lid(p, lid)
            self.sync()
        if lid:
            for k in range(1 << (lmc & 7)):
                if k == 0:
                    self.lid_owner[lid] = p
                else:
                    self.lid_owner.setdefault(lid + k, p)

    def sync_rates(self, ports) -> None:
        """PortInfo LinkWidthActive, LinkSpeedActive and LinkSpeedExtActive of trained ports (and
        the FDR10 flag) follow the width and speed the engine trained them at (a degraded link
        reports 1X); a port that is down keeps the values of its last training."""
        st = self.sim.state
        fdr10 = SPEED_NAMES.index("FDR10")
        for p in ports:
            if p < 0:
                continue
            w, sp = int(st.width[p]), int(st.speed[p])
            if not w:
                continue
            b = self.pi[p]
            _, act, _, xact, _ = _speed_fields(sp)
            b[31] = _WIDTH_ACTIVE.get(w, 2)
            b[35] = (act << 4) | (b[35] & 0x0F)
            b[62] = (xact << 4) | (b[62] & 0x0F)
            if sp == fdr10:
                self.mlnx_fdr10.add(p)
            else:
                self.mlnx_fdr10.discard(p)

    def set_port_change(self, ports) -> None:
        """Set SwitchInfo PortStateChange on the switches owning any of these ports."""
        for p in ports:
            if p >= 0 and self.is_switch_port[p]:
                r = self.switch_row[self.node_of_port[p]]
                self.switch_info[r][11] |= 0x04

    # ------------------------------------------------------------ PortInfo
    def port_info(self, p: int, local_port: int) -> bytes:
        """PortInfo of port p as the SMA returns it (live states, LID)."""
        b = bytearray(self.pi[p])
        if not self.is_switch_port[p] or self.port_num[p] == 0:
            lid = self.lids[p]
            b[16] = lid >> 8
            b[17] = lid & 0xFF
        b[28] = local_port
        b[32] = (b[32] & 0xF0) | self.ps[p]
        b[33] = (self.phys[p] << 4) | (b[33] & 0x0F)
        return bytes(b)

    def node_type_of(self, p: int) -> int:
        return self.node_type[self.node_of_port[p]]

    # ------------------------------------------------------------ C fast path
    def fast_tables(self) -> FastTables:
        """The tables of the C fast path (:mod:`ibsim.mad._fastpath`), live buffers included.

        Returns
        -------
        FastTables
            Borrowed views of this view's and the engine's buffers, for
            ``Loop.tables``; call again after :meth:`sync` re-took a replaced
            LFT or LID array.
        """
        if self._fast_static is None:
            f = self.fabric
            i32 = np.int32
            self._fast_static = dict(
                node_of_port=np.ascontiguousarray(f.node_of_port, dtype=i32),
                port_num=np.ascontiguousarray(f.port_num, dtype=i32),
                peer=np.ascontiguousarray(f.peer_of_port, dtype=i32),
                first_port=np.ascontiguousarray(f.first_port[:self.n_nodes], dtype=i32),
                nports=np.ascontiguousarray(f.node_nports, dtype=i32),
                is_switch=np.ascontiguousarray(f.node_is_switch, dtype=np.uint8),
                switch_row=np.ascontiguousarray(f.switch_of_node, dtype=i32),
                node_info=self._node_info_buf, node_desc=self._node_desc_buf)
        st = self.sim.state
        return FastTables(**self._fast_static, phys=st.phys_state, ps=st.port_state, lid=st.lid,
                          lft=np.ascontiguousarray(self._lft_arr, dtype=np.uint8), port_info=self.pi_buf,
                          switch_info=self.switch_info_buf, fdb_top=self.fdb_top, pkeys=self.pkeys,
                          mlnx_ext=self.mlnx_ext, mlnx_fdr10=self.mlnx_fdr10)
