"""The protocol pipeline without sockets: control messages, routing, handlers, traps."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ibsim.fabric.counters import COUNTER_ROW
from ibsim.fabric.state import ACTIVE, ARMED, DOWN, INIT
from ibsim.mad import codec as C
from ibsim.engine.simulation import MAD_WORDS
from ibsim.mad.dispatch import Dispatcher
from ibsim.topology import fat_tree
from tests.mad.conftest import make_sim


class Harness:
    """A dispatcher over fat_tree(4, 2) and helpers to talk to it like a client."""

    def __init__(self, topo=None, **simkw):
        self.sim = make_sim(topo or fat_tree(4, 2), **simkw)
        self.f = self.sim.fabric
        self.d = Dispatcher(self.sim)
        self.tid = 0x10

    def ctl(self, slot, typ, data=b"", *, magic=C.CTL_MAGIC):
        reply, client, frames = self.d.control(C.pack_ctl(slot, typ, len(data), data, magic=magic),
                                               ("src",), lambda src, ident: f"in{ident}")
        return reply, client, frames

    def connect(self, node="", issm=0) -> int:
        reply, client, _ = self.ctl(0, C.CTL_CONNECT, C.pack_client_info(4242, 0, issm, node.encode()))
        _, _, typ, _, data = C.unpack_ctl(reply)
        assert typ == C.CTL_CONNECT, f"CONNECT {node!r} refused"
        return C.unpack_client_info(data)[0]

    def send(self, slot, frame):
        out = self.d.frame(slot, frame)
        return [(s, bytes(f)) for s, f in out]

    def dr(self, slot, attr, path, mod=0, method=C.METHOD_GET, data=b""):
        self.tid += 1
        mad = C.make_mad(C.CLASS_SMP_DR, method, attr, mod, tid=self.tid, hop_cnt=len(path) - 1,
                         path=bytes(path), data=data)
        return self.send(slot, C.pack_frame(mad, dlid=0xFFFF, slid=0xFFFF))

    def lid(self, slot, cls, attr, dlid, mod=0, method=C.METHOD_GET, data=b"", dqp=None):
        self.tid += 1
        mad = C.make_mad(cls, method, attr, mod, tid=self.tid, data=data)
        qp = (0 if cls == C.CLASS_SMP_LID else 1) if dqp is None else dqp
        return self.send(slot, C.pack_frame(mad, dlid=dlid, dqp=qp, sqp=qp))

    def lid_of(self, desc, port=0):
        n = self.f.find_node(desc)
        p = self.f.first_port[n] + (port if self.f.node_is_switch[n] else port - 1)
        return int(self.sim.state.lid[p])


def reply_of(out, slot=None):
    """(carrier status, header, 128 data bytes) of the single frame sent back."""
    assert len(out) == 1, out
    s, f = out[0]
    if slot is not None:
        assert s == slot
    h = C.unpack_header(f)
    return h.status, h, f[C.OFF_DATA:C.OFF_DATA + 128]


@pytest.fixture
def h():
    return Harness()


# ------------------------------------------------------------------ control
def test_connect_default_attach_is_first_switch(h):
    reply, client, _ = h.ctl(0, C.CTL_CONNECT, C.pack_client_info(99, 0, 0, b""))
    _, _, typ, _, data = C.unpack_ctl(reply)
    ident, qp, issm, node = C.unpack_client_info(data)
    assert typ == C.CTL_CONNECT and ident == 0 and node == b"S-%016x" % int(h.f.node_guid[0])
    assert client.port == 0 and client.addr == "in99"


@pytest.mark.parametrize("name", ["node003 HCA-1", "H-0002c90301000010", "0x0002c90301000010"])
def test_connect_by_description_node_id_or_guid(h, name):
    slot = h.connect(name)
    c = h.d.clients.get(slot)
    assert h.f.node_desc[h.f.node_of_port[c.port]] == "node003 HCA-1"
    assert h.f.port_num[c.port] == 1


def test_connect_unknown_node_and_second_sm_are_errors(h):
    reply, client, _ = h.ctl(0, C.CTL_CONNECT, C.pack_client_info(1, 0, 0, b"nosuchnode"))
    assert C.unpack_ctl(reply)[2] == C.CTL_ERROR and client is None
    h.connect("node001 HCA-1", issm=1)
    reply, _, _ = h.ctl(0, C.CTL_CONNECT, C.pack_client_info(2, 0, 1, b"node001 HCA-1"))
    assert C.unpack_ctl(reply)[2] == C.CTL_ERROR


def test_more_than_ten_clients_get_distinct_slots(h):
    slots = [h.connect() for _ in range(40)]
    assert slots == list(range(40))
    h.ctl(5, C.CTL_DISCONNECT)
    assert h.connect() == 5                      # the freed slot is reused


def test_get_replies_reflect_the_live_port(h):
    slot = h.connect("node002 HCA-1")
    n = h.f.find_node("node002 HCA-1")
    _, _, typ, _, data = C.unpack_ctl(h.ctl(slot, C.CTL_GET_VENDOR)[0])
    vend, part, hw, _, fw = C.VENDOR.unpack_from(data)
    assert (vend, part, hw, fw) == (int(h.f.node_vendid[n]), int(h.f.node_devid[n]), 0xA1, 1)
    data = C.unpack_ctl(h.ctl(slot, C.CTL_GET_NODEINFO)[0])[4]
    assert C.NODE_INFO.decode(data)["NodeGUID"] == int(h.f.node_guid[n])
    data = C.unpack_ctl(h.ctl(slot, C.CTL_GET_PORTINFO, b"\0")[0])[4]
    pi = C.PORT_INFO.decode(data)
    assert pi["LID"] == h.lid_of("node002 HCA-1", 1) and pi["PortState"] == ACTIVE and pi["LocalPortNum"] == 1
    data = C.unpack_ctl(h.ctl(slot, C.CTL_GET_PKEYS)[0])[4]
    assert data[:4] == b"\xff\xff\x00\x00"
    data = C.unpack_ctl(h.ctl(slot, C.CTL_GET_GUID)[0])[4]
    assert struct.unpack_from("<Q", data)[0] == int(h.f.node_guid[n])
    data = C.unpack_ctl(h.ctl(slot, C.CTL_GET_PORT)[0])[4]
    assert C.PORT_BRIEF.unpack_from(data) == (h.lid_of("node002 HCA-1", 1), ACTIVE)
    data = C.unpack_ctl(h.ctl(slot, C.CTL_GET_GID)[0])[4]
    assert struct.unpack_from("<Q", data, 8)[0] == int(h.f.node_guid[n])


def test_bad_control_messages(h):
    assert h.d.control(b"\0" * 79, ("x",), None)[0] is None                 # size
    assert h.ctl(0, C.CTL_GET_GUID, magic=0x12345678)[0] is None             # magic
    assert C.unpack_ctl(h.ctl(77, C.CTL_GET_GUID)[0])[2] == C.CTL_ERROR     # unknown slot
    slot = h.connect()
    req = C.pack_ctl(slot, 55, 0)
    assert h.d.control(req, ("x",), None)[0] == req                          # unknown type: echo


def test_set_issm_sets_capability_bit_and_hands_routing_over(h):
    slot = h.connect("node001 HCA-1")
    assert h.sim.routing == "minhop"
    h.ctl(slot, C.CTL_SET_ISSM, struct.pack("<I", 1))
    pi = C.PORT_INFO.decode(C.unpack_ctl(h.ctl(slot, C.CTL_GET_PORTINFO, b"\0")[0])[4])
    assert pi["CapabilityMask"] & 0x2 and h.sim.routing == "opensm"
    h.ctl(slot, C.CTL_DISCONNECT)
    c_port = h.f.port_index(int(h.f.node_guid[h.f.find_node("node001 HCA-1")]), 1)
    assert not h.d.view.pi[c_port][23] & 0x2


# ------------------------------------------------------------------ directed route
def test_dr_nodeinfo_reports_ingress_port_and_return_path(h):
    slot = h.connect("node001 HCA-1")
    st, hdr, data = reply_of(h.dr(slot, C.ATTR_NODE_INFO, [0, 1, 3]), slot)   # CA -> leaf1 -> spine1
    ni = C.NODE_INFO.decode(data)
    assert st == 0 and hdr.method == 0x81 and hdr.mad_status == 0x8000
    assert ni["NodeType"] == 2 and ni["LocalPortNum"] == 1
    assert h.f.node_desc[h.f.node_index[ni["NodeGUID"]]] == "spine1"
    f = h.dr(slot, C.ATTR_NODE_INFO, [0, 1, 3])[0][1]
    assert f[C.OFF_RPATH:C.OFF_RPATH + 3] == bytes([1, 1, 1])


def test_dr_from_a_switch_client_and_hop_zero(h):
    slot = h.connect()
    st, hdr, data = reply_of(h.dr(slot, C.ATTR_NODE_INFO, [0]))
    assert C.NODE_INFO.decode(data)["LocalPortNum"] == 0
    st, hdr, data = reply_of(h.dr(slot, C.ATTR_NODE_INFO, [0, 2]))
    assert C.NODE_INFO.decode(data)["NodeType"] == 1 and C.NODE_INFO.decode(data)["LocalPortNum"] == 1


@pytest.mark.parametrize("path", [[0, 99], [0, 1, 1, 1], [0, 0]])
def test_undeliverable_dr_bounces_with_110_at_once(h, path):
    slot = h.connect()
    st, hdr, _ = reply_of(h.dr(slot, C.ATTR_NODE_INFO, path), slot)
    assert st == C.SIM_TIMEOUT and not hdr.method & 0x80                 # the request itself
    assert (hdr.tid >> 48) == slot


def test_dr_over_a_down_link_bounces(h):
    slot = h.connect()
    h.sim.inject("link_down", "leaf1:2")
    h.sim.step()
    assert reply_of(h.dr(slot, C.ATTR_NODE_INFO, [0, 2]))[0] == C.SIM_TIMEOUT
    assert reply_of(h.dr(slot, C.ATTR_PORT_INFO, [0], mod=2))[0] == 0      # the switch still answers


def test_malformed_frames_are_dropped(h):
    slot = h.connect()
    good = bytearray(C.pack_frame(C.make_mad(C.CLASS_SMP_DR, 1, C.ATTR_NODE_INFO, hop_cnt=1,
                                             path=b"\0\1"), dlid=0xFFFF, slid=0xFFFF))
    assert h.send(slot, bytes(good))
    for mutate in (lambda b: b[:200], lambda b: b + b"\0",
                   lambda b: b[:32] + b"\2" + b[33:],                      # base version 2
                   lambda b: b[:34] + b"\7" + b[35:],                      # class version 7
                   lambda b: b[:38] + b"\1" + b[39:],                      # hop pointer 1
                   lambda b: b[:39] + b"\x50" + b[40:],                    # hop count 80
                   lambda b: b[:64] + b"\0\1" + b[66:],                    # DrSLID not permissive
                   lambda b: b[:35] + b"\7" + b[36:]):                     # TrapRepress
        assert h.send(slot, bytes(mutate(bytes(good)))) == []
    assert h.send(99, bytes(good)) == []                                   # unknown client


# ------------------------------------------------------------------ LID routing
def test_lid_routed_smp_to_a_switch_reports_port_zero_and_fills_slid(h):
    slot = h.connect("node001 HCA-1")
    st, hdr, data = reply_of(h.lid(slot, C.CLASS_SMP_LID, C.ATTR_NODE_INFO, h.lid_of("spine2")))
    assert st == 0 and C.NODE_INFO.decode(data)["LocalPortNum"] == 0
    assert hdr.dlid == h.lid_of("node001 HCA-1", 1) and hdr.slid == h.lid_of("spine2")


def test_lid_routing_failures_bounce(h):
    slot = h.connect("node001 HCA-1")
    assert reply_of(h.lid(slot, C.CLASS_SMP_LID, C.ATTR_NODE_INFO, 999))[0] == C.SIM_TIMEOUT
    assert reply_of(h.lid(slot, C.CLASS_SMP_LID, C.ATTR_NODE_INFO, 0))[0] == C.SIM_TIMEOUT
    h.sim.inject("link_down", "leaf1:1")                                   # our own link
    h.sim.step()
    assert reply_of(h.lid(slot, C.CLASS_SMP_LID, C.ATTR_NODE_INFO, h.lid_of("spine2")))[0] == C.SIM_TIMEOUT


def test_lft_is_followed_and_a_miss_bounces(h):
    slot = h.connect("node001 HCA-1")
    target = h.lid_of("node008 HCA-1", 1)
    assert reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_CLASS_PORT_INFO, target))[0] == 0
    with h.sim.lock:
        h.sim.state.lft[:, target] = 255
    assert reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_CLASS_PORT_INFO, target))[0] == C.SIM_TIMEOUT


# ------------------------------------------------------------------ statuses
@pytest.mark.parametrize("attr,mod,method,status", [
    (0x0031, 0, C.METHOD_GET, C.STATUS_BAD_METHOD_ATTR),       # unknown attribute
    (C.ATTR_NODE_INFO, 0, C.METHOD_SET, C.STATUS_BAD_METHOD_ATTR),
    (C.ATTR_NODE_INFO, 0, C.METHOD_SEND, C.STATUS_BAD_METHOD),
    (C.ATTR_PORT_INFO, 9, C.METHOD_GET, C.STATUS_BAD_FIELD),   # leaf has 4 ports
    (C.ATTR_LFT, 800, C.METHOD_GET, C.STATUS_BAD_FIELD),
    (C.ATTR_PKEY_TABLE, 2, C.METHOD_GET, C.STATUS_BAD_FIELD),
    (C.ATTR_VL_ARB, 5 << 16, C.METHOD_GET, C.STATUS_BAD_FIELD)])
def test_smp_statuses(h, attr, mod, method, status):
    slot = h.connect()
    st, hdr, _ = reply_of(h.dr(slot, attr, [0], mod=mod, method=method))
    assert st == 0 and hdr.mad_status == 0x8000 | status


def test_switch_only_attributes_on_a_ca(h):
    slot = h.connect("node001 HCA-1")
    for attr in (C.ATTR_SWITCH_INFO, C.ATTR_LFT, C.ATTR_MFT):
        assert reply_of(h.dr(slot, attr, [0]))[1].mad_status == 0x8000 | C.STATUS_BAD_METHOD_ATTR


def test_vendor_class_and_unserved_sa_bounce(h):
    slot = h.connect("node001 HCA-1")
    assert reply_of(h.lid(slot, 0x32, 0x1, h.lid_of("node002 HCA-1", 1)))[0] == C.SIM_TIMEOUT
    assert reply_of(h.lid(slot, C.CLASS_SA, 0x11, h.lid_of("node002 HCA-1", 1)))[0] == C.SIM_TIMEOUT


def test_sa_goes_to_the_sm_client_and_its_answer_comes_back_by_tid(h):
    sm = h.connect("node002 HCA-1", issm=1)
    cl = h.connect("node005 HCA-1")
    out = h.lid(cl, C.CLASS_SA, 0x11, h.lid_of("node002 HCA-1", 1), method=C.METHOD_GET_TABLE)
    s, f = out[0]
    hdr = C.unpack_header(f)
    assert s == sm and hdr.status == 0 and hdr.slid == h.lid_of("node005 HCA-1", 1)
    assert hdr.tid >> 48 == cl
    # the SM answers: swap addresses, set R
    resp = bytearray(f)
    C.CARRIER.pack_into(resp, 0, hdr.slid, 0, 1, 1, 0, 256)
    resp[C.OFF_METHOD] = 0x92
    s2, f2 = h.send(sm, bytes(resp))[0]
    assert s2 == cl and C.unpack_header(f2).method == 0x92


# ------------------------------------------------------------------ Sets
def test_portinfo_set_lid_moves_the_port_in_the_fabric(h):
    slot = h.connect()
    ca = h.f.find_node("node003 HCA-1")
    p = int(h.f.first_port[ca])
    path = [0, 3, 2, 1]                       # leaf1 -> spine1 -> leaf2 -> node003
    cur = bytearray(reply_of(h.dr(slot, C.ATTR_PORT_INFO, path))[2][:64])
    cur[16:18] = (300).to_bytes(2, "big")
    cur[32] &= 0xF0
    st, hdr, data = reply_of(h.dr(slot, C.ATTR_PORT_INFO, path, method=C.METHOD_SET, data=bytes(cur)))
    assert hdr.mad_status == 0x8000 and C.PORT_INFO.decode(data)["LID"] == 300
    assert h.sim.state.lid[p] == 300 and h.sim.state.lft.shape[1] > 300
    assert reply_of(h.lid(slot, C.CLASS_SMP_LID, C.ATTR_NODE_INFO, 300))[0] == C.SIM_TIMEOUT   # no route yet
    h.sim.reroute()
    st, _, data = reply_of(h.lid(slot, C.CLASS_SMP_LID, C.ATTR_NODE_INFO, 300))
    assert st == 0 and C.NODE_INFO.decode(data)["NodeGUID"] == int(h.f.node_guid[ca])


def test_port_state_machine_on_a_cold_fabric():
    h = Harness(routing="opensm")
    slot = h.connect()
    assert h.sim.state.port_state[h.f.port_index(int(h.f.node_guid[0]), 1)] == INIT

    def set_state(state, port=1, path=(0,)):
        cur = bytearray(reply_of(h.dr(slot, C.ATTR_PORT_INFO, list(path), mod=port))[2][:64])
        cur[32] = (cur[32] & 0xF0) | state
        return reply_of(h.dr(slot, C.ATTR_PORT_INFO, list(path), mod=port, method=C.METHOD_SET,
                             data=bytes(cur)))[1].mad_status & 0x7FFF

    p = h.f.port_index(int(h.f.node_guid[0]), 1)
    assert set_state(ACTIVE) == C.STATUS_BAD_FIELD                    # Init -> Active skips Armed
    assert set_state(ARMED) == 0 and h.sim.state.port_state[p] == ARMED
    assert set_state(ACTIVE) == C.STATUS_BAD_FIELD                    # the peer is still Init
    assert set_state(ARMED, port=0, path=(0, 1)) == 0                 # the CA end
    assert set_state(ACTIVE) == 0 and h.sim.state.port_state[p] == ACTIVE
    assert set_state(DOWN) == 0                                       # link retrains: both ends Init
    assert h.sim.state.port_state[p] == INIT and h.sim.state.port_state[h.f.peer_of_port[p]] == INIT


def test_lft_set_lands_in_the_fabric_and_is_read_back(h):
    slot = h.connect()
    block = bytes(range(1, 5)) * 16
    out = h.dr(slot, C.ATTR_LFT, [0, 3], mod=1, method=C.METHOD_SET, data=block)   # spine1, block 1
    assert reply_of(out)[1].mad_status == 0x8000
    row = h.f.switch_of_node[h.f.find_node("spine1")]
    assert bytes(h.sim.state.lft[row, 64:128]) == block
    assert bytes(reply_of(h.dr(slot, C.ATTR_LFT, [0, 3], mod=1))[2][:64]) == block
    far = h.dr(slot, C.ATTR_LFT, [0, 3], mod=700, method=C.METHOD_SET, data=block)
    assert reply_of(far)[1].mad_status == 0x8000 and h.sim.state.lft.shape[1] >= 701 * 64


def test_switchinfo_set_top_and_port_state_change(h):
    slot = h.connect()
    si = C.SWITCH_INFO.decode(reply_of(h.dr(slot, C.ATTR_SWITCH_INFO, [0]))[2])
    assert si["PortStateChange"] == 1 and si["LinearFDBTop"] == h.sim.state.max_lid
    data = C.SWITCH_INFO.encode({"LinearFDBTop": 77, "PortStateChange": 1, "LifeTimeValue": 18}, 64)
    reply_of(h.dr(slot, C.ATTR_SWITCH_INFO, [0], method=C.METHOD_SET, data=bytes(data)))
    h.sim.set_external_sm(True)
    si = C.SWITCH_INFO.decode(reply_of(h.dr(slot, C.ATTR_SWITCH_INFO, [0]))[2])
    assert (si["PortStateChange"], si["LinearFDBTop"], si["LifeTimeValue"]) == (0, 77, 18)
    h.sim.inject("link_down", "leaf1:4")
    h.sim.step()
    assert C.SWITCH_INFO.decode(reply_of(h.dr(slot, C.ATTR_SWITCH_INFO, [0]))[2])["PortStateChange"] == 1
    # the SM's values are the engine's, and snapshots carry them
    row = h.f.switch_of_node[h.f.find_node("leaf1")]
    snap = h.sim.snapshot()
    assert (snap.sma.fdb_top[row], snap.sma.life_time[row]) == (77, 18)


def test_sm_set_tables_are_engine_state_seen_by_snapshots(h):
    """P_Key, SL2VL and VLArb Sets land in FabricState.sma (through the simulation), not in the view."""
    slot = h.connect()
    pkeys = bytes([0xFF, 0xFF, 0x80, 0x05]).ljust(64, b"\0")
    reply_of(h.dr(slot, C.ATTR_PKEY_TABLE, [0, 1], method=C.METHOD_SET, data=pkeys))
    sl2vl = bytes(range(8)).ljust(64, b"\0")
    reply_of(h.dr(slot, C.ATTR_SL2VL, [0, 1], mod=(1 << 8) | 2, method=C.METHOD_SET, data=sl2vl))
    vlarb = bytes([0, 32, 1, 32]).ljust(64, b"\0")
    reply_of(h.dr(slot, C.ATTR_VL_ARB, [0, 1], mod=(1 << 16) | 3, method=C.METHOD_SET, data=vlarb))
    sma = h.sim.state.sma
    assert sma.counts() == {"pkeys": 1, "sl2vl": 1, "vlarb": 1, "mft": 0, "guid_info": 0, "mlnx_ext": 0}
    assert pkeys in sma.pkeys.values() and sl2vl in sma.sl2vl.values() and vlarb in sma.vlarb.values()
    snap = h.sim.snapshot()
    assert snap.sma.counts() == sma.counts() and snap.sma.pkeys is not sma.pkeys
    # read back through the SMA: the stored block
    assert reply_of(h.dr(slot, C.ATTR_PKEY_TABLE, [0, 1]))[2][:64] == pkeys


# ------------------------------------------------------------------ PerfMgt
def test_port_counters_are_the_engines(h):
    slot = h.connect("node001 HCA-1")
    ca = h.f.find_node("node002 HCA-1")
    p = int(h.f.first_port[ca])
    c = h.sim.state.counters
    c[COUNTER_ROW["port_xmit_data"], p] = 5 * 2**32            # past the 32-bit legacy width
    c[COUNTER_ROW["symbol_error"], p] = 12
    c[COUNTER_ROW["port_rcv_packets"], p] = 4242
    lid = h.lid_of("node002 HCA-1", 1)
    st, hdr, data = reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS, lid, data=b"\0\1"))
    pc = C.PORT_COUNTERS.decode(data)
    # the query itself arrived on that port (+1 packet); its reply leaves after the read
    assert pc["PortXmitData"] == 2**32 - 1 and pc["SymbolErrorCounter"] == 12 and pc["PortRcvPkts"] == 4243
    st, hdr, data = reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS_EXT, lid, data=b"\0\1"))
    ext = C.PORT_COUNTERS_EXT.decode(data)
    assert ext["PortXmitData"] == 5 * 2**32 + MAD_WORDS and ext["PortRcvPkts"] == 4244
    bad = reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS, lid, data=b"\0\xff"))[1]
    assert bad.mad_status == C.STATUS_BAD_FIELD


def test_all_port_select_sums_and_saturates(h):
    slot = h.connect("node001 HCA-1")
    sw = h.f.find_node("leaf2")
    ports = h.f.ports_of_node(sw)
    h.sim.state.counters[COUNTER_ROW["port_xmit_packets"], ports] = 2**31
    h.sim.state.counters[COUNTER_ROW["link_downed"], ports] = 100
    lid = h.lid_of("leaf2")
    data = reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS, lid, data=b"\0\xff"))[2]
    pc = C.PORT_COUNTERS.decode(data)
    assert pc["PortSelect"] == 0xFF and pc["PortXmitPkts"] == 2**32 - 1 and pc["LinkDownedCounter"] == 255
    data = reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS_EXT, lid, data=b"\0\xff"))[2]
    # + 1: the first query's reply left leaf2 through one of its ports
    assert C.PORT_COUNTERS_EXT.decode(data)["PortXmitPkts"] == len(ports) * 2**31 + 1
    cpi = C.CLASS_PORT_INFO.decode(reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_CLASS_PORT_INFO, lid))[2])
    assert cpi["CapabilityMask"] & 0x100 and cpi["CapabilityMask"] & 0x200


def test_counter_select_clears_only_the_selected(h):
    slot = h.connect("node001 HCA-1")
    p = int(h.f.first_port[h.f.find_node("node002 HCA-1")])
    c = h.sim.state.counters
    c[:, p] = 7
    lid = h.lid_of("node002 HCA-1", 1)
    sel = (1 << 0) | (1 << 12)                               # SymbolError, PortXmitData
    data = reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS, lid, method=C.METHOD_SET,
                          data=b"\0\1" + sel.to_bytes(2, "big")))[2]
    pc = C.PORT_COUNTERS.decode(data)
    # the Set itself arrived on the port before the reset (+72 words received)
    rcv = 7 + MAD_WORDS
    assert pc["SymbolErrorCounter"] == 0 and pc["PortXmitData"] == 0 and pc["PortRcvData"] == rcv
    assert c[COUNTER_ROW["symbol_error"], p] == 0 and c[COUNTER_ROW["port_rcv_data"], p] == rcv
    reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS_EXT, lid, method=C.METHOD_SET,
                   data=b"\0\1\0\x08"))                       # extended bit 3: PortRcvPkts
    # PortRcvPkts cleared after this Set arrived; PortXmitPkts kept, + the first Set's reply
    assert c[COUNTER_ROW["port_rcv_packets"], p] == 0 and c[COUNTER_ROW["port_xmit_packets"], p] == 7 + 1


# ------------------------------------------------------------------ traps
def _program_smlid(h, slot, sm_lid):
    """Give every switch port 0 an SM LID, as an SM's PortInfo Set would."""
    for n in range(h.f.n_switches):
        p0 = int(h.f.first_port[n])
        h.d.view.pi[p0][18:20] = sm_lid.to_bytes(2, "big")


