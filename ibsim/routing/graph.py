"""The switch-level view every routing engine works on, and the shared kernels.

:class:`SwitchGraph` turns a compiled fabric plus a link-up mask into dense
``(n_switches, n_slots)`` arrays: slot *k* of switch row *s* is physical port
*k* (slot 0 is the management port), ``nbr[s, k]`` is the switch row across
that port's link when the link is usable. It also lists the destination LIDs
with the switch and port through which each one leaves the fabric.

Kernels here are vectorised over switches; the only Python loops run over
BFS levels, port slots, destination switches or single destination LIDs
(never over ports or flows).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import RoutingError
from ..fabric.index import lft_width, lid_to_port
from ..fabric.state import NO_ROUTE

__all__ = ["SwitchGraph", "INF", "bfs_levels", "distances", "min_plus_one",
           "assign_least_loaded", "candidates_toward"]

#: "unreachable" in the int16 distance matrices (far above any fabric diameter)
INF = np.int16(0x3FFF)
#: column budget of one distance chunk, in matrix entries (bounds memory at ~64 MB)
_CHUNK_ENTRIES = 1 << 25


class SwitchGraph:
    """Switch-to-switch adjacency and destination table of a fabric.

    Parameters
    ----------
    fabric : FabricIndex
        The compiled fabric (read only; nothing is mutated).
    up : ndarray of bool, shape (n_ports,), optional
        Ports whose link may carry traffic. A link is usable only when both
        of its ends are up. Default: every cabled link.
    lid : ndarray of uint16, shape (n_ports,), optional
        Port LIDs to route (default: ``fabric.default_lid``).
    lft_size : int, optional
        LFT entries per switch (default: the LIDs' 64-entry blocks).

    Attributes
    ----------
    n_sw, n_slots : int
        Switch rows and port slots (largest switch port count + 1).
    port : ndarray of int64, (n_sw, n_slots)
        Port index of each slot, -1 past the switch's last port.
    nbr : ndarray of int32, (n_sw, n_slots)
        Switch row across a usable switch-to-switch link, else -1.
    cabled_nbr : ndarray of int32, (n_sw, n_slots)
        Same over every cable, whatever its state (fabric structure).
    ca_port : ndarray of int64, (n_sw, n_slots)
        CA/router port index cabled to this slot, else -1.
    dest_lid, dest_port, dest_target, dest_exit : ndarray, (n_dest,)
        Every assigned LID (ascending), the port that owns it, the switch row
        where it leaves the switch fabric (-1 when it cannot be reached:
        a CA whose own link is down or cabled to another CA) and the output
        port there (0 for a switch's own LID).
    dest_is_switch : ndarray of bool, (n_dest,)
    """

    def __init__(self, fabric, up: np.ndarray | None = None, *, lid: np.ndarray | None = None,
                 lft_size: int | None = None):
        f = fabric
        self.fabric = f
        self.lid = f.default_lid if lid is None else np.asarray(lid)
        self.lft_size = lft_width(self.lid) if lft_size is None else int(lft_size)
        if up is None:
            up = f.peer_of_port >= 0
        up = np.asarray(up)
        if up.dtype != bool or up.shape != (f.n_ports,):
            raise RoutingError(f"up mask must be a bool array of shape ({f.n_ports},) "
                               f"(one entry per port), got {up.dtype} {up.shape}")
        self.up = up
        n_sw = f.n_switches
        self.n_sw = n_sw
        sw_nodes = f.node_of_switch.astype(np.int64)
        nports = f.node_nports[sw_nodes].astype(np.int64)
        self.nports = nports
        n_slots = int(nports.max()) + 1 if n_sw else 1
        self.n_slots = n_slots
        k = np.arange(n_slots, dtype=np.int64)
        valid = k[None, :] <= nports[:, None]
        port = np.where(valid, f.first_port[sw_nodes][:, None] + k[None, :], -1)
        pp = np.maximum(port, 0)
        peer = np.where(valid, f.peer_of_port[pp], -1).astype(np.int64)
        cabled = peer >= 0
        pe = np.maximum(peer, 0)
        usable = cabled & up[pp] & up[pe]
        peer_node = f.node_of_port[pe]
        peer_is_sw = f.node_is_switch[peer_node]
        cabled_nbr = np.where(cabled & peer_is_sw, f.switch_of_node[peer_node], -1).astype(np.int32)
        self.port = port
        self.cabled_nbr = cabled_nbr
        self.nbr = np.where(usable, cabled_nbr, -1).astype(np.int32)
        self.ca_port = np.where(cabled & ~peer_is_sw, peer, -1)
        self.usable = usable
        self._dests(f, up)

    def _dests(self, f, up: np.ndarray) -> None:
        l2p = lid_to_port(f, self.lid)
        lids = np.flatnonzero(l2p >= 0)
        dport = l2p[lids]
        is_sw = f.is_switch[dport]
        target = np.full(lids.size, -1, dtype=np.int64)
        exitp = np.full(lids.size, NO_ROUTE, dtype=np.int64)
        target[is_sw] = f.switch_of_node[f.node_of_port[dport[is_sw]]]
        exitp[is_sw] = 0
        ca = np.flatnonzero(~is_sw)
        p = f.peer_of_port[dport[ca]].astype(np.int64)
        pe = np.maximum(p, 0)
        ok = (p >= 0) & up[dport[ca]] & up[pe] & f.is_switch[pe]
        target[ca[ok]] = f.switch_of_node[f.node_of_port[pe[ok]]]
        exitp[ca[ok]] = f.port_num[pe[ok]]
        self.dest_lid = lids
        self.dest_port = dport
        self.dest_target = target
        self.dest_exit = exitp
        self.dest_is_switch = is_sw

    # ------------------------------------------------------------ helpers
    def sentinel_nbr(self, allowed: np.ndarray | None = None) -> np.ndarray:
        """``nbr`` with unusable (or not ``allowed``) moves pointing at row ``n_sw``.

        Row ``n_sw`` is the extra "nowhere" row of the distance matrices,
        which always holds :data:`INF`.
        """
        ok = self.nbr >= 0
        if allowed is not None:
            ok &= allowed
        return np.where(ok, self.nbr, self.n_sw).astype(np.int64)

    def new_lft(self) -> np.ndarray:
        """A fresh all-255 LFT, (n_switches, lft_size), own LIDs set to 0."""
        lft = np.full((self.n_sw, self.lft_size), NO_ROUTE, dtype=np.uint8)
        sw = self.dest_is_switch
        lft[self.dest_target[sw], self.dest_lid[sw]] = 0
        return lft

    def groups(self, keep: np.ndarray | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Reachable destinations grouped by target switch.

        Parameters
        ----------
        keep : ndarray of bool, (n_dest,), optional
            Only these destinations.

        Returns
        -------
        list of (target row, LIDs, is_switch)
            In target-row order; LIDs ascending within a group.
        """
        m = self.dest_target >= 0
        if keep is not None:
            m &= keep
        tg = self.dest_target[m]
        lids = self.dest_lid[m]
        is_sw = self.dest_is_switch[m]
        order = np.argsort(tg, kind="stable")
        tg, lids, is_sw = tg[order], lids[order], is_sw[order]
        cuts = np.flatnonzero(np.diff(tg)) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [tg.size]))
        return [(int(tg[a]), lids[a:b], is_sw[a:b]) for a, b in zip(starts, ends) if b > a]

    def osm_order(self, keep: np.ndarray | None = None) -> tuple[list, np.ndarray, np.ndarray]:
        """Reachable destinations in the order OpenSM's unicast manager routes them.

        OpenSM (``ucast_mgr_build_lfts``) first lists the end ports (CAs,
        routers) switch by switch: switches in descending number of end-port
        links, ties in the order of its switch table (ascending node GUID in
        network byte order, i.e. of the byte-swapped GUID), each switch's end
        ports by its own port number. Every other port follows in port GUID
        table order; only switches' port 0 among those is routable, and
        their LIDs do not load the ports, so their order does not matter.

        Parameters
        ----------
        keep : ndarray of bool, (n_dest,), optional
            Only these destinations.

        Returns
        -------
        ca_groups : list of (target row, ndarray of dest indices)
            CA/router destinations grouped by the switch they hang off, in
            routing order (within a group by exit port).
        sw_targets, sw_idx : ndarray of int64
            The switch LIDs (dest indices) and their own switch rows.
        """
        m = self.dest_target >= 0
        if keep is not None:
            m &= keep
        ca = np.flatnonzero(m & ~self.dest_is_switch)
        sw = np.flatnonzero(m & self.dest_is_switch)
        end_links = ((self.ca_port >= 0) & self.usable).sum(axis=1)
        guid = self.fabric.node_guid[self.fabric.node_of_switch].astype(np.uint64)
        sw_rank = np.empty(self.n_sw, dtype=np.int64)
        sw_rank[np.lexsort((guid.byteswap(), -end_links))] = np.arange(self.n_sw)
        tg = self.dest_target[ca]
        ca = ca[np.lexsort((self.dest_exit[ca], sw_rank[tg]))]
        return _split(self.dest_target, ca), self.dest_target[sw], sw

    def switch_label(self, row: int) -> str:
        """``'leaf03' (0x0002c90302000002)`` for error messages."""
        f = self.fabric
        node = int(f.node_of_switch[row])
        return f"{f.node_desc[node]!r} (0x{int(f.node_guid[node]):016x})"


