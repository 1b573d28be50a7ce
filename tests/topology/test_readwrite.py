"""Topology files: ibnetdiscover dumps, linux-rdma ibsim net files, YAML; round trips and errors."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from ibsim.errors import FileFormatError, TopologyError
from ibsim.topology import Topology, fat_tree
from ibsim.topology.ibnetdiscover import (format_ibnetdiscover, parse_ibnetdiscover,
                                          read_ibnetdiscover, write_ibnetdiscover)
from ibsim.topology.readwrite import read_topology, topology_format, write_topology
from ibsim.topology.yamlio import format_yaml_topology, parse_yaml_topology, read_yaml_topology

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]
#: every node attribute a file can carry
ALL_ATTRS = ("kind", "nports", "desc", "sysimgguid", "vendid", "devid", "port_guids", "lids",
             "lmc", "enhanced_port0")


def rich_topology() -> Topology:
    """Every attribute and every width and speed the writers must carry."""
    t = Topology("rich")
    t.add_switch(0x100, 8, "sw1", enhanced_port0=True, lid=3, lmc=1)
    t.add_switch(0x200, 8, "MF0;switch-ib:SB7800/U1", vendid=0x119F, devid=0xCF08,
                 sysimgguid=0x777)
    t.add_ca(0x1000, 1, "node01 HCA-1", lids={1: 9})
    t.add_ca(0x1010, 1, "node02 HCA-1", vendid=0)
    t.add_ca(0x1020, 2, "node03 mlx4_0", devid=0x1003, sysimgguid=0x1023)
    t.add_ca(0x1030, 1, "node04 HCA-1", port_guids={1: 0x1030})     # mlx5 style
    t.add_ca(0x1040, 1, "rtr01", kind="router", lids={1: 12})
    t.add_link(0x100, 1, 0x1000, 1)
    t.add_link(0x100, 2, 0x1010, 1, width="1x", speed="QDR")
    t.add_link(0x200, 1, 0x1020, 1, speed="HDR")
    t.add_link(0x200, 2, 0x1030, 1, speed="DDR")
    t.add_link(0x100, 7, 0x200, 7, speed="FDR")
    t.add_link(0x100, 8, 0x200, 8, width="12x", speed="FDR10")
    t.add_link(0x100, 3, 0x200, 3, width="8x", speed="SDR")
    t.add_link(0x100, 4, 0x200, 4, width="2x", speed="NDR")
    t.add_link(0x200, 5, 0x1040, 1, speed="XDR")
    return t


def params_topologies():
    return [pytest.param(lambda: fat_tree(4, 2), id="fat_tree(4,2)"),
            pytest.param(lambda: fat_tree(8, 3), id="fat_tree(8,3)"),
            pytest.param(None, id="tiny"),
            pytest.param(rich_topology, id="rich")]


@pytest.fixture(params=params_topologies())
def topo(request, tiny_topology):
    return tiny_topology if request.param is None else request.param()


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", [".topo", ".net", ".ibnd", ".yaml", ".yml"])
def test_round_trip(topo, suffix, tmp_path):
    path = tmp_path / f"fabric{suffix}"
    write_topology(topo, path)
    back = read_topology(path)
    assert back == topo
    assert back.canonical(attrs=ALL_ATTRS) == topo.canonical(attrs=ALL_ATTRS)
    assert back.summary()["speeds"] == topo.summary()["speeds"]
    # YAML stores the name; ibnetdiscover has no place for it (the file name is used)
    assert back.name == (topo.name if suffix.startswith(".y") else "fabric")


def test_round_trip_ibnetdiscover_string_and_file_object(tiny_topology):
    text = format_ibnetdiscover(tiny_topology)
    buf = io.StringIO()
    write_ibnetdiscover(tiny_topology, buf)
    assert buf.getvalue().split("\n")[4:] == text.split("\n")[4:]     # header holds the time
    assert parse_ibnetdiscover(text) == tiny_topology


def test_yaml_custom_port_guid_on_uncabled_port(tmp_path):
    t = Topology("x")
    t.add_switch(0x10, 4, "sw")
    t.add_ca(0x20, 2, "host mlx4_0", port_guids={1: 0x21, 2: 0x99})
    t.add_link(0x10, 1, 0x20, 1)
    write_topology(t, tmp_path / "x.yaml")
    assert read_topology(tmp_path / "x.yaml").canonical(attrs=ALL_ATTRS) == t.canonical(attrs=ALL_ATTRS)


def test_yaml_descriptions_with_awkward_characters():
    t = Topology("x")
    descs = ['a "quoted" \\ name', "tab\tand é ü 😀", "line\x85sep\u2028x", "ctl\x01\x7f", "", "#: -"]
    for i, d in enumerate(descs):
        t.add_switch(0x10 + i, 2, d)
    back = parse_yaml_topology(format_yaml_topology(t))
    assert [back.node(g)["desc"] for g in back.nodes()] == descs


def test_yaml_fast_reader_equals_full_yaml(topo):
    text = format_yaml_topology(topo)
    assert parse_yaml_topology(text).canonical(attrs=ALL_ATTRS) == \
        parse_yaml_topology(text, fast=False).canonical(attrs=ALL_ATTRS)
    crlf = text.replace("\n", "\r\n")                  # not the writer's layout: full YAML path
    assert parse_yaml_topology(crlf) == topo


def test_yaml_hand_written_block_style(tmp_path):
    path = tmp_path / "hand.yml"
    path.write_text("""
