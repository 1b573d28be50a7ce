"""``updn``: up*/down* routing (OpenSM's Up/Down engine), deadlock free on any topology.

Ranking. Roots are the switches given as node GUIDs, or, when none are
given, the switches farthest (in cabled switch hops) from any CA-bearing
switch: the spines of a 2-level fat tree, the cores of a 3-level one. With
no CA anywhere every switch is a root. A switch's rank is its BFS distance
from the nearest root over usable links. Switches are then totally ordered
by ``(rank, node GUID)``; a move from switch *a* to switch *b* is **up**
when *b* comes before *a* in that order and **down** otherwise. Because the
order is strict and total, the up moves form an acyclic graph, and so do the
down moves.

Routing rule (destination based, so it must hold for every packet whatever
its source). For a destination behind switch *t*:

1. a switch with a down-only path to *t* always forwards along a shortest
   down-only path (``dd`` = down-only distance);
2. any other switch forwards up, to an up neighbour whose own route (by
   these two rules) is shortest (``pd`` = policy distance).

Legality proof: a packet that has taken a down move sits on a switch *v*
with ``dd[v] = dd[u] - 1`` finite, so *v* applies rule 1 again; hence after
the first down move every move is down, and no route ever turns from down to
up. Termination: rule 1 strictly lowers ``dd``, rule 2 strictly lowers
``pd``. Within those rules the port is chosen by OpenSM's least-loaded
equalisation. On a fat tree with the default roots this gives exactly the
min-hop distances.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np

from ..errors import RoutingError
from .graph import INF, SwitchGraph, assign_least_loaded, bfs_levels, min_plus_one, relax

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
        up iff ``pos[b] < pos[a]``.
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


def _updn_distances(sg: SwitchGraph, pos: np.ndarray, targets: np.ndarray):
    """Down-only distances ``dd`` and policy distances ``pd``, both (n_targets, n_sw) int16."""
    n_sw = sg.n_sw
    has = sg.nbr >= 0
    npos = np.append(pos, -1)[np.where(has, sg.nbr, n_sw)]
    down = sg.sentinel_nbr(has & (npos > pos[:, None]))
    upm = sg.sentinel_nbr(has & (npos < pos[:, None]))
    s_down = np.flatnonzero((down < n_sw).any(axis=0))
    s_up = np.flatnonzero((upm < n_sw).any(axis=0))
    dd_out = np.empty((targets.size, n_sw), dtype=np.int16)
    pd_out = np.empty((targets.size, n_sw), dtype=np.int16)
    chunk = max(1, (1 << 24) // max(n_sw, 1))
    for a in range(0, targets.size, chunk):
        tg = targets[a:a + chunk]
        DD = np.full((n_sw + 1, tg.size), INF, dtype=np.int16)
        DD[tg, np.arange(tg.size)] = 0
        relax(DD, down, s_down)           # down-only distances
        has_down = DD[:n_sw] < INF
        PD = DD.copy()
        while True:                       # one iteration per up level
            new = np.where(has_down, DD[:n_sw], np.minimum(min_plus_one(PD, upm, s_up), INF))
            if np.array_equal(new, PD[:n_sw]):
                break
            PD[:n_sw] = new
        dd_out[a:a + tg.size] = DD[:n_sw].T
        pd_out[a:a + tg.size] = PD[:n_sw].T
    return dd_out, pd_out, down, upm


def route_updn(sg: SwitchGraph, roots=None) -> np.ndarray:
    """Up*/down* LFTs for every switch.

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
    """
    order = _order(sg, roots)
    targets = np.unique(sg.dest_target[sg.dest_target >= 0])
    dd, pd, down, upm = _updn_distances(sg, order.pos, targets)
    row_of = np.full(sg.n_sw, -1, dtype=np.int64)
    row_of[targets] = np.arange(targets.size)

    def cand(ts: np.ndarray) -> np.ndarray:
        return np.stack([_cand_one(row_of[t]) for t in ts.tolist()])

    def _cand_one(i: int) -> np.ndarray:
        d = dd[i].astype(np.int32)
        p = pd[i].astype(np.int32)
        dext = np.append(dd[i], INF)
        pext = np.append(pd[i], INF)
        go_down = (d > 0) & (d < INF)
        c_down = dext[down] == (d - 1)[:, None]
        c_up = (pext[upm] == (p - 1)[:, None]) & (p < INF)[:, None]
        return np.where(go_down[:, None], c_down, c_up & (d >= INF)[:, None])

    lft = sg.new_lft()
    assign_least_loaded(sg, lft, cand)
    return lft
