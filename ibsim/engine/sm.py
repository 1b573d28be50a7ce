"""An external subnet manager (OpenSM through the MAD server) programs the fabric.

:class:`ExternalSMMixin` is part of :class:`~ibsim.engine.simulation.Simulation`.
The MAD server calls these methods, with ``sim.lock`` held, when a subnet
manager's Set reaches a port, so the simulation stays the one writer of the
state. The server also reports the links its packets cross
(:meth:`ExternalSMMixin.count_mgmt`), which the simulation adds to the port
counters as a real fabric counts VL15 and GSI traffic.
"""

from __future__ import annotations

import numpy as np

from ..fabric.counters import COUNTER_ROW
from ..fabric.index import SPEED_NAMES
from ..fabric.state import ACTIVE, INIT, LINKUP
from ..linkrate import SPEEDS
from ..fabric.state import STATE as STATE_NAMES
from .links import EXTERNAL_SM

__all__ = ["ExternalSMMixin", "MAD_WORDS"]

#: 4-octet words one management datagram adds to PortXmitData/PortRcvData per link:
#: the 256-byte MAD plus its 32-byte frame, as linux-rdma's ibsim counts it
MAD_WORDS = 72
_XMIT_ROWS = [COUNTER_ROW[n] for n in ("port_xmit_data", "port_xmit_packets", "unicast_xmit_packets")]
_RCV_ROWS = [COUNTER_ROW[n] for n in ("port_rcv_data", "port_rcv_packets", "unicast_rcv_packets")]
_PER_MAD = np.array([[MAD_WORDS], [1], [1]], dtype=np.uint64)
#: (lanes, PortInfo LinkWidthEnabled bit), widest first
_WIDTH_BITS = ((12, 8), (8, 4), (4, 2), (2, 16), (1, 1))
#: (speed code, LinkSpeedEnabled bit, LinkSpeedExtEnabled bit), fastest first
_SPEED_BITS = tuple((code, SPEEDS[name].speed_code, SPEEDS[name].ext_code)
                    for code, name in reversed(list(enumerate(SPEED_NAMES))) if name)
_FDR10 = SPEED_NAMES.index("FDR10")


def trained_rate(cable_width, cable_speed, width_mask, speed_mask, ext_mask):
    """Width (lanes) and speed (code) links train at, given what both ends enable.

    Parameters
    ----------
    cable_width, cable_speed : ndarray
        What each cable supports (lanes, speed codes).
    width_mask, speed_mask, ext_mask : ndarray
        LinkWidthEnabled, LinkSpeedEnabled and LinkSpeedExtEnabled common to
        both ends (bitwise and).

    Returns
    -------
    (ndarray of uint8, ndarray of uint8)
        The widest enabled width within the cable's, and the fastest enabled
        speed within the cable's (FDR10 only on an FDR10 cable); 1x and SDR,
        which every port supports, when nothing is common.
    """
    width = np.zeros(len(cable_width), dtype=np.uint8)
    for lanes, bit in _WIDTH_BITS:               # loops over the 5 widths, not ports
        ok = (width == 0) & ((width_mask & bit) != 0) & (lanes <= cable_width)
        width[ok] = lanes
    width[width == 0] = 1
    speed = np.zeros(len(cable_speed), dtype=np.uint8)
    for code, bit, ext in _SPEED_BITS:           # over the 9 speeds
        allowed = ((ext_mask & ext) != 0) if ext else ((speed_mask & bit) != 0)
        if code == _FDR10:
            allowed = allowed & (cable_speed == _FDR10)
        ok = (speed == 0) & allowed & (code <= cable_speed)
        speed[ok] = code
    speed[speed == 0] = 1
    return width, speed


