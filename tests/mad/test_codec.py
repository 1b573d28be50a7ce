"""Pure wire-format checks: byte for byte, no sockets."""

from __future__ import annotations

import struct

import pytest

from ibsim.fabric.counters import COUNTERS
from ibsim.mad import codec as C


def test_control_message_is_80_bytes_little_endian():
    msg = C.pack_ctl(3, C.CTL_GET_PORTINFO, 64, b"\x05")
    assert len(msg) == C.CTL_SIZE
    assert msg[:4] == bytes.fromhex("efbeadde")                     # magic, host order
    assert struct.unpack_from("<III", msg, 4) == (3, C.CTL_GET_PORTINFO, 64)
    assert msg[16] == 5 and msg[17:] == bytes(63)
    magic, cid, typ, ln, data = C.unpack_ctl(msg)
    assert (magic, cid, typ, ln, data[:1]) == (C.CTL_MAGIC, 3, 8, 64, b"\x05")


def test_ctl_reply_keeps_header_and_replaces_type_and_data():
    req = C.pack_ctl(7, C.CTL_GET_GUID, 8)
    rep = C.ctl_reply(req, C.CTL_ERROR, b"\x01\x02")
    assert rep[:8] == req[:8] and rep[12:16] == req[12:16]
    assert struct.unpack_from("<I", rep, 8)[0] == 0 and rep[16:18] == b"\x01\x02"


def test_client_info_roundtrip_cuts_at_nul():
    data = C.pack_client_info(11974, 0, 1, b"Hca1")
    assert data.hex().startswith("c62e0000" "00000000" "01000000" "48636131")
    assert C.unpack_client_info(data.ljust(64, b"\0")) == (11974, 0, 1, b"Hca1")


def test_frame_carrier_layout():
    mad = C.make_mad(C.CLASS_PERF, C.METHOD_GET, C.ATTR_PORT_COUNTERS, tid=0x1122334455667788)
    f = C.pack_frame(mad, dlid=0x1234, slid=0x0056, dqp=1, sqp=1, status=110)
    assert len(f) == C.FRAME_SIZE
    assert f[0:4] == b"\x12\x34\x00\x00" and f[4:8] == b"\x00\x56\x00\x00"   # BE16 in the first half
    assert struct.unpack_from(">III", f, 8) == (1, 1, 110)
    assert struct.unpack_from(">Q", f, 24)[0] == 256
    h = C.unpack_header(f)
    assert (h.dlid, h.slid, h.dqp, h.sqp, h.status, h.length) == (0x1234, 0x56, 1, 1, 110, 256)
    assert (h.base_version, h.mgmt_class, h.class_version, h.method) == (1, 4, 1, 1)
    assert h.tid == 0x1122334455667788 and h.attr_id == 0x12


def test_dr_smp_header_and_paths():
    mad = C.make_mad(C.CLASS_SMP_DR, C.METHOD_GET, C.ATTR_NODE_INFO, hop_cnt=2, path=bytes([0, 3, 7]))
    assert mad[7] == 2 and mad[6] == 0                                 # hop count, hop pointer
    assert mad[32:36] == b"\xff\xff\xff\xff"                           # DrSLID, DrDLID permissive
    assert mad[128:131] == bytes([0, 3, 7])


def test_bitlayout_put_get_roundtrip_and_neighbours_untouched():
    buf = bytearray(64)
    C.PORT_INFO.put(buf, "PortState", 4)
    C.PORT_INFO.put(buf, "LinkSpeedSupported", 7)
    C.PORT_INFO.put(buf, "LMC", 5)
    C.PORT_INFO.put(buf, "LinkSpeedExtEnabled", 0x1F)
    assert buf[32] == 0x74 and buf[34] == 0x05 and buf[63] == 0x1F
    d = C.PORT_INFO.decode(buf)
    assert (d["PortState"], d["LinkSpeedSupported"], d["LMC"], d["M_KeyProtectBits"]) == (4, 7, 5, 0)


@pytest.mark.parametrize("name,off,width", [
    ("SymbolErrorCounter", 32, 16), ("LinkErrorRecoveryCounter", 48, 8), ("LinkDownedCounter", 56, 8),
    ("PortRcvErrors", 64, 16), ("PortXmitDiscards", 112, 16), ("PortXmitConstraintErrors", 128, 8),
    ("PortRcvConstraintErrors", 136, 8), ("CounterSelect2", 144, 8),
    ("LocalLinkIntegrityErrors", 152, 4), ("ExcessiveBufferOverrunErrors", 156, 4),
    ("QP1Dropped", 160, 16), ("VL15Dropped", 176, 16), ("PortXmitData", 192, 32),
    ("PortRcvData", 224, 32), ("PortXmitPkts", 256, 32), ("PortRcvPkts", 288, 32),
    ("PortXmitWait", 320, 32)])
def test_port_counters_layout_derived_from_schema_matches_iba(name, off, width):
    assert C.PORT_COUNTERS.fields[name] == (off, width)


