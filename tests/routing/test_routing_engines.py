"""Routing engines: every route arrives, loop free; minhop = BFS; updn legal; ftree balanced."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from ibsim.errors import RoutingError, UnknownNameError
from ibsim.fabric import NO_ROUTE, FabricState, compile_fabric
from ibsim.routing import ENGINES, compute_lfts, route_metrics, updn_order, walk
from ibsim.topology import fat_tree

ALL = ("minhop", "updn", "ftree")


def build(rh, name, tiny_topology=None):
    return {
        "ft4-2": lambda: fat_tree(4, 2),
        "ft8-2": lambda: fat_tree(8, 2),
        "ft8-3": lambda: fat_tree(8, 3),
        "ring6": lambda: rh.ring(6),
        "torus3x3": lambda: rh.torus2d(3, 3),
        "tiny": lambda: tiny_topology,
    }[name]()


TREES = ("ft4-2", "ft8-2", "ft8-3")
ANY = TREES + ("ring6", "torus3x3", "tiny")


def cases():
    for eng in ALL:
        for topo in (TREES if eng == "ftree" else ANY):
            yield eng, topo


# ----------------------------------------------------------------- API
def test_engines_is_a_plain_dict_of_opensm_names():
    assert type(ENGINES) is dict
    assert set(ALL) <= set(ENGINES)          # more may come; these must stay


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_listed_engine_routes_a_fat_tree(engine):
    fab = compile_fabric(fat_tree(4, 2))
    m = route_metrics(fab, compute_lfts(fab, engine))
    assert m["routed"] == m["pairs"] > 0 and m["unreachable"] == 0 and m["loops"] == 0


def test_unknown_engine_lists_choices(fabric):
    with pytest.raises(UnknownNameError) as e:
        compute_lfts(fabric, "upnd")
    msg = str(e.value)
    assert ", ".join(sorted(ENGINES)) in msg and "did you mean 'updn'" in msg


@pytest.mark.parametrize("engine", ALL)
def test_returns_new_uint8_array_and_leaves_state_alone(fabric, engine):
    st = FabricState(fabric)
    before = st.lft.copy()
    lft = compute_lfts(fabric, engine, up=st.link_up_mask(fabric), lid=st.lid, lft_size=st.lft.shape[1])
    assert lft.dtype == np.uint8 and lft.shape == st.lft.shape
    assert lft is not st.lft
    assert np.array_equal(st.lft, before)
    assert np.array_equal(compute_lfts(fabric, engine), lft)     # defaults: every cable, default LIDs
    assert compute_lfts(fabric, engine, lft_size=256).shape == (fabric.n_switches, 256)
    # a switch's own LID is port 0
    sw0 = fabric.first_port[fabric.node_of_switch]
    assert (lft[np.arange(fabric.n_switches), fabric.default_lid[sw0]] == 0).all()
    assert (lft[:, 0] == NO_ROUTE).all()


def test_roots_refused_by_minhop(fabric):
    with pytest.raises(RoutingError, match="takes no roots"):
        compute_lfts(fabric, "minhop", roots=[int(fabric.node_guid[0])])


def test_bad_up_mask(fabric):
    with pytest.raises(RoutingError, match="shape"):
        compute_lfts(fabric, "minhop", up=np.ones(3, dtype=bool))


# --------------------------------------------------------- every route arrives
@pytest.mark.parametrize("engine,topo", list(cases()))
def test_every_route_arrives_loop_free(rh, engine, topo, tiny_topology):
    fab = compile_fabric(build(rh, topo, tiny_topology))
    lft = compute_lfts(fab, engine)
    # from every switch to every LID (CAs and switches)
    lids = np.flatnonzero(fab.lid_to_port() >= 0)
    src, dst, res = rh.all_routes(fab, lft, lids, record=True)
    must = np.ones(src.size, dtype=bool)
    if engine == "updn":
        # up*/down* has no legal path between two roots (OpenSM without
        # --connect_roots neither): switch LIDs are checked from leaves only
        leaf = np.zeros(fab.n_switches, dtype=bool)
        ca_peer = fab.peer_of_port[~fab.is_switch]
        leaf[fab.switch_of_node[fab.node_of_port[ca_peer[ca_peer >= 0]]]] = True
        must = ~fab.is_switch[fab.lid_to_port()[dst]] | leaf[src]
    assert (res.status[must] == 0).all()
    assert (res.status != 2).all()
    # a walk never revisits a switch
    for row in res.path:
        seen = row[row >= 0]
        assert len(set(seen.tolist())) == seen.size
    m = route_metrics(fab, lft)
    assert m["unreachable"] == 0 and m["loops"] == 0 and m["routed"] == m["pairs"] > 0


# ------------------------------------------------------------------ minhop
@pytest.mark.parametrize("topo", ANY)
def test_minhop_hops_equal_bfs(rh, topo, tiny_topology):
    fab = compile_fabric(build(rh, topo, tiny_topology))
    lft = compute_lfts(fab, "minhop")
    lids = np.flatnonzero(fab.lid_to_port() >= 0)
    src, dst, res = rh.all_routes(fab, lft, lids)
    dist = dict(nx.all_pairs_shortest_path_length(rh.switch_graph(fab)))
    target = {int(lid): rh.attach_row(fab, int(lid)) for lid in lids}
    want = np.array([dist[s][target[d]] for s, d in zip(src.tolist(), dst.tolist())])
    assert np.array_equal(res.hops, want)


def test_minhop_spreads_over_parallel_cables(tiny_topology):
    fab = compile_fabric(tiny_topology)
    m = route_metrics(fab, compute_lfts(fab, "minhop"), port_load=True)
    p7, p8 = fab.port_index(0x100, 7), fab.port_index(0x100, 8)
    assert m["port_load"][p7] > 0 and m["port_load"][p8] > 0


def test_minhop_balances_lids_per_port(rh):
    fab = compile_fabric(fat_tree(8, 2))
    lft = compute_lfts(fab, "minhop")
    leaf = fab.switch_of_node[fab.node_index[0x0002C90302000000]]
    lids = rh.ca_lids(fab)
    ports = lft[leaf, lids]
    up = np.bincount(ports[ports > 4], minlength=9)[5:]
    assert up.max() - up.min() <= 1          # 28 remote CA LIDs over 4 uplinks: 7 each


# -------------------------------------------------------------------- updn
def assert_updn_legal(rh, fab, lft, order, up=None, every_switch_to_ca=True):
    """Every walked route (switch -> any LID) is up* then down*; no loops.

    A move is up when it goes to a switch earlier in ``order.pos``, except
    between two roots, which OpenSM's updn counts as down both ways."""
    pos = order.pos
    root = order.rank == 0
    lids = np.flatnonzero(fab.lid_to_port() >= 0)
    _, dst, res = rh.all_routes(fab, lft, lids, record=True, up=up)
    assert (res.status != 2).all()
    if every_switch_to_ca:
        to_ca = ~fab.is_switch[fab.lid_to_port()[dst]]
        assert (res.status[to_ca] == 0).all()
    path = res.path
    valid = (path[:, 1:] >= 0)
    p = pos[np.maximum(path, 0)]
    r = root[np.maximum(path, 0)]
    both_roots = r[:, 1:] & r[:, :-1]
    step_up = (p[:, 1:] < p[:, :-1]) & valid & ~both_roots
    step_down = ((p[:, 1:] > p[:, :-1]) | both_roots) & valid
    assert not (valid & (p[:, 1:] == p[:, :-1])).any()
    went_down = np.cumsum(step_down, axis=1) > 0
    # an up move after any earlier down move is illegal
    assert not (step_up[:, 1:] & went_down[:, :-1]).any()