# two switches and a host
name: lab
nodes:
  - guid: 0x10              # YAML integers work too
    kind: switch
    nports: 8
    desc: leaf
    lids: {0: 1}
  - {guid: "0x20", kind: switch, nports: 8, desc: spine, enhanced_port0: true}
  - guid: "0x100"
    kind: ca
    nports: 2
    desc: "cn01 mlx4_0"
    lids: {1: 5}
links:
  - ["0x10:8", "0x20:1"]
  - ["0x10:1", "0x100:1", 4xDDR]
""")
    t = read_yaml_topology(path)
    assert t.name == "lab"
    assert t.node(0x10)["lids"] == {0: 1} and t.node(0x20)["enhanced_port0"]
    assert t.node(0x100)["port_guids"] == {1: 0x101, 2: 0x102}
    assert t.link_at(0x10, 8).rate == "4xEDR" and t.link_at(0x100, 1).rate == "4xDDR"
    assert t.node(0x10)["vendid"] == 0x2C9


# ----------------------------------------------------- the writer's format
def test_writer_matches_real_ibnetdiscover_layout(tiny_topology):
    text = format_ibnetdiscover(tiny_topology, generated_on="Mon Mar  4 09:12:44 2024")
    lines = text.split("\n")
    assert lines[:5] == ["#", "# Topology file: generated on Mon Mar  4 09:12:44 2024", "#",
                         "# Initiated from node 0000000000000100 port 0000000000000100", ""]
    assert "\nvendid=0x2c9\ndevid=0xcb20\nsysimgguid=0x100\nswitchguid=0x100(100)\n" \
           "Switch\t8 \"S-0000000000000100\"\t\t# \"sw1\" base port 0 lid 0 lmc 0\n" \
           "[1]\t\"H-0000000000001000\"[1](1001) \t\t# \"node01 HCA-1\" lid 0 4xEDR\n" in text
    assert "[7]\t\"S-0000000000000200\"[7]\t\t# \"sw2\" lid 0 4xEDR\n" in text
    assert "\nvendid=0x2c9\ndevid=0x1021\nsysimgguid=0x1030\ncaguid=0x1030\n" \
           "Ca\t1 \"H-0000000000001030\"\t\t# \"node04 HCA-1\"\n" \
           "[1](1031) \t\"S-0000000000000200\"[2]\t\t# lid 0 lmc 0 \"sw2\" lid 0 4xDDR\n" in text
    # switches first, then CAs, a blank line before every record, only cabled ports
    kinds = [ln.split("\t")[0] for ln in lines if ln.startswith(("Switch", "Ca\t", "Rt\t"))]
    assert kinds == ["Switch"] * 2 + ["Ca"] * 4
    assert text.count("\nvendid=") == 6 and text.count("\n\nvendid=") == 6
    assert "[2](1022)" not in text              # node03's port 2 has no cable
    # the last record is node04's (CAs by GUID), cabled at DDR; one newline ends the file
    assert text.endswith('\n[1](1031) \t"S-0000000000000200"[2]\t\t# lid 0 lmc 0 "sw2" lid 0 4xDDR\n')


def test_writer_lids_and_ca_to_ca_link():
    t = Topology("b2b")
    t.add_ca(0x10, 1, "a", lids={1: 5})
    t.add_ca(0x20, 1, "b", lids={1: 6}, lmc=2)
    t.add_link(0x10, 1, 0x20, 1)
    text = format_ibnetdiscover(t)
    assert '[1](11) \t"H-0000000000000020"[1] (21) \t\t# lid 5 lmc 0 "b" lid 6 4xEDR\n' in text
    assert parse_ibnetdiscover(text).canonical(attrs=ALL_ATTRS) == t.canonical(attrs=ALL_ATTRS)


def test_writer_rejects_descriptions_it_cannot_hold(tiny_topology):
    tiny_topology.node(0x100)["desc"] = 'sw "one"'
    with pytest.raises(TopologyError, match="double quote"):
        format_ibnetdiscover(tiny_topology)


# ---------------------------------------------------- realistic dump input
def test_realistic_dump():
    t = read_topology(DATA / "realistic-dump.topo")
    s = t.summary()
    assert (s["switches"], s["cas"], s["routers"], s["links"]) == (2, 5, 1, 7)
    assert s["speeds"] == {"4xDDR": 1, "4xEDR": 5, "4xFDR": 1}
    sw1, sw2 = 0x7CFE900300A1B2C0, 0x7CFE900300A1B3C0
    for sw, lid in ((sw1, 1), (sw2, 2)):
        d = t.node(sw)
        assert d["desc"] == "MF0;switch-ib:SB7800/U1"      # identical descriptions are fine
        assert (d["kind"], d["nports"], d["vendid"], d["devid"]) == ("switch", 36, 0x2C9, 0xCB20)
        assert d["lids"] == {0: lid} and d["enhanced_port0"]
    assert t.node(sw1)["sysimgguid"] == 0x7CFE900300A1B2C3
    # parallel cables between the two switches
    assert t.peer(sw1, 35) == (sw2, 35) and t.peer(sw1, 36) == (sw2, 36)
    # mlx5: port GUID == node GUID, taken from the parentheses
    cn001 = 0x248A0703005ABB1E
    assert t.node(cn001)["port_guids"] == {1: cn001}
    assert t.node(cn001)["lids"] == {1: 3} and t.node(cn001)["devid"] == 0x1017
    # the degraded cable
    assert t.link_at(0x248A0703005ABB2E, 1).rate == "4xDDR"
    # 2-port ConnectX-3 with port 1 cabled
    cx3 = 0x0002C90300D8A260
    assert t.node(cx3)["nports"] == 2 and t.peer(cx3, 2) is None
    assert t.node(cx3)["port_guids"] == {1: cx3 + 1, 2: cx3 + 2}
    assert t.node(cx3)["sysimgguid"] == 0x2C90300D8A263
    assert t.link_at(cx3, 1).rate == "4xFDR"
    rt = 0x0002C90300FA1E00
    assert t.node(rt)["kind"] == "router" and t.node(rt)["lids"] == {1: 7}
    assert t.find("cn004 mlx5_0") == 0x248A0703005ABB4E


def test_realistic_dump_crlf_and_trailing_spaces_equal():
    text = (DATA / "realistic-dump.topo").read_text()
    a = parse_ibnetdiscover(text)
    b = parse_ibnetdiscover(text.replace("\n", "  \r\n"))
    assert a.canonical(attrs=ALL_ATTRS) == b.canonical(attrs=ALL_ATTRS)


def test_shipped_cluster_dump():
    t = read_topology(REPO / "topologies" / "cluster-dump.topo")
    s = t.summary()
    assert (s["switches"], s["cas"], s["links"]) == (12, 131, 179)
    assert s["speeds"] == {"4xDDR": 1, "4xEDR": 177, "4xFDR": 1}
    descs = [t.node(g)["desc"] for g in t.switches()]
    assert descs.count("SwitchIB Mellanox Technologies") == 6
    oss = t.find("oss01 mlx4_0")
    assert t.node(oss)["nports"] == 2 and t.peer(oss, 1) and t.peer(oss, 2) is None
    assert t.node(t.find("mgmt01 mlx5_0"))["lids"] == {1: 1}
    lids = [lid for g in t.nodes() for lid in t.node(g)["lids"].values()]
    assert sorted(lids) == list(range(1, len(lids) + 1))        # as an SM hands them out
    parallel = sum(1 for u, v, k in t.graph.edges(keys=True) if k > 0)
    assert parallel == 16                                        # leaves 1-4: 2 cables per spine


def test_unknown_lines_blank_lines_comments_and_later_records():
    t = parse_ibnetdiscover("""
