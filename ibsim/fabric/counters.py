"""The IB port counter schema (one table) and the vectorised counter helpers.

Every counter a port keeps is a row of :data:`COUNTERS`: its Linux sysfs name
(``/sys/class/infiniband/<dev>/ports/<n>/counters/<name>``), its name as
``perfquery`` prints it, its width in the legacy PortCounters attribute (None
when the counter only exists in PortCountersExtended), its unit, where it sits
in PortCounters/PortCountersExtended (CounterSelect bit), node_exporter's
metric name and a help text. Everything else (exporters, the MAD server,
``counters.csv``) derives from this table.

Storage is one ``uint64`` array of shape ``[n_counters, n_ports]`` (row order =
table order). The legacy view saturates at ``2**bits - 1`` and never wraps
(IBA 16.1.3.5); the stored 64-bit value is what PortCountersExtended reports.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import lookup

__all__ = ["Counter", "COUNTERS", "COUNTER_NAMES", "COUNTER_ROW", "N_COUNTERS",
           "LEGACY_MAX", "counter_row", "legacy_view", "reset_mask_rows", "UINT64_MAX"]

UINT64_MAX = np.uint64(2**64 - 1)


class Counter(NamedTuple):
    """One row of the counter schema."""

    name: str                 #: sysfs name, e.g. ``port_xmit_data``
    ib_name: str              #: perfquery name, e.g. ``PortXmitData``
    bits: int | None          #: width in PortCounters (saturates there); None: extended only
    unit: str                 #: ``4-octet words``, ``packets``, ``events`` or ``ticks``
    select_bit: int | None    #: PortCounters CounterSelect bit (None: not resettable there)
    ext_select_bit: int | None  #: PortCountersExtended CounterSelect bit (None: not in it)
    metric: str               #: node_exporter metric name (``node_infiniband_`` + this)
    help: str


#: The schema. Widths and select bits: IBA 16.1.3.5 (PortCounters, attribute
#: 0x0012) and 16.1.4.11 (PortCountersExtended, 0x001D); units: Linux sysfs ABI.
COUNTERS: tuple[Counter, ...] = (
    Counter("symbol_error", "SymbolErrorCounter", 16, "events", 0, None,
            "symbol_error_total", "Minor link errors detected on one or more physical lanes"),
    Counter("link_error_recovery", "LinkErrorRecoveryCounter", 8, "events", 1, None,
            "link_error_recovery_total",
            "Times the port training state machine completed link error recovery"),
    Counter("link_downed", "LinkDownedCounter", 8, "events", 2, None,
            "link_downed_total", "Times the link error recovery process failed and the link went down"),
    Counter("port_rcv_errors", "PortRcvErrors", 16, "packets", 3, None,
            "port_errors_received_total", "Packets received on the port that contained errors"),
    Counter("port_rcv_remote_physical_errors", "PortRcvRemotePhysicalErrors", 16, "packets", 4, None,
            "port_receive_remote_physical_errors_total",
            "Packets received marked with the EBP delimiter"),
    Counter("port_rcv_switch_relay_errors", "PortRcvSwitchRelayErrors", 16, "packets", 5, None,
            "port_receive_switch_relay_errors_total",
            "Packets received that the switch could not forward"),
    Counter("port_xmit_discards", "PortXmitDiscards", 16, "packets", 6, None,
            "port_discards_transmitted_total",
            "Outbound packets discarded because the port was down or congested"),
    Counter("port_xmit_constraint_errors", "PortXmitConstraintErrors", 8, "packets", 7, None,
            "port_constraint_errors_transmitted_total",
            "Packets not transmitted because of outbound raw filtering or partition enforcement"),
    Counter("port_rcv_constraint_errors", "PortRcvConstraintErrors", 8, "packets", 8, None,
            "port_constraint_errors_received_total",
            "Packets received and discarded because of raw filtering or partition enforcement"),
    Counter("local_link_integrity_errors", "LocalLinkIntegrityErrors", 4, "events", 9, None,
            "local_link_integrity_errors_total",
            "Times the count of local physical errors exceeded the threshold"),
    Counter("excessive_buffer_overrun_errors", "ExcessiveBufferOverrunErrors", 4, "events", 10, None,
            "excessive_buffer_overrun_errors_total",
            "Times consecutive flow control update periods saw buffer overrun"),
    Counter("VL15_dropped", "VL15Dropped", 16, "packets", 11, None,
            "vl15_dropped_total", "Incoming VL15 (management) packets dropped for lack of buffers"),
    Counter("port_xmit_data", "PortXmitData", 32, "4-octet words", 12, 0,
            "port_data_transmitted_bytes_total",
            "Data octets transmitted on the port, divided by 4 (all VLs)"),
    Counter("port_rcv_data", "PortRcvData", 32, "4-octet words", 13, 1,
            "port_data_received_bytes_total", "Data octets received on the port, divided by 4 (all VLs)"),
    Counter("port_xmit_packets", "PortXmitPkts", 32, "packets", 14, 2,
            "port_packets_transmitted_total", "Packets transmitted on the port (all VLs)"),
    Counter("port_rcv_packets", "PortRcvPkts", 32, "packets", 15, 3,
            "port_packets_received_total", "Packets received on the port (all VLs)"),
    Counter("port_xmit_wait", "PortXmitWait", 32, "ticks", None, None,
            "port_transmit_wait_total",
            "Ticks during which the port had data to send but no flow-control credits"),
    Counter("unicast_xmit_packets", "PortUnicastXmitPkts", None, "packets", None, 4,
            "unicast_packets_transmitted_total", "Unicast packets transmitted"),
    Counter("unicast_rcv_packets", "PortUnicastRcvPkts", None, "packets", None, 5,
            "unicast_packets_received_total", "Unicast packets received"),
    Counter("multicast_xmit_packets", "PortMulticastXmitPkts", None, "packets", None, 6,
            "multicast_packets_transmitted_total", "Multicast packets transmitted"),
    Counter("multicast_rcv_packets", "PortMulticastRcvPkts", None, "packets", None, 7,
            "multicast_packets_received_total", "Multicast packets received"),
)

COUNTER_NAMES: tuple[str, ...] = tuple(c.name for c in COUNTERS)
COUNTER_ROW: dict[str, int] = {c.name: i for i, c in enumerate(COUNTERS)}
N_COUNTERS = len(COUNTERS)

#: per row: the legacy saturation limit (2**bits - 1), or 2**64-1 for extended-only rows
LEGACY_MAX = np.array([(2**c.bits - 1) if c.bits else 2**64 - 1 for c in COUNTERS], dtype=np.uint64)
LEGACY_MAX.flags.writeable = False

# PortCounters CounterSelect2 bit 0 selects PortXmitWait (IBA 16.1.3.5).
_XMIT_WAIT_ROW = COUNTER_ROW["port_xmit_wait"]


def counter_row(name: str) -> int:
    """Row of a counter by sysfs or IB name; unknown names list the choices."""
    if name in COUNTER_ROW:
        return COUNTER_ROW[name]
    by_ib = {c.ib_name: i for i, c in enumerate(COUNTERS)}
    return lookup({**COUNTER_ROW, **by_ib}, name, "counter")


def legacy_view(values: np.ndarray, rows: np.ndarray | slice | None = None) -> np.ndarray:
    """PortCounters view of 64-bit counters: saturate (never wrap) at each row's width.

    Parameters
    ----------
    values : ndarray of uint64, shape (n_rows, n_ports) or (n_rows,)
        Counter storage, rows in schema order (or the rows selected by ``rows``).
    rows : index, optional
        Which schema rows ``values`` holds; default all.

    Returns
    -------
    ndarray of uint64, same shape
    """
    lim = LEGACY_MAX if rows is None else LEGACY_MAX[rows]
    if values.ndim == 2:
        lim = lim[:, None]
    return np.minimum(values, lim)


def reset_mask_rows(counter_select: int, counter_select2: int = 0, *, extended: bool = False) -> np.ndarray:
    """Schema rows cleared by a PerfMgt Set with the given CounterSelect mask(s).

    Parameters
    ----------
    counter_select : int
        16-bit CounterSelect of PortCounters (or of PortCountersExtended when
        ``extended``).
    counter_select2 : int
        PortCounters CounterSelect2; bit 0 clears PortXmitWait.
    extended : bool
        Interpret ``counter_select`` with PortCountersExtended bit numbers.

    Returns
    -------
    ndarray of intp
        Row indices, ascending.

    Examples
    --------
    >>> [COUNTERS[r].name for r in reset_mask_rows(1 << 12)]
    ['port_xmit_data']
    """
    rows = []
    for i, c in enumerate(COUNTERS):
        bit = c.ext_select_bit if extended else c.select_bit
        if bit is not None and counter_select >> bit & 1:
            rows.append(i)
    if not extended and counter_select2 & 1:
        rows.append(_XMIT_WAIT_ROW)
    return np.array(sorted(set(rows)), dtype=np.intp)
