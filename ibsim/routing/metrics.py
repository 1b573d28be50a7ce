"""Route checks: reachability, hop counts and link loads of a set of LFTs.

:func:`route_metrics` walks every CA-to-CA LID pair with
:func:`~ibsim.routing.lftwalk.walk`, aggregated per source switch.
"""

from __future__ import annotations

import numpy as np

from .lftwalk import DELIVERED, LOOP, NO_PATH, Walk, walk

__all__ = ["walk", "Walk", "route_metrics", "DELIVERED", "NO_PATH", "LOOP"]

#: aggregates walked at once by route_metrics (bounds memory to a few hundred MB)
_AGG_BLOCK = 1 << 21


def route_metrics(fabric, lft: np.ndarray, *, up: np.ndarray | None = None,
                  lid: np.ndarray | None = None, port_load: bool = False) -> dict:
    """Reachability, hop counts and link loads of every CA-to-CA LID pair.

    A pair is (source CA port with a LID, destination CA LID) on different
    nodes. Pairs are walked as aggregates (source switch, destination LID)
    weighted by the number of source CA ports cabled to that switch.

    Parameters
    ----------
    fabric : Fabric
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