Chassis 1 (guid 0x1234)
  # indented comment
Switch 4 "S-0000000000000010"   # "leaf" lid 4
[1] "H-0000000000000020"[1]     # "host" lid 7 4xEDR

# a comment inside the record and a blank line above
[2] "S-0000000000000030"[3]     # "spine" lid 0 4xHDR
Some unknown line ends the record

Switch 4 "S-0000000000000030"   # spine base port 0 lid 9
[3] "S-0000000000000010"[2]     # "leaf" lid 4 4xHDR

Ca 1 "H-0000000000000020"       # "host"
[1](21) "S-0000000000000010"[1] # lid 7 lmc 0 "leaf" lid 4 4xEDR
""", "x.topo")
    assert t.node(0x30)["desc"] == "spine" and t.node(0x30)["lids"] == {0: 9}
    assert t.node(0x10)["lids"] == {0: 4}
    assert t.link_at(0x10, 2).rate == "4xHDR"
    assert t.node(0x20)["lids"] == {1: 7}


# ------------------------------------------------------ rates and one-sided links
def parse_rates(text):
    t = parse_ibnetdiscover(text)
    return {(l.a, l.b): l.rate for l in t.links()}


def test_disagreeing_comments_take_the_lower_rate():
    text = ('Switch 4 "S-0000000000000010" # "a"\n[1] "S-0000000000000020"[1] # "b" lid 0 4xEDR\n'
            '[2] "S-0000000000000020"[2] # "b" lid 0 12xQDR\n\n'
            'Switch 4 "S-0000000000000020" # "b"\n[1] "S-0000000000000010"[1] # "a" lid 0 4xDDR\n'
            '[2] "S-0000000000000010"[2] # "a" lid 0 4xFDR\n')
    assert parse_rates(text) == {((0x10, 1), (0x20, 1)): "4xDDR", ((0x10, 2), (0x20, 2)): "4xQDR"}


def test_link_listed_on_one_end_only():
    t = parse_ibnetdiscover('Switch 4 "S-0000000000000010" # "a"\n'
                            '[1] "H-0000000000000020"[1](21) # "h" lid 5 4xEDR\n\n'
                            'Ca 1 "H-0000000000000020" # "h"\n')
    assert t.link_at(0x10, 1).rate == "4xEDR"
    assert t.node(0x20)["lids"] == {1: 5}      # from the switch's comment
    assert t.node(0x20)["port_guids"] == {1: 0x21}


def test_comment_on_one_end_beats_unstated_other_end():
    text = ('Switch 4 "A"\n[1] "B"[1] # "b" lid 0 4xEDR\n\nSwitch 4 "B"\n[1] "A"[1]\n')
    assert list(parse_rates(text).values()) == ["4xEDR"]


def test_default_rate_is_ibsims_4x_sdr_and_configurable():
    text = 'Switch 4 "A"\n[1] "B"[1]\n\nSwitch 4 "B"\n[1] "A"[1]\n'
    assert list(parse_rates(text).values()) == ["4xSDR"]
    t = parse_ibnetdiscover(text, default_speed="EDR")
    assert [l.rate for l in t.links()] == ["4xEDR"]


# ------------------------------------------------------------ ibsim dialect
def test_ibsim_dialect_sample():
    t = read_topology(DATA / "ibsim-dialect.net")
    sw1, sw2, hca1, hca2, hca3 = 0x200000, 0x200001, 0x2C9000000A000, 0x2C9000000A003, 0x2C9000000A006
    assert t.switches() == [sw1, sw2] and t.cas() == [hca1, hca2, hca3]
    assert [t.node(g)["desc"] for g in t.nodes()] == ["Switch1", "spine switch", "Hca1", "Hca2",
                                                      "host3 mlx5_0"]
    assert t.node(hca2)["port_guids"] == {1: hca2 + 1, 2: hca2 + 2}
    assert [t.node(g)["vendid"] for g in t.nodes()] == [0] * 5          # no vendid= lines
    assert [t.node(g)["devid"] for g in t.nodes()] == [0, 0, 0, 0, 0x1017]
    rates = {(l.a, l.b): l.rate for l in t.links()}
    assert rates == {
        ((sw1, 1), (hca1, 1)): "4xEDR",       # sticky speed=7 extspeed=2
        ((sw1, 2), (hca2, 2)): "4xDDR",       # s=2 e=0 on one end
        ((sw1, 3), (sw2, 3)): "1xEDR",        # w=1 on both ends
        ((sw1, 4), (sw2, 4)): "4xEDR",
        ((sw1, 5), (sw2, 5)): "4xQDR",        # s=4 & s=5, e=0
        ((sw2, 6), (hca3, 1)): "4xEDR",       # remote port defaults to 1
    }


def test_ibsim_guid_counters_and_relative_form():
    t = parse_ibnetdiscover('Switch 2 "a"\n\nSwitch 2 "b"\n\nCa 2 "h1"\n\nCa 1 "h2"\n\n'
                            'switchguid=0x5000\nSwitch 2 "c"\n\nswitchguid+3\nSwitch 2 "d"\n\n'
                            'Switch 2 "e"\n\ncaguid=0x9000(9000)\nHca 1 "h3"\n\nRt 1 "r"\n')
    guids = {t.node(g)["desc"]: g for g in t.nodes()}
    assert guids == {"a": 0x200000, "b": 0x200001, "h1": 0x100000, "h2": 0x100003,
                     "c": 0x5000, "d": 0x5003, "e": 0x5004, "h3": 0x9000, "r": 0x300000}


def test_include_relative_to_the_file_and_module_prefix(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hosts.net").write_text('Ca 1 "h1"\n[1] "sw"[1]\n')
    (tmp_path / "top.net").write_text('Switch 4 "sw"\n[1] "h1"[1]\n\ninclude "sub/hosts.net"\n')
    t = read_topology(tmp_path / "top.net")
    assert t.peer(0x200000, 1) == (0x100000, 1)
    t = parse_ibnetdiscover('module="rack1"\nSwitch 4 "sw"\n[1] "h"\n\nCa 1 "h"\n[1] "sw"\n')
    assert [t.node(g)["desc"] for g in t.nodes()] == ["rack1#sw", "rack1#h"]


def test_include_loop_is_an_error(tmp_path):
    (tmp_path / "a.net").write_text('include "a.net"\n')
    with pytest.raises(FileFormatError, match="deeper than 9"):
        read_topology(tmp_path / "a.net")


# ------------------------------------------------------------------ errors
@pytest.fixture
def dump_lines():
    return (DATA / "realistic-dump.topo").read_text().split("\n")


def parse_error(text, source="fabric.topo") -> FileFormatError:
    with pytest.raises(FileFormatError) as info:
        parse_ibnetdiscover(text, source)
    return info.value


def test_error_truncated_record(dump_lines):
    # the file ends in the middle of a port line, and of a header
    e = parse_error("\n".join(dump_lines[:13]) + '\n[2]\t"H-248a0703005abb2e"[1](248a07')
    assert (e.source, e.line) == ("fabric.topo", 14) and "truncated port line" in str(e)
    assert str(e).startswith("fabric.topo:14: ")
    e = parse_error("\n".join(dump_lines[:11]) + '\nSwitch\t36 "S-7cfe90030')
    assert e.line == 12 and "truncated node header" in str(e) and "<nports>" in str(e)


def test_error_bad_port_number(dump_lines):
    text = "\n".join(dump_lines).replace('[36]\t"S-7cfe900300a1b3c0"[36]', '[37]\t"S-7cfe900300a1b3c0"[36]')
    e = parse_error(text)
    assert e.line == 16 and "bad port number 37" in str(e) and "expected 1..36" in str(e)
    e = parse_error('Switch 4 "A"\n\n[0] "B"[1]\n'.replace("\n\n", "\n"))
    assert e.line == 2 and "management port" in str(e)
    e = parse_error('Switch 4 "A"\n[1] "B"[9]\n\nSwitch 4 "B"\n')
    assert e.line == 2 and "bad remote port number 9" in str(e) and "1..4" in str(e)


def test_error_contradicting_ends_names_both_lines(dump_lines):
    text = "\n".join(dump_lines).replace('[36]\t"S-7cfe900300a1b2c0"[36]', '[36]\t"S-7cfe900300a1b2c0"[34]')
    e = parse_error(text)
    assert e.line == 16 and "fabric.topo:27" in str(e) and "contradicting" in str(e)
    # two ports claiming the same remote port, whose own line is missing
    e = parse_error('Switch 4 "A"\n[1] "H"[1]\n[2] "H"[1]\n\nCa 1 "H"\n')
    assert e.line == 3 and "fabric.topo:2" in str(e)
    # A[1] -> B[2] while B[2] -> C[1]
    e = parse_error('Switch 4 "A"\n[1] "B"[2]\n\nSwitch 4 "B"\n[2] "C"[1]\n\nSwitch 4 "C"\n[1] "B"[2]\n')
    assert e.line == 2 and "fabric.topo:5" in str(e)


def test_error_bad_guid(dump_lines):
    text = "\n".join(dump_lines).replace("switchguid=0x7cfe900300a1b3c0(", "switchguid=0x7cfe9003zz(")
    e = parse_error(text)
    assert e.line == 21 and "bad value '0x7cfe9003zz' for switchguid" in str(e)
    e = parse_error("\n".join(dump_lines).replace("[1](248a0703005abb1e) \t\"S", "[1](248a07xx) \t\"S"))
    assert e.line == 34 and "bad port GUID (248a07xx)" in str(e)
    e = parse_error("\n".join(dump_lines).replace("[1](248a0703005abb1e) \t\"S",
                                                  "[1](248a0703005abb1f) \t\"S"))
    assert e.line == 34 and "fabric.topo:13" in str(e)          # disagrees with the peer's line
    e = parse_error("caguid=0x10000000000000000\n")
    assert e.line == 1 and "64 bits" in str(e)


def test_error_misc():
    e = parse_error('Switch 4 "A"\n[1] "Nope"[1]\n')
    assert e.line == 2 and '"Nope"' in str(e) and "no Switch/Ca/Rt record" in str(e)
    e = parse_error('Switch 4 "A"\n\nCa 1 "A"\n')
    assert e.line == 3 and "duplicate node id" in str(e) and "fabric.topo:1" in str(e)
    e = parse_error('Switch 4 "A"\n[1] "B"[1] w=1\n\nSwitch 4 "B"\n[1] "A"[1] w=2\n')
    assert e.line == 2 and "share no width" in str(e) and "fabric.topo:5" in str(e)
    e = parse_error('Switch 4 "A"\n[1] "B"[1] w=99\n')
    assert e.line == 2 and "1..31" in str(e)
    e = parse_error('Switch 4 "A"\n[1] "B"[1] # "b" lid 3 3xEDR\n')
    assert e.line == 2 and "3xEDR" in str(e)
    e = parse_error('[1] "B"[1]\n')
    assert e.line == 1 and "outside a node record" in str(e)
    e = parse_error('do Dump\n')
    assert e.line == 1 and "'do'" in str(e)
    e = parse_error('Switch 4 "A"\n@[1] "alias"\n')
    assert e.line == 2 and "alias" in str(e)
    e = parse_error('Switch 4 "A"\n[1] "A"[2]\n[2] "A"[1]\n')
    assert e.line == 2 and "self-link" in str(e)
    e = parse_error('Switch 0 "A"\n')
    assert e.line == 1 and "1..254" in str(e)
    e = parse_error('vendid=0x2c9\nswitchguid=0x0\nSwitch 4 "A"\n')
    assert e.line == 3 and "GUID 0" in str(e)


def test_error_unknown_suffix_and_missing_file(tmp_path, tiny_topology):
    with pytest.raises(FileFormatError) as info:
        read_topology(tmp_path / "fabric.txt")
    msg = str(info.value)
    assert "fabric.txt" in msg and all(s in msg for s in (".topo", ".net", ".ibnd", ".yml", ".yaml"))
    with pytest.raises(FileFormatError, match="fabric.json"):
        write_topology(tiny_topology, tmp_path / "fabric.json")
    with pytest.raises(TopologyError, match="nosuch.topo.*does not exist"):
        read_topology(tmp_path / "nosuch.topo")
    with pytest.raises(TopologyError, match="nosuch.yaml.*does not exist"):
        read_topology(tmp_path / "nosuch.yaml")
    with pytest.raises(TopologyError, match="does not exist"):
        read_ibnetdiscover(tmp_path / "nosuch.net")
    # format= overrides the suffix
    write_topology(tiny_topology, tmp_path / "dump.txt", format="ibnetdiscover")
    assert read_topology(tmp_path / "dump.txt", format="ibnetdiscover") == tiny_topology
    with pytest.raises(FileFormatError, match="did you mean 'yaml'"):
        topology_format("x.txt", "yml")


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.topo"
    path.write_text('Switch 4 "A"\n[1] "B"[1]\n')
    with pytest.raises(FileFormatError) as info:
        read_topology(path)
    assert info.value.source == str(path) and info.value.line == 2
    assert str(info.value).startswith(f"{path}:2: ")


YAML_OK = """format: ibsim-topology
version: 1
nodes:
  - {guid: "0x10", kind: switch, nports: 4, desc: sw}
  - {guid: "0x20", kind: ca, nports: 1, desc: host}
