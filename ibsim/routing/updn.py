"""``updn``: up*/down* routing, as OpenSM's Up/Down engine builds it.

Ranking. Roots are the switches given as node GUIDs (OpenSM's
``root_guid_file``), or, when none are given, the switches farthest (in
cabled switch hops) from any CA-bearing switch: the spines of a 2-level fat
tree, the cores of a 3-level one; with no CA anywhere every switch is a
root. (OpenSM's own detection, used when it has no root file, is a hop
histogram heuristic instead; give the roots to both to compare.) A switch's
rank is its BFS distance from the nearest root over usable links.

Direction (OpenSM's ``updn_get_dir``). A move toward a lower rank is up,
toward a higher rank down; between equal ranks it is up toward the smaller
node GUID; a move between two roots counts as down both ways, so a path
may cross from root to root. Switches totally ordered by ``(rank, GUID)``
(:attr:`UpDownOrder.pos`) give the same directions for every other move.

Hop tables (``updn_bfs_by_node``). For each destination switch a
breadth-first search runs outwards; a switch first reached against the
packet's "up" direction may only be left that way, so the path a packet
takes is up* then down*. As in OpenSM the search keeps one direction per
switch, overwritten when a switch is queued again; this function
reproduces that search step for step (in lock step for all destinations),
so it gives OpenSM's tables on any topology, including the rare cases where
that overwrite lets a route turn down then up.

Port choice. Every switch forwards each LID out of a port with the least
hops in that table, the least-loaded one in OpenSM's order
(:func:`~ibsim.routing.graph.assign_least_loaded`), exactly as ``minhop``.
A switch with no legal path gets 255 (e.g. root to root LIDs on a fat
tree, as OpenSM without ``connect_roots``).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np

from ..errors import RoutingError
from .graph import INF, SwitchGraph, assign_least_loaded, bfs_levels

__all__ = ["route_updn", "updn_order", "UpDownOrder", "detect_roots"]


class UpDownOrder(NamedTuple):
    """The up/down ranking of a fabric's switches.

    Attributes
    ----------
    roots : ndarray of int64
        Root switch rows.
    rank : ndarray of int16, (n_switches,)
        Hops from the nearest root over usable links (:data:`~ibsim.routing.graph.INF`
        when cut off from every root).
    pos : ndarray of int64, (n_switches,)
        Position in the total order by ``(rank, GUID)``; a move ``a -> b`` is
        up iff ``pos[b] < pos[a]``, except between two roots (down both ways).
    """

    roots: np.ndarray
    rank: np.ndarray
    pos: np.ndarray


def detect_roots(sg: SwitchGraph) -> np.ndarray:
    """Switch rows farthest (cabled hops) from the CA-bearing switches.

    Returns
    -------
    ndarray of int64
        Every switch when no switch has a CA cabled to it.
    """
    leaves = (sg.ca_port >= 0).any(axis=1)
    if not leaves.any():
        return np.arange(sg.n_sw, dtype=np.int64)
    cabled = np.where(sg.cabled_nbr >= 0, sg.cabled_nbr, sg.n_sw).astype(np.int64)
    lev = bfs_levels(cabled, leaves)
    top = lev[lev < INF].max()
    return np.flatnonzero(lev == top).astype(np.int64)


def _root_rows(sg: SwitchGraph, roots: Iterable[int]) -> np.ndarray:
    f = sg.fabric
    rows = []
    for g in roots:
        try:
            node = f.node_index[int(g)]
        except (KeyError, TypeError, ValueError):
            raise RoutingError(f"updn root {g!r} is not the node GUID of any node in the fabric") from None
        row = int(f.switch_of_node[node])
        if row < 0:
            raise RoutingError(f"updn root 0x{int(g):016x} ({f.node_desc[node]!r}) is not a switch")
        rows.append(row)
    if not rows:
        raise RoutingError("updn roots= is empty; give at least one switch GUID or None to detect them")
    return np.unique(np.array(rows, dtype=np.int64))


def _order(sg: SwitchGraph, roots) -> UpDownOrder:
    root_rows = detect_roots(sg) if roots is None else _root_rows(sg, roots)
    rank = bfs_levels(sg.sentinel_nbr(), root_rows)
    guid = sg.fabric.node_guid[sg.fabric.node_of_switch]
    order = np.lexsort((guid, rank))
    pos = np.empty(sg.n_sw, dtype=np.int64)
    pos[order] = np.arange(sg.n_sw)
    return UpDownOrder(root_rows, rank, pos)


def updn_order(fabric, *, up: np.ndarray | None = None, roots=None) -> UpDownOrder:
    """The ranking ``route_updn`` uses (for checks and plots).

    Parameters
    ----------
    fabric : FabricIndex
    up : ndarray of bool, (n_ports,), optional
        Usable ports (default: every cabled link).
    roots : iterable of int, optional
        Root switch node GUIDs; detected when None.
    """
    return _order(SwitchGraph(fabric, up), roots)


#: "no path" in the hop tables (OpenSM's OSM_NO_PATH)
_NO_PATH = 255


class _Moves(NamedTuple):
    """Static per-slot data of the switch-to-switch moves."""
    nbr: np.ndarray      # (n_sw, n_slots) int64: switch row across the slot, n_sw for none
    rslot: np.ndarray    # (n_sw, n_slots) int64: port number at the neighbour
    up: np.ndarray       # (n_sw, n_slots) bool: the move away from the destination is "up"
    first: np.ndarray    # (n_sw, n_slots) bool: first slot to that neighbour (parallel cables)


def _moves(sg: SwitchGraph, rank: np.ndarray) -> _Moves:
    f = sg.fabric
    n_sw = sg.n_sw
    has = sg.nbr >= 0
    nbr = np.where(has, sg.nbr, n_sw).astype(np.int64)
    peer = f.peer_of_port[np.maximum(sg.port, 0)]
    rslot = np.where(has, f.port_num[np.maximum(peer, 0)], 0).astype(np.int64)
    guid = f.node_guid[f.node_of_switch].astype(np.uint64)
    r_ext = np.append(rank.astype(np.int64), -1)
    g_ext = np.append(guid, np.uint64(0))
    ru, rv = rank.astype(np.int64)[:, None], r_ext[nbr]
    gu, gv = guid[:, None], g_ext[nbr]
    # OpenSM's updn_get_dir: two roots -> up; lower rank -> down; higher -> up;
    # equal rank: up towards the smaller GUID
    up = ((ru == 0) & (rv == 0)) | (ru > rv) | ((ru == rv) & (gu > gv))
    up &= has
    order = np.argsort(nbr, axis=1, kind="stable")
    srt = np.take_along_axis(nbr, order, axis=1)
    firsts = np.ones_like(srt, dtype=bool)
    firsts[:, 1:] = srt[:, 1:] != srt[:, :-1]
    first = np.zeros_like(firsts)
    np.put_along_axis(first, order, firsts, axis=1)
    return _Moves(nbr, rslot, up, first & has)


def _updn_bfs(mv: _Moves, targets: np.ndarray) -> np.ndarray:
    """OpenSM's up/down hop tables for a batch of destination switches.

    One breadth-first search per destination (``updn_bfs_by_node``), all
    run in lock step: step *i* takes the *i*-th queue entry of every
    destination. From the destination outwards, a switch that was reached
    by a "down" move may only make "down" moves; a neighbour's port toward
    the switch gets ``least hops + 1`` when that is lower than what it
    holds; a neighbour not waiting in the queue is appended with the
    direction of that move (its direction is overwritten when it is queued
    again, as OpenSM does).

    Returns
    -------
    ndarray of uint8, (len(targets), n_sw, n_slots)
        Hops from each switch out of each port to each target switch
        (:data:`_NO_PATH` for none; slot 0 is 0 at the target itself).
    """
    nbr, rslot, up_mv, first = mv
    n_sw, n_slots = nbr.shape
    nt = targets.size
    H = np.full((nt, n_sw + 1, n_slots), _NO_PATH, dtype=np.uint8)
    tix = np.arange(nt)
    H[tix, targets, 0] = 0
    least = np.full((nt, n_sw + 1), _NO_PATH, dtype=np.uint8)
    least[tix, targets] = 0
    down = np.zeros((nt, n_sw + 1), dtype=bool)      # direction of the last enqueue
    queued = np.zeros((nt, n_sw + 1), dtype=bool)
    cap = 2 * n_sw + 2
    queue = np.zeros((nt, cap), dtype=np.int64)
    queue[:, 0] = targets
    head = np.zeros(nt, dtype=np.int64)
    tail = np.ones(nt, dtype=np.int64)
    while True:                                        # loop over queue positions
        a = np.flatnonzero(head < tail)
        if a.size == 0:
            return H[:, :n_sw]
        u = queue[a, head[a]]
        head[a] += 1
        queued[a, u] = False
        nb = nbr[u]                                    # (A, n_slots)
        ok = up_mv[u] & down[a, u][:, None]
        ok = ~ok & (nb < n_sw)
        hop = least[a, u].astype(np.int16) + 1
        ar = a[:, None]
        cur = H[ar, nb, rslot[u]]
        imp = ok & (hop[:, None] < cur)
        if not imp.any():
            continue
        ai, ki = np.nonzero(imp)
        rows, rem, rs = a[ai], nb[ai, ki], rslot[u[ai], ki]
        val = hop[ai].astype(np.uint8)
        H[rows, rem, rs] = val
        np.minimum.at(least, (rows, rem), val)
        enq = imp & first[u] & ~queued[ar, nb]
        if not enq.any():
            continue
        n_new = enq.sum(axis=1)
        need = int((tail[a] + n_new).max())
        if need > queue.shape[1]:
            queue = np.concatenate((queue, np.zeros((nt, max(need, cap) - queue.shape[1] + cap),
                                                   dtype=np.int64)), axis=1)
        pos = tail[a][:, None] + np.cumsum(enq, axis=1) - 1
        ei, ek = np.nonzero(enq)
        r2, v2 = a[ei], nb[ei, ek]
        queue[r2, pos[ei, ek]] = v2
        down[r2, v2] = ~up_mv[u[ei], ek]
        queued[r2, v2] = True
        tail[a] += n_new


def route_updn(sg: SwitchGraph, roots=None) -> np.ndarray:
    """Up*/down* LFTs for every switch, as OpenSM's ``updn`` builds them.

    Parameters
    ----------
    sg : SwitchGraph
        The fabric's switches, usable links and destination LIDs.
    roots : iterable of int, optional
        Root switch node GUIDs; detected when None (see the module docstring).

    Returns
    -------
    ndarray of uint8, (n_switches, lft_size)
        Output port per destination LID; 255 = no legal route.

    Raises
    ------
    RoutingError
        When a root GUID is unknown or not a switch.

    Notes
    -----
    Cost: one lock-step breadth-first search per destination switch
    (queue positions x numpy work over destinations x port slots), in
    batches that bound the hop tables to about 64 MB, then OpenSM's port
    equalisation on the candidate ports (least hops in the table).
    """
    order = _order(sg, roots)
    targets = np.unique(sg.dest_target[sg.dest_target >= 0])
    mv = _moves(sg, order.rank)
    row_of = np.full(sg.n_sw, -1, dtype=np.int64)
    row_of[targets] = np.arange(targets.size)
    n_bytes = (sg.n_slots + 7) // 8
    packed = np.empty((targets.size, sg.n_sw, n_bytes), dtype=np.uint8)
    chunk = max(1, (1 << 26) // max(sg.n_sw * sg.n_slots, 1))
    for a in range(0, targets.size, chunk):            # loop over batches of destinations
        H = _updn_bfs(mv, targets[a:a + chunk])
        least = H.min(axis=2, keepdims=True)
        cand = (H == least) & (least < _NO_PATH)
        cand[:, :, 0] = False
        packed[a:a + chunk] = np.packbits(cand, axis=2)

    def cand(ts: np.ndarray) -> np.ndarray:
        return np.unpackbits(packed[row_of[ts]], axis=2, count=sg.n_slots).view(bool)

    lft = sg.new_lft()
    assign_least_loaded(sg, lft, cand)
    return lft
