"""``ftree``: fat-tree routing in the D-mod-K style of OpenSM's ftree engine.

Structure (from the cabling, whatever the link states): a *leaf* is a
switch with at least one CA (or router) cabled to it; a switch's *level* is
its distance in cabled switch hops from the nearest leaf. The fabric is a
fat tree when no cable joins two switches of the same level (so every
switch-to-switch cable joins adjacent levels) and every switch without an
uplink sits on the top level. Otherwise :class:`~ibsim.errors.RoutingError`
says which cable or switch breaks the rule. Switches that no leaf reaches
are left without routes.

CA destinations. CA ports are numbered ``i = 0, 1, ...`` in (leaf switch
row, leaf port number) order, over every cabled CA port. ``K[l]`` is the
largest number of uplinks of a level-*l* switch and ``div[l] = K[0] * ... *
K[l-1]`` (``div[0] = 1``). A level-*l* switch whose down-subtree holds the
destination's leaf sends it down, to the ``(i // div[l-1]) mod m``-th of the
*m* down ports (by port number) whose subtree holds that leaf; any other
switch sends it up, to the ``(i // div[l]) mod m``-th of the *m* up ports
whose neighbour can still reach the leaf (up then down, over usable links).
On a complete fat tree every leaf-to-root path is thus chosen by the digits
of the destination index: each destination owns one root, all links of a
level carry the same number of routes under all-to-all, and a shift
permutation ``i -> i + k`` puts at most one flow on each link. Because a
route only turns down at the first switch that holds the destination below
it and then stays down, routes are up*/down* (credit-loop free).

Switch destinations (management traffic) use the ``minhop`` rule.
"""

from __future__ import annotations

import numpy as np

from ..errors import RoutingError
from ..fabric.state import NO_ROUTE
from .graph import INF, SwitchGraph, bfs_levels
from .minhop import min_hop_lfts

__all__ = ["route_ftree", "fat_tree_levels"]


def fat_tree_levels(sg: SwitchGraph, roots=None) -> np.ndarray:
    """Check the fat-tree structure and return every switch's level.

    Parameters
    ----------
    sg : SwitchGraph
    roots : iterable of int, optional
        Root switch GUIDs; when given they must be exactly the top level.

    Returns
    -------
    ndarray of int16, (n_switches,)
        0 for leaves, :data:`~ibsim.routing.graph.INF` for switches no leaf reaches.

    Raises
    ------
    RoutingError
        When the topology is not a fat tree.
    """
    f = sg.fabric
    leaves = (sg.ca_port >= 0).any(axis=1)
    if not leaves.any():
        raise RoutingError("ftree: no switch has a CA cabled to it; a fat tree needs leaf "
                           "switches with CAs (use minhop or updn for switch-only fabrics)")
    has = sg.cabled_nbr >= 0
    cab = np.where(has, sg.cabled_nbr, sg.n_sw).astype(np.int64)
    lev = bfs_levels(cab, leaves)
    nlev = np.append(lev, -2)[cab]
    same = has & (nlev == lev[:, None]) & (lev[:, None] < INF)
    if same.any():
        s, k = (int(x) for x in np.argwhere(same)[0])
        t = int(sg.cabled_nbr[s, k])
        a, b = sg.switch_label(s), sg.switch_label(t)
        if lev[s] == 0:
            raise RoutingError(
                f"ftree: not a fat tree: switches {a} and {b} both have CAs cabled to them and are "
                f"cabled to each other (port {k}); in a fat tree CAs hang only off the bottom "
                f"(leaf) level and leaves connect only upward")
        raise RoutingError(
            f"ftree: not a fat tree: switches {a} and {b} are both at level {int(lev[s])} "
            f"(hops from the nearest CA-bearing switch) but are cabled together (port {k}); "
            f"every switch-to-switch cable must join adjacent levels")
    reach = lev < INF
    top = int(lev[reach].max())
    n_up = (has & (nlev == lev[:, None] + 1)).sum(axis=1)
    stub = reach & (n_up == 0) & (lev < top)
    if stub.any():
        s = int(np.flatnonzero(stub)[0])
        raise RoutingError(
            f"ftree: not a fat tree: switch {sg.switch_label(s)} at level {int(lev[s])} has no "
            f"uplink while the tree has {top + 1} levels (its leaves are not at the same depth "
            f"as the others)")
    if roots is not None:
        want = {int(g) for g in roots}
        guids = f.node_guid[f.node_of_switch]
        top_guids = {int(g) for g in guids[reach & (lev == top)]}
        if want != top_guids:
            extra = sorted(want - top_guids)
            raise RoutingError(
                "ftree: roots= must be exactly the top-level switches of the fat tree "
                f"({len(top_guids)} switches at level {top}); "
                + (f"0x{extra[0]:016x} is not one of them" if extra
                   else f"{len(top_guids - want)} of them are missing"))
    return lev


