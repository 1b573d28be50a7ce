"""Walking LFTs: route checks and load metrics, vectorised over flows.

:func:`walk` follows any number of (source switch, destination LID) flows
through a set of LFTs at once, one hop per iteration ("loops over hops
only; never over ports or flows"), and reports delivery, switch hops, loops
and the load each switch port puts on its link. :func:`route_metrics` uses
it for every CA-to-CA LID pair, aggregated per source switch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import RoutingError
from ..fabric.index import lid_to_port

__all__ = ["walk", "Walk", "route_metrics", "DELIVERED", "NO_PATH", "LOOP"]

#: walk status codes
DELIVERED, NO_PATH, LOOP = 0, 1, 2
#: aggregates walked at once by route_metrics (bounds memory to a few hundred MB)
_AGG_BLOCK = 1 << 21


class Walk(NamedTuple):
    """Result of :func:`walk` (all per flow unless noted).

    Attributes
    ----------
    status : ndarray of int8
        :data:`DELIVERED`, :data:`NO_PATH` (an entry of 255 or beyond the
        switch's ports, a down link, or delivery to the wrong node) or
        :data:`LOOP` (the walk revisited a switch).
    hops : ndarray of int32
        Switch-to-switch links crossed (valid when delivered).
    port_load : ndarray of float64, (n_ports,)
        Sum of flow weights sent out of each switch port toward another switch.
    path : ndarray of int32, (n_flows, max_hops + 1) or None
        Switch rows visited, -1 padded (only with ``record=True``).
    """

    status: np.ndarray
    hops: np.ndarray
    port_load: np.ndarray
    path: np.ndarray | None


def walk(fabric, lft: np.ndarray, src_switch, dst_lid, weight=None, *,
         up: np.ndarray | None = None, lid: np.ndarray | None = None, record: bool = False) -> Walk:
    """Follow flows hop by hop through ``lft``.

    Parameters
    ----------
    fabric : FabricIndex
    lft : ndarray of uint8, (n_switches, lft_size)
    src_switch : array_like of int, (n_flows,)
        Switch row where each flow enters the switch fabric (for a CA
        source: the switch its port is cabled to).
    dst_lid : array_like of int, (n_flows,)
        Destination LID of each flow.
    weight : array_like of float, (n_flows,), optional
        Flow weights for ``port_load`` (default 1).
    up : ndarray of bool, (n_ports,), optional
        Usable ports (default: every cabled link).
    lid : ndarray of uint16, (n_ports,), optional
        Port LIDs (default: ``fabric.default_lid``).
    record : bool
        Also return the visited switches.

    Returns
    -------
    Walk
    """
    f = fabric
    up = (f.peer_of_port >= 0) if up is None else np.asarray(up, dtype=bool)
    l2p = lid_to_port(f, f.default_lid if lid is None else lid)
    src = np.asarray(src_switch, dtype=np.int64).ravel()
    lid = np.asarray(dst_lid, dtype=np.int64).ravel()
    if src.shape != lid.shape:
        raise RoutingError(f"walk: {src.size} sources but {lid.size} destination LIDs")
    n = src.size
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64).ravel()
    width = lft.shape[1]
    dport = np.where((lid > 0) & (lid < l2p.size), l2p[np.clip(lid, 0, l2p.size - 1)], -1)
    lid = np.clip(lid, 0, width - 1)
    sw_nodes = f.node_of_switch.astype(np.int64)
    fp = f.first_port[sw_nodes]
    nports = f.node_nports[sw_nodes].astype(np.int64)
    peer = f.peer_of_port.astype(np.int64)
    flat = lft.ravel()

    status = np.full(n, -1, dtype=np.int8)
    hops = np.zeros(n, dtype=np.int32)
    load = np.zeros(f.n_ports, dtype=np.float64)
    steps: list[tuple[np.ndarray, np.ndarray]] = []

    act = np.arange(n)
    cur, lid_a, dp_a, w_a = src, lid, dport, w
    saved = cur.copy()
    h, next_save = 0, 1
    limit = 2 * f.n_switches + 4
    while act.size:                       # one iteration per hop
        out = flat[cur * width + lid_a].astype(np.int64)
        valid = out <= nports[cur]
        p = np.where(valid, fp[cur] + out, 0)
        q = np.where(valid & (out > 0), peer[p], -1)
        qq = np.maximum(q, 0)
        link = (q >= 0) & up[p] & up[qq]
        done = valid & (((out == 0) & (p == dp_a)) | ((out > 0) & link & (q == dp_a)))
        move = valid & (out > 0) & link & f.is_switch[qq] & ~done
        fail = ~done & ~move
        status[act[done]] = DELIVERED
        hops[act[done]] = h
        status[act[fail]] = NO_PATH
        if not move.any():
            break
        pm = p[move]
        load += np.bincount(pm, weights=w_a[move], minlength=f.n_ports)
        act, lid_a, dp_a, w_a = act[move], lid_a[move], dp_a[move], w_a[move]
        cur = f.switch_of_node[f.node_of_port[qq[move]]].astype(np.int64)
        saved = saved[move]
        h += 1
        if record:
            steps.append((act, cur))
        # Brent's cycle check: a deterministic table that revisits a switch loops
        loop = cur == saved
        if h >= limit:
            loop[:] = True
        if loop.any():
            status[act[loop]] = LOOP
            keep = ~loop
            act, lid_a, dp_a, w_a, cur, saved = (act[keep], lid_a[keep], dp_a[keep],
                                                 w_a[keep], cur[keep], saved[keep])
        if h == next_save:
            saved = cur.copy()
            next_save *= 2
    path = None
    if record:
        path = np.full((n, len(steps) + 1), -1, dtype=np.int32)
        path[:, 0] = src
        for i, (a, c) in enumerate(steps, start=1):
            path[a, i] = c
    return Walk(status, hops, load, path)


def route_metrics(fabric, lft: np.ndarray, *, up: np.ndarray | None = None,
                  lid: np.ndarray | None = None, port_load: bool = False) -> dict:
    """Reachability, hop counts and link loads of every CA-to-CA LID pair.

    A pair is (source CA port with a LID, destination CA LID) on different
    nodes. Pairs are walked as aggregates (source switch, destination LID)
    weighted by the number of source CA ports cabled to that switch.

    Parameters
    ----------
    fabric : FabricIndex
    lft : ndarray of uint8, (n_switches, lft_size)
    up : ndarray of bool, (n_ports,), optional
        Usable ports (default: every cabled link).
    lid : ndarray of uint16, (n_ports,), optional
        Port LIDs (default: ``fabric.default_lid``).
    port_load : bool
        Also return the per-port loads (an array; the rest of the dict is
        plain JSON-ready numbers).

    Returns
    -------
    dict
        ``pairs`` (all CA-to-CA pairs), ``routed`` (delivered),
        ``unreachable`` (no route: a 255 entry, a down link, a wrong
        delivery, or a source CA whose own link is down; a CA cabled to
        another CA reaches only that CA), ``loops`` (the
        walk revisits a switch), ``max_hops`` / ``mean_hops`` (links from
        source CA to destination CA, both CA links included, so two CAs on
        one switch are 2 hops apart; over routed pairs), ``link_load``
        (``{"max", "mean", "links"}``: routes crossing each usable directed
        switch-to-switch link) and, on request, ``port_load`` (ndarray of
        int64, (n_ports,): routes sent out of each switch port toward a switch).
    """
    f = fabric
    up = (f.peer_of_port >= 0) if up is None else np.asarray(up, dtype=bool)
    port_lid = f.default_lid if lid is None else np.asarray(lid)
    ca = np.flatnonzero(~f.is_switch & (port_lid > 0))
    lids = port_lid[ca].astype(np.int64)
    node = f.node_of_port[ca].astype(np.int64)
    peer = f.peer_of_port[ca].astype(np.int64)
    pe = np.maximum(peer, 0)
    attached = (peer >= 0) & up[ca] & up[pe] & f.is_switch[pe]
    src_sw = np.where(attached, f.switch_of_node[f.node_of_port[pe]], -1).astype(np.int64)

    n_dest = lids.size
    same_node = np.bincount(node, minlength=f.n_nodes)[node]   # LIDs on the same node, per CA port
    pairs = int((n_dest - same_node).sum())
    unattached = int((n_dest - same_node)[~attached].sum())
    # two CAs cabled back to back reach each other (1 hop) without any LFT
    direct = (peer >= 0) & up[ca] & up[pe] & ~f.is_switch[pe] & (port_lid[pe] > 0)
    direct &= f.node_of_port[pe] != node
    n_direct = int(direct.sum())

    S, w_s = np.unique(src_sw[attached], return_counts=True)
    n_s = S.size
    # same-node pairs (source port a, destination d on a's node), as (S row, d) lists
    a_idx = np.flatnonzero(attached)
    order = np.argsort(node[a_idx], kind="stable")
    a_node = node[a_idx][order]
    a_srow = np.searchsorted(S, src_sw[a_idx][order])
    lo = np.searchsorted(a_node, node, side="left")
    hi = np.searchsorted(a_node, node, side="right")
    same_s, same_d = [], []
    for o in range(int((hi - lo).max(initial=0))):           # at most ports-per-node passes
        d = np.flatnonzero(hi - lo > o)
        same_s.append(a_srow[lo[d] + o])
        same_d.append(d)
    same_s = np.concatenate(same_s) if same_s else np.zeros(0, dtype=np.int64)
    same_d = np.concatenate(same_d) if same_d else np.zeros(0, dtype=np.int64)

    routed, loops = n_direct, 0
    unreachable = unattached - n_direct
    hop_sum, max_hops = n_direct, int(n_direct > 0)
    loads = np.zeros(f.n_ports, dtype=np.float64)
    # blocks of destinations bound the walk's memory (~_AGG_BLOCK aggregates at a time)
    step = max(1, _AGG_BLOCK // max(n_s, 1))
    for d0 in range(0, n_dest, step):                       # loop over destination blocks
        nd = min(step, n_dest - d0)
        weight = np.repeat(w_s.astype(np.int64), nd)
        m = (same_d >= d0) & (same_d < d0 + nd)
        np.subtract.at(weight, same_s[m] * nd + (same_d[m] - d0), 1)
        keep = weight > 0
        agg_src = np.repeat(S, nd)[keep]
        agg_lid = np.tile(lids[d0:d0 + nd], n_s)[keep]
        weight = weight[keep]
        res = walk(f, lft, agg_src, agg_lid, weight, up=up, lid=port_lid)
        ok = res.status == DELIVERED
        routed += int(weight[ok].sum())
        loops += int(weight[res.status == LOOP].sum())
        unreachable += int(weight[res.status == NO_PATH].sum())
        if ok.any():
            hops = res.hops[ok].astype(np.int64) + 2
            hop_sum += int((hops * weight[ok]).sum())
            max_hops = max(max_hops, int(hops.max()))
        loads += res.port_load
    loads = np.rint(loads).astype(np.int64)
    pp = f.peer_of_port.astype(np.int64)
    ppe = np.maximum(pp, 0)
    sw_link = f.is_switch & (pp >= 0) & f.is_switch[ppe] & up & up[ppe]
    ll = loads[sw_link]
    out = {
        "pairs": pairs,
        "routed": routed,
        "unreachable": unreachable,
        "loops": loops,
        "max_hops": max_hops,
        "mean_hops": hop_sum / routed if routed else 0.0,
        "link_load": {"max": int(ll.max()) if ll.size else 0,
                      "mean": float(ll.mean()) if ll.size else 0.0,
                      "links": int(ll.size)},
    }
    if port_load:
        out["port_load"] = loads
    return out
