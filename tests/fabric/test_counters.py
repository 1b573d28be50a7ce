"""The counter schema and its saturation and reset semantics."""

import numpy as np

from ibsim.fabric import FabricState, COUNTER_ROW, COUNTERS, compile_fabric, legacy_view, reset_mask_rows
from ibsim.fabric.counters import LEGACY_MAX, counter_row


def test_schema_covers_sysfs_and_perfquery_names():
    names = {c.name for c in COUNTERS}
    assert {"port_xmit_data", "port_rcv_data", "symbol_error", "VL15_dropped", "port_xmit_wait",
            "unicast_xmit_packets", "multicast_rcv_packets", "link_downed"} <= names
    assert COUNTERS[COUNTER_ROW["port_xmit_data"]].ib_name == "PortXmitData"
    assert COUNTERS[COUNTER_ROW["port_xmit_data"]].unit == "4-octet words"
    assert counter_row("SymbolErrorCounter") == COUNTER_ROW["symbol_error"]
    # legacy select bits are the IBA PortCounters CounterSelect bits 0..15, each used once
    bits = sorted(c.select_bit for c in COUNTERS if c.select_bit is not None)
    assert bits == list(range(16))


def test_legacy_view_saturates_never_wraps():
    values = np.zeros((len(COUNTERS), 3), dtype=np.uint64)
    r = COUNTER_ROW
    values[r["port_xmit_data"]] = [5, 2**32 - 1, 2**40]
    values[r["symbol_error"]] = [2**16, 2**16 - 2, 70000]
    values[r["local_link_integrity_errors"]] = [15, 16, 17]
    v = legacy_view(values)
    assert list(v[r["port_xmit_data"]]) == [5, 2**32 - 1, 2**32 - 1]
    assert list(v[r["symbol_error"]]) == [2**16 - 1, 2**16 - 2, 2**16 - 1]
    assert list(v[r["local_link_integrity_errors"]]) == [15, 15, 15]
    # extended-only counters are not clipped
    assert LEGACY_MAX[r["unicast_xmit_packets"]] == np.uint64(2**64 - 1)


def test_reset_with_counter_select_affects_only_selected(fabric):
    st = FabricState(fabric)
    st.counters[:] = 7
    ports = [1, 2]
    rows = reset_mask_rows(1 << 12 | 1 << 0)          # PortXmitData + SymbolErrorCounter
    st.reset_counters(ports, rows)
    assert st.counters[COUNTER_ROW["port_xmit_data"], 1] == 0
    assert st.counters[COUNTER_ROW["symbol_error"], 2] == 0
    assert st.counters[COUNTER_ROW["port_rcv_data"], 1] == 7
    assert st.counters[COUNTER_ROW["port_xmit_data"], 3] == 7
    # perfquery -r: CounterSelect 0xFFFF and CounterSelect2 bit 0 clear everything legacy
    all_rows = reset_mask_rows(0xFFFF, 1)
    assert {COUNTERS[i].name for i in all_rows} == {c.name for c in COUNTERS if c.bits}
    ext = reset_mask_rows(0xFF, extended=True)
    assert "unicast_xmit_packets" in {COUNTERS[i].name for i in ext}
    assert "symbol_error" not in {COUNTERS[i].name for i in ext}


def test_counter_storage_is_uint64_rows_by_ports():
    f = compile_fabric(__import__("ibsim").fat_tree(4, 2))
    st = FabricState(f)
    assert st.counters.dtype == np.uint64
    assert st.counters.shape == (len(COUNTERS), f.n_ports)


def test_reset_keeps_what_it_took_in_cleared(fabric):
    st = FabricState(fabric)
    st.counters[:] = 7
    rows = reset_mask_rows(1 << 12)                     # PortXmitData
    st.reset_counters([1], rows)
    st.counters[COUNTER_ROW["port_xmit_data"], 1] += 5
    st.reset_counters([1], rows)
    assert st.cleared[COUNTER_ROW["port_xmit_data"], 1] == 12
    assert st.cleared[COUNTER_ROW["port_rcv_data"], 1] == 0
    total = st.counters + st.cleared
    assert total[COUNTER_ROW["port_xmit_data"], 1] == 12 and total[COUNTER_ROW["port_xmit_data"], 2] == 7