def _split(target: np.ndarray, idx: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Cut ``idx`` (ordered) into runs of equal ``target[idx]``."""
    tg = target[idx]
    cuts = np.flatnonzero(np.diff(tg)) + 1
    return [(int(tg[a]), idx[a:b]) for a, b in zip(np.r_[0, cuts], np.r_[cuts, idx.size]) if b > a]


def bfs_levels(nbr_sent: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Hop distance from the nearest seed switch, for every switch.

    Parameters
    ----------
    nbr_sent : ndarray of int64, (n_sw, n_slots)
        Neighbour rows, ``n_sw`` where there is no move.
    seeds : ndarray of int or bool
        Seed switch rows (or a mask over rows).

    Returns
    -------
    ndarray of int16, (n_sw,)
        Hops; :data:`INF` when unreachable.
    """
    n_sw = nbr_sent.shape[0]
    d = np.full(n_sw + 1, INF, dtype=np.int16)
    d[:n_sw][seeds] = 0
    level = 0
    frontier = d[:n_sw] == 0
    while frontier.any():
        level += 1
        reach = np.zeros(n_sw + 1, dtype=bool)
        # moves are symmetric (cables), so "has a neighbour on the frontier"
        # is the same as "is a neighbour of the frontier"
        f_ext = np.append(frontier, False)
        reach[:n_sw] = f_ext[nbr_sent].any(axis=1)
        new = reach[:n_sw] & (d[:n_sw] == INF)
        d[:n_sw][new] = level
        frontier = new
    return d[:n_sw]


def min_plus_one(D: np.ndarray, nbr_sent: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """``1 + min_k D[nbr_sent[:, k]]`` row by row.

    Parameters
    ----------
    D : ndarray of int16, (n_sw + 1, C)
        Distances to C targets; row ``n_sw`` must hold :data:`INF`.
    nbr_sent : ndarray of int64, (n_sw, n_slots)
    slots : ndarray of int
        Slot columns that hold at least one move.

    Returns
    -------
    ndarray of int16, (n_sw, C)
        Saturates at ``INF + 1`` (still "unreachable" for any comparison).
    """
    n_sw = nbr_sent.shape[0]
    best = np.full((n_sw, D.shape[1]), INF, dtype=np.int16)
    for k in slots:                      # loop over port slots, numpy over switches x targets
        np.minimum(best, D[nbr_sent[:, k]], out=best)
    best += 1
    return best


def _active_slots(nbr_sent: np.ndarray) -> np.ndarray:
    return np.flatnonzero((nbr_sent < nbr_sent.shape[0]).any(axis=0))


def distances(nbr_sent: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """All-to-targets hop distances by synchronous relaxation (batched BFS).

    Parameters
    ----------
    nbr_sent : ndarray of int64, (n_sw, n_slots)
        Allowed moves ``s -> nbr_sent[s, k]``; ``n_sw`` for none.
    targets : ndarray of int
        Target switch rows.

    Returns
    -------
    ndarray of int16, (len(targets), n_sw)
        ``out[i, s]`` = fewest allowed moves from ``s`` to ``targets[i]``,
        :data:`INF` when there is no such path. Rows are contiguous so that
        one target's column of distances is cheap to read.
    """
    n_sw = nbr_sent.shape[0]
    targets = np.asarray(targets, dtype=np.int64)
    out = np.empty((targets.size, n_sw), dtype=np.int16)
    slots = _active_slots(nbr_sent)
    chunk = max(1, _CHUNK_ENTRIES // max(n_sw, 1))
    for a in range(0, targets.size, chunk):
        tg = targets[a:a + chunk]
        D = np.full((n_sw + 1, tg.size), INF, dtype=np.int16)
        D[tg, np.arange(tg.size)] = 0
        relax(D, nbr_sent, slots)
        out[a:a + tg.size] = D[:n_sw].T
    return out


def relax(D: np.ndarray, nbr_sent: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Bellman-Ford to a fixed point, in place: ``D[s] = min(D[s], 1 + min D[allowed nbr])``.

    ``D`` has ``n_sw + 1`` rows (the last is the sentinel, kept at INF) and one
    column per target; one iteration per BFS level. Returns ``D``.
    """
    n_sw = nbr_sent.shape[0]
    while True:
        new = np.minimum(D[:n_sw], min_plus_one(D, nbr_sent, slots))
        np.minimum(new, INF, out=new)
        if np.array_equal(new, D[:n_sw]):
            return D
        D[:n_sw] = new


def candidates_toward(dist: np.ndarray, nbr_sent: np.ndarray) -> np.ndarray:
    """Slots whose neighbour is one hop closer to the target.

    Parameters
    ----------
    dist : ndarray of int16, (n_sw,) or (n_targets, n_sw)
        Distance of every switch to a target (or to each of several) along
        the allowed moves.
    nbr_sent : ndarray of int64, (n_sw, n_slots)
        The same allowed moves (``n_sw`` for none).

    Returns
    -------
    ndarray of bool, (n_sw, n_slots) or (n_targets, n_sw, n_slots)
        False on the whole row of the target itself and of unreachable switches.
    """
    pad = np.full(dist.shape[:-1] + (1,), INF, dtype=dist.dtype)
    ext = np.concatenate((dist, pad), axis=-1)
    d = dist[..., :, None].astype(np.int32)
    return (ext[..., nbr_sent] == d - 1) & (d > 0) & (d < INF)


def _fill_group(cand: np.ndarray, lids: np.ndarray, lft: np.ndarray, load: np.ndarray) -> None:
    """Route the CA ``lids`` of one target switch, in order, on every switch at once.

    A switch with one candidate sends them all there; the others take the
    least-loaded candidate LID by LID (ties to the lowest port), on a matrix
    compacted to their candidate ports.
    """
    n = cand.sum(axis=1)
    one = np.flatnonzero(n == 1)
    if one.size:
        slot = cand[one].argmax(axis=1)
        lft[np.ix_(one, lids)] = slot[:, None]
        load[one, slot] += lids.size
    many = np.flatnonzero(n > 1)
    if many.size == 0:
        return
    c = cand[many]
    width = int(n[many].max())
    slots = np.argsort(~c, axis=1, kind="stable")[:, :width]   # candidate ports first, ascending
    rows = np.arange(many.size)[:, None]
    ok = c[rows, slots]
    ld = np.where(ok, load[many[:, None], slots], np.int32(1 << 30))
    r = rows[:, 0]
    picks = np.empty((many.size, lids.size), dtype=np.int64)
    for j in range(lids.size):                   # loop over single LIDs
        k = ld.argmin(axis=1)
        picks[:, j] = k
        ld[r, k] += 1
    lft[np.ix_(many, lids)] = slots[rows, picks]
    load[many[:, None], slots] = np.where(ok, ld, load[many[:, None], slots])


def assign_least_loaded(sg: SwitchGraph, lft: np.ndarray,
                        candidates: Callable[[int], np.ndarray],
                        load: np.ndarray | None = None,
                        keep: np.ndarray | None = None) -> np.ndarray:
    """Fill ``lft`` choosing, per destination LID, the least-loaded candidate port.

    This is OpenSM's port equalisation (``ucast_mgr_build_lfts`` and
    ``osm_switch_recommend_path`` with LMC 0, no ``port_shifting``, no
    ``scatter_ports``): every switch sends each destination out of the
    candidate port that already carries the fewest CA LIDs, ties going to the
    lowest port number. Switches do not influence each other (each counts
    only its own ports), so all of them are handled at once, one destination
    after the other in OpenSM's order (:meth:`SwitchGraph.osm_order`): CA
    LIDs first, each one counted on the port it was given; then switch LIDs,
    which see the final counts and are not counted themselves (OpenSM's
    ``port_profile_switch_nodes`` off).

    Parameters
    ----------
    sg : SwitchGraph
    lft : ndarray of uint8, (n_sw, lft_size)
        Written in place (columns of routable LIDs).
    candidates : callable
        ``candidates(target_rows) -> bool (len(target_rows), n_sw, n_slots)``:
        allowed output slots per switch toward each target switch (the
        target's own row is ignored).
    load : ndarray of int32, (n_sw, n_slots), optional
        Starting per-port LID counts; updated in place.
    keep : ndarray of bool, (n_dest,), optional
        Route only these destinations (``sg.dest_*`` order).

    Returns
    -------
    ndarray of int32, (n_sw, n_slots)
        The per-port CA-LID counts after assignment.
    """
    if load is None:
        load = np.zeros((sg.n_sw, sg.n_slots), dtype=np.int32)
    big = np.int32(1 << 30)
    ca_groups, sw_targets, sw_idx = sg.osm_order(keep)
    chunk = max(1, _CHUNK_ENTRIES // 4 // max(sg.n_sw * sg.n_slots, 1))
    for a in range(0, len(ca_groups), chunk):    # loop over chunks of destination switches
        part = ca_groups[a:a + chunk]
        cands = candidates(np.array([t for t, _ in part], dtype=np.int64))
        for (t, idx), cand in zip(part, cands):  # loop over destination switches
            lids = sg.dest_lid[idx]
            lft[t, lids] = sg.dest_exit[idx]
            cand[t] = False
            _fill_group(cand, lids, lft, load)
    # switch LIDs: final counts, not counted; batches of targets at once
    lft[sw_targets, sg.dest_lid[sw_idx]] = 0
    for a in range(0, sw_targets.size, chunk):   # loop over chunks of switch LIDs
        ts = sw_targets[a:a + chunk]
        cand = candidates(ts)
        cand[np.arange(ts.size), ts] = False
        choice = np.where(cand, load[None], big).argmin(axis=2)
        i, r = np.nonzero(cand.any(axis=2))
        lft[r, sg.dest_lid[sw_idx[a:a + chunk]][i]] = choice[i, r]
    return load