def _subtrees(sg: SwitchGraph, lev: np.ndarray, leaf_rows: np.ndarray,
              is_down: np.ndarray, is_up: np.ndarray):
    """Leaves below each switch (``sub``) and leaves reachable up-then-down (``upr``).

    Both are bool ``(n_leaves, n_sw)``, built over usable links, one level at a time.
    """
    n_sw = sg.n_sw
    top = int(lev[lev < INF].max())
    sub = np.zeros((n_sw, leaf_rows.size), dtype=bool)
    sub[leaf_rows, np.arange(leaf_rows.size)] = True
    for level in range(1, top + 1):           # loop over levels and slots only
        rows = lev == level
        for k in np.flatnonzero(is_down.any(axis=0)):
            m = np.flatnonzero(rows & is_down[:, k])
            sub[m] |= sub[sg.nbr[m, k]]
    upr = sub.copy()
    for level in range(top - 1, -1, -1):
        rows = lev == level
        for k in np.flatnonzero(is_up.any(axis=0)):
            m = np.flatnonzero(rows & is_up[:, k])
            upr[m] |= upr[sg.nbr[m, k]]
    return np.ascontiguousarray(sub.T), np.ascontiguousarray(upr.T)


def route_ftree(sg: SwitchGraph, roots=None) -> np.ndarray:
    """Fat-tree (D-mod-K) LFTs for every switch.

    Parameters
    ----------
    sg : SwitchGraph
        The fabric's switches, usable links and destination LIDs.
    roots : iterable of int, optional
        Top-level switch GUIDs, only checked against the detected top level.

    Returns
    -------
    ndarray of uint8, (n_switches, lft_size)

    Raises
    ------
    RoutingError
        When the cabling is not a fat tree (see :func:`fat_tree_levels`).

    Notes
    -----
    Cost: two passes over the levels to build the subtree masks, then per
    leaf switch one sort of ``n_switches x n_slots`` candidate masks; switch
    LIDs add one min-hop pass.
    """
    lev = fat_tree_levels(sg, roots)
    n_sw = sg.n_sw
    leaf_mask = (sg.ca_port >= 0).any(axis=1)
    leaf_rows = np.flatnonzero(leaf_mask)
    leaf_col = np.full(n_sw, -1, dtype=np.int64)
    leaf_col[leaf_rows] = np.arange(leaf_rows.size)
    top = int(lev[lev < INF].max())

    # up/down slot masks: cabled structure and usable subset
    has_c = sg.cabled_nbr >= 0
    clev = np.append(lev, -2)[np.where(has_c, sg.cabled_nbr, n_sw)]
    c_up = has_c & (clev == lev[:, None] + 1)
    usable = sg.nbr >= 0
    is_up = c_up & usable
    is_down = has_c & (clev == lev[:, None] - 1) & usable
    K = np.array([max(int(c_up[lev == level].sum(axis=1).max(initial=0)), 1)
                  for level in range(top + 1)], dtype=np.int64)
    div = np.concatenate(([1], np.cumprod(K)[:-1])).astype(np.int64)
    levc = np.clip(lev, 0, top).astype(np.int64)
    div_up = div[levc]
    div_down = div[np.maximum(levc - 1, 0)]

    # CA index in (leaf row, port number) order over cabled CA ports
    ca_ports = sg.ca_port[sg.ca_port >= 0]          # row-major = (leaf, port) order
    ca_index = np.full(sg.fabric.n_ports, -1, dtype=np.int64)
    ca_index[ca_ports] = np.arange(ca_ports.size)

    sub, upr = _subtrees(sg, lev, leaf_rows, is_down, is_up)
    nbr_sent = sg.sentinel_nbr()
    cols = np.arange(n_sw)
    lft = sg.new_lft()
    for t, lids, _ in sg.groups(~sg.dest_is_switch):  # loop over leaf switches
        j = leaf_col[t]
        if j < 0:
            continue
        idx = ca_index[sg.dest_port[np.searchsorted(sg.dest_lid, lids)]]
        go_down = sub[j]
        s_ext = np.append(sub[j], False)
        u_ext = np.append(upr[j], False)
        cand = np.where(go_down[:, None], is_down & s_ext[nbr_sent], is_up & u_ext[nbr_sent])
        n_cand = cand.sum(axis=1)
        ranked = np.argsort(~cand, axis=1, kind="stable")    # candidate slots first, by port
        digit = idx[:, None] // np.where(go_down, div_down, div_up)[None, :]
        r = digit % np.maximum(n_cand, 1)[None, :]
        choice = ranked[cols[None, :], r]
        lft[:, lids] = np.where(n_cand > 0, choice, NO_ROUTE).T.astype(np.uint8)
        lft[t, lids] = sg.dest_exit[np.searchsorted(sg.dest_lid, lids)]

    # switch LIDs: min-hop, balanced against the CA routes just placed
    ca_cols = sg.dest_lid[~sg.dest_is_switch]
    ports = lft[:, ca_cols].astype(np.int64)
    ok = ports < sg.n_slots
    rows = np.broadcast_to(cols[:, None], ports.shape)
    load = np.bincount((rows[ok] * sg.n_slots + ports[ok]),
                       minlength=n_sw * sg.n_slots).reshape(n_sw, sg.n_slots).astype(np.int32)
    min_hop_lfts(sg, lft, only_switch_lids=True, load=load)
    return lft
