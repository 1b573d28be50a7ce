"""The protocol logic: control messages, the per-frame pipeline, traps. No sockets.

:class:`Dispatcher` turns what arrives into what must be sent:

* :meth:`Dispatcher.control` takes an 80-byte control datagram and returns
  the reply (None: send nothing), plus the client to attach when it was a
  CONNECT (the server binds and connects that slot's socket *before* sending
  the reply) and any frames to send (trap 144 when SET_ISSM changes the
  port's CapabilityMask);
* :meth:`Dispatcher.frame` takes a 288-byte data frame from a slot and
  returns ``[(slot, frame), ...]``: the reply, the forwarded MAD, or the
  request bounced back with carrier status 110. Malformed frames return
  nothing.
* :meth:`Dispatcher.pending` returns the trap 128 frames queued by link
  events of the simulation.

The pipeline per frame: parse (size and header checks, TrapRepress: drop),
TID tagging with the sender's slot (bits 48..63), route (source LID fill-in,
directed route or LID; failure -> 110; a response is delivered to the SM
client or the TID's slot there), classify, then act: answer (our handler),
forward (SA, SMInfo, notices: to the SM client) or refuse/bounce. The
simulation's lock is held while the fabric is read or written. Frame offsets
are :mod:`ibsim.mad.codec`'s ``OFF_*`` constants.
"""

from __future__ import annotations

import logging
import struct
from collections import deque

from . import codec as C
from .clients import ClientTable
from .handlers import FORWARDED_SMP_ATTRS, HANDLERS
from .view import CAPMASK_IS_SM, FW_VERSION, HW_REVISION, FabricView

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

_HDR = C.HEADER.unpack_from
_CARRIER_INTO = C.CARRIER.pack_into
OFF_SLID, OFF_CARRIER_STATUS, OFF_METHOD, OFF_STATUS = C.OFF_SLID, C.OFF_CARRIER_STATUS, C.OFF_METHOD, C.OFF_STATUS
OFF_TID, OFF_DR_SLID, OFF_DR_DLID = C.OFF_TID, C.OFF_DR_SLID, C.OFF_DR_DLID
OFF_DATA, OFF_IPATH, OFF_RPATH = C.OFF_DATA, C.OFF_IPATH, C.OFF_RPATH
_U32LE = struct.Struct("<I")
_U64LE = struct.Struct("<Q")
_FF2 = b"\xff\xff"
_TIMEOUT = C.be32(C.SIM_TIMEOUT)
_LINK_EVENTS = frozenset({"link_down", "link_up"})
_CAP_NOTICE = 0x00400000           # IsCapabilityMaskNoticeSupported
_CAP_TRAP = 0x8


#: what a request does at the port it reached (:func:`_classify`)
ANSWER, ANSWER_COUNTERS, FORWARD, REFUSE, BOUNCE = range(5)


def _be16(b, off: int) -> int:
    return (b[off] << 8) | b[off + 1]


def _parse(buf) -> C.Header | None:
    """Parse step: the header of a well-formed 288-byte frame, or None (dropped: malformed or
    a TrapRepress; a directed-route SMP also needs hop pointer 0, at most 63 hops, a D bit
    that matches the R bit, a permissive DrDLID, and a permissive DrSLID when the carrier DLID
    is permissive)."""
    if len(buf) != C.FRAME_SIZE:
        return None
    h = C.Header._make(_HDR(buf, 0))
    if (h.base_version != C.BASE_VERSION or h.class_version > C.MAX_CLASS_VERSION
            or h.method == C.METHOD_TRAP_REPRESS):
        return None
    if h.mgmt_class == C.CLASS_SMP_DR and (
            h.hop_ptr or h.hop_cnt > C.MAX_DR_HOPS
            or bool(h.mad_status & C.DR_DIRECTION) != bool(h.method & C.R_BIT)
            or buf[OFF_DR_DLID:OFF_DR_DLID + 2] != _FF2
            or (h.dlid == C.PERMISSIVE_LID and buf[OFF_DR_SLID:OFF_DR_SLID + 2] != _FF2)):
        return None
    return h