def test_link_down_sends_trap_128_to_the_sm(h):
    sm = h.connect("node001 HCA-1", issm=1)
    sm_lid = h.lid_of("node001 HCA-1", 1)
    h.sim.set_external_sm(False)                             # keep the embedded routes for the test
    _program_smlid(h, sm, sm_lid)
    h.sim.inject("link_down", "leaf2:1")
    h.sim.step()
    frames = h.d.pending()
    assert len(frames) == 1
    s, f = frames[0]
    hdr = C.unpack_header(f)
    assert s == sm and (hdr.mgmt_class, hdr.method, hdr.attr_id, hdr.tid) == (1, C.METHOD_TRAP, C.ATTR_NOTICE, 0)
    assert hdr.dlid == sm_lid and hdr.slid == h.lid_of("leaf2")
    notice = C.NOTICE.decode(f[C.OFF_DATA:])
    assert notice["TrapNumber"] == 128 and notice["IssuerLID"] == h.lid_of("leaf2")
    assert h.d.pending() == []


def test_no_trap_without_an_sm(h):
    h.sim.inject("link_down", "leaf2:1")
    h.sim.step()
    assert h.d.pending() == []


def test_trap_repress_is_dropped(h):
    sm = h.connect("node001 HCA-1", issm=1)
    mad = C.make_mad(C.CLASS_SMP_LID, C.METHOD_TRAP_REPRESS, C.ATTR_NOTICE, tid=0)
    assert h.send(sm, C.pack_frame(mad, dlid=h.lid_of("leaf2"))) == []


