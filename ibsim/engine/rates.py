"""The rate model: flows, paths and rates, recomputed so that the heavy part runs without the lock.

:class:`RateModel` is one part of a :class:`~ibsim.engine.simulation.Simulation`.
It keeps what is stale (flows, paths, rates) and a reallocation has three
steps:

1. :meth:`~RateModel.inputs` (lock held): what it reads (link states,
   capacities, the jobs' demands and, when paths must be re-walked, a copy
   of the LFTs and LIDs), and which of flows/paths/rates are stale;
2. :func:`compute` (no lock, a pure function of the inputs): aggregated
   flows, the hop-major path walk and weighted max-min sharing;
3. :meth:`~RateModel.install` (lock held): the result becomes the rates the
   next ticks count.

When the embedded subnet manager's sweep is due, step 2 also computes the
new LFTs (on the link states of step 1) and step 3 puts them in force.

A change made while step 2 runs (a subnet manager's Set through the MAD
server, say) marks the model stale again, so the next tick reallocates once
more; a result computed from inputs older than one already installed is
dropped.
"""

from __future__ import annotations

import time as _time

import numpy as np

from ..fabric.counters import COUNTER_ROW
from .allocation import max_min_allocate, unsent_upstream
from .flows import build_flowset, walk_paths

__all__ = ["RateModel", "compute", "xmit_wait_rate", "TRAFFIC_ROWS"]

#: the traffic counters, contiguous rows of the schema (asserted below)
TRAFFIC_ROWS = ("port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets",
                "port_xmit_wait", "unicast_xmit_packets", "unicast_rcv_packets")
_R0 = COUNTER_ROW["port_xmit_data"]
assert [COUNTER_ROW[n] - _R0 for n in TRAFFIC_ROWS] == list(range(len(TRAFFIC_ROWS)))
_TRAFFIC = slice(_R0, _R0 + len(TRAFFIC_ROWS))


