"""Performance management agent: PerfMgt (class 0x04) attribute handlers.

Values are the engine's counters (``sim.state.counters``, one uint64 row
per schema counter) at the moment of the query: PortCounters saturates each
at its legacy width (never wraps), PortCountersExtended returns the 64-bit
values, all nine fields. A Set clears the counters its CounterSelect names
(:func:`ibsim.fabric.counters.reset_mask_rows`) through
``FabricState.reset_counters`` and returns the result.

PortSelect: a switch takes 0..NumPorts or 0xFF (the saturated sum over all
its ports, since ClassPortInfo advertises AllPortSelect); a CA takes any of
its own port numbers. Same handler signature as :mod:`ibsim.mad.smp`.
"""

from __future__ import annotations

from ..fabric.counters import COUNTERS, LEGACY_MAX, reset_mask_rows
from . import codec as C

__all__ = ["CPI_CAP_CA", "CPI_CAP_SWITCH", "PERF_HANDLERS"]

OK, BAD_METHOD, BAD_ATTR, BAD_FIELD = C.STATUS_OK, C.STATUS_BAD_METHOD, C.STATUS_BAD_METHOD_ATTR, C.STATUS_BAD_FIELD
GET, SET = C.METHOD_GET, C.METHOD_SET
ALL_PORTS = 0xFF

#: ClassPortInfo CapabilityMask: IsExtendedWidthSupported (bit 9, PortCountersExtended),
#: IsPortXmitWaitSupported (bit 12); switches add IsAllPortSelect (bit 8)
CPI_CAP_CA = 0x1200
CPI_CAP_SWITCH = 0x1300
CPI_RESP_TIME = 18

_LEGACY_MAX = [int(x) for x in LEGACY_MAX]
_N = len(COUNTERS)


def _class_port_info(v, method, mod, p, data):
    if method != GET:
        return (BAD_ATTR if method == SET else BAD_METHOD), None
    sw = v.is_switch_port[p]
    return OK, _CPI_SW if sw else _CPI_CA


def _cpi(cap: int) -> bytes:
    return bytes(C.CLASS_PORT_INFO.encode({"BaseVersion": 1, "ClassVersion": 1, "CapabilityMask": cap,
                                           "RespTimeValue": CPI_RESP_TIME}))


_CPI_CA = _cpi(CPI_CAP_CA)
_CPI_SW = _cpi(CPI_CAP_SWITCH)


def _ports(v, p: int, port_select: int):
    """Port indices a PortSelect names, or None when it is invalid for that node."""
    n = v.node_of_port[p]
    first = v.first_port[n]
    if v.is_switch_node[n]:
        if port_select == ALL_PORTS:
            return list(range(first, v.first_port[n + 1]))
        if port_select > v.nports[n]:
            return None
        return [first + port_select]
    if port_select == 0 or port_select > v.nports[n]:
        return None
    return [first + port_select - 1]


def _values(v, ports) -> list[int]:
    """64-bit counter values per schema row, summed over ports (Python ints, no wrap)."""
    c = v.sim.state.counters
    if len(ports) == 1:
        return c[:, ports[0]].tolist()
    block = c[:, ports[0]:ports[-1] + 1].tolist()
    return [sum(row) for row in block]


def _port_counters(v, method, mod, p, data):
    ps = data[1]
    ports = _ports(v, p, ps)
    if ports is None:
        return BAD_FIELD, None
    cs = (data[2] << 8) | data[3]
    cs2 = data[18]
    if method == SET:
        rows = reset_mask_rows(cs, cs2)
        v.sim.reset_counters(ports, rows)
    elif method != GET:
        return BAD_METHOD, None
    vals = _values(v, ports)
    sat = [x if x < m else m for x, m in zip(vals, _LEGACY_MAX)]
    return OK, C.encode_port_counters(sat, ps, cs, cs2)


def _port_counters_ext(v, method, mod, p, data):
    ps = data[1]
    ports = _ports(v, p, ps)
    if ports is None:
        return BAD_FIELD, None
    cs = (data[2] << 8) | data[3]
    if method == SET:
        v.sim.reset_counters(ports, reset_mask_rows(cs, extended=True))
    elif method != GET:
        return BAD_METHOD, None
    vals = _values(v, ports)
    top = (1 << 64) - 1
    return OK, C.encode_port_counters_ext([x if x < top else top for x in vals], ps, cs)


def _details(v, method, mod, p, data):
    """PortRcvErrorDetails .. PortVLXmitWaitCounters: no model behind them, so zeros."""
    ps = data[1]
    if _ports(v, p, ps) is None:
        return BAD_FIELD, None
    if method not in (GET, SET):
        return BAD_METHOD, None
    out = bytearray(64)
    out[1] = ps
    out[2:4] = data[2:4]
    return OK, bytes(out)


#: attribute id -> handler for class 0x04
PERF_HANDLERS = {
    C.ATTR_CLASS_PORT_INFO: _class_port_info,
    C.ATTR_PORT_COUNTERS: _port_counters,
    C.ATTR_PORT_COUNTERS_EXT: _port_counters_ext,
    **{a: _details for a in C.PERF_DETAIL_ATTRS},
}