@pytest.mark.parametrize("topo", ANY)
def test_updn_never_turns_down_then_up(rh, topo, tiny_topology):
    fab = compile_fabric(build(rh, topo, tiny_topology))
    lft = compute_lfts(fab, "updn")
    assert_updn_legal(rh, fab, lft, updn_order(fab))


def test_updn_with_given_roots_on_a_torus(rh):
    fab = compile_fabric(rh.torus2d(4, 3))
    root = int(fab.node_guid[fab.node_of_switch[5]])
    lft = compute_lfts(fab, "updn", roots=[root])
    order = updn_order(fab, roots=[root])
    assert order.rank[5] == 0 and order.pos[5] == 0
    assert_updn_legal(rh, fab, lft, order)
    assert route_metrics(fab, lft)["unreachable"] == 0


def test_updn_detects_fat_tree_roots_and_is_min_hop():
    fab = compile_fabric(fat_tree(8, 3))
    order = updn_order(fab)
    descs = {fab.node_desc[fab.node_of_switch[r]] for r in order.roots}
    assert descs == {f"core{i:02d}" for i in range(1, 17)}
    a = route_metrics(fab, compute_lfts(fab, "updn"))
    b = route_metrics(fab, compute_lfts(fab, "minhop"))
    assert a["mean_hops"] == b["mean_hops"] and a["max_hops"] == b["max_hops"] == 6


