"""Topology generators: closed-form counts, port numbering, determinism, validation."""

from __future__ import annotations

import inspect
import math
from collections import Counter

import networkx as nx
import pytest

from ibsim.errors import TopologyError
from ibsim.topology.generators import (GENERATORS, dragonfly, fat_tree, leaf_spine, single_switch,
                                       torus, xgft)


# ------------------------------------------------------------------ helpers
def counts(t):
    s = t.summary()
    return s["switches"], s["cas"], s["links"]


def check_wellformed(t):
    """Ports in range, no port cabled twice, unique descriptions, connected."""
    t.validate()
    ends = []
    for link in t.links():
        for g, p in (link.a, link.b):
            assert 1 <= p <= t.node(g)["nports"], (t.node(g)["desc"], p)
            ends.append((g, p))
    assert len(ends) == len(set(ends)), "a port is cabled twice"
    descs = [t.node(g)["desc"] for g in t.nodes()]
    assert len(descs) == len(set(descs)), "descriptions are not unique"
    for g in t.cas():
        assert t.node(g)["desc"].endswith(" HCA-1")
        assert t.graph.degree(g) == t.node(g)["nports"], "a CA port is left uncabled"
    assert nx.is_connected(t.graph)


def switch_graph(t) -> nx.MultiGraph:
    return t.graph.subgraph(t.switches()).copy()


def switch_neighbours(t, g) -> set[int]:
    return {n for n in t.graph.neighbors(g) if t.node(n)["kind"] == "switch"}


def xgft_formulas(m, w, p=None):
    """Switches, CAs and links of XGFT(h; m; w) with p_i parallel cables."""
    h = len(m)
    p = p or (1,) * h
    level = [math.prod(m[i:]) * math.prod(w[:i]) for i in range(h + 1)]
    links = sum(level[i - 1] * w[i - 1] * p[i - 1] for i in range(1, h + 1))
    return sum(level[1:]), level[0], links


SMALL_CASES = [
    (fat_tree, dict(radix=8, levels=2)),
    (xgft, dict(m=(4, 8), w=(1, 4))),
    (xgft, dict(m=(3, 4, 2), w=(2, 3, 2))),
    (xgft, dict(m=(4, 4), w=(1, 2), parallel=(1, 2))),
    (leaf_spine, dict(leaves=6, spines=3, oversubscription="2:1")),
    (leaf_spine, dict(leaves=4, spines=2, hosts_per_leaf=3, uplinks_per_spine=2)),
    (dragonfly, dict(a=4, p=2, h=2)),
    (dragonfly, dict(a=3, p=1, h=2, g=4)),
    (torus, dict(dims=(4, 3))),
    (torus, dict(dims=(3, 2, 1), hosts_per_switch=2)),
    (torus, dict(dims=(4, 4), wrap=False)),
]


# ------------------------------------------------------------ all generators
def test_registry_names_and_signatures():
    assert {"fat-tree", "single-switch", "xgft", "leaf-spine", "dragonfly", "torus"} <= set(GENERATORS)
    for name, gen in GENERATORS.items():
        params = inspect.signature(gen).parameters
        assert "width" in params and "speed" in params, name
        # the scenario and the CLI use the declared Params: one per keyword, same default
        assert list(gen.params) == list(params), name
        for pname, param in params.items():
            assert param.default is not inspect.Parameter.empty, (name, pname)
            assert gen.params[pname].default == param.default, (name, pname)


@pytest.mark.parametrize("func,kwargs", SMALL_CASES, ids=lambda x: getattr(x, "__name__", str(x)))
def test_wellformed_and_deterministic(func, kwargs):
    t1, t2 = func(**kwargs), func(**kwargs)
    check_wellformed(t1)
    assert t1 == t2
    assert [t1.node(g)["desc"] for g in t1.nodes()] == [t2.node(g)["desc"] for g in t2.nodes()]


@pytest.mark.parametrize("name", ["xgft", "leaf-spine", "dragonfly", "torus"])
def test_defaults_and_width_speed(name):
    func = GENERATORS[name]
    t = func()
    check_wellformed(t)
    fast = func(width="1x", speed="HDR")
    assert fast.summary()["speeds"] == {"1xHDR": t.summary()["links"]}
    assert counts(fast) == counts(t)