class ExternalSMMixin:
    """LIDs, port states, enables and LFT blocks set by an external SM."""

    # ------------------------------------------------------------ management traffic
    def count_mgmt(self, egress) -> None:
        """Note management packets (MADs) leaving ports ``egress`` (port indices, one per link crossed).

        Cheap (a list extend); :meth:`flush_mgmt` adds them to the counters
        at the next tick, snapshot or PerfMgt read. Call with :attr:`lock` held.
        """
        self.mgmt_pending.extend(egress)

    def flush_mgmt(self) -> None:
        """Add the noted management packets to the counters: per link crossed, the
        egress port counts 1 packet (``port_xmit_packets``, ``unicast_xmit_packets``)
        and :data:`MAD_WORDS` words of ``port_xmit_data``; its peer the same as received."""
        pending = self.mgmt_pending
        if not pending:
            return
        e = np.asarray(pending, dtype=np.intp)
        pending.clear()                             # the same list: the C fast path appends to it
        ctr = self.state.counters
        f = self.fabric
        if e.size * 8 < f.n_ports:                     # a few: per element
            for ports, rows in ((e, _XMIT_ROWS), (f.peer_of_port[e], _RCV_ROWS)):
                for r, amount in zip(rows, _PER_MAD[:, 0]):
                    np.add.at(ctr[r], ports, amount)
            return
        for ports, rows in ((e, _XMIT_ROWS), (f.peer_of_port[e], _RCV_ROWS)):
            n = np.bincount(ports, minlength=f.n_ports).astype(np.uint64)
            ctr[rows] += n * _PER_MAD

    # ------------------------------------------------------------ trained rates
    def sm_set_rate_enabled(self, port: int, width_mask: int, speed_mask: int, ext_mask: int) -> None:
        """PortInfo LinkWidthEnabled/LinkSpeedEnabled/LinkSpeedExtEnabled of a port, as an SM
        (or ``ibportstate``) set them: used the next time the link trains (after a PortState
        Down Set, a Disable/Enable, or any link down/up)."""
        self._en_width[port] = width_mask
        self._en_speed[port] = speed_mask
        self._en_ext[port] = ext_mask

    def sm_retrain(self, port: int) -> None:
        """The link goes down and trains again, at what both ends enable (a PortState Down
        Set, or PhysLinkState Polling on a live link)."""
        q = int(self.fabric.peer_of_port[port])
        if q < 0:
            return
        ends = np.array([port, q])
        if self._physically_up(ends).all():
            self._link_down(ends, "sm_retrain")
            self._link_up(ends, "sm_retrain")

    def _trained_rate(self, ends: np.ndarray):
        """(width, speed) the links of ``ends`` train at: enables of both ends, degrade caps."""
        f = self.fabric
        peer = f.peer_of_port[ends]
        width, speed = trained_rate(f.cable_width[ends], f.cable_speed[ends],
                                    self._en_width[ends] & self._en_width[peer],
                                    self._en_speed[ends] & self._en_speed[peer],
                                    self._en_ext[ends] & self._en_ext[peer])
        cw, cs = self._cap_width[ends], self._cap_speed[ends]
        width = np.where(cw > 0, np.minimum(width, cw), width)
        speed = np.where(cs > 0, np.minimum(speed, cs), speed)
        return width, speed

    # ------------------------------------------------------------ external SM
    # Called by the MAD server, with :attr:`lock` held, when a subnet manager's
    # Set reaches a port: the simulation stays the one writer of the state.
    def set_external_sm(self, on: bool) -> None:
        """Let an external SM program the fabric (``routing="opensm"``), or hand back.

        Handing back reinstates the embedded SM's engine and sweeps now.
        """
        if on and self.routing != EXTERNAL_SM:
            self.routing = EXTERNAL_SM
            self._event("sm_change", None, {"routing": EXTERNAL_SM})
        elif not on and self.routing == EXTERNAL_SM:
            self.routing = self.embedded_routing
            self._event("sm_change", None, {"routing": self.routing})
            self._sweep()

    def _unconfigure(self) -> None:
        """The fabric as no SM has seen it: links trained but Init, only file LIDs, no routes."""
        f = self.fabric
        st = self.state
        cabled = (f.peer_of_port >= 0) & (st.phys_state == LINKUP)
        st.port_state[cabled] = INIT
        lid = np.zeros_like(st.lid)
        nodes = f.topology.graph.nodes
        for n, guid in enumerate(f.node_guid.tolist()):
            for p, v in (nodes[guid].get("lids") or {}).items():
                if not v:
                    continue
                if f.node_is_switch[n]:
                    lid[f.first_port[n]:f.first_port[n + 1]] = v
                else:
                    lid[f.port_index(guid, p)] = v
        st.lid[:] = lid
        st.lft[:] = 255
        st.version += 1

    def sm_set_lid(self, port: int, lid: int) -> None:
        """Set the LID of a CA port, or of a switch (``port`` is its port 0)."""
        f = self.fabric
        st = self.state
        if f.is_switch[port]:
            n = int(f.node_of_port[port])
            st.lid[f.first_port[n]:f.first_port[n + 1]] = lid
        else:
            st.lid[port] = lid
        self._grow_lft(int(lid) + 1)
        st.version += 1
        self._sm_changed(flows=True, paths=True)

    def sm_set_port_state(self, ports, state: int) -> None:
        """Move ports (a few indices) to a logical state (Init, Armed, Active), as an SM Set does.

        One ``port_state_change`` event per link that becomes Active at both ends.
        """
        f = self.fabric
        st = self.state
        ps = st.port_state
        changed = []
        for p in ports:
            p = int(p)
            old = int(ps[p])
            if old != state:
                ps[p] = state
                changed.append((p, old))
        if not changed:
            return
        st.version += 1
        self._sm_changed(alloc=True)
        for p, old in changed:
            if not f.is_switch[p]:
                self._sm_changed(flows=True)     # a host's link changed: its demands follow
            q = int(f.peer_of_port[p])
            if state == ACTIVE and q >= 0 and ps[q] == ACTIVE:
                self._event("port_state_change", p, {"from": STATE_NAMES.get(old, str(old)),
                                                     "to": "Active", "reason": "sm"})

    def sm_set_enabled(self, port: int, enabled: bool) -> None:
        """PortInfo PhysLinkState Set: Disabled (3) takes the link down; Polling (2) undoes
        that, or, on a live link, makes it train again (``ibportstate ... reset``)."""
        p = int(port)
        if not enabled and p not in self._sm_disabled:
            self._sm_disabled.add(p)
            self._disabled[p] += 1
            self._hold(np.array([p]), 1, reason="sm_disable")
        elif enabled and p in self._sm_disabled:
            self._sm_disabled.discard(p)
            self._disabled[p] -= 1
            self._hold(np.array([p]), -1, reason="sm_enable")
        elif enabled:
            self.sm_retrain(p)

    def _grow_lft(self, entries: int) -> None:
        """Widen the LFTs (whole 64-entry blocks, 255 = no route) to hold ``entries`` LIDs."""
        st = self.state
        if st.lft.shape[1] < entries:
            new = np.full((st.lft.shape[0], -(-entries // 64) * 64), 255, dtype=np.uint8)
            new[:, :st.lft.shape[1]] = st.lft
            st.lft = new

    def sm_set_lft_block(self, switch_row: int, block: int, entries: bytes) -> None:
        """Write one 64-entry LFT block of a switch (LinearForwardingTable Set)."""
        st = self.state
        end = (block + 1) * 64
        self._grow_lft(end)
        st.lft[switch_row, block * 64:end] = np.frombuffer(entries, dtype=np.uint8, count=64)
        st.version += 1
        self._sm_changed(paths=True, alloc=True)

    def _sm_changed(self, flows: bool = False, paths: bool = False, alloc: bool = False) -> None:
        """Note what an SM Set changed; applied by :meth:`_sm_settled` once the SM is quiet."""
        need = self._sm_need
        need[0] |= flows
        need[1] |= paths
        need[2] |= alloc
        self._sm_quiet_at = self.time_s + self.sm_settle_s

    def _sm_settled(self) -> None:
        """At a tick: hand the SM's changes to the data plane if it set nothing for ``sm_settle``."""
        need = self._sm_need
        if (need[0] or need[1] or need[2]) and self.time_s + 1e-9 >= self._sm_quiet_at:
            self._need_flows |= need[0]
            self._need_paths |= need[1]
            self._need_alloc |= need[2]
            need[0] = need[1] = need[2] = False

