"""Golden-file tests of the tool-sweep parsers.

The files in ``data/sweeps/`` are real outputs of infiniband-diags 44 run
against ibsim's MAD server on a fat_tree(4, 2) under OpenSM (how: see
``data/sweeps/capture.py``); the expected values below were read off those
files by hand.
"""

from __future__ import annotations

from pathlib import Path

from ibsim.bench.sweeps import (ca_ports, metric_lines, parse_ibnetdiscover_guids, parse_ibnetdiscover_ports,
                                parse_ibqueryerrors, parse_perfquery, switch_ports)

DATA = Path(__file__).resolve().parent / "data" / "sweeps"


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_ibnetdiscover_ports():
    links = parse_ibnetdiscover_ports(_read("ibnetdiscover-ports.txt"))
    assert len(links) == 32
    first = links[0]
    assert (first.kind, first.lid, first.port, first.guid) == ("CA", 14, 1, 0x0002c90301000039)
    assert (first.peer_kind, first.peer_lid, first.peer_port, first.peer_guid) == ("SW", 5, 2, 0x0002c90302000003)
    assert (first.desc, first.peer_desc) == ("node008 HCA-1", "leaf4")
    sw = switch_ports(links)
    assert len(sw) == 6 and all(p == (1, 2, 3, 4) for p in sw.values())
    assert 0x0002c90302000004 in sw                       # spine1
    cas = ca_ports(links)
    assert len(cas) == 8 and cas[0x0002c90301000011] == (1,)     # node003 HCA-1's port GUID


def test_ibnetdiscover_ports_ignores_other_lines():
    assert parse_ibnetdiscover_ports("ibwarn: [1] something\n\n# comment\n") == []


def test_ibnetdiscover_guid_map():
    g = parse_ibnetdiscover_guids(_read("ibnetdiscover.txt"))
    assert g[0x2c90301000031] == 0x2c90301000030            # node007 HCA-1: port GUID -> node GUID
    assert g[0x2c90301000001] == 0x2c90301000000            # node001 HCA-1
    assert g[0x2c90302000003] == 0x2c90302000003            # leaf4: switchguid=0x..03(..03)
    assert len({v for v in g.values()}) == 14               # 6 switches + 8 CAs


def test_perfquery_loop_over_switch_ports():
    blocks = parse_perfquery(_read("perfquery-switch.txt"))
    assert [(lid, port) for lid, port, _ in blocks] == [(3, 1), (3, 2), (3, 3), (3, 4)]
    assert blocks[0][2] == {"port_xmit_data": 2343751080, "port_rcv_data": 3125001080,
                            "port_xmit_packets": 2288833, "port_rcv_packets": 3051772,
                            "unicast_xmit_packets": 2288833, "unicast_rcv_packets": 3051772,
                            "multicast_xmit_packets": 0, "multicast_rcv_packets": 0}
    assert blocks[3][2]["port_xmit_data"] == 3571433323


def test_perfquery_one_ca_port():
    [(lid, port, vals)] = parse_perfquery(_read("perfquery-ca.txt"))
    assert (lid, port) == (9, 1)
    assert vals["port_xmit_data"] == 3125001152 and vals["port_rcv_packets"] == 2288835
    assert "PortSelect" not in vals and len(vals) == 8


def test_perfquery_legacy_block():
    text = ("# Port counters: Lid 3 port 2 (CapMask: 0x1300)\nPortSelect:......................2\n"
            "SymbolErrorCounter:..............7\nQP1Dropped:......................0\n"
            "PortXmitWait:....................12\n")
    assert parse_perfquery(text) == [(3, 2, {"symbol_error": 7, "port_xmit_wait": 12})]


def test_ibqueryerrors():
    res = parse_ibqueryerrors(_read("ibqueryerrors.txt"))
    assert res.complete and not res.no_sa and res.pma_failures == 0 and res.ports_checked == 32
    assert len(res.ports) == 13                  # "13 ports have errors beyond threshold"; no "port ALL"
    by = {(g, p): v for g, p, v in res.ports}
    node003 = by[(0x2c90301000011, 1)]
    assert node003 == {"symbol_error": 741, "link_error_recovery": 7, "port_rcv_errors": 741,
                       "port_xmit_wait": 3125000000, "port_xmit_data": 3125001584,
                       "port_rcv_data": 2343751656, "port_xmit_packets": 3051779, "port_rcv_packets": 2288841,
                       "unicast_xmit_packets": 3051779, "unicast_rcv_packets": 2288841}
    leaf2_p1 = by[(0x2c90302000001, 1)]
    assert leaf2_p1["symbol_error"] == 1000 and "port_xmit_wait" not in leaf2_p1
    assert by[(0x2c90302000005, 4)]["port_xmit_wait"] == 4294967295    # spine2:4, PortCounters saturated


def test_ibqueryerrors_without_sa_is_not_a_sweep():
    res = parse_ibqueryerrors(_read("ibqueryerrors-nosa.txt"))
    assert res.no_sa and not res.complete and res.ports == []


def test_ibqueryerrors_pma_failures():
    text = ("\n## Summary: 3 nodes checked, 0 bad nodes found\n##          8 ports checked, 0 ports have errors"
            " beyond threshold\n## Thresholds: \n##          2 PMA query failures\n## Suppressed:\n")
    res = parse_ibqueryerrors(text)
    assert res.complete and res.pma_failures == 2 and res.ports_checked == 8


def test_metric_lines():
    assert metric_lines("ib", 0x2c90301000030, 1, {"port_xmit_data": 5, "symbol_error": 0}, 1700000000) == [
        "ib.0002c90301000030.p01.port_xmit_data 5 1700000000\n",
        "ib.0002c90301000030.p01.symbol_error 0 1700000000\n"]
