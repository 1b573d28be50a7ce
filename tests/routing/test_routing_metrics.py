"""walk and route_metrics: delivery, loops, hop definition, pair counting, loads."""

from __future__ import annotations

import numpy as np
import pytest

from ibsim.errors import RoutingError
from ibsim.fabric import NO_ROUTE, compile_fabric
from ibsim.routing import compute_lfts, route_metrics, walk
from ibsim.routing.metrics import DELIVERED, LOOP, NO_PATH
from ibsim.topology import Topology, fat_tree


def test_metrics_are_plain_numbers(fabric):
    m = route_metrics(fabric, compute_lfts(fabric))
    assert set(m) >= {"pairs", "routed", "unreachable", "loops", "max_hops", "mean_hops", "link_load"}
    assert "port_load" not in m
    for v in (m["pairs"], m["unreachable"], m["loops"], m["max_hops"], m["link_load"]["max"]):
        assert type(v) is int
    assert type(m["mean_hops"]) is float


def test_hops_count_both_ca_links(tiny_topology):
    fab = compile_fabric(tiny_topology)
    lft = compute_lfts(fab)
    m = route_metrics(fab, lft)
    # 4 CAs (one port each cabled): 12 pairs; same switch = 2 hops, across = 3
    assert m["pairs"] == 12 and m["routed"] == 12
    assert m["max_hops"] == 3
    assert m["mean_hops"] == pytest.approx((4 * 2 + 8 * 3) / 12)


def test_fat_tree_hops_and_loads():
    fab = compile_fabric(fat_tree(4, 2))
    m = route_metrics(fab, compute_lfts(fab, "ftree"), port_load=True)
    # 8 CAs, 2 per leaf: 8*7 pairs; 8*1 pairs at 2 hops, 8*6 at 4 hops
    assert m["pairs"] == 56 and m["mean_hops"] == pytest.approx((8 * 2 + 48 * 4) / 56)
    assert m["link_load"] == {"max": 6, "mean": 6.0, "links": 16}
    assert m["port_load"].sum() == 48 * 2            # each cross-leaf pair crosses 2 links


def test_same_node_pairs_excluded():
    t = Topology("two-port")
    t.add_switch(0x10, 8, "sw1")
    t.add_switch(0x11, 8, "sw2")
    t.add_link(0x10, 8, 0x11, 8)
    t.add_ca(0x100, 2, "dual HCA")
    t.add_link(0x10, 1, 0x100, 1)
    t.add_link(0x11, 1, 0x100, 2)
    t.add_ca(0x200, 1, "single HCA")
    t.add_link(0x10, 2, 0x200, 1)
    fab = compile_fabric(t)
    m = route_metrics(fab, compute_lfts(fab))
    # ports: dual:1, dual:2, single:1 -> pairs between different nodes only: 2*1 + 1*2
    assert m["pairs"] == 4 and m["routed"] == 4 and m["unreachable"] == 0


def test_loop_and_no_route_detected(tiny_topology):
    fab = compile_fabric(tiny_topology)
    lft = compute_lfts(fab)
    far = int(fab.default_lid[fab.port_index(0x1030, 1)])   # behind sw2
    near = int(fab.default_lid[fab.port_index(0x1010, 1)])  # behind sw1
    lft[1, far] = 7            # sw2 bounces its own CA back to sw1 -> ping-pong
    lft[1, near] = NO_ROUTE    # sw2 drops traffic to node02
    res = walk(fab, lft, [0, 0, 1], [far, near, near])
    assert res.status.tolist() == [LOOP, DELIVERED, NO_PATH]
    m = route_metrics(fab, lft)
    # node01, node02 (sw1) and node03 (sw2) all loop to node04; sw2 sources lose node02
    assert m["loops"] == 3 and m["unreachable"] == 2
    assert m["routed"] == m["pairs"] - 5


def test_loop_detected_on_a_long_cycle(rh):
    n = 9
    fab, lft, lid = rh.looping_ring(n)     # everybody forwards clockwise, nobody delivers
    res = walk(fab, lft, np.arange(n), np.full(n, lid))
    assert (res.status == LOOP).all()


def test_walk_records_paths_and_checks_shapes(fabric):
    lft = compute_lfts(fabric, "minhop")
    ca = np.flatnonzero(~fabric.is_switch)
    lids = fabric.default_lid[ca]
    res = walk(fabric, lft, [0, 0], [lids[0], lids[-1]], record=True)
    assert res.path[0].tolist()[:1] == [0] and res.hops.tolist() == [0, 2]
    assert (res.path[1] >= 0).sum() == 3
    with pytest.raises(RoutingError):
        walk(fabric, lft, [0, 1], [lids[0]])
    empty = walk(fabric, lft, [], [])
    assert empty.status.size == 0 and empty.port_load.sum() == 0


def test_down_source_counts_as_unreachable():
    fab = compile_fabric(fat_tree(4, 2))
    ca = int(np.flatnonzero(~fab.is_switch)[0])
    up = fab.peer_of_port >= 0
    up[[ca, fab.peer_of_port[ca]]] = False
    m = route_metrics(fab, compute_lfts(fab, up=up), up=up)
    assert m["pairs"] == 56 and m["unreachable"] == 14 and m["routed"] == 42


def test_back_to_back_cas():
    t = Topology("b2b")
    t.add_ca(0x100, 1, "a")
    t.add_ca(0x200, 1, "b")
    t.add_link(0x100, 1, 0x200, 1)
    fab = compile_fabric(t)
    m = route_metrics(fab, compute_lfts(fab))
    assert m["pairs"] == 2 and m["routed"] == 2 and m["unreachable"] == 0
    assert m["max_hops"] == 1 and m["mean_hops"] == 1.0 and m["link_load"]["links"] == 0