def test_external_sm_mode_keeps_the_programmed_lfts(h):
    h.sim.set_external_sm(True)
    before = h.sim.state.lft.copy()
    h.sim.inject("link_down", "leaf1:3")
    for _ in range(200):
        h.sim.step()                                         # past the sweep delay
    assert np.array_equal(h.sim.state.lft, before)
    assert (h.sim.state.port_state[h.f.find_port("leaf1:3")] == DOWN)


# ------------------------------------------------------------------ management traffic in the counters
def _traffic(h):
    c = h.sim.snapshot().counters                     # a snapshot applies what the server noted
    return {n: c[COUNTER_ROW[n]].astype(np.int64) for n in
            ("port_xmit_packets", "port_rcv_packets", "port_xmit_data", "port_rcv_data",
             "unicast_xmit_packets", "unicast_rcv_packets")}


def _dr_ports(h, start_port, path):
    """Egress port indices of a directed route (ports numbered as on the wire)."""
    f, out, cur = h.f, [], start_port
    for pn in path[1:]:
        n = int(f.node_of_port[cur])
        e = int(f.first_port[n]) + (pn if f.node_is_switch[n] else pn - 1)
        out.append(e)
        cur = int(f.peer_of_port[e])
    return out


def test_every_link_a_dr_smp_crosses_counts_one_packet_of_72_words_each_way(h):
    slot = h.connect("node001 HCA-1")
    src = h.d.clients.get(slot).port
    path = [0, 1, 3, 2]                                # CA -> leaf1 -> spine -> leaf2
    before = _traffic(h)
    status, hdr, _ = reply_of(h.dr(slot, C.ATTR_NODE_INFO, path))
    assert status == 0 and hdr.mad_status == 0x8000
    after = _traffic(h)
    out = _dr_ports(h, src, path)
    back = [int(h.f.peer_of_port[e]) for e in out]
    d = {k: after[k] - before[k] for k in after}
    for e in out + back:                               # request out, reply back: 1 packet each way
        assert d["port_xmit_packets"][e] == 1 and d["port_xmit_data"][e] == MAD_WORDS
        assert d["port_rcv_packets"][e] == 1 and d["port_rcv_data"][e] == MAD_WORDS
        assert d["unicast_xmit_packets"][e] == 1 and d["unicast_rcv_packets"][e] == 1
    assert d["port_xmit_packets"].sum() == 2 * len(out) == d["port_rcv_packets"].sum()
    assert d["port_xmit_data"].sum() == 2 * len(out) * MAD_WORDS


