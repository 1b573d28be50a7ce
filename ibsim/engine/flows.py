"""From jobs to aggregated flows, and from LFTs to their paths.

Think in aggregates: host-to-host flows that leave the same source switch for
the same destination port follow the same LFT path from that switch on, so
they are one *aggregate* ``(source switch, destination port)`` with a
``weight`` (how many host pairs) and a ``demand`` (bytes/s). An all-to-all
over 11,664 hosts is 136 million pairs but 648 x 11,664 = 7.6 million
aggregates; a permutation is one aggregate per pair.

The host's own injection link is not part of an aggregate's path: a host's
offered load is capped at its link rate beforehand (over all its jobs), and
its carried rate is recovered from the aggregates' allocated fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..routing.lftwalk import DELIVERED, walk

__all__ = ["FlowSet", "DenseGroup", "walk_paths", "MAX_HOPS"]

#: a path longer than this is a forwarding loop
MAX_HOPS = 64


@dataclass
class DenseGroup:
    """Injection bookkeeping for one dense (all-to-all) job.

    ``injection[h] = d_h / (n - 1) * (sum_g phi[S(h), g] - phi[S(h), h])``
    where ``phi`` is the allocated fraction of each aggregate.
    """

    host_ports: np.ndarray      #: (n,) CA port of each host
    host_demand: np.ndarray     #: (n,) offered bytes/s per host
    host_src: np.ndarray        #: (n,) row of the host's source switch among ``src_switches``
    agg_start: int              #: first aggregate of the group in the FlowSet
    n_src: int                  #: number of distinct source switches
    agg_self: np.ndarray        #: (n,) aggregate of (S(h), h), or -1 when it has no flows


@dataclass
class FlowSet:
    """Aggregated flows of every active job.

    Attributes
    ----------
    src_switch : ndarray of int32, (A,)
        LFT row of the switch where the aggregate enters the fabric.
    dst_port : ndarray of int64, (A,)
        Destination CA port index.
    demand, weight : ndarray of float64, (A,)
        Offered bytes/s and number of host-to-host flows.
    pair_port, pair_agg, pair_demand : ndarray, (F,)
        Sparse pairs: the source host port, its aggregate, its offered bytes/s.
    dense : list of DenseGroup
    """

    src_switch: np.ndarray
    dst_port: np.ndarray
    demand: np.ndarray
    weight: np.ndarray
    pair_port: np.ndarray
    pair_agg: np.ndarray
    pair_demand: np.ndarray
    dense: list = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of aggregates."""
        return int(self.src_switch.size)

    def injection(self, phi: np.ndarray, n_ports: int) -> tuple[np.ndarray, np.ndarray]:
        """Carried and offered bytes/s on each host's injection port.

        Parameters
        ----------
        phi : ndarray of float64, (A,)
            Allocated fraction (rate / demand) of each aggregate.
        n_ports : int

        Returns
        -------
        carried, offered : ndarray of float64, (n_ports,)
        """
        carried = np.bincount(self.pair_port, weights=self.pair_demand * phi[self.pair_agg],
                              minlength=n_ports)
        offered = np.bincount(self.pair_port, weights=self.pair_demand, minlength=n_ports)
        for g in self.dense:
            n = g.host_ports.size
            if n < 2:
                continue
            sl = slice(g.agg_start, g.agg_start + g.n_src * n)
            phis = phi[sl].reshape(g.n_src, n)
            total = phis.sum(axis=1)[g.host_src]
            own = np.where(g.agg_self >= 0, phi[np.maximum(g.agg_self, 0)], 0.0)
            per = g.host_demand / (n - 1)
            np.add.at(carried, g.host_ports, per * (total - own))
            np.add.at(offered, g.host_ports, g.host_demand)
        return carried, offered