def xmit_wait_rate(capacity: np.ndarray, unsent: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """PortXmitWait increments per second.

    A port counts XmitWait while it has data to send and no credits to send
    it: its share of the demand held back by bottlenecks further along the
    paths (``unsent``, see :func:`~ibsim.engine.allocation.unsent_upstream`;
    a source's own unsent demand). A wait tick is one in which nothing was
    sent, so the wait fits in the time the port is not sending: a port at
    line rate counts nothing. One XmitWait tick is the time to send one
    4-octet word at the port's active rate, so a port stalled all the time
    counts ``capacity / 4`` per second, like ``port_xmit_data`` at line rate::

        xmit_wait/s = capacity/4 * clip(min(unsent, capacity - carried) / capacity, 0, 1)

    Parameters
    ----------
    capacity, unsent, carried : ndarray of float64
        Bytes/s per port.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        stall = np.where(capacity > 0, np.minimum(unsent, capacity - carried) / capacity, 0.0)
    return capacity / 4.0 * np.clip(stall, 0.0, 1.0)


def compute(fabric, inp: dict, route=None) -> dict:
    """Flows, paths and rates from ``inp`` alone (no lock, no simulation state written).

    Parameters
    ----------
    fabric : FabricIndex
    inp : dict
        From :meth:`RateModel.inputs`.
    route : callable, optional
        ``route(up, lid, lft_size, request) -> lft``: the embedded SM's routing
        step, run first when ``inp["route"]`` asks for one.

    Returns
    -------
    dict
        Flows, paths, per-port rates [bytes/s] and per-tick counter increments
        (``per_tick``, shape (7, n_ports), in :data:`TRAFFIC_ROWS` order).
    """
    t = _time.perf_counter()
    f = fabric
    up = inp["up"]
    lft = None
    if inp["route"] is not None:           # a sweep's routing step, on the links of its tick
        lft = route(up, inp["lid"], inp["lft_size"], inp["route"])
        inp = {**inp, "lft": lft}
    route_s = _time.perf_counter() - t
    fs = inp["flows"]
    if fs is None:
        fs = build_flowset(f, up, inp["demands"])
    if inp["paths"] is None:
        paths, path_ok = walk_paths(f, inp["lft"], inp["lid"], fs.src_switch, fs.dst_port)
    else:
        paths, path_ok = inp["paths"]
    n = f.n_ports
    capacity = inp["capacity"]
    iterations, converged = 0, True
    if fs.n:
        # loops below run over hops only
        H = paths.shape[0]
        up_ext = np.append(up, True)          # the padding link is always up
        blocked = ~path_ok
        for h in range(H):
            blocked |= ~up_ext[paths[h]]
        demand = np.where(blocked, 0.0, fs.demand)
        alloc = max_min_allocate(paths, fs.weight, demand, capacity, max_iter=inp["max_iter"])
        rate = alloc.rate
        iterations, converged = alloc.iterations, alloc.converged
        sw_carried = np.zeros(n + 1)
        for h in range(H):
            sw_carried += np.bincount(paths[h], weights=rate, minlength=n + 1)
        # held back upstream of each aggregate's bottleneck; a source holds back all it cannot send
        sw_unsent = unsent_upstream(paths, demand, rate, alloc.bottleneck, n + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.where(fs.demand > 0, rate / fs.demand, 0.0)
        inj_carried, inj_offered = fs.injection(phi, n)
        xmit = sw_carried[:n] + inj_carried
        unsent = sw_unsent[:n] + (inj_offered - inj_carried)
    else:
        xmit = np.zeros(n)
        unsent = np.zeros(n)
    xmit[~up] = 0.0
    peer = f.peer_of_port
    rcv = np.where(peer >= 0, xmit[np.maximum(peer, 0)], 0.0)
    wait = xmit_wait_rate(capacity, unsent, xmit)
    dt, mtu = inp["tick_s"], inp["mtu"]
    pt = np.empty((len(TRAFFIC_ROWS), n))
    pt[0] = xmit * dt / 4.0
    pt[1] = rcv * dt / 4.0
    pt[2] = xmit * dt / mtu
    pt[3] = rcv * dt / mtu
    pt[4] = wait * dt
    pt[5] = pt[2]
    pt[6] = pt[3]
    return {"seq": inp["seq"], "lft": lft, "route": inp["route"], "route_s": route_s, "flows": fs,
            "paths": paths, "path_ok": path_ok, "xmit": xmit, "rcv": rcv, "per_tick": pt,
            "iterations": iterations, "converged": converged, "seconds": _time.perf_counter() - t}


class RateModel:
    """Demands -> aggregated flows -> paths on the LFTs -> max-min rates -> per-tick increments.

    Parameters
    ----------
    fabric : FabricIndex
    state : FabricState
        Its traffic counter rows are advanced by :meth:`advance`.
    tick_s : float
        Seconds per tick.
    mtu : int
        Bytes per packet.
    max_iter : int
        Bound on max-min freezing rounds per reallocation.
    stats : dict
        The simulation's statistics (reallocation counts and seconds are added to).

    Attributes
    ----------
    xmit_rate, rcv_rate : ndarray of float64, (n_ports,)
        Current data rates [bytes/s].
    stale : dict
        ``flows``, ``paths``, ``alloc``: what the next reallocation recomputes.
    """

    def __init__(self, fabric, state, *, tick_s: float, mtu: int, max_iter: int, stats: dict):
        self.fabric = fabric
        self.state = state
        self.tick_s = tick_s
        self.mtu = mtu
        self.max_iter = max_iter
        self.stats = stats
        n = fabric.n_ports
        self.stale = {"flows": True, "paths": True, "alloc": True}
        self.flows = None
        self.paths = None
        self.path_ok = None
        self.xmit_rate = np.zeros(n)
        self.rcv_rate = np.zeros(n)
        self._seq = 0                       # bumped by every install: a result from older inputs is dropped
        self._acc = np.zeros((len(TRAFFIC_ROWS), n), dtype=np.float64)
        self._per_tick = np.zeros_like(self._acc)
        self._whole = np.zeros_like(self._acc)
        self._whole_u = np.zeros(self._acc.shape, dtype=np.uint64)

    def invalidate(self, flows: bool = False, paths: bool = False, alloc: bool = False) -> None:
        """Mark flows, paths or rates stale; the next tick recomputes them."""
        s = self.stale
        s["flows"] |= flows
        s["paths"] |= paths
        s["alloc"] |= alloc

    @property
    def due(self) -> bool:
        """A reallocation is due."""
        s = self.stale
        return s["flows"] or s["paths"] or s["alloc"]

    def inputs(self, demands, route: dict | None) -> dict:
        """Take, under the lock, what a reallocation reads; clears the stale marks.

        Parameters
        ----------
        demands : callable
            ``demands()`` -> list of (ports, demand bytes/s, pattern), called
            only when the flows are stale.
        route : dict or None
            A pending routing step (see :meth:`SubnetManager.route_request`).
        """
        st = self.state
        s = self.stale
        flows = s["flows"] or self.flows is None
        paths = flows or s["paths"] or self.paths is None
        s["flows"] = s["paths"] = s["alloc"] = False
        if paths:                                 # let go of what is recomputed (paths: 100s of MB)
            self.paths = self.path_ok = None
            if flows:
                self.flows = None
        return {
            "route": route,
            "seq": self._seq,
            "up": st.link_up_mask(self.fabric),
            "capacity": st.capacity.copy(),
            "demands": demands() if flows else None,
            "flows": None if flows else self.flows,
            "lft": st.lft.copy() if paths and route is None else None,
            "lid": st.lid.copy() if paths or route is not None else None,
            "lft_size": st.lft.shape[1],
            "paths": None if paths else (self.paths, self.path_ok),
            "tick_s": self.tick_s,
            "mtu": self.mtu,
            "max_iter": self.max_iter,
        }

    def compute(self, inp: dict, route=None) -> dict:
        """Step 2, without the lock: :func:`compute` on this fabric."""
        return compute(self.fabric, inp, route)

    def install(self, r: dict, install_routes=None) -> None:
        """Make a computed result the current rates (lock held).

        ``install_routes(lft, seconds)`` puts a sweep's LFTs in force; it
        returns False when the routing changed meanwhile (the result is then
        dropped and the paths re-walked).
        """
        if r["seq"] != self._seq:                # another reallocation was installed meanwhile
            self.stale["alloc"] = True
            return
        if r["route"] is not None:
            keep = (self.stale["paths"], self.stale["alloc"])  # set by changes made meanwhile, if any
            if not install_routes(r["lft"], r["route_s"]):
                self.stale["paths"] = True
                return
            self.stale["paths"], self.stale["alloc"] = keep    # the paths below are on these LFTs
        self._seq += 1
        self.flows, self.paths, self.path_ok = r["flows"], r["paths"], r["path_ok"]
        self.xmit_rate, self.rcv_rate = r["xmit"], r["rcv"]
        np.copyto(self._per_tick, r["per_tick"])
        st = self.stats
        st["alloc_iterations"] += r["iterations"]
        st["alloc_unconverged"] += int(not r["converged"])
        st["reallocations"] += 1
        st["aggregates"] = r["flows"].n
        st["realloc_s"] += r["seconds"]

    def advance(self) -> None:
        """Add one tick of traffic to the counters: one in-place add over the traffic rows.

        A fractional carry keeps every word and packet between ticks (loops
        over counter rows only, never ports).
        """
        acc, whole = self._acc, self._whole
        np.add(acc, self._per_tick, out=acc)
        np.floor(acc, out=whole)
        np.subtract(acc, whole, out=acc)
        np.copyto(self._whole_u, whole, casting="unsafe")
        ctr = self.state.counters[_TRAFFIC]
        np.add(ctr, self._whole_u, out=ctr)