def test_undeliverable_and_local_smps_cross_no_link(h):
    slot = h.connect("node001 HCA-1")
    before = _traffic(h)
    reply_of(h.dr(slot, C.ATTR_NODE_INFO, [0]))        # the client's own port: no link
    st, _, _ = reply_of(h.dr(slot, C.ATTR_NODE_INFO, [0, 1, 99]))   # bad port: 110 at once
    assert st == C.SIM_TIMEOUT
    after = _traffic(h)
    assert all((after[k] == before[k]).all() for k in after)


def test_lid_routed_perf_query_and_its_reply_are_counted_on_each_hop(h):
    slot = h.connect("node001 HCA-1")
    src = h.d.clients.get(slot).port
    lid = h.lid_of("node008 HCA-1", 1)
    crossed = []
    dest = h.d.view.lid_route(src, lid, crossed)
    back = []
    h.d.view.lid_route(dest, h.lid_of("node001 HCA-1", 1), back)
    assert len(crossed) == len(back) == 4               # CA-leaf-spine-leaf-CA
    before = _traffic(h)
    st, _, _ = reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS, lid, data=b"\0\1"))
    assert st == 0
    d = {k: v - before[k] for k, v in _traffic(h).items()}
    for e in crossed + back:
        assert d["port_xmit_packets"][e] == 1 and d["port_rcv_packets"][h.f.peer_of_port[e]] == 1
    assert d["port_xmit_packets"].sum() == 8 and d["port_rcv_data"].sum() == 8 * MAD_WORDS


