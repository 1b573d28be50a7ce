"""The one LFT walker: flows followed hop by hop through a set of LFTs at once.

:func:`walk` follows any number of (source switch, destination LID) flows
through a set of LFTs at once, one hop per iteration ("loops over hops
only; never over ports or flows"), and reports delivery, switch hops, loops,
the load each switch port puts on its link and, on request, the switches
visited or the ports transmitted on. Route checks
(:func:`~ibsim.routing.metrics.route_metrics`) and the engine's paths
(:func:`~ibsim.engine.flows.walk_paths`) are both callers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..fabric.index import lid_to_port
from ..errors import RoutingError

__all__ = ["walk", "Walk", "DELIVERED", "NO_PATH", "LOOP"]

#: walk status codes
DELIVERED, NO_PATH, LOOP = 0, 1, 2


class Walk(NamedTuple):
    """Result of :func:`walk` (all per flow unless noted).

    Attributes
    ----------
    status : ndarray of int8
        :data:`DELIVERED`, :data:`NO_PATH` (an entry of 255 or beyond the
        switch's ports, a down link, or delivery to the wrong node) or
        :data:`LOOP` (the walk revisited a switch, or crossed more than
        ``max_hops`` switch-to-switch links).
    hops : ndarray of int32
        Switch-to-switch links crossed (valid when delivered).
    port_load : ndarray of float64, (n_ports,) or None
        Sum of flow weights sent out of each switch port toward another
        switch (None with ``port_load=False``).
    path : ndarray of int32, (n_flows, max_hops + 1) or None
        Switch rows visited, -1 padded (only with ``record=True``).
    ports : ndarray of int32, (H, n_flows) or None
        Hop-major: ``ports[h, i]`` is the port flow *i* transmits on at hop
        *h*, from its source switch up to and including the link into a CA;
        padded with ``n_ports`` (only with ``record_ports=True``; at least
        one row).
    """

    status: np.ndarray
    hops: np.ndarray
    port_load: np.ndarray | None
    path: np.ndarray | None
    ports: np.ndarray | None = None


def walk(fabric, lft: np.ndarray, src_switch, dst_lid, weight=None, *,
         up: np.ndarray | bool | None = None, lid: np.ndarray | None = None, record: bool = False,
         dst_port=None, max_hops: int | None = None, find_loops: bool = True,
         port_load: bool = True, record_ports: bool = False) -> Walk:
    """Follow flows hop by hop through ``lft``.

    Parameters
    ----------
    fabric : FabricIndex
    lft : ndarray of uint8, (n_switches, lft_size)
    src_switch : array_like of int, (n_flows,)
        Switch row where each flow enters the switch fabric (for a CA
        source: the switch its port is cabled to).
    dst_lid : array_like of int, (n_flows,)
        Destination LID of each flow (the LFT entry looked up).
    weight : array_like of float, (n_flows,), optional
        Flow weights for ``port_load`` (default 1).
    up : ndarray of bool, (n_ports,), or True, optional
        Usable ports; True or None (default): every cabled port.
    lid : ndarray of uint16, (n_ports,), optional
        Port LIDs, for finding the port of each ``dst_lid`` (default:
        ``fabric.default_lid``; unused when ``dst_port`` is given).
    record : bool
        Also return the visited switches.
    dst_port : array_like of int, (n_flows,), optional
        Port each flow must arrive at (default: the port holding
        ``dst_lid``, port 0 for a switch LID).
    max_hops : int, optional
        A flow still among switches after this many switch-to-switch links
        is a :data:`LOOP` (default ``2 * n_switches + 4``).
    find_loops : bool
        End a walk as a :data:`LOOP` as soon as it revisits a switch
        (Brent's cycle check); without it only ``max_hops`` ends loops.
    port_load : bool
        Sum the flow weights per switch port (else ``Walk.port_load`` is None).
    record_ports : bool
        Also return the ports transmitted on, hop-major.

    Returns
    -------
    Walk
    """
    f = fabric
    port_lid = f.default_lid if lid is None else lid
    src = np.asarray(src_switch, dtype=np.int64).ravel()
    lid = np.asarray(dst_lid, dtype=np.int64).ravel()
    if src.shape != lid.shape:
        raise RoutingError(f"walk: {src.size} sources but {lid.size} destination LIDs")
    n = src.size
    width = lft.shape[1]
    if dst_port is None:
        l2p = lid_to_port(f, port_lid)
        dport = np.where((lid > 0) & (lid < l2p.size), l2p[np.clip(lid, 0, l2p.size - 1)], -1)
    else:
        dport = np.asarray(dst_port, dtype=np.int64).ravel()
    if n and (lid.min() < 0 or lid.max() >= width):
        lid = np.clip(lid, 0, width - 1)
    tab = _hop_tables(f, up)
    flat = lft.ravel()
    pad = f.n_ports

    status = np.full(n, NO_PATH, dtype=np.int8)
    hops = np.zeros(n, dtype=np.int32)
    load = np.zeros(f.n_ports, dtype=np.float64) if port_load else None
    if port_load:
        w_a = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64).ravel()
    steps: list[tuple[np.ndarray, np.ndarray]] = []
    rows: list[np.ndarray] = []

    act = np.arange(n)
    cur, lid_a = src, lid
    saved = cur.copy() if find_loops else None
    h, next_save = 0, 1
    limit = 2 * f.n_switches + 4 if max_hops is None else max_hops
    while act.size:                       # one iteration per hop
        out = flat[cur * width + lid_a]
        key = (cur << _OUT_BITS) + out    # (switch row, LFT entry)
        nxt = tab.next_switch[key]
        move = nxt >= 0
        end = np.flatnonzero(nxt == _END)
        d = act[end[tab.reach[key[end]] == dport[act[end]]]]
        status[d] = DELIVERED
        hops[d] = h
        if record_ports:
            if act.size == n:             # nobody has left yet: act is 0..n-1
                rows.append(tab.sent_port[key])
            else:
                row = np.full(n, pad, dtype=np.int32)
                row[act] = tab.sent_port[key]
                rows.append(row)
        if not move.any():
            break
        act, lid_a = act[move], lid_a[move]
        if port_load:
            load += np.bincount(tab.sent_port[key[move]], weights=w_a[move], minlength=f.n_ports)
            w_a = w_a[move]
        cur = nxt[move]
        h += 1
        if record:
            steps.append((act, cur))
        loop = None
        if find_loops:
            # Brent's cycle check: a deterministic table that revisits a switch loops
            saved = saved[move]
            loop = cur == saved
        if h >= limit:
            loop = np.ones(act.size, dtype=bool)
        if loop is not None and loop.any():
            status[act[loop]] = LOOP
            keep = ~loop
            act, lid_a, cur = act[keep], lid_a[keep], cur[keep]
            if port_load:
                w_a = w_a[keep]
            if find_loops:
                saved = saved[keep]
        if find_loops and h == next_save:
            saved = cur.copy()
            next_save *= 2
    path = None
    if record:
        path = np.full((n, len(steps) + 1), -1, dtype=np.int32)
        path[:, 0] = src
        for i, (a, c) in enumerate(steps, start=1):
            path[a, i] = c
    ports = None
    if record_ports:
        ports = np.stack(rows) if rows else np.full((1, n), pad, dtype=np.int32)
    return Walk(status, hops, load, path, ports)


#: an LFT entry is 8 bits: tables are indexed by ``(switch row << 8) + entry``
_OUT_BITS = 8
#: ``_HopTables.next_switch`` codes for a hop that reaches no switch: it ends at
#: ``reach`` (a CA port, or port 0 for entry 0), or it has no usable link
_END, _DROP = -1, -2


class _HopTables(NamedTuple):
    """What each (switch row, LFT entry) does, flattened to ``(row << 8) + entry``."""

    reach: np.ndarray        #: int64: port reached (entry 0: the switch's own port 0), else -1
    next_switch: np.ndarray  #: int64: switch row reached, _END or _DROP
    sent_port: np.ndarray    #: int32: the switch port sent on when a link is crossed, else n_ports


def _hop_tables(f, up) -> _HopTables:
    """Tables of :class:`_HopTables` for ``up`` (see :func:`walk`)."""
    if up is None or up is True:
        up = True                     # every cabled link, as compiled
    else:
        up = np.asarray(up, dtype=bool)
    sw_nodes = f.node_of_switch.astype(np.int64)
    fp = f.first_port[sw_nodes].astype(np.int64)
    nports = f.node_nports[sw_nodes].astype(np.int64)
    entry = np.arange(1 << _OUT_BITS, dtype=np.int64)
    valid = (entry[None, :] <= nports[:, None]).ravel()
    port = (fp[:, None] + entry[None, :]).ravel()
    pc = np.where(valid, port, 0)
    own = np.tile(entry == 0, nports.size)
    peer = np.where(valid & ~own, f.peer_of_port.astype(np.int64)[pc], -1)
    qc = np.maximum(peer, 0)
    if up is not True:
        peer = np.where(up[pc] & up[qc], peer, -1)
    nxt = np.where(peer >= 0, f.switch_of_node[f.node_of_port[qc]].astype(np.int64), _DROP)
    nxt[own] = _END
    sent = np.where(peer >= 0, port, f.n_ports).astype(np.int32)
    reach = np.where(own, port, peer)
    return _HopTables(reach, nxt, sent)