def _classify(mgmt_class: int, method: int, attr_id: int) -> int:
    """Classify step: what the port a request reached does with it (``method`` without the R bit).

    SMPs: SMInfo, notices and traps go to the port's SM client (FORWARD), methods other than
    Get and Set are refused (REFUSE: status bad method), the rest answered (ANSWER). SA:
    FORWARD. PerfMgt: ANSWER_COUNTERS (the counters first take the MADs counted so far).
    Anything else (vendor, CM, CC...): BOUNCE.
    """
    if mgmt_class == C.CLASS_SMP_DR or mgmt_class == C.CLASS_SMP_LID:
        if attr_id in FORWARDED_SMP_ATTRS or method == C.METHOD_TRAP:
            return FORWARD
        if method != C.METHOD_GET and method != C.METHOD_SET:
            return REFUSE
        return ANSWER
    if mgmt_class == C.CLASS_SA:
        return FORWARD
    if mgmt_class == C.CLASS_PERF:
        return ANSWER_COUNTERS
    return BOUNCE


class Dispatcher:
    """Protocol state of one served simulation.

    Parameters
    ----------
    sim : Simulation
    max_clients : int
        Client slot limit.
    """

    def __init__(self, sim, *, max_clients: int = 256):
        self.sim = sim
        self.lock = sim.lock
        with self.lock:
            self.view = FabricView(sim)
        self.clients = ClientTable(self.view, max_clients)
        self.stats = {"frames": 0, "answered": 0, "forwarded": 0, "bounced": 0, "dropped": 0,
                      "control": 0, "control_dropped": 0, "traps": 0}
        #: requests and responses by management class that took the Python path (every class
        #: but the SMP Gets the C loop answers): ``by_class[0x04]`` counts PerfMgt MADs
        self.by_class: dict[int, int] = {}
        self._trap_ports: deque = deque()
        #: called (from the tick thread) when traps are queued; the server sets it
        self.wakeup = None
        #: called when every slot is taken, to free those of vanished clients; the server sets it
        self.reclaim = None
        sim.add_listener(self._on_event)

    def close(self) -> None:
        self.sim.remove_listener(self._on_event)

    # ================================================================ control
    def control(self, buf: bytes, src, addr_of):
        """Handle one control datagram.

        Parameters
        ----------
        buf : bytes
            The datagram.
        src : object
            Its source address (for the reply and, in UDP mode, the client's IP).
        addr_of : callable
            ``addr_of(src, ident) -> address`` of the client's data socket.

        Returns
        -------
        (reply or None, attached Client or None, frames)
        """
        self.stats["control"] += 1
        if len(buf) != C.CTL_SIZE:
            self.stats["control_dropped"] += 1
            return None, None, []
        magic, cid, typ, _, data = C.unpack_ctl(buf)
        if magic != C.CTL_MAGIC:
            self.stats["control_dropped"] += 1
            return None, None, []
        with self.lock:
            v = self.view
            v.sync()
            if typ == C.CTL_CONNECT:
                return self._connect(buf, data, src, addr_of)
            c = self.clients.get(cid)
            if c is None:
                return C.ctl_reply(buf, C.CTL_ERROR, data), None, []
            p = c.port
            if typ == C.CTL_DISCONNECT:
                self.drop_client(cid)
                return buf, None, []
            if typ == C.CTL_GET_VENDOR:
                n = v.node_of_port[p]
                f = v.fabric
                out = C.VENDOR.pack(int(f.node_vendid[n]), int(f.node_devid[n]), HW_REVISION, 0, FW_VERSION)
            elif typ == C.CTL_GET_NODEINFO:
                out = v.node_info[p]
            elif typ == C.CTL_GET_PORTINFO:
                num = data[0]
                t = p
                if num:
                    n = v.node_of_port[p]
                    if num > v.nports[n]:
                        return C.ctl_reply(buf, C.CTL_ERROR, data), None, []
                    t = v.first_port[n] + (num if v.is_switch_node[n] else num - 1)
                out = v.port_info(t, v.port_num[t] if not v.is_switch_port[t] else 0)
            elif typ == C.CTL_GET_PKEYS:
                out = v.pkeys.get((p, 0), b"\xff\xff".ljust(64, b"\0"))
            elif typ == C.CTL_SET_ISSM:
                on = _U32LE.unpack_from(data, 0)[0] != 0
                ok, frames = self._set_issm(c, on)
                if not ok:
                    return C.ctl_reply(buf, C.CTL_ERROR, data), None, []
                return buf, None, frames
            elif typ == C.CTL_GET_PORT:
                out = C.PORT_BRIEF.pack(v.lids[p], v.ps[p])
            elif typ == C.CTL_GET_GID:
                out = bytes(v.pi[p][8:16]) + _U64LE.pack(v.node_guid[v.node_of_port[p]])
            elif typ == C.CTL_GET_GUID:
                out = _U64LE.pack(v.node_guid[v.node_of_port[p]])
            else:
                return buf, None, []            # unknown type: echoed unchanged
            return C.ctl_reply(buf, typ, out), None, []

    def _connect(self, buf, data, src, addr_of):
        v = self.view
        ident, qp, issm, nodeid = C.unpack_client_info(data)
        name = nodeid.decode("utf-8", "replace")
        port = v.find_attach(name) if name else v.default_port()
        if port is None:
            log.info("CONNECT for unknown node %r refused", name)
            return C.ctl_reply(buf, C.CTL_ERROR, data), None, []
        if v.is_switch_port[port]:
            port = v.first_port[v.node_of_port[port]]
        if issm and self.clients.sm_client_at(port) is not None:
            return C.ctl_reply(buf, C.CTL_ERROR, data), None, []
        try:
            addr = addr_of(src, ident)
        except (ValueError, TypeError):
            return C.ctl_reply(buf, C.CTL_ERROR, data), None, []
        c = self.clients.add(ident, qp, port, addr)
        if c is None and self.reclaim is not None:
            self.reclaim()                          # clients that died without DISCONNECT
            c = self.clients.add(ident, qp, port, addr)
        if c is None:
            log.warning("CONNECT refused: all %d client slots are taken", self.clients.max_clients)
            return C.ctl_reply(buf, C.CTL_ERROR, data), None, []
        if issm:
            self._set_issm(c, True)
        nid = v.node_ids[v.node_of_port[port]].encode()
        reply = C.ctl_reply(buf, C.CTL_CONNECT, C.pack_client_info(c.slot, qp, issm, nid))
        return reply, c, []

    def _set_issm(self, c, on: bool):
        if not self.clients.set_sm(c.slot, on):
            return False, []
        pi = self.view.pi[c.port]
        old = int.from_bytes(pi[20:24], "big")
        new = (old | CAPMASK_IS_SM) if on else (old & ~CAPMASK_IS_SM)
        if on:
            self.sim.set_external_sm(True)
        if new == old:
            return True, []
        pi[20:24] = new.to_bytes(4, "big")
        return True, self._trap144(c.port, new)     # the SMA reports any CapabilityMask change

    def drop_client(self, slot: int) -> None:
        """Free a slot (DISCONNECT, or the client is gone); its SM role and IsSM bit go too."""
        with self.lock:
            c = self.clients.get(slot)
            if c is None:
                return
            if c.issm:
                pi = self.view.pi[c.port]
                pi[23] &= ~CAPMASK_IS_SM & 0xFF
            self.clients.remove(slot)

    # ================================================================ frames
    def frame(self, slot: int, buf: bytes):
        """Handle one data frame from ``slot``; returns ``[(slot, frame), ...]``.

        The steps: :func:`_parse` (size and header checks), then with the
        lock held :meth:`_route` (where the frame goes; a response or a
        refused request ends there), :func:`_classify` (what the port it
        reached does with a request) and :meth:`_act` (answer, forward or
        refuse it).
        """
        stats = self.stats
        stats["frames"] += 1
        h = _parse(buf)
        if h is None:
            stats["dropped"] += 1                  # malformed, or a TrapRepress
            return ()
        by_class = self.by_class
        by_class[h.mgmt_class] = by_class.get(h.mgmt_class, 0) + 1
        slots = self.clients.slots
        with self.lock:
            c = slots[slot] if slot < len(slots) else None
            if c is None:
                stats["dropped"] += 1
                return ()
            v = self.view
            st = v.sim.state
            if st.lft is not v._lft_arr or st.lid is not v._lid_arr:
                v._refresh()
            b = bytearray(buf)
            if not h.method & C.R_BIT:
                b[OFF_TID] = slot >> 8             # TID bits 48..63: the requester's slot
                b[OFF_TID + 1] = slot & 0xFF
            done, dest, back = self._route(v, c, slot, b, buf, h)
            if done is not None:
                return done
            return self._act(_classify(h.mgmt_class, h.method & ~C.R_BIT, h.attr_id), v, c, slot, b, h,
                             dest, back)

    def _route(self, v, c, slot: int, b: bytearray, buf: bytes, h: C.Header):
        """Route step: where frame ``b`` (from ``slot``, client ``c``) goes.

        Returns
        -------
        done : tuple or None
            The frame's whole output when routing settles it (a response
            delivered or dropped, a request bounced with status 110); None
            when a request reached port ``dest``.
        dest : int
            Port index the request reached (-1 when ``done``).
        back : list of int or None
            Egress ports of a directed route's way back (None when LID-routed).
        """
        count = self.sim.count_mgmt
        src = c.port
        resp = h.method & C.R_BIT
        hc = h.hop_cnt
        if h.mgmt_class == C.CLASS_SMP_DR:
            start, home_way = src, None
            if h.dlid != C.PERMISSIVE_LID:
                # a LID-routed part to the node where the directed part starts (IBA 14.2.2)
                if resp:
                    return self._bounce(b, slot), -1, None
                r = self._lid_routed_part(v, src, c.port, h.dlid, _be16(b, OFF_DR_SLID))
                if r is None:
                    return self._bounce(b, slot), -1, None
                start, home_way = r
            if resp:
                crossed = []
                dest = v.dr_back(src, b[OFF_RPATH:OFF_RPATH + 1 + hc], hc, crossed)
                if dest is None:
                    self.stats["dropped"] += 1
                    return (), -1, None
                count(crossed)
                return self._response(b, dest, h.tid), -1, None
            r = v.dr_out(start, buf[OFF_IPATH:OFF_IPATH + 1 + hc], hc)
            if r is None:
                return self._bounce(b, slot), -1, None
            dest, rp, there, back = r
            b[OFF_RPATH:OFF_RPATH + 1 + hc] = rp
            count(there)
            if home_way:
                back = back + home_way
            return None, dest, back
        if h.slid == 0:                                 # the source LID, filled in
            slid = v.lids[src]
            b[OFF_SLID] = slid >> 8
            b[OFF_SLID + 1] = slid & 0xFF
        crossed = []
        dest = v.lid_route(src, h.dlid, crossed) if h.dlid != C.PERMISSIVE_LID else None
        count(crossed)
        if dest is None:
            if resp:
                self.stats["dropped"] += 1
                return (), -1, None
            return self._bounce(b, slot), -1, None
        if resp:
            return self._response(b, dest, h.tid), -1, None
        return None, dest, None

    def _act(self, action: int, v, c, slot: int, b: bytearray, h: C.Header, dest: int, back):
        """Answer step: do what :func:`_classify` decided for a request that reached ``dest``."""
        if action == FORWARD:
            return self._forward(b, dest, h.dqp, slot)
        if action == BOUNCE:
            return self._bounce(b, slot)            # vendor, CM, CC...: never to a client
        dr = h.mgmt_class == C.CLASS_SMP_DR
        if action == REFUSE:
            if dr:
                self.sim.count_mgmt(back)
            return self._answer(b, slot, c, dest, dr, C.STATUS_BAD_METHOD, None, h)
        if action == ANSWER_COUNTERS:
            self.sim.flush_mgmt()                   # PerfMgt reads counters: MADs so far included
        handler = HANDLERS.get((h.mgmt_class, h.attr_id))
        if handler is None:
            if dr:
                self.sim.count_mgmt(back)
            return self._answer(b, slot, c, dest, dr, C.STATUS_BAD_METHOD_ATTR, None, h)
        try:
            status, data = handler(v, h.method & ~C.R_BIT, h.attr_mod, dest, memoryview(b)[OFF_DATA:])
        except Exception:
            log.exception("handler for class 0x%02x attribute 0x%04x failed", h.mgmt_class, h.attr_id)
            return self._bounce(b, slot)
        if dr:                                       # the common case, inline: same path back
            self.sim.count_mgmt(back)
            b[OFF_METHOD] = C.METHOD_GET_RESP
            status |= C.DR_DIRECTION
            b[OFF_STATUS] = status >> 8
            b[OFF_STATUS + 1] = status & 0xFF
            if data is not None:
                b[OFF_DATA:OFF_DATA + len(data)] = data
            self.stats["answered"] += 1
            return ((slot, b),)
        return self._answer(b, slot, c, dest, dr, status, data, h)

    def _lid_routed_part(self, v, src: int, home: int, dlid: int, drslid: int):
        """Route a DR SMP's LID-routed part: (start port, egress ports of the LID-routed way
        back to the requester), or None when either way is broken. Counts the way there."""
        there = []
        start = v.lid_route(src, dlid, there)
        self.sim.count_mgmt(there)
        if start is None:
            return None
        back = []
        end = v.lid_route(start, drslid if drslid != C.PERMISSIVE_LID else v.lids[src], back)
        if end is None or not v.same_attach(end, home):
            return None
        return start, back

    def _answer(self, b, slot, c, dest, dr, status, data, h):
        b[OFF_METHOD] = C.METHOD_GET_RESP           # GetResp, for Set too
        if dr:
            status |= C.DR_DIRECTION                # direction bit: on the way back
        b[OFF_STATUS] = status >> 8
        b[OFF_STATUS + 1] = status & 0xFF
        if data is not None:
            b[OFF_DATA:OFF_DATA + len(data)] = data
        if dr:                                      # same path back; LIDs and QPs stay
            self.stats["answered"] += 1
            return ((slot, b),)
        slid = _be16(b, OFF_SLID)                   # as filled in by the route step
        _CARRIER_INTO(b, 0, slid, h.dlid, h.sqp, h.dqp, 0, h.length)
        crossed = []
        back = self.view.lid_route(dest, slid, crossed)  # the reply must find its way back
        self.sim.count_mgmt(crossed)
        if back is None or not self.view.same_attach(back, c.port):
            return self._bounce_answered(b, slot)
        self.stats["answered"] += 1
        return ((slot, b),)

    def _bounce_answered(self, b, slot):
        """The reply cannot get back: undo the reply changes, bounce the request."""
        dlid, slid, dqp, sqp, _s, length = C.CARRIER.unpack_from(b, 0)
        _CARRIER_INTO(b, 0, slid, dlid, sqp, dqp, 0, length)
        b[OFF_METHOD] &= ~C.R_BIT & 0xFF
        return self._bounce(b, slot)

    def undeliverable(self, frame):
        """A forwarded request whose receiver vanished, as the 110 bounce for its sender."""
        if len(frame) != C.FRAME_SIZE or frame[C.OFF_METHOD] & 0x80:
            return None                           # responses and traps just vanish
        b = bytearray(frame)
        self.stats["bounced"] += 1
        b[OFF_CARRIER_STATUS:OFF_CARRIER_STATUS + 4] = _TIMEOUT
        return b

    def _bounce(self, b, slot):
        self.stats["bounced"] += 1
        b[OFF_CARRIER_STATUS:OFF_CARRIER_STATUS + 4] = _TIMEOUT
        return ((slot, b),)

    def _forward(self, b, dest, dqp, slot):
        if dqp <= 1:
            target = self.clients.sm_client_at(dest)
        else:
            target = next((x for x in self.clients.at(dest) if x.qp == dqp), None)
        if target is None:
            return self._bounce(b, slot)
        self.stats["forwarded"] += 1
        return ((target.slot, b),)

    def _response(self, b, dest, tid):
        target = self.clients.get((tid >> 48) & 0xFFFF)
        if target is None or not self.view.same_attach(target.port, dest):
            target = self.clients.sm_client_at(dest)
        if target is None:
            self.stats["dropped"] += 1
            return ()
        self.stats["forwarded"] += 1
        return ((target.slot, b),)

    # ================================================================ traps
    def _on_event(self, ev, port) -> None:
        """Simulation listener (tick thread, lock held): note link changes for traps."""
        if ev.kind not in _LINK_EVENTS or port is None:
            return
        v = self.view
        ends = (port, v.peer[port])
        v.set_port_change(ends)
        if ev.kind == "link_up":
            v.sync_rates(ends)                    # it may have trained at another width or speed
        for p in ends:
            if p >= 0 and v.is_switch_port[p]:
                self._trap_ports.append(v.first_port[v.node_of_port[p]])
        if self.wakeup is not None:
            self.wakeup()

    def pending(self):
        """Trap 128 frames for the link changes seen since the last call."""
        out = []
        with self.lock:
            v = self.view
            v.sync()
            seen = set()
            while self._trap_ports:
                p0 = self._trap_ports.popleft()
                if p0 in seen or not self.clients.has_sm():
                    continue
                seen.add(p0)
                lid = v.lids[p0]
                out.extend(self._trap(p0, lid, C.trap128_notice(lid)))
        return out

    def _trap(self, p: int, lid: int, notice: bytes):
        """A trap from port p (LID ``lid``) to its SM LID, for the SM client there."""
        v = self.view
        smlid = (v.pi[p][18] << 8) | v.pi[p][19]
        if not lid or not smlid:
            return []
        crossed = []
        dest = v.lid_route(p, smlid, crossed)
        self.sim.count_mgmt(crossed)
        if dest is None:
            return []
        sm = self.clients.sm_client_at(dest)
        if sm is None:
            return []
        mad = C.make_mad(C.CLASS_SMP_LID, C.METHOD_TRAP, C.ATTR_NOTICE, 0, tid=0, data=notice)
        self.stats["traps"] += 1
        return [(sm.slot, C.pack_frame(mad, dlid=smlid, slid=lid))]

    def _trap144(self, p: int, capmask: int):
        if not capmask & _CAP_NOTICE or not capmask & _CAP_TRAP:
            return []
        v = self.view
        return self._trap(p, v.lids[p], C.trap144_notice(v.lids[p], capmask, v.node_type_of(p)))