def test_updn_bad_roots(fabric):
    with pytest.raises(RoutingError, match="not the node GUID"):
        compute_lfts(fabric, "updn", roots=[0x1234])
    ca = int(fabric.node_guid[fabric.n_switches])
    with pytest.raises(RoutingError, match="not a switch"):
        compute_lfts(fabric, "updn", roots=[ca])


# ------------------------------------------------------------------- ftree
def link_class_loads(fab, port_load):
    """Loads of usable switch-to-switch links grouped by (from level, to level)."""
    from ibsim.routing.ftree import fat_tree_levels
    from ibsim.routing.graph import SwitchGraph
    lev = fat_tree_levels(SwitchGraph(fab))
    p = np.flatnonzero(fab.is_switch & (fab.peer_of_port >= 0))
    q = fab.peer_of_port[p]
    keep = fab.is_switch[q]
    p, q = p[keep], q[keep]
    a = lev[fab.switch_of_node[fab.node_of_port[p]]]
    b = lev[fab.switch_of_node[fab.node_of_port[q]]]
    out = {}
    for key in set(zip(a.tolist(), b.tolist())):
        m = (a == key[0]) & (b == key[1])
        out[key] = port_load[p[m]]
    return out


@pytest.mark.parametrize("radix,levels", [(8, 2), (8, 3), (36, 2)])
def test_ftree_balanced(radix, levels):
    fab = compile_fabric(fat_tree(radix, levels))
    m = route_metrics(fab, compute_lfts(fab, "ftree"), port_load=True)
    assert m["unreachable"] == 0 and m["loops"] == 0
    # all-to-all keeps intra-pod traffic below the cores, so levels differ;
    # within each (level -> level) class every link carries the same load
    for key, loads in link_class_loads(fab, m["port_load"]).items():
        assert loads.max() <= 1.05 * loads.mean(), key
    if levels == 2:
        assert m["link_load"]["max"] <= 1.05 * m["link_load"]["mean"]


def ca_order_ports(fab):
    """CA ports in (leaf row, leaf port) order: the order shift permutations use."""
    ca = np.flatnonzero(~fab.is_switch & (fab.peer_of_port >= 0))
    leaf_port = fab.peer_of_port[ca]
    order = np.lexsort((fab.port_num[leaf_port], fab.switch_of_node[fab.node_of_port[leaf_port]]))
    return ca[order]


