"""``minhop``: OpenSM's default engine, minimum hops with port equalisation.

Every switch forwards each destination LID out of a port on a shortest path
(over usable links) to the switch the LID hangs off. Among equal-hop ports it
takes the one already carrying the fewest CA LIDs, ties to the lowest port
number, visiting destinations in OpenSM's order
(:func:`~ibsim.routing.graph.assign_least_loaded`), as OpenSM's
``osm_ucast_mgr`` and ``osm_switch_recommend_path`` do with LMC 0: the
tables equal OpenSM 3.3.23's entry for entry on any fabric.
"""

from __future__ import annotations

import numpy as np

from .graph import SwitchGraph, assign_least_loaded, candidates_toward, distances

__all__ = ["route_minhop", "min_hop_lfts"]


def min_hop_lfts(sg: SwitchGraph, lft: np.ndarray, *, only_switch_lids: bool = False,
                 load: np.ndarray | None = None) -> np.ndarray:
    """Fill ``lft`` with min-hop routes (in place) and return the port loads.

    Parameters
    ----------
    sg : SwitchGraph
    lft : ndarray of uint8, (n_sw, lft_size)
    only_switch_lids : bool
        Route only the switches' own LIDs (other engines use this for
        management traffic); CA LIDs are left untouched.
    load : ndarray of int32, (n_sw, n_slots), optional
        Starting per-port CA-LID counts (see ``assign_least_loaded``).

    Returns
    -------
    ndarray of int32, (n_sw, n_slots)
        CA LIDs routed per port.
    """
    targets = np.unique(sg.dest_target[sg.dest_target >= 0])
    nbr_sent = sg.sentinel_nbr()
    dist = distances(nbr_sent, targets)          # (n_targets, n_sw)
    row_of = np.full(sg.n_sw, -1, dtype=np.int64)
    row_of[targets] = np.arange(targets.size)

    def cand(ts: np.ndarray) -> np.ndarray:
        return candidates_toward(dist[row_of[ts]], nbr_sent)

    keep = sg.dest_is_switch if only_switch_lids else None
    return assign_least_loaded(sg, lft, cand, load, keep)


def route_minhop(sg: SwitchGraph, roots=None) -> np.ndarray:
    """Min-hop LFTs for every switch.

    Parameters
    ----------
    sg : SwitchGraph
        The fabric's switches, usable links and destination LIDs.
    roots : None
        Not used by this engine (must be None).

    Returns
    -------
    ndarray of uint8, (n_switches, lft_size)
        Output port per destination LID; 255 = no route; 0 at a switch's own LID.

    Notes
    -----
    Hop counts equal BFS distances over usable links. Cost: one batched BFS
    (levels x port slots x n_switches^2 int16 operations) plus one
    ``argmin`` over ``n_switches x n_slots`` per LID.
    """
    lft = sg.new_lft()
    min_hop_lfts(sg, lft)
    return lft
