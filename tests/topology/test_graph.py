"""Topology validation: every inconsistency names the node and port at fault."""

import pytest

from ibsim.errors import TopologyError
from ibsim.topology import Topology, fat_tree


def two_switches():
    t = Topology("t")
    t.add_switch(0x10, 4, "swA")
    t.add_switch(0x20, 4, "swB")
    t.add_ca(0x100, 2, "node01 HCA-1")
    return t


def test_port_cabled_twice_names_both_ends():
    t = two_switches()
    t.add_link(0x10, 1, 0x20, 1)
    with pytest.raises(TopologyError, match=r"port cabled twice.*'swA'.*port 1.*'swB'"):
        t.add_link(0x10, 1, 0x100, 1)


def test_port_beyond_count():
    t = two_switches()
    with pytest.raises(TopologyError, match=r"'swB'.*port 5.*ports 1\.\.4"):
        t.add_link(0x10, 1, 0x20, 5)


def test_switch_port0_cannot_be_cabled():
    t = two_switches()
    with pytest.raises(TopologyError, match="management port"):
        t.add_link(0x10, 0, 0x20, 1)


def test_self_link():
    t = two_switches()
    with pytest.raises(TopologyError, match="self-link.*'swA'"):
        t.add_link(0x10, 1, 0x10, 2)


def test_duplicate_guids():
    t = two_switches()
    with pytest.raises(TopologyError, match="duplicate node GUID|duplicate GUID"):
        t.add_switch(0x10, 4, "again")
    # a node GUID equal to another CA's port GUID (0x100 + 1)
    with pytest.raises(TopologyError, match="duplicate GUID 0x0000000000000101"):
        t.add_ca(0x101, 1, "clash")
    with pytest.raises(TopologyError, match="duplicate GUID"):
        t.add_ca(0x200, 1, "clash2", port_guids={1: 0x20})


def test_unknown_rate_lists_choices():
    t = two_switches()
    with pytest.raises(TopologyError, match="unknown link speed 'EDR2'.*SDR"):
        t.add_link(0x10, 1, 0x20, 1, speed="EDR2")


def test_parallel_cables_and_summary(tiny_topology):
    s = tiny_topology.summary()
    assert (s["switches"], s["cas"], s["links"], s["connected_ports"]) == (2, 4, 6, 12)
    assert s["speeds"] == {"4xDDR": 1, "4xEDR": 5}
    assert tiny_topology.peer(0x100, 7) == (0x200, 7)
    assert tiny_topology.peer(0x1020, 2) is None


def test_remove_link_frees_port(tiny_topology):
    tiny_topology.remove_link(0x200, 7)
    assert tiny_topology.peer(0x100, 7) is None
    tiny_topology.add_link(0x100, 7, 0x1020, 2)
    assert tiny_topology.summary()["links"] == 6


def test_find_by_guid_and_description(tiny_topology):
    assert tiny_topology.find("sw2") == 0x200
    assert tiny_topology.find("0x1010") == 0x1010
    with pytest.raises(TopologyError, match="no node"):
        tiny_topology.find("nope")


def test_find_ambiguous_description():
    t = Topology()
    t.add_switch(0x1, 4, "MF0;switch-ib:SB7800/U1")
    t.add_switch(0x2, 4, "MF0;switch-ib:SB7800/U1")
    with pytest.raises(TopologyError, match="not unique"):
        t.find("MF0;switch-ib:SB7800/U1")


def test_equality_is_order_independent(tiny_topology):
    a = fat_tree(4, 2)
    b = fat_tree(4, 2)
    assert a == b
    b.remove_link(*next(iter(b.links())).a)
    assert a != b


@pytest.mark.parametrize("radix,levels,cas,switches,links", [
    (36, 2, 648, 54, 1296), (4, 3, 16, 20, 48), (8, 1, 8, 1, 8)])
def test_fat_tree_counts(radix, levels, cas, switches, links):
    s = fat_tree(radix, levels).summary()
    assert (s["cas"], s["switches"], s["links"]) == (cas, switches, links)


def test_fat_tree_bad_parameters():
    with pytest.raises(TopologyError, match="even"):
        fat_tree(7, 2)
    with pytest.raises(TopologyError, match="levels"):
        fat_tree(4, 5)