# ----------------------------------------------------------------- fat tree
def test_fat_tree_36_2_counts():
    assert counts(fat_tree(36, 2)) == (54, 648, 1296)


def test_xgft_equals_fat_tree_36_2():
    t = xgft((18, 36), (1, 18))
    assert counts(t) == (54, 648, 1296) == xgft_formulas((18, 36), (1, 18))
    assert t == fat_tree(36, 2)          # same GUIDs, ports, descriptions
    assert t.find("leaf36") and t.find("spine18") and t.find("node648 HCA-1")
    assert all(t.node(g)["nports"] == 36 for g in t.switches())


def test_leaf_spine_equals_fat_tree_36_2():
    assert leaf_spine(36, 18, 18) == fat_tree(36, 2)
    assert leaf_spine(36, 18, oversubscription="1:1", radix=36) == fat_tree(36, 2)


@pytest.mark.parametrize("radix", [4, 8])
def test_xgft_isomorphic_to_fat_tree_2_levels(radix):
    half = radix // 2
    t, ft = xgft((half, radix), (1, half)), fat_tree(radix, 2)
    assert nx.is_isomorphic(switch_graph(t), switch_graph(ft))
    assert nx.is_isomorphic(t.graph, ft.graph)


def test_xgft_isomorphic_to_fat_tree_3_levels():
    # fat_tree(8, 3): 8 pods of 4+4, 16 cores, 128 CAs = XGFT(3; 4,4,8; 1,4,4)
    t, ft = xgft((4, 4, 8), (1, 4, 4)), fat_tree(8, 3)
    assert counts(t) == counts(ft) == (80, 128, 384)
    kind = nx.algorithms.isomorphism.categorical_node_match("kind", None)
    assert nx.is_isomorphic(switch_graph(t), switch_graph(ft))
    assert nx.is_isomorphic(t.graph, ft.graph, node_match=kind)


# --------------------------------------------------------------------- XGFT
@pytest.mark.parametrize("m,w,p", [
    ((18, 36), (1, 18), None),
    ((4, 4, 4), (1, 4, 4), None),          # 4-ary 3-tree
    ((3, 3, 3, 3), (1, 3, 3, 3), None),    # 3-ary 4-tree
    ((16, 8), (1, 4), None),               # oversubscribed 4:1 at the leaves
    ((6, 4, 3), (2, 2, 3), None),          # dual-rail CAs
    ((4, 4), (1, 2), (1, 2)),              # PGFT
    ((2, 3), (2, 2), (2, 1)),              # PGFT with 4-port CAs
    ((5,), (1,), None),                    # one switch
])
def test_xgft_counts_match_formulas(m, w, p):
    t = xgft(m, w, parallel=p)
    assert counts(t) == xgft_formulas(m, w, p)
    check_wellformed(t)


def test_k_ary_n_tree():
    k, n = 4, 3
    t = xgft((k,) * n, (1,) + (k,) * (n - 1))
    assert counts(t) == (n * k ** (n - 1), k ** n, n * k ** n)
    # every switch has radix 2k (k down, k up) except the top level: k down
    ports = Counter(t.node(g)["nports"] for g in t.switches())
    assert ports == {2 * k: (n - 1) * k ** (n - 1), k: k ** (n - 1)}


def test_xgft_port_numbering_down_then_up():
    m, w, p = (3, 4), (1, 2), (1, 2)
    t = xgft(m, w, parallel=p)
    leaves = [g for g in t.switches() if t.node(g)["desc"].startswith("leaf")]
    spines = [g for g in t.switches() if t.node(g)["desc"].startswith("spine")]
    assert len(leaves) == 4 and len(spines) == 2
    for leaf in leaves:
        assert t.node(leaf)["nports"] == 3 + 2 * 2
        for port in range(1, 4):                       # down ports: CAs
            assert t.node(t.peer(leaf, port)[0])["kind"] == "ca"
        for y in range(2):                             # up ports: spine y, 2 parallel
            for r in range(2):
                peer, _ = t.peer(leaf, 3 + y * 2 + r + 1)
                assert peer == spines[y]
    for si, spine in enumerate(spines):
        assert t.node(spine)["nports"] == 4 * 2
        for li, leaf in enumerate(leaves):
            for r in range(2):
                assert t.peer(spine, li * 2 + r + 1)[0] == leaf
        assert t.graph.number_of_edges(spine, leaves[0]) == 2