def test_mad_counts_reach_the_legacy_counters_saturating(h):
    slot = h.connect("node001 HCA-1")
    src = h.d.clients.get(slot).port
    h.sim.state.counters[COUNTER_ROW["port_xmit_packets"], src] = 2**32 - 1
    reply_of(h.dr(slot, C.ATTR_NODE_INFO, [0, 1]))
    st, _, data = reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS, h.lid_of("node001 HCA-1", 1),
                                 data=b"\0\1"))
    assert C.PORT_COUNTERS.decode(data)["PortXmitPkts"] == 2**32 - 1      # saturated, not wrapped
    st, _, data = reply_of(h.lid(slot, C.CLASS_PERF, C.ATTR_PORT_COUNTERS_EXT,
                                 h.lid_of("node001 HCA-1", 1), data=b"\0\1"))
    assert C.PORT_COUNTERS_EXT.decode(data)["PortXmitPkts"] == 2**32     # the DR request went out


def test_set_issm_sends_trap_144_to_the_sm_on_each_capability_change(h):
    sm = h.connect("node001 HCA-1", issm=1)
    sm_lid = h.lid_of("node001 HCA-1", 1)
    h.sim.set_external_sm(False)                             # keep the embedded routes for the test
    other = h.connect("node005 HCA-1")
    p = h.d.clients.get(other).port
    h.d.view.pi[p][18:20] = sm_lid.to_bytes(2, "big")       # its SM LID, as the SM's Set gives it
    lid = h.lid_of("node005 HCA-1", 1)
    caps = []
    for on in (1, 0, 0):                                    # on, off, and off again (no change)
        reply, _, frames = h.ctl(other, C.CTL_SET_ISSM, on.to_bytes(4, "little"))
        assert C.unpack_ctl(reply)[2] == C.CTL_SET_ISSM
        for s, f in frames:
            hdr = C.unpack_header(f)
            assert s == sm and (hdr.method, hdr.attr_id, hdr.dlid, hdr.slid) == (C.METHOD_TRAP, C.ATTR_NOTICE,
                                                                                 sm_lid, lid)
            n = C.NOTICE.decode(f[C.OFF_DATA:])
            assert n["TrapNumber"] == 144 and n["IssuerLID"] == lid
            caps.append(int.from_bytes(f[C.OFF_DATA + 16:C.OFF_DATA + 20], "big"))   # details: CapabilityMask
    assert len(caps) == 2 and caps[0] & 0x2 and not caps[1] & 0x2 and caps[0] & ~0x2 == caps[1]


