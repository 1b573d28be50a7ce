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

The pipeline per frame: size and header checks (drop), source LID fill-in,
TID tagging with the sender's slot (bits 48..63), TrapRepress drop, routing
(directed route or LID; failure -> 110), then answer (our handler), forward
(SA, SMInfo, notices, responses: to the SM client or the TID's slot) or
bounce. The simulation's lock is held while the fabric is read or written.
May import: mad.*, engine (via the simulation object).
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
_U32LE = struct.Struct("<I")
_U64LE = struct.Struct("<Q")
_FF2 = b"\xff\xff"
_TIMEOUT = C.be32(C.SIM_TIMEOUT)
_LINK_EVENTS = frozenset({"link_down", "link_up"})
_CAP_NOTICE = 0x00400000           # IsCapabilityMaskNoticeSupported
_CAP_TRAP = 0x8


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
        """Handle one data frame from ``slot``; returns ``[(slot, frame), ...]``."""
        stats = self.stats
        stats["frames"] += 1
        if len(buf) != 288:
            stats["dropped"] += 1
            return ()
        (dlid, slid, dqp, sqp, _st, length, bv, cls, cv, method, mst, hp, hc, tid, attr,
         mod) = _HDR(buf, 0)
        resp = method & 0x80
        dr = cls == 0x81
        if (bv != 1 or cv > 2 or method == 0x07
                or (dr and (hp or hc > 63 or (mst >> 15) != (resp >> 7) or buf[66:68] != _FF2
                            or (dlid == 0xFFFF and buf[64:66] != _FF2)))):
            stats["dropped"] += 1                  # malformed, or a TrapRepress
            return ()
        slots = self.clients.slots
        count = self.sim.count_mgmt
        with self.lock:
            c = slots[slot] if slot < len(slots) else None
            if c is None:
                stats["dropped"] += 1
                return ()
            v = self.view
            st = v.fabric.state
            if st.lft is not v._lft_arr or st.lid is not v._lid_arr:
                v._refresh()
            src = c.port
            b = bytearray(buf)
            if not resp:
                b[40] = slot >> 8
                b[41] = slot & 0xFF
            if dr:
                start, home_way = src, None
                if dlid != 0xFFFF:
                    # a LID-routed part to the node where the directed part starts (IBA 14.2.2)
                    if resp:
                        return self._bounce(b, slot)
                    r = self._lid_routed_part(v, src, c.port, dlid, (b[64] << 8) | b[65])
                    if r is None:
                        return self._bounce(b, slot)
                    start, home_way = r
                if resp:
                    crossed = []
                    dest = v.dr_back(src, b[224:225 + hc], hc, crossed)
                    if dest is None:
                        stats["dropped"] += 1
                        return ()
                    count(crossed)
                    return self._response(b, dest, tid)
                r = v.dr_out(start, buf[160:161 + hc], hc)
                if r is None:
                    return self._bounce(b, slot)
                dest, rp, there, back = r
                b[224:225 + hc] = rp
                count(there)
                if home_way:
                    back = back + home_way
            else:
                if slid == 0:
                    slid = v.lids[src]
                    b[4] = slid >> 8
                    b[5] = slid & 0xFF
                crossed = []
                dest = v.lid_route(src, dlid, crossed) if dlid != 0xFFFF else None
                count(crossed)
                if dest is None:
                    if resp:
                        stats["dropped"] += 1
                        return ()
                    return self._bounce(b, slot)
                if resp:
                    return self._response(b, dest, tid)
            # a request has reached port `dest`: answer, forward or refuse
            m = method & 0x7F
            if dr or cls == 0x01:
                if m > 2 or m == 0 or attr in FORWARDED_SMP_ATTRS:
                    if m == C.METHOD_TRAP or attr in FORWARDED_SMP_ATTRS:
                        return self._forward(b, dest, dqp, slot)
                    if dr:
                        count(back)
                    return self._answer(b, slot, c, dest, dr, C.STATUS_BAD_METHOD, None, slid, dlid,
                                        dqp, sqp, length)
            elif cls == C.CLASS_SA:
                return self._forward(b, dest, dqp, slot)
            elif cls != C.CLASS_PERF:
                return self._bounce(b, slot)       # vendor, CM, CC...: never to a client
            else:
                self.sim.flush_mgmt()              # PerfMgt reads counters: MADs so far included
            h = HANDLERS.get((cls, attr))
            if h is None:
                if dr:
                    count(back)
                return self._answer(b, slot, c, dest, dr, C.STATUS_BAD_METHOD_ATTR, None, slid, dlid,
                                    dqp, sqp, length)
            try:
                status, data = h(v, m, mod, dest, memoryview(b)[96:288])
            except Exception:
                log.exception("handler for class 0x%02x attribute 0x%04x failed", cls, attr)
                return self._bounce(b, slot)
            if dr:                                   # the common case, inline: same path back
                count(back)
                b[35] = 0x81
                status |= 0x8000
                b[36] = status >> 8
                b[37] = status & 0xFF
                if data is not None:
                    b[96:96 + len(data)] = data
                stats["answered"] += 1
                return ((slot, b),)
            return self._answer(b, slot, c, dest, dr, status, data, slid, dlid, dqp, sqp, length)

    def _lid_routed_part(self, v, src: int, home: int, dlid: int, drslid: int):
        """Route a DR SMP's LID-routed part: (start port, egress ports of the LID-routed way
        back to the requester), or None when either way is broken. Counts the way there."""
        there = []
        start = v.lid_route(src, dlid, there)
        self.sim.count_mgmt(there)
        if start is None:
            return None
        back = []
        end = v.lid_route(start, drslid if drslid != 0xFFFF else v.lids[src], back)
        if end is None or not v.same_attach(end, home):
            return None
        return start, back

    def _answer(self, b, slot, c, dest, dr, status, data, slid, dlid, dqp, sqp, length):
        b[35] = 0x81                                # GetResp, for Set too
        if dr:
            status |= 0x8000                        # direction bit: on the way back
        b[36] = status >> 8
        b[37] = status & 0xFF
        if data is not None:
            b[96:96 + len(data)] = data
        if dr:                                      # same path back; LIDs and QPs stay
            self.stats["answered"] += 1
            return ((slot, b),)
        _CARRIER_INTO(b, 0, slid, dlid, sqp, dqp, 0, length)
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
        b[35] &= 0x7F
        return self._bounce(b, slot)

    def undeliverable(self, frame):
        """A forwarded request whose receiver vanished, as the 110 bounce for its sender."""
        if len(frame) != C.FRAME_SIZE or frame[C.OFF_METHOD] & 0x80:
            return None                           # responses and traps just vanish
        b = bytearray(frame)
        self.stats["bounced"] += 1
        b[16:20] = _TIMEOUT
        return b

    def _bounce(self, b, slot):
        self.stats["bounced"] += 1
        b[16:20] = _TIMEOUT
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