def test_xgft_oversubscribed_degrees():
    t = xgft((16, 8), (1, 4))
    for g in t.switches():
        desc = t.node(g)["desc"]
        down = sum(1 for n in t.graph.neighbors(g) if t.node(n)["kind"] == "ca")
        if desc.startswith("leaf"):
            assert (down, len(switch_neighbours(t, g)), t.node(g)["nports"]) == (16, 4, 20)
        else:
            assert (down, t.graph.degree(g), t.node(g)["nports"]) == (0, 8, 8)


def test_xgft_multiport_cas():
    t = xgft((4, 2), (2, 2))
    for g in t.cas():
        assert t.node(g)["nports"] == 2
        leaves = [t.peer(g, port)[0] for port in (1, 2)]
        assert len(set(leaves)) == 2


def test_xgft_radix_padding_and_hosts_per_leaf():
    t = xgft((4, 8), (1, 4), radix=12, hosts_per_leaf=3)
    assert all(t.node(g)["nports"] == 12 for g in t.switches())
    assert counts(t) == (12, 24, 24 + 32)
    leaf = t.find("leaf01")
    assert t.peer(leaf, 4) is None and t.peer(leaf, 3) is not None
    assert t.peer(leaf, 5) is not None                 # first up port
    check_wellformed(t)


def test_xgft_deep_descriptions():
    t = xgft((2, 2, 2, 2), (1, 2, 2, 2))
    descs = {t.node(g)["desc"].rstrip("0123456789") for g in t.switches()}
    assert descs == {"leaf", "l2-spine", "l3-spine", "core"}


# --------------------------------------------------------------- leaf/spine
@pytest.mark.parametrize("kwargs,d", [
    (dict(leaves=8, spines=4, oversubscription="2:1"), 8),
    (dict(leaves=8, spines=4, oversubscription=2.0), 8),
    (dict(leaves=8, spines=4, oversubscription="3:2"), 6),
    (dict(leaves=8, spines=4, oversubscription="1:2"), 2),
    (dict(leaves=8, spines=4, uplinks_per_spine=2, oversubscription="3:1"), 24),
    (dict(leaves=8, spines=4), 4),
    (dict(leaves=8, spines=4, hosts_per_leaf=12, oversubscription="3:1"), 12),
])
def test_leaf_spine_oversubscription(kwargs, d):
    t = leaf_spine(**kwargs)
    k = kwargs.get("uplinks_per_spine", 1)
    L, S = kwargs["leaves"], kwargs["spines"]
    u = S * k
    assert counts(t) == (L + S, L * d, L * d + L * u)
    for g in t.switches():
        if t.node(g)["desc"].startswith("leaf"):
            hosts = sum(1 for n in t.graph.neighbors(g) if t.node(n)["kind"] == "ca")
            assert hosts == d and t.graph.degree(g) - hosts == u
            assert t.node(g)["nports"] == d + u
        else:
            assert t.graph.degree(g) == L * k == t.node(g)["nports"]
    check_wellformed(t)


def test_leaf_spine_radix():
    t = leaf_spine(16, 8, oversubscription="2:1", radix=32)   # 16 hosts + 8 uplinks
    assert all(t.node(g)["nports"] == 32 for g in t.switches())
    assert counts(t) == (24, 256, 256 + 128)
    with pytest.raises(TopologyError, match=r"needs 16 host ports \+ 8 uplinks = 24 ports"):
        leaf_spine(16, 8, oversubscription="2:1", radix=20)
    with pytest.raises(TopologyError, match="spine needs"):
        leaf_spine(40, 8, hosts_per_leaf=8, radix=36)


# ---------------------------------------------------------------- dragonfly
def group_of(t, g) -> str:
    return t.node(g)["desc"].split("-")[0]


def global_multiplicities(t) -> Counter:
    pairs = Counter()
    for u, v in t.graph.edges():
        if t.node(u)["kind"] == "switch" and t.node(v)["kind"] == "switch":
            gu, gv = group_of(t, u), group_of(t, v)
            if gu != gv:
                pairs[frozenset((gu, gv))] += 1
    return pairs