# ------------------------------------------------------------------ LID-routed part, retraining
def test_dr_smp_with_a_lid_routed_part_starts_at_that_lid(h):
    slot = h.connect("node001 HCA-1")
    leaf2 = h.lid_of("leaf2")
    me = h.lid_of("node001 HCA-1", 1)
    mad = bytearray(C.make_mad(C.CLASS_SMP_DR, C.METHOD_GET, C.ATTR_NODE_INFO, 0, tid=77, hop_cnt=1,
                               path=bytes([0, 3])))
    mad[32:34] = me.to_bytes(2, "big")                      # DrSLID: back to us by LID; DrDLID permissive
    st, hdr, data = reply_of(h.send(slot, C.pack_frame(bytes(mad), dlid=leaf2, slid=me)), slot)
    assert st == 0 and hdr.mad_status == 0x8000
    ni = C.NODE_INFO.decode(data)
    spine = h.f.node_of_port[h.f.peer_of_port[h.f.find_port("leaf2:3")]]
    assert ni["NodeGUID"] == int(h.f.node_guid[spine]) and ni["LocalPortNum"] == h.f.port_num[
        h.f.peer_of_port[h.f.find_port("leaf2:3")]]
    st, _, _ = reply_of(h.send(slot, C.pack_frame(bytes(mad), dlid=999, slid=me)), slot)
    assert st == C.SIM_TIMEOUT                               # no such LID: 110 at once
    mad[34:36] = b"\x00\x07"                                # a LID-routed part at the end: unsupported,
    assert h.send(slot, C.pack_frame(bytes(mad), dlid=leaf2, slid=me)) == []   # dropped as malformed