links:
  - ["0x10:1", "0x20:1", 4xEDR]
"""


@pytest.mark.parametrize("old,new,line,pattern", [
    ("desc: sw}", "dsc: sw}", 4, r"nodes\[0\]\.dsc: unknown key 'dsc' \(did you mean 'desc'"),
    ('guid: "0x20"', 'guid: "0xzz"', 5, r"nodes\[1\]\.guid: expected a GUID"),
    ("nports: 4", "nports: 300", 4, r"nodes\[0\]\.nports: must be in \[1, 254\], got 300"),
    ("kind: ca", "kind: hca", 5, r"nodes\[1\]\.kind: expected one of: switch, ca, router"),
    ('"0x20:1", 4xEDR', '"0x20", 4xEDR', 7, r'links\[0\]\[1\]: expected a link end "<node GUID>:<port>"'),
    ('"0x20:1", 4xEDR', '"0x30:1", 4xEDR', 7, r"links\[0\]\[1\]: .*no node with GUID 0x30"),
    ("4xEDR", "4xFOO", 7, r"links\[0\]\[2\]: unknown link speed"),
    ('"0x20:1", 4xEDR', '"0x20:2", 4xEDR', 7, r"links\[0\]: .*port number out of range"),
    ("version: 1", "version: 2", 2, r"version: unsupported version 2"),
    ("format: ibsim-topology", "formt: x", 1, r"formt: unknown key"),
    ("nodes:\n", "nodes:\n  - {guid: [\n", 5, r"malformed YAML"),
])
def test_yaml_errors(old, new, line, pattern):
    text = YAML_OK.replace(old, new, 1)
    assert text != YAML_OK
    with pytest.raises(FileFormatError) as info:
        parse_yaml_topology(text, "fab.yaml")
    assert re.search(pattern, str(info.value)), str(info.value)
    assert info.value.source == "fab.yaml"
    if line is not None:
        assert info.value.line == line, str(info.value)


def test_yaml_block_style_error_line():
    text = ("nodes:\n  - guid: 0x10\n    kind: switch\n    nports: 4\n"
            "  - guid: 0x10\n    kind: ca\n    nports: 1\n")
    with pytest.raises(FileFormatError) as info:
        parse_yaml_topology(text, "f.yml")
    assert info.value.line == 5 and "duplicate" in str(info.value)
