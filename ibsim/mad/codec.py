"""Pure pack/unpack of the umad2sim wire format and of the MAD attributes we serve.

Nothing here touches a socket, a thread or the fabric. Three layers:

* **control messages** (80 bytes, host order = little-endian on x86-64):
  ``magic, clientid, type, len`` + 64 data bytes; CONNECT carries a
  ``client_info`` (id, qp, issm, 32-byte node id);
* **data frames** (288 bytes): a 32-byte carrier header (dlid/slid as a
  big-endian 16-bit value in the first half of a 32-bit slot, dqp, sqp,
  status, 4 padding bytes, a 64-bit length) and the 256-byte MAD, whose
  common header is parsed with one :class:`struct.Struct`;
* **attribute layouts** as bit tables (:class:`BitLayout`), IBA bit numbering
  (bit 0 = most significant bit of byte 0). The PortCounters and
  PortCountersExtended layouts are derived from the counter schema
  (:data:`ibsim.fabric.counters.COUNTERS`): fields follow their CounterSelect
  bit order, with the two reserved gaps of PortCounters inserted.

Facts (offsets, constants) follow the IBA and the ibsim wire-protocol notes.
The C fast path takes its offsets and constants from here too, through the
generated header ``_fastpath_layout.h`` (:mod:`ibsim.mad.cheader`).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..fabric.counters import COUNTERS

# ----------------------------------------------------------------- sizes
CTL_SIZE = 80
FRAME_SIZE = 288
MAD_SIZE = 256
CTL_MAGIC = 0xDEADBEEF

# control message types
CTL_ERROR, CTL_CONNECT, CTL_DISCONNECT, CTL_GET_PORT, CTL_GET_VENDOR = 0, 1, 2, 3, 4
CTL_GET_GID, CTL_GET_GUID, CTL_GET_NODEINFO, CTL_GET_PORTINFO, CTL_SET_ISSM = 5, 6, 7, 8, 9
CTL_GET_PKEYS = 10
CTL_NAMES = {0: "ERROR", 1: "CONNECT", 2: "DISCONNECT", 3: "GET_PORT", 4: "GET_VENDOR",
             5: "GET_GID", 6: "GET_GUID", 7: "GET_NODEINFO", 8: "GET_PORTINFO", 9: "SET_ISSM",
             10: "GET_PKEYS"}

#: carrier status the server returns for anything it cannot deliver or answer (ETIMEDOUT)
SIM_TIMEOUT = 110
PERMISSIVE_LID = 0xFFFF

# ----------------------------------------------------------------- MAD header
BASE_VERSION = 1
#: the highest ClassVersion accepted (SA's); a frame with a higher one is dropped
MAX_CLASS_VERSION = 2
CLASS_SMP_LID = 0x01
CLASS_SA = 0x03
CLASS_PERF = 0x04
CLASS_SMP_DR = 0x81

METHOD_GET, METHOD_SET, METHOD_SEND, METHOD_TRAP = 0x01, 0x02, 0x03, 0x05
METHOD_REPORT, METHOD_TRAP_REPRESS, METHOD_GET_TABLE = 0x06, 0x07, 0x12
METHOD_GET_RESP = 0x81
R_BIT = 0x80

# MAD status values (IBA 13.4.7: the "invalid field" code sits in bits 4..2)
STATUS_OK = 0x0000
STATUS_BAD_VERSION = 0x0004
STATUS_BAD_METHOD = 0x0008
STATUS_BAD_METHOD_ATTR = 0x000C
STATUS_BAD_FIELD = 0x001C
DR_DIRECTION = 0x8000

# SMP attributes
ATTR_NOTICE = 0x0002
ATTR_NODE_DESC = 0x0010
ATTR_NODE_INFO = 0x0011
ATTR_SWITCH_INFO = 0x0012
ATTR_GUID_INFO = 0x0014
ATTR_PORT_INFO = 0x0015
ATTR_PKEY_TABLE = 0x0016
ATTR_SL2VL = 0x0017
ATTR_VL_ARB = 0x0018
ATTR_LFT = 0x0019
ATTR_MFT = 0x001B
ATTR_SM_INFO = 0x0020
ATTR_MLNX_EXT_PORT_INFO = 0xFF90

# PerfMgt attributes
ATTR_CLASS_PORT_INFO = 0x0001
ATTR_PORT_COUNTERS = 0x0012
ATTR_PORT_COUNTERS_EXT = 0x001D
#: PortRcvErrorDetails .. PortVLXmitWaitCounters: served as zeros (no model behind them)
PERF_DETAIL_ATTRS = tuple(range(0x0015, 0x001D))

#: hop count limit of a directed route (IBA 14.2.2: 6-bit HopCount)
MAX_DR_HOPS = 63

# byte offsets inside a 288-byte frame (the carrier header, then the MAD; :data:`HEADER`
# unpacks the same fields and tests/mad/test_codec.py checks that both agree)
OFF_DLID = 0
OFF_SLID = 4
OFF_CARRIER_STATUS = 16
OFF_MAD = 32
OFF_BASE_VERSION = OFF_MAD
OFF_MGMT_CLASS = OFF_MAD + 1
OFF_CLASS_VERSION = OFF_MAD + 2
OFF_METHOD = OFF_MAD + 3
OFF_STATUS = OFF_MAD + 4
OFF_HOP_PTR = OFF_MAD + 6
OFF_HOP_CNT = OFF_MAD + 7
OFF_TID = OFF_MAD + 8
OFF_ATTR_ID = OFF_MAD + 16
OFF_ATTR_MOD = OFF_MAD + 20
OFF_DR_SLID = OFF_MAD + 32
OFF_DR_DLID = OFF_MAD + 34
OFF_DATA = OFF_MAD + 64
OFF_IPATH = OFF_MAD + 128
OFF_RPATH = OFF_MAD + 192
OFF_PERF_DATA = OFF_MAD + 64      # PerfMgt data also starts at MAD byte 64 (after 40 reserved)

#: the carrier header and the common MAD header in one go (56 bytes):
#: dlid, slid, dqp, sqp, status, length, base_version, mgmt_class, class_version,
#: method (with R bit), mad_status, hop_ptr, hop_cnt, tid, attr_id, attr_mod
HEADER = struct.Struct(">H2xH2xIII4xQBBBBHBBQH2xI")
CARRIER = struct.Struct(">H2xH2xIII4xQ")
_CTL = struct.Struct("<IIII64s")
_CTL_HEAD = struct.Struct("<IIII")
CLIENT_INFO = struct.Struct("<III32s")
VENDOR = struct.Struct("<IIIIQ")
PORT_BRIEF = struct.Struct("<HB")
_BE16 = struct.Struct(">H")
_BE32 = struct.Struct(">I")
_BE64 = struct.Struct(">Q")


class Header(NamedTuple):
    """The carrier header plus the common MAD header of a data frame."""

    dlid: int
    slid: int
    dqp: int
    sqp: int
    status: int
    length: int
    base_version: int
    mgmt_class: int
    class_version: int
    method: int
    mad_status: int
    hop_ptr: int
    hop_cnt: int
    tid: int
    attr_id: int
    attr_mod: int


def unpack_header(frame) -> Header:
    """Parse the first 56 bytes of a frame (any buffer of at least that size)."""
    return Header(*HEADER.unpack_from(frame, 0))


# ----------------------------------------------------------------- control
def unpack_ctl(buf) -> tuple[int, int, int, int, bytes]:
    """``(magic, clientid, type, len, data)`` of an 80-byte control message."""
    return _CTL.unpack(buf)


def pack_ctl(clientid: int, typ: int, length: int, data: bytes = b"", magic: int = CTL_MAGIC) -> bytes:
    """An 80-byte control message (data zero-padded or cut to 64 bytes)."""
    return _CTL.pack(magic & 0xFFFFFFFF, clientid & 0xFFFFFFFF, typ & 0xFFFFFFFF,
                     length & 0xFFFFFFFF, bytes(data[:64]))


def ctl_reply(request: bytes, typ: int, data: bytes) -> bytes:
    """The reply to a control request: same header (type replaced), new data."""
    magic, cid, _, ln = _CTL_HEAD.unpack_from(request, 0)
    return _CTL.pack(magic, cid, typ, ln, bytes(data[:64]))


def pack_client_info(ident: int, qp: int, issm: int, nodeid: bytes) -> bytes:
    return CLIENT_INFO.pack(ident & 0xFFFFFFFF, qp & 0xFFFFFFFF, issm & 0xFFFFFFFF, nodeid[:31])


def unpack_client_info(data: bytes) -> tuple[int, int, int, bytes]:
    """``(id, qp, issm, nodeid)``; nodeid cut at its first NUL."""
    ident, qp, issm, node = CLIENT_INFO.unpack_from(data, 0)
    return ident, qp, issm, node.split(b"\0", 1)[0]


# ----------------------------------------------------------------- frames
def pack_frame(mad: bytes, *, dlid: int, slid: int = 0, dqp: int = 0, sqp: int = 0,
               status: int = 0, length: int = MAD_SIZE) -> bytes:
    """A 288-byte data frame around a MAD (padded or cut to 256 bytes)."""
    return (CARRIER.pack(dlid, slid, dqp, sqp, status, length)
            + bytes(mad[:MAD_SIZE]).ljust(MAD_SIZE, b"\0"))


def make_mad(mgmt_class: int, method: int, attr_id: int, attr_mod: int = 0, *, tid: int = 1,
             data: bytes = b"", class_version: int | None = None, base_version: int = 1,
             status: int = 0, hop_ptr: int = 0, hop_cnt: int = 0, path: bytes = b"",
             dr_slid: int = PERMISSIVE_LID, dr_dlid: int = PERMISSIVE_LID,
             data_offset: int = 64) -> bytes:
    """A 256-byte MAD. For a DR SMP, ``path`` is the initial path (byte 0 unused)."""
    if class_version is None:
        class_version = 2 if mgmt_class == CLASS_SA else 1
    m = bytearray(MAD_SIZE)
    struct.pack_into(">BBBBHBBQH2xI", m, 0, base_version, mgmt_class, class_version, method,
                     status, hop_ptr, hop_cnt, tid & 0xFFFFFFFFFFFFFFFF, attr_id, attr_mod)
    if mgmt_class == CLASS_SMP_DR:
        struct.pack_into(">HH", m, 32, dr_slid, dr_dlid)
        m[128:128 + len(path)] = path[:64]
    m[data_offset:data_offset + len(data)] = data[:MAD_SIZE - data_offset]
    return bytes(m)


# ----------------------------------------------------------------- bit layouts
class BitLayout:
    """A named bit-field table: ``name -> (bit offset, width)``, IBA bit numbering.

    Examples
    --------
    >>> lay = BitLayout("demo", [("a", 0, 4), ("b", 4, 12)])
    >>> buf = bytearray(2)
    >>> lay.put(buf, "b", 0xABC)
    >>> lay.get(buf, "b"), buf.hex()
    (2748, '0abc')
    """

    def __init__(self, name: str, fields, size: int | None = None):
        self.name = name
        self.fields: dict[str, tuple[int, int]] = {}
        for fname, off, width in fields:
            self.fields[fname] = (off, width)
        end = max((o + w for o, w in self.fields.values()), default=0)
        self.size = size if size is not None else -(-end // 8)
        self._spans = {}
        for fname, (off, width) in self.fields.items():
            b0 = off // 8
            b1 = (off + width + 7) // 8
            shift = b1 * 8 - (off + width)
            self._spans[fname] = (b0, b1, shift, (1 << width) - 1)

    def get(self, buf, name: str, base: int = 0) -> int:
        b0, b1, shift, mask = self._spans[name]
        return (int.from_bytes(buf[base + b0:base + b1], "big") >> shift) & mask

    def put(self, buf: bytearray, name: str, value: int, base: int = 0) -> None:
        b0, b1, shift, mask = self._spans[name]
        cur = int.from_bytes(buf[base + b0:base + b1], "big")
        cur = (cur & ~(mask << shift)) | ((int(value) & mask) << shift)
        buf[base + b0:base + b1] = cur.to_bytes(b1 - b0, "big")

    def decode(self, buf, base: int = 0) -> dict[str, int]:
        """Every field of the layout, by name."""
        return {n: self.get(buf, n, base) for n in self.fields}

    def encode(self, values: dict, size: int | None = None) -> bytearray:
        """A zeroed buffer with the given fields filled in."""
        buf = bytearray(size or self.size)
        for n, v in values.items():
            self.put(buf, n, v)
        return buf


NODE_INFO = BitLayout("NodeInfo", [
    ("BaseVersion", 0, 8), ("ClassVersion", 8, 8), ("NodeType", 16, 8), ("NumPorts", 24, 8),
    ("SystemImageGUID", 32, 64), ("NodeGUID", 96, 64), ("PortGUID", 160, 64),
    ("PartitionCap", 224, 16), ("DeviceID", 240, 16), ("Revision", 256, 32),
    ("LocalPortNum", 288, 8), ("VendorID", 296, 24)])

PORT_INFO = BitLayout("PortInfo", [
    ("M_Key", 0, 64), ("GidPrefix", 64, 64), ("LID", 128, 16), ("MasterSMLID", 144, 16),
    ("CapabilityMask", 160, 32), ("DiagCode", 192, 16), ("M_KeyLeasePeriod", 208, 16),
    ("LocalPortNum", 224, 8), ("LinkWidthEnabled", 232, 8), ("LinkWidthSupported", 240, 8),
    ("LinkWidthActive", 248, 8), ("LinkSpeedSupported", 256, 4), ("PortState", 260, 4),
    ("PortPhysicalState", 264, 4), ("LinkDownDefaultState", 268, 4), ("M_KeyProtectBits", 272, 2),
    ("LMC", 277, 3), ("LinkSpeedActive", 280, 4), ("LinkSpeedEnabled", 284, 4),
    ("NeighborMTU", 288, 4), ("MasterSMSL", 292, 4), ("VLCap", 296, 4), ("InitType", 300, 4),
    ("VLHighLimit", 304, 8), ("VLArbitrationHighCap", 312, 8), ("VLArbitrationLowCap", 320, 8),
    ("InitTypeReply", 328, 4), ("MTUCap", 332, 4), ("VLStallCount", 336, 3), ("HOQLife", 339, 5),
    ("OperationalVLs", 344, 4), ("PartitionEnforcementInbound", 348, 1),
    ("PartitionEnforcementOutbound", 349, 1), ("FilterRawInbound", 350, 1),
    ("FilterRawOutbound", 351, 1), ("M_KeyViolations", 352, 16), ("P_KeyViolations", 368, 16),
    ("Q_KeyViolations", 384, 16), ("GUIDCap", 400, 8), ("ClientReregister", 408, 1),
    ("MulticastPKeyTrapSuppressionEnabled", 409, 2), ("SubnetTimeOut", 411, 5),
    ("RespTimeValue", 419, 5), ("LocalPhyErrors", 424, 4), ("OverrunErrors", 428, 4),
    ("MaxCreditHint", 432, 16), ("LinkRoundTripLatency", 456, 24), ("CapabilityMask2", 480, 16),
    ("LinkSpeedExtActive", 496, 4), ("LinkSpeedExtSupported", 500, 4),
    ("LinkSpeedExtEnabled", 507, 5)], size=64)

SWITCH_INFO = BitLayout("SwitchInfo", [
    ("LinearFDBCap", 0, 16), ("RandomFDBCap", 16, 16), ("MulticastFDBCap", 32, 16),
    ("LinearFDBTop", 48, 16), ("DefaultPort", 64, 8), ("DefaultMulticastPrimaryPort", 72, 8),
    ("DefaultMulticastNotPrimaryPort", 80, 8), ("LifeTimeValue", 88, 5), ("PortStateChange", 93, 1),
    ("OptimizedSLtoVLMappingProgramming", 94, 2), ("LIDsPerPort", 96, 16),
    ("PartitionEnforcementCap", 112, 16), ("InboundEnforcementCap", 128, 1),
    ("OutboundEnforcementCap", 129, 1), ("FilterRawInboundCap", 130, 1),
    ("FilterRawOutboundCap", 131, 1), ("EnhancedPort0", 132, 1), ("MulticastFDBTop", 144, 16)],
    size=64)

#: Mellanox vendor attribute 0xFF90 (the fields ibmad knows; the rest is reserved)
MLNX_EXT_PORT_INFO = BitLayout("MLNX ExtendedPortInfo", [
    ("StateChangeEnable", 31, 1), ("LinkSpeedSupported", 56, 8), ("LinkSpeedEnabled", 88, 8),
    ("LinkSpeedActive", 120, 8)], size=64)

CLASS_PORT_INFO = BitLayout("ClassPortInfo", [
    ("BaseVersion", 0, 8), ("ClassVersion", 8, 8), ("CapabilityMask", 16, 16),
    ("CapabilityMask2", 32, 27), ("RespTimeValue", 59, 5)], size=72)

NOTICE = BitLayout("Notice", [
    ("IsGeneric", 0, 1), ("Type", 1, 7), ("ProducerType", 8, 24), ("TrapNumber", 32, 16),
    ("IssuerLID", 48, 16), ("NoticeToggle", 64, 1), ("NoticeCount", 65, 15)], size=80)

_PERF_HEAD = [("PortSelect", 8, 8), ("CounterSelect", 16, 16)]
# the two reserved gaps of PortCounters: CounterSelect2 (8 bits) follows select
# bit 8, QP1Dropped (16 bits, not modelled) follows select bit 10 (IBA 16.1.3.5)
_PC_GAPS = {8: ("CounterSelect2", 8), 10: ("QP1Dropped", 16)}


def _port_counters_layout():
    fields = list(_PERF_HEAD)
    rows = []
    off = 32
    legacy = sorted((c.select_bit, i) for i, c in enumerate(COUNTERS) if c.select_bit is not None)
    for bit, i in legacy:
        c = COUNTERS[i]
        fields.append((c.ib_name, off, c.bits))
        rows.append((i, off, c.bits))
        off += c.bits
        if bit in _PC_GAPS:
            gname, gbits = _PC_GAPS[bit]
            fields.append((gname, off, gbits))
            off += gbits
    for i, c in enumerate(COUNTERS):        # legacy-width counters without a select bit
        if c.select_bit is None and c.bits is not None:
            fields.append((c.ib_name, off, c.bits))
            rows.append((i, off, c.bits))
            off += c.bits
    return BitLayout("PortCounters", fields, size=64), tuple(rows)


def _port_counters_ext_layout():
    fields = list(_PERF_HEAD)
    rows = []
    ext = sorted((c.ext_select_bit, i) for i, c in enumerate(COUNTERS) if c.ext_select_bit is not None)
    for bit, i in ext:
        off = 64 + 64 * bit
        fields.append((COUNTERS[i].ib_name, off, 64))
        rows.append((i, off, 64))
    return BitLayout("PortCountersExtended", fields, size=72), tuple(rows)


#: PortCounters layout and its (schema row, bit offset, width) list
PORT_COUNTERS, PORT_COUNTERS_ROWS = _port_counters_layout()
#: PortCountersExtended layout and its (schema row, bit offset, 64) list
PORT_COUNTERS_EXT, PORT_COUNTERS_EXT_ROWS = _port_counters_ext_layout()
assert PORT_COUNTERS.fields["PortXmitData"] == (192, 32)
assert PORT_COUNTERS.fields["PortXmitWait"] == (320, 32)
assert PORT_COUNTERS_EXT.fields["PortMulticastRcvPkts"] == (512, 64)


def pack_rows(rows, values, size: int) -> bytearray:
    """Place counter values (indexed by schema row) at their bit offsets in ``size`` bytes."""
    total = size * 8
    acc = 0
    for row, off, bits in rows:
        acc |= (int(values[row]) & ((1 << bits) - 1)) << (total - off - bits)
    return bytearray(acc.to_bytes(size, "big"))


def encode_port_counters(values, port_select: int, counter_select: int, counter_select2: int = 0) -> bytes:
    """PortCounters data (64 bytes) from per-row values already saturated at legacy widths."""
    buf = pack_rows(PORT_COUNTERS_ROWS, values, 64)
    buf[1] = port_select & 0xFF
    buf[2:4] = _BE16.pack(counter_select & 0xFFFF)
    buf[18] = counter_select2 & 0xFF
    return bytes(buf)


def encode_port_counters_ext(values, port_select: int, counter_select: int) -> bytes:
    """PortCountersExtended data (72 bytes) from per-row 64-bit values."""
    buf = pack_rows(PORT_COUNTERS_EXT_ROWS, values, 72)
    buf[1] = port_select & 0xFF
    buf[2:4] = _BE16.pack(counter_select & 0xFFFF)
    return bytes(buf)


# ----------------------------------------------------------------- notices
def notice(trap_number: int, *, notice_type: int, producer_type: int, issuer_lid: int,
           details: bytes = b"") -> bytes:
    """A generic Notice (80 bytes); ``details`` are the DataDetails from byte 10."""
    buf = NOTICE.encode({"IsGeneric": 1, "Type": notice_type, "ProducerType": producer_type,
                         "TrapNumber": trap_number, "IssuerLID": issuer_lid})
    buf[10:10 + len(details)] = details[:54]
    return bytes(buf)


def trap128_notice(switch_lid: int) -> bytes:
    """Trap 128 (link state change): urgent, from a switch, LIDADDR = the switch LID."""
    return notice(128, notice_type=1, producer_type=2, issuer_lid=switch_lid,
                  details=_BE16.pack(switch_lid))


def trap144_notice(lid: int, capability_mask: int, node_type: int) -> bytes:
    """Trap 144 (capability mask change): informational, LIDADDR and the new CapabilityMask."""
    details = b"\0\0" + _BE16.pack(lid) + b"\0\0" + _BE32.pack(capability_mask)
    return notice(144, notice_type=4, producer_type=node_type, issuer_lid=lid, details=details)


def be16(v: int) -> bytes:
    return _BE16.pack(v & 0xFFFF)


def be32(v: int) -> bytes:
    return _BE32.pack(v & 0xFFFFFFFF)


def be64(v: int) -> bytes:
    return _BE64.pack(v & 0xFFFFFFFFFFFFFFFF)
