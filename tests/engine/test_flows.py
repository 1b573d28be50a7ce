"""walk_paths: the engine's hop-major paths, as a caller of the routing walker."""

from __future__ import annotations

import numpy as np

from ibsim.engine.flows import MAX_HOPS, walk_paths
from ibsim.fabric import compile_fabric
from ibsim.routing import compute_lfts, walk
from ibsim.routing.lftwalk import DELIVERED
from ibsim.topology import Topology, fat_tree


def test_paths_are_the_walked_ports():
    fab = compile_fabric(fat_tree(4, 2))
    lft = compute_lfts(fab, "minhop")
    ca = np.flatnonzero(~fab.is_switch & (fab.default_lid > 0))
    src = np.repeat(np.arange(fab.n_switches), ca.size).astype(np.int32)
    dst = np.tile(ca, fab.n_switches).astype(np.int64)
    paths, ok = walk_paths(fab, lft, fab.default_lid, src, dst)
    res = walk(fab, lft, src, fab.default_lid[dst], up=True, record_ports=True)
    assert ok.all() and np.array_equal(ok, res.status == DELIVERED)
    assert paths.dtype == np.int32 and np.array_equal(paths, res.ports)
    assert fab.peer_of_port[paths[-1][paths[-1] < fab.n_ports]].tolist() == dst[paths[-1] < fab.n_ports].tolist()


def test_a_loop_runs_max_hops_and_is_not_ok():
    t = Topology("pair")
    t.add_switch(0x10, 4, "sw0")
    t.add_switch(0x11, 4, "sw1")
    t.add_link(0x10, 1, 0x11, 1)
    t.add_ca(0x100, 1, "h")
    t.add_link(0x10, 3, 0x100, 1)
    fab = compile_fabric(t)
    lft = compute_lfts(fab)
    h = fab.port_index(0x100, 1)
    lft[:, fab.default_lid[h]] = 1        # both switches send it to the other one
    paths, ok = walk_paths(fab, lft, fab.default_lid, np.array([0], np.int32), np.array([h]))
    assert paths.shape == (MAX_HOPS, 1) and not ok[0]


def test_unwalkable_aggregates_get_no_path():
    fab = compile_fabric(fat_tree(4, 2))
    lft = compute_lfts(fab, "minhop")
    ca = np.flatnonzero(~fab.is_switch & (fab.default_lid > 0))
    lid = fab.default_lid.copy()
    lid[ca[1]] = 0                      # no LID
    src = np.array([-1, 0, 0], np.int32)   # no source switch, no LID, fine
    dst = np.array([ca[0], ca[1], ca[2]], np.int64)
    paths, ok = walk_paths(fab, lft, lid, src, dst)
    assert ok.tolist() == [False, False, True]
    assert (paths[:, :2] == fab.n_ports).all() and (paths[:, 2] < fab.n_ports).any()
    none, ok0 = walk_paths(fab, lft, lid, src[:0], dst[:0])
    assert none.shape == (1, 0) and ok0.size == 0
    dead, ok1 = walk_paths(fab, lft, lid, src[:1], dst[:1])
    assert dead.tolist() == [[fab.n_ports]] and not ok1[0]