@pytest.mark.parametrize("a,p,h,g", [
    (4, 2, 2, None), (2, 1, 1, None), (3, 2, 3, None), (6, 3, 3, None),
    (4, 2, 2, 5), (4, 2, 2, 4), (4, 1, 2, 2), (3, 1, 1, 3), (3, 1, 2, 6), (2, 1, 2, 1),
])
def test_dragonfly_counts_and_structure(a, p, h, g):
    t = dragonfly(a, p, h, g)
    G = a * h + 1 if g is None else g
    n_global = G * a * h // 2 if G > 1 else 0
    assert counts(t) == (a * G, a * p * G, a * p * G + G * a * (a - 1) // 2 + n_global)
    check_wellformed(t)
    radix = p + a - 1 + h
    for r in t.switches():
        assert t.node(r)["nports"] == radix
        hosts = [n for n in t.graph.neighbors(r) if t.node(n)["kind"] == "ca"]
        assert len(hosts) == p
        local = {n for n in switch_neighbours(t, r) if group_of(t, n) == group_of(t, r)}
        assert len(local) == a - 1                       # all-to-all inside the group
        for port in range(p + 1, p + a):                 # local ports
            assert group_of(t, t.peer(r, port)[0]) == group_of(t, r)
        for port in range(p + a, radix + 1):             # global ports
            peer = t.peer(r, port)
            assert peer is None or group_of(t, peer[0]) != group_of(t, r)
    mult = global_multiplicities(t)
    if G > 1:
        q = a * h // (G - 1)
        assert len(mult) == G * (G - 1) // 2             # every pair of groups connected
        assert set(mult.values()) <= {q, q + 1}          # and evenly
    free = sum(1 for r in t.switches() for port in range(p + a, radix + 1) if t.peer(r, port) is None)
    assert free == (G * a * h) % 2 if G > 1 else free == a * h * G


def test_dragonfly_max_groups_one_link_per_pair_consecutive():
    a, p, h = 4, 2, 2
    t = dragonfly(a, p, h)
    g = a * h + 1
    assert set(global_multiplicities(t).values()) == {1}
    # consecutive arrangement: group G's global port j (router j // h) reaches group G + j + 1
    for G in range(g):
        for j in range(a * h):
            r = t.find(f"g{G + 1:02d}-r{j // h + 1:02d}")
            peer, _ = t.peer(r, p + a + j % h)
            assert group_of(t, peer) == f"g{(G + j + 1) % g + 1:02d}"


def test_dragonfly_reference_size():
    t = dragonfly(16, 8, 8)
    g = 129
    assert counts(t) == (16 * g, 16 * 8 * g, 16 * 8 * g + g * 120 + g * 128 // 2)
    assert len(global_multiplicities(t)) == g * (g - 1) // 2
    assert all(t.node(r)["nports"] == 31 for r in t.switches())


# -------------------------------------------------------------------- torus
@pytest.mark.parametrize("dims,hps", [((4, 4), 1), ((3, 5), 2), ((4, 4, 4), 1), ((3, 4, 5), 3),
                                      ((16, 16, 16), 1)])
def test_torus_counts_and_degrees(dims, hps):
    t = torus(dims, hps)
    n = math.prod(dims)
    nd = len(dims)
    assert counts(t) == (n, n * hps, n * hps + nd * n)
    for s in t.switches():
        assert t.node(s)["nports"] == hps + 2 * nd
        assert t.graph.degree(s) == hps + 2 * nd
        assert len(switch_neighbours(t, s)) == 2 * nd
    if n <= 64:
        check_wellformed(t)


def test_torus_ports_and_names():
    t = torus((3, 4, 5), 2)
    s = t.find("sw-1-2-0")
    # dimension d: port hosts+2d+1 towards +1, hosts+2d+2 towards -1 (with wrap)
    assert t.node(t.peer(s, 3)[0])["desc"] == "sw-2-2-0"
    assert t.node(t.peer(s, 4)[0])["desc"] == "sw-0-2-0"
    assert t.node(t.peer(s, 5)[0])["desc"] == "sw-1-3-0"
    assert t.node(t.peer(s, 6)[0])["desc"] == "sw-1-1-0"
    assert t.node(t.peer(s, 7)[0])["desc"] == "sw-1-2-1"
    assert t.node(t.peer(s, 8)[0])["desc"] == "sw-1-2-4"
    assert t.peer(s, 8)[1] == 7
    assert all(t.node(t.peer(s, port)[0])["kind"] == "ca" for port in (1, 2))


def test_torus_small_dimensions():
    t = torus((2, 2, 1))
    assert counts(t) == (4, 4, 4 + 4)                    # one cable per size-2 ring, none for size 1
    assert all(t.graph.number_of_edges(u, v) == 1 for u, v in switch_graph(t).edges())
    for s in t.switches():
        assert len(switch_neighbours(t, s)) == 2
    check_wellformed(t)


def test_torus_mesh():
    t = torus((4, 3), wrap=False)
    assert counts(t) == (12, 12, 12 + 3 * 3 + 4 * 2)
    degs = Counter(len(switch_neighbours(t, s)) for s in t.switches())
    assert degs == {2: 4, 3: 6, 4: 2}
    assert torus("4x4") == torus((4, 4))


# ----------------------------------------------------------- invalid inputs
@pytest.mark.parametrize("func,kwargs,match", [
    (xgft, dict(m=(4, 8), w=(1,)), "same length"),
    (xgft, dict(m=(), w=()), "must not be empty"),
    (xgft, dict(m=(4, 0), w=(1, 4)), r"m\[1\]=0 is out of range"),
    (xgft, dict(m=(4, 8), w=(1, 4.5)), "must be an integer"),
    (xgft, dict(m=(4, 8), w=(8, 4)), "CAs have at most 7"),
    (xgft, dict(m=(4, 8), w=(1, 4), parallel=(1, 2, 3)), "one entry per level"),
    (xgft, dict(m=(4, 8), w=(1, 4), radix=6), "radix=6 is too small"),
    (xgft, dict(m=(4, 8), w=(1, 4), hosts_per_leaf=5), r"hosts_per_leaf=5 is out of range; allowed: 1..4"),
    (xgft, dict(m=(200, 2), w=(1, 100)), "at most 254"),
    (xgft, dict(m="4,eight", w=(1, 4)), "must be a list of integers such as"),
    (xgft, dict(m=("4", "8"), w=(1, 4)), "must be an integer"),
    (leaf_spine, dict(leaves=0), "leaves=0 is out of range"),
    (leaf_spine, dict(spines=3, oversubscription="5:2"), "7.5 hosts per leaf"),
    (leaf_spine, dict(oversubscription="two to one"), "must be a ratio"),
    (leaf_spine, dict(oversubscription="-1:1"), "positive ratio"),
    (leaf_spine, dict(oversubscription="1:0"), "must be a ratio"),
    (leaf_spine, dict(spines=4, hosts_per_leaf=5, oversubscription="2:1"), "contradicts"),
    (leaf_spine, dict(leaves=300, spines=2), "at most 254"),
    (dragonfly, dict(a=0), "a=0 is out of range"),
    (dragonfly, dict(a=4, h=2, g=10), r"g=10 is out of range; allowed: 1..9"),
    (dragonfly, dict(a=4, h=2, g=0), "g=0 is out of range"),
    (dragonfly, dict(a=100, p=100, h=100), "at most 254"),
    (dragonfly, dict(p=True), "must be an integer"),
    (torus, dict(dims=(4,)), "2 or 3 entries"),
    (torus, dict(dims=(2, 2, 2, 2)), "2 or 3 entries"),
    (torus, dict(dims=(4, 0)), "out of range"),
    (torus, dict(dims=(4, 4), hosts_per_switch=0), "hosts_per_switch=0"),
    (torus, dict(dims=(4, 4), hosts_per_switch=300), "at most 254"),
    (torus, dict(dims=(200, 200, 200)), "GUID range"),
])
def test_invalid_parameters(func, kwargs, match):
    with pytest.raises(TopologyError, match=match):
        func(**kwargs)


def test_existing_generators_unchanged():
    assert counts(fat_tree(4, 2)) == (6, 8, 16)
    assert counts(fat_tree(8, 3)) == (80, 128, 384)
    assert counts(single_switch(8, hosts=3)) == (1, 3, 3)
    with pytest.raises(TopologyError):
        fat_tree(36, 4)