def test_port_counters_ext_layout_covers_every_extended_counter():
    ext = [c.ib_name for c in COUNTERS if c.ext_select_bit is not None]
    assert len(ext) == 8
    for c in COUNTERS:
        if c.ext_select_bit is not None:
            assert C.PORT_COUNTERS_EXT.fields[c.ib_name] == (64 + 64 * c.ext_select_bit, 64)


def test_encode_port_counters_places_values():
    vals = [0] * len(COUNTERS)
    row = {c.ib_name: i for i, c in enumerate(COUNTERS)}
    vals[row["PortXmitData"]] = 0xDEADBEEF
    vals[row["LinkDownedCounter"]] = 3
    vals[row["ExcessiveBufferOverrunErrors"]] = 0xF
    data = C.encode_port_counters(vals, 5, 0xFFFF, 1)
    assert data[1] == 5 and data[2:4] == b"\xff\xff" and data[18] == 1
    assert data[24:28] == bytes.fromhex("deadbeef") and data[7] == 3 and data[19] == 0x0F
    d = C.PORT_COUNTERS.decode(data)
    assert d["PortXmitData"] == 0xDEADBEEF and d["LinkDownedCounter"] == 3


def test_encode_port_counters_ext_all_nine_fields():
    vals = list(range(100, 100 + len(COUNTERS)))
    data = C.encode_port_counters_ext(vals, 1, 0)
    assert len(data) == 72
    d = C.PORT_COUNTERS_EXT.decode(data)
    for c in COUNTERS:
        if c.ext_select_bit is not None:
            assert d[c.ib_name] == vals[COUNTERS.index(c)]


def test_trap128_notice_fields():
    n = C.trap128_notice(0x0123)
    d = C.NOTICE.decode(n)
    assert (d["IsGeneric"], d["Type"], d["ProducerType"], d["TrapNumber"], d["IssuerLID"]) == (1, 1, 2, 128, 0x123)
    assert n[10:12] == b"\x01\x23"


def test_trap144_notice_fields():
    n = C.trap144_notice(7, 0x0040C04A, 1)
    d = C.NOTICE.decode(n)
    assert (d["Type"], d["ProducerType"], d["TrapNumber"], d["IssuerLID"]) == (4, 1, 144, 7)
    assert n[12:14] == b"\x00\x07" and n[16:20] == bytes.fromhex("0040c04a")


def test_named_frame_offsets_are_where_the_header_struct_reads():
    """Each OFF_* constant points at the bytes C.HEADER unpacks for that field (and make_mad packs)."""
    mad = C.make_mad(C.CLASS_SMP_DR, C.METHOD_GET, 0x1234, 0x56789ABC, tid=0x0102030405060708,
                     class_version=2, status=0x8001, hop_ptr=3, hop_cnt=9, path=bytes(range(64)),
                     dr_slid=0x1111, dr_dlid=0x2222, data=b"\xd0")
    f = C.pack_frame(mad, dlid=0xABCD, slid=0x0EF0, status=C.SIM_TIMEOUT)
    h = C.unpack_header(f)
    be = lambda off, n: int.from_bytes(f[off:off + n], "big")   # noqa: E731
    assert be(C.OFF_DLID, 2) == h.dlid and be(C.OFF_SLID, 2) == h.slid
    assert be(C.OFF_CARRIER_STATUS, 4) == h.status == C.SIM_TIMEOUT
    assert f[C.OFF_BASE_VERSION] == h.base_version == C.BASE_VERSION
    assert f[C.OFF_MGMT_CLASS] == h.mgmt_class and f[C.OFF_CLASS_VERSION] == h.class_version
    assert f[C.OFF_METHOD] == h.method and be(C.OFF_STATUS, 2) == h.mad_status
    assert f[C.OFF_HOP_PTR] == h.hop_ptr and f[C.OFF_HOP_CNT] == h.hop_cnt
    assert be(C.OFF_TID, 8) == h.tid and be(C.OFF_ATTR_ID, 2) == h.attr_id
    assert be(C.OFF_ATTR_MOD, 4) == h.attr_mod
    assert be(C.OFF_DR_SLID, 2) == 0x1111 and be(C.OFF_DR_DLID, 2) == 0x2222
    assert f[C.OFF_IPATH:C.OFF_IPATH + 64] == bytes(range(64)) and f[C.OFF_DATA] == 0xD0
    assert C.OFF_RPATH == C.OFF_IPATH + 64 and C.OFF_DATA + 192 == C.FRAME_SIZE


def test_mlnx_ext_port_info_fields_are_the_bytes_ibmad_reads():
    buf = C.MLNX_EXT_PORT_INFO.encode({"LinkSpeedSupported": 1, "LinkSpeedEnabled": 1, "LinkSpeedActive": 1,
                                       "StateChangeEnable": 1})
    assert [i for i, x in enumerate(buf) if x] == [3, 7, 11, 15] and len(buf) == 64