@pytest.mark.parametrize("radix,levels", [(8, 2), (8, 3), (36, 2)])
def test_ftree_shift_permutations_contention_free(radix, levels):
    fab = compile_fabric(fat_tree(radix, levels))
    lft = compute_lfts(fab, "ftree")
    ca = ca_order_ports(fab)
    n = ca.size
    src_sw = fab.switch_of_node[fab.node_of_port[fab.peer_of_port[ca]]]
    lids = fab.default_lid[ca].astype(np.int64)
    for k in sorted({1, 2, 3, radix // 2 - 1, radix // 2, radix // 2 + 1, n // 2, n - 1}):
        dst = (np.arange(n) + k) % n
        res = walk(fab, lft, src_sw, lids[dst])
        assert (res.status == 0).all()
        assert res.port_load.max() <= 1, f"shift {k}: a link carries {res.port_load.max()} flows"


def test_ftree_up_choice_is_d_mod_k():
    fab = compile_fabric(fat_tree(8, 2))
    lft = compute_lfts(fab, "ftree")
    ca = ca_order_ports(fab)
    leaf = fab.switch_of_node[fab.node_index[0x0002C90302000000]]
    ports = lft[leaf, fab.default_lid[ca[4:]]]          # CAs on the other leaves
    assert np.array_equal(ports, 5 + np.arange(4, ca.size) % 4)


def test_ftree_roots_checked():
    fab = compile_fabric(fat_tree(8, 2))
    spines = [int(fab.node_guid[fab.node_of_switch[r]]) for r in range(8, 12)]
    assert np.array_equal(compute_lfts(fab, "ftree", roots=spines), compute_lfts(fab, "ftree"))
    with pytest.raises(RoutingError, match="top-level"):
        compute_lfts(fab, "ftree", roots=spines[:2])


@pytest.mark.parametrize("topo", ["ring6", "torus3x3", "tiny"])
def test_ftree_rejects_non_trees(rh, topo, tiny_topology):
    fab = compile_fabric(build(rh, topo, tiny_topology))
    with pytest.raises(RoutingError, match="both have CAs"):
        compute_lfts(fab, "ftree")


def test_ftree_rejects_ca_on_a_spine(rh):
    t = rh.leaf_spine()
    t.add_ca(0x0002C90301FF0000, 1, "stray HCA-1")
    t.add_link(0x0002C90302100100, 12, 0x0002C90301FF0000, 1)
    with pytest.raises(RoutingError, match="CAs hang only off the bottom"):
        compute_lfts(compile_fabric(t), "ftree")


def test_ftree_rejects_skip_level_cable(rh):
    t = rh.three_level(8)
    leaf = t.find("pod1-leaf1")
    core = t.find("core01")
    t.add_link(leaf, 9, core, 9)
    with pytest.raises(RoutingError, match="adjacent levels"):
        compute_lfts(compile_fabric(t), "ftree")


def test_ftree_rejects_leaves_at_different_depths(rh):
    t = rh.three_level(8)
    t.add_switch(0x0002C90302100200, 8, "dangling")
    t.add_link(t.find("pod1-leaf1"), 9, 0x0002C90302100200, 1)
    with pytest.raises(RoutingError, match="no uplink"):
        compute_lfts(compile_fabric(t), "ftree")


def test_ftree_same_level_spines_cabled(rh):
    t = rh.leaf_spine()
    t.add_link(0x0002C90302100100, 11, 0x0002C90302100101, 11)
    with pytest.raises(RoutingError, match="both at level 1"):
        compute_lfts(compile_fabric(t), "ftree")


# --------------------------------------------------------------- link down
def downed_fabric():
    fab = compile_fabric(fat_tree(8, 3))
    down = [fab.find_port("pod1-leaf1:5"), fab.find_port("pod2-spine3:6")]
    st = FabricState(fab)
    for p in down:
        st.set_ports_down([p, fab.peer_of_port[p]])
    return fab, down, st.link_up_mask(fab)


@pytest.mark.parametrize("engine", ALL)
def test_downed_links_are_routed_around(rh, engine):
    fab, down, up = downed_fabric()
    lft = compute_lfts(fab, engine, up=up)
    m = route_metrics(fab, lft, up=up, port_load=True)
    assert m["unreachable"] == 0 and m["loops"] == 0
    for p in down:
        assert m["port_load"][p] == 0 and m["port_load"][fab.peer_of_port[p]] == 0
    lids = np.flatnonzero(fab.lid_to_port() >= 0)
    src, dst, res = rh.all_routes(fab, lft, lids, up=up)
    assert (res.status != 2).all()
    # minhop: every LID from every switch. updn and ftree leave 255 where only a
    # down-then-up path would remain (a spine whose link to the destination's
    # leaf is down; for updn also the switch LIDs behind the lost uplink), so
    # they must reach every CA LID from every leaf; ftree routes switch LIDs min-hop
    is_leaf = np.array(["leaf" in d for d in np.array(fab.node_desc)[fab.node_of_switch]])
    to_sw = fab.is_switch[fab.lid_to_port()[dst]]
    must = {"minhop": np.ones(src.size, dtype=bool),
            "ftree": is_leaf[src] | to_sw,
            "updn": is_leaf[src] & ~to_sw}[engine]
    assert (res.status[must] == 0).all()
    if engine == "updn":
        assert_updn_legal(rh, fab, lft, updn_order(fab, up=up), every_switch_to_ca=False, up=up)


def test_minhop_after_link_down_equals_bfs(rh):
    fab, _, up = downed_fabric()
    lft = compute_lfts(fab, "minhop", up=up)
    lids = rh.ca_lids(fab)
    src, dst, res = rh.all_routes(fab, lft, lids, up=up)
    dist = dict(nx.all_pairs_shortest_path_length(rh.switch_graph(fab, up)))
    want = np.array([dist[s][rh.attach_row(fab, d)] for s, d in zip(src.tolist(), dst.tolist())])
    assert np.array_equal(res.hops, want)


def test_explicit_up_mask_overrides_the_default():
    fab = compile_fabric(fat_tree(8, 2))
    p = fab.find_port("leaf1:5")
    up = fab.peer_of_port >= 0
    up[p] = False
    for engine in ALL:
        lft = compute_lfts(fab, engine, up=up)
        m = route_metrics(fab, lft, up=up, port_load=True)
        assert m["unreachable"] == 0 and m["port_load"][p] == 0
        assert route_metrics(fab, compute_lfts(fab, engine), port_load=True)["port_load"][p] > 0


def test_isolated_ca_is_unreachable_not_an_error():
    fab = compile_fabric(fat_tree(4, 2))
    ca = int(np.flatnonzero(~fab.is_switch)[0])
    up = fab.peer_of_port >= 0
    up[[ca, fab.peer_of_port[ca]]] = False
    for engine in ALL:
        lft = compute_lfts(fab, engine, up=up)
        assert (lft[:, fab.default_lid[ca]] == NO_ROUTE).all()
        m = route_metrics(fab, lft, up=up)
        assert m["loops"] == 0
        assert m["pairs"] == 8 * 7
        assert m["unreachable"] == 7 + 7          # its 7 pairs as source and 7 as destination


def test_updn_check_catches_illegal_routes(rh):
    # the checker itself: min-hop routes on a torus do turn down then up
    fab = compile_fabric(rh.torus2d(4, 4))
    root = [int(fab.node_guid[fab.node_of_switch[0]])]
    with pytest.raises(AssertionError):
        assert_updn_legal(rh, fab, compute_lfts(fab, "minhop"), updn_order(fab, roots=root))


def test_destinations_come_in_opensm_order():
    # OpenSM routes end ports switch by switch: most end-port links first, ties
    # in its switch table's order (node GUIDs compared in network byte order),
    # then by the switch's port number; switch LIDs last
    from ibsim.routing.graph import SwitchGraph
    from ibsim.topology import Topology
    t = Topology("order")
    for g in (0x0100, 0x0001, 0x0002):       # byte-swapped: 0x0100 < 0x0001 < 0x0002
        t.add_switch(g, 8, f"sw{g:04x}")
    t.add_link(0x0100, 7, 0x0001, 7)
    t.add_link(0x0001, 8, 0x0002, 7)
    hosts = {0x0100: [3, 1], 0x0001: [2, 5], 0x0002: [4, 1, 2]}
    lid, ca = 40, 0x9000
    for sw, ports in hosts.items():
        for p in ports:
            ca += 0x10
            lid -= 1                          # LIDs fall as ports are cabled
            t.add_ca(ca, 1, f"h{ca:x}", lids={1: lid})
            t.add_link(sw, p, ca, 1)
    fab = compile_fabric(t)
    sg = SwitchGraph(fab)
    groups, sw_targets, _ = sg.osm_order()
    guid = fab.node_guid[fab.node_of_switch]
    assert [int(guid[t]) for t, _ in groups] == [0x0002, 0x0100, 0x0001]
    assert [sg.dest_exit[idx].tolist() for _, idx in groups] == [[1, 2, 4], [1, 3], [2, 5]]
    assert sorted(sw_targets.tolist()) == [0, 1, 2]