def build_flowset(fabric, host_up: np.ndarray, jobs: list[tuple]) -> FlowSet:
    """Aggregate the demands of active jobs.

    Parameters
    ----------
    fabric : FabricIndex
    host_up : ndarray of bool, (n_ports,)
        Ports whose link carries traffic (a host with a down link sends nothing).
    jobs : list of (host_ports, host_demand, pattern)
        ``pattern`` is :class:`~ibsim.traffic.Pairs` or ``DENSE``; host
        demands are already capped at the host link rates.
    """
    src_sw_of_port = _src_switch_of_port(fabric)
    sp_src, sp_dst, sp_dem = [], [], []
    dense_specs = []
    for ports, dem, pat in jobs:
        ports = np.asarray(ports, dtype=np.int64)
        if getattr(pat, "src", None) is not None:
            if pat.src.size == 0:
                continue
            s_port, d_port = ports[pat.src], ports[pat.dst]
            ok = host_up[s_port]
            sp_src.append(s_port[ok])
            sp_dst.append(d_port[ok])
            sp_dem.append((dem[pat.src] * pat.frac)[ok])
        else:
            dense_specs.append((ports, dem))
    A_src, A_dst, A_dem, A_w = [], [], [], []
    n_sparse = 0
    if sp_src:
        s_port = np.concatenate(sp_src)
        d_port = np.concatenate(sp_dst)
        dem = np.concatenate(sp_dem)
        key = src_sw_of_port[s_port].astype(np.int64) * fabric.n_ports + d_port
        uniq, inv = np.unique(key, return_inverse=True)
        A_src.append((uniq // fabric.n_ports).astype(np.int32))
        A_dst.append(uniq % fabric.n_ports)
        A_dem.append(np.bincount(inv, weights=dem, minlength=uniq.size))
        A_w.append(np.bincount(inv, minlength=uniq.size).astype(np.float64))
        pair_port, pair_agg, pair_demand = s_port, inv.astype(np.int64), dem
        n_sparse = uniq.size
    else:
        pair_port = np.zeros(0, dtype=np.int64)
        pair_agg = np.zeros(0, dtype=np.int64)
        pair_demand = np.zeros(0)
    dense_groups = []
    offset = n_sparse
    for ports, dem in dense_specs:
        ok = host_up[ports]
        ports, dem = ports[ok], dem[ok]
        n = ports.size
        if n < 2:
            continue
        s_of_h = src_sw_of_port[ports]
        src_sw, host_src = np.unique(s_of_h, return_inverse=True)
        k = np.bincount(host_src, minlength=src_sw.size).astype(np.float64)
        D = np.bincount(host_src, weights=dem, minlength=src_sw.size)
        n_src = src_sw.size
        same = host_src[None, :] == np.arange(n_src)[:, None]         # (n_src, n): S(g) == S
        weight = k[:, None] - same
        demand = (D[:, None] - same * dem[None, :]) / (n - 1)
        A_src.append(np.repeat(src_sw, n).astype(np.int32))
        A_dst.append(np.tile(ports, n_src))
        A_dem.append(demand.ravel())
        A_w.append(weight.ravel().astype(np.float64))
        agg_self = offset + host_src * n + np.arange(n)
        agg_self = np.where(weight[host_src, np.arange(n)] > 0, agg_self, -1)
        dense_groups.append(DenseGroup(ports, dem, host_src, offset, n_src, agg_self))
        offset += n_src * n
    if A_src:
        fs = FlowSet(np.concatenate(A_src), np.concatenate(A_dst), np.concatenate(A_dem),
                     np.concatenate(A_w), pair_port, pair_agg, pair_demand, dense_groups)
    else:
        fs = FlowSet(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                     pair_port, pair_agg, pair_demand, [])
    return fs


def _src_switch_of_port(fabric) -> np.ndarray:
    """LFT row of the switch each CA port is cabled to (-1 if none)."""
    peer = fabric.peer_of_port
    out = np.full(fabric.n_ports, -1, dtype=np.int32)
    cab = peer >= 0
    out[cab] = fabric.switch_of_node[fabric.node_of_port[peer[cab]]]
    return out


def walk_paths(fabric, lft: np.ndarray, lid: np.ndarray, src_switch: np.ndarray,
               dst_port: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Follow the LFTs hop by hop for every aggregate at once.

    A caller of :func:`ibsim.routing.walk` that reads no link state: a down
    link is the allocation's business (its capacity), not the path's.

    Parameters
    ----------
    fabric : FabricIndex
    lft : ndarray of uint8, (n_switches, lft_size)
    lid : ndarray of uint16, (n_ports,)
        LID of each port (the destination LIDs are ``lid[dst_port]``).
    src_switch : ndarray of int32, (A,)
    dst_port : ndarray of int64, (A,)

    Returns
    -------
    paths : ndarray of int32, (H, A)
        Hop-major: ``paths[h, a]`` is the transmitting port of hop *h* from
        the source switch to the destination CA; padded with ``n_ports`` (a
        dummy link, see :func:`~ibsim.engine.allocation.max_min_allocate`).
    ok : ndarray of bool, (A,)
        False where the walk hit a missing LFT entry, an uncabled port, a
        wrong destination or a loop (more than ``MAX_HOPS`` hops).
    """
    A = src_switch.size
    pad = fabric.n_ports
    if A == 0:
        return np.full((1, 0), pad, dtype=np.int32), np.zeros(0, dtype=bool)
    dlid = lid[dst_port].astype(np.intp)
    valid = (src_switch >= 0) & (dlid > 0) & (dlid < lft.shape[1])
    every = bool(valid.all())
    live = slice(None) if every else np.flatnonzero(valid)
    res = walk(fabric, lft, src_switch[live], dlid[live], up=True, dst_port=dst_port[live],
               max_hops=MAX_HOPS, find_loops=False, port_load=False, record_ports=True)
    if every:
        return res.ports, res.status == DELIVERED
    ok = np.zeros(A, dtype=bool)
    ok[live] = res.status == DELIVERED
    paths = np.full((res.ports.shape[0], A), pad, dtype=np.int32)
    paths[:, live] = res.ports
    return paths, ok