def _pi_set(h, slot, path, port, **fields):
    cur = bytearray(reply_of(h.dr(slot, C.ATTR_PORT_INFO, path, mod=port))[2][:64])
    for k, v in fields.items():
        C.PORT_INFO.put(cur, k, v)
    return reply_of(h.dr(slot, C.ATTR_PORT_INFO, path, mod=port, method=C.METHOD_SET, data=bytes(cur)))


def test_port_state_down_retrains_at_the_width_both_ends_enable(h):
    slot = h.connect()                                       # on leaf1
    p = h.f.find_port("leaf1:3")
    q = int(h.f.peer_of_port[p])
    _, hdr, _ = _pi_set(h, slot, [0], 3, LinkWidthEnabled=1, LinkSpeedEnabled=0, PortState=0)
    assert hdr.mad_status == 0x8000 and h.sim.state.width[p] == 4          # enabled, not yet trained
    _, hdr, data = _pi_set(h, slot, [0], 3, PortState=1)                  # Down: the link retrains
    assert hdr.mad_status == 0x8000
    assert (h.sim.state.width[[p, q]] == 1).all() and (h.sim.state.port_state[[p, q]] == INIT).all()
    assert (h.sim.state.counters[COUNTER_ROW["link_downed"], [p, q]] == 1).all()
    pi = C.PORT_INFO.decode(reply_of(h.dr(slot, C.ATTR_PORT_INFO, [0], mod=3))[2])
    assert pi["LinkWidthActive"] == 1 and pi["LinkWidthEnabled"] == 1
    assert [e.kind for e in h.sim.events[-2:]] == ["link_down", "link_up"]
