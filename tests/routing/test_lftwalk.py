"""walk's options for other callers: destination ports, link states, hop limit, recorded ports."""

from __future__ import annotations

import numpy as np

from ibsim.fabric import compile_fabric
from ibsim.routing import compute_lfts, walk
from ibsim.routing.lftwalk import DELIVERED, LOOP, NO_PATH
from ibsim.topology import fat_tree


def _far_flow(fab):
    """(source switch row, destination CA port) two switch hops apart, and its LFT."""
    lft = compute_lfts(fab, "minhop")
    ca = np.flatnonzero(~fab.is_switch & (fab.default_lid > 0))
    res = walk(fab, lft, np.zeros(ca.size, dtype=int), fab.default_lid[ca])
    far = ca[np.argmax(res.hops)]
    return lft, far


def test_record_ports_gives_each_hop_port_up_to_the_ca():
    fab = compile_fabric(fat_tree(4, 2))
    lft, far = _far_flow(fab)
    res = walk(fab, lft, [0], [fab.default_lid[far]], record=True, record_ports=True)
    assert res.status[0] == DELIVERED and res.hops[0] == 2
    ports = res.ports[:, 0]
    assert res.ports.dtype == np.int32 and ports.size == 3      # 2 switch links + the CA link
    assert fab.peer_of_port[ports[-1]] == far                   # the last hop enters the CA
    for h in range(2):                                          # each hop leaves the switch visited
        assert fab.switch_of_node[fab.node_of_port[ports[h]]] == res.path[0, h]
        assert fab.switch_of_node[fab.node_of_port[fab.peer_of_port[ports[h]]]] == res.path[0, h + 1]


def test_record_ports_pads_with_n_ports_and_has_a_row_when_nothing_is_sent():
    fab = compile_fabric(fat_tree(4, 2))
    lft, far = _far_flow(fab)
    ca = next(p for p in np.flatnonzero(~fab.is_switch)      # a CA on switch 0 itself
              if fab.peer_of_port[p] >= 0 and fab.switch_of_node[fab.node_of_port[fab.peer_of_port[p]]] == 0)
    res = walk(fab, lft, [0, 0], [fab.default_lid[far], fab.default_lid[ca]], record_ports=True)
    assert res.ports.shape == (3, 2)
    assert res.ports[1:, 1].tolist() == [fab.n_ports, fab.n_ports]  # the near flow ended at hop 0
    lft[0, fab.default_lid[ca]] = 255
    dropped = walk(fab, lft, [0], [fab.default_lid[ca]], record_ports=True)
    assert dropped.status[0] == NO_PATH and dropped.ports.tolist() == [[fab.n_ports]]
    none = walk(fab, lft, [], [], record_ports=True)
    assert none.ports.shape == (1, 0)


def test_dst_port_is_the_port_to_arrive_at():
    fab = compile_fabric(fat_tree(4, 2))
    lft, far = _far_flow(fab)
    other = next(p for p in np.flatnonzero(~fab.is_switch & (fab.default_lid > 0)) if p != far)
    lid = fab.default_lid[far]
    assert walk(fab, lft, [0], [lid], dst_port=[far]).status[0] == DELIVERED
    assert walk(fab, lft, [0], [lid], dst_port=[other]).status[0] == NO_PATH


def test_up_mask_blocks_and_up_true_uses_every_cable():
    fab = compile_fabric(fat_tree(4, 2))
    lft, far = _far_flow(fab)
    lid = fab.default_lid[far]
    first = walk(fab, lft, [0], [lid], record_ports=True).ports[0, 0]
    up = fab.peer_of_port >= 0
    up[first] = False
    assert walk(fab, lft, [0], [lid], up=up).status[0] == NO_PATH
    assert walk(fab, lft, [0], [lid], up=True).status[0] == DELIVERED
    assert walk(fab, lft, [0], [lid]).status[0] == DELIVERED       # default: every cable


def test_max_hops_ends_a_loop_that_find_loops_does_not_look_for(rh):
    fab, lft, lid = rh.looping_ring()
    brent = walk(fab, lft, [0], [lid], record_ports=True)
    capped = walk(fab, lft, [0], [lid], find_loops=False, max_hops=30, record_ports=True)
    assert brent.status[0] == LOOP and capped.status[0] == LOOP
    assert brent.ports.shape[0] < 30 and capped.ports.shape[0] == 30
    assert (capped.ports[:, 0] < fab.n_ports).all()            # sent on every hop


def test_port_load_false_skips_the_load():
    fab = compile_fabric(fat_tree(4, 2))
    lft, far = _far_flow(fab)
    assert walk(fab, lft, [0], [fab.default_lid[far]], port_load=False).port_load is None
    assert walk(fab, lft, [0], [fab.default_lid[far]]).port_load.sum() == 2
