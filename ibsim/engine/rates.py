"""Flows, paths and rates: the reallocation, split so that its heavy part runs without the lock.

:class:`RatesMixin` is part of :class:`~ibsim.engine.simulation.Simulation`.
A reallocation has three steps:

1. :meth:`~RatesMixin._realloc_inputs` (lock held): what it reads (link
   states, capacities, the jobs' demands and, when paths must be re-walked,
   a copy of the LFTs and LIDs), and which of flows/paths/rates are stale;
2. :meth:`~RatesMixin._realloc_compute` (no lock): aggregated flows, the
   hop-major path walk and weighted max-min sharing, on those inputs only;
3. :meth:`~RatesMixin._realloc_install` (lock held): the result becomes the
   rates the next ticks count.

When the embedded subnet manager's sweep is due, step 2 also computes the
new LFTs (on the link states of step 1) and step 3 puts them in force.

A change made while step 2 runs (a subnet manager's Set through the MAD
server, say) sets the need flags again, so the next tick reallocates once
more; a result computed from inputs older than one already installed is
dropped.
"""

from __future__ import annotations

import time as _time

import numpy as np

from ..routing import compute_lfts
from ..traffic import resolve_pattern
from .allocation import max_min_allocate
from .flows import build_flowset, walk_paths
from .links import EXTERNAL_SM

__all__ = ["RatesMixin", "xmit_wait_rate"]


def xmit_wait_rate(capacity: np.ndarray, offered: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """PortXmitWait increments per second.

    A port waits when the traffic offered to it exceeds what leaves it (it is
    the bottleneck, or credits are held back by a bottleneck downstream).
    One XmitWait tick is the time to send one 4-octet word at the port's
    active rate, so a port stalled all the time counts ``capacity / 4`` per
    second, like ``port_xmit_data`` at line rate::

        xmit_wait/s = capacity/4 * clip((offered - carried) / capacity, 0, 1)

    Parameters
    ----------
    capacity, offered, carried : ndarray of float64
        Bytes/s per port.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        stall = np.where(capacity > 0, (offered - carried) / capacity, 0.0)
    return capacity / 4.0 * np.clip(stall, 0.0, 1.0)


class RatesMixin:
    """Demands -> aggregated flows -> paths on the LFTs -> max-min rates -> per-tick increments."""

    _realloc_seq = 0          # bumped by every install: a result from older inputs is dropped

    def _host_demands(self) -> list[tuple]:
        """(ports, demand bytes/s, pattern) of each running job, host links capped."""
        f = self.fabric
        active = []
        for job, js in zip(self.jobs, self._job_state):
            if not js["running"]:
                continue
            ports = js["ports"]
            cap = f.capacity_bytes(f.cable_width[ports], f.cable_speed[ports])
            dem = cap * job.load if job.load is not None else np.full(ports.size, float(job.rate))
            if js["pattern"] is None:
                js["pattern"] = resolve_pattern(job, ports.size, js["rng"], js["names"])
                js["drawn_at"] = self.time_s
            active.append([ports, dem, js["pattern"]])
        if not active:
            return []
        # cap each host's total offered load at its link rate, proportionally over its jobs
        allp = np.concatenate([a[0] for a in active])
        alld = np.concatenate([a[1] for a in active])
        tot = np.bincount(allp, weights=alld, minlength=f.n_ports)
        cap = f.capacity_bytes(f.cable_width, f.cable_speed)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(tot > cap, cap / tot, 1.0)
        for a in active:
            a[1] = a[1] * scale[a[0]]
        return [tuple(a) for a in active]

    def _reallocate(self) -> None:
        """Recompute flows, paths and rates now (the caller holds the lock)."""
        self._realloc_install(self._realloc_compute(self._realloc_inputs()))

    def _realloc_inputs(self) -> dict:
        """Take, under the lock, what a reallocation reads; clears the need flags."""
        st = self.state
        flows = self._need_flows or self._flows is None
        paths = flows or self._need_paths or self._paths is None
        self._need_flows = self._need_paths = self._need_alloc = False
        if paths:                                 # let go of what is recomputed (paths: 100s of MB)
            self._paths = self._path_ok = None
            if flows:
                self._flows = None
        route = None
        if self._route_pending and self.routing != EXTERNAL_SM:
            route = {"engine": self.routing, "options": dict(self.routing_options)}
        return {
            "route": route,
            "seq": self._realloc_seq,
            "up": st.link_up_mask(),
            "capacity": st.capacity.copy(),
            "demands": self._host_demands() if flows else None,
            "flows": None if flows else self._flows,
            "lft": st.lft.copy() if paths and route is None else None,
            "lid": st.lid.copy() if paths else None,
            "paths": None if paths else (self._paths, self._path_ok),
            "tick_s": self.tick_s,
            "mtu": self.mtu,
            "max_iter": self.max_iter,
        }

    def _realloc_compute(self, inp: dict) -> dict:
        """Flows, paths and rates from ``inp`` alone (no lock, no simulation state written)."""
        t = _time.perf_counter()
        f = self.fabric
        up = inp["up"]
        lft = None
        if inp["route"] is not None:           # a sweep's routing step, on the links of its tick
            lft = compute_lfts(f, inp["route"]["engine"], up=up, **inp["route"]["options"])
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
            sw_offered = np.zeros(n + 1)
            for h in range(H):
                sw_carried += np.bincount(paths[h], weights=rate, minlength=n + 1)
                sw_offered += np.bincount(paths[h], weights=demand, minlength=n + 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                phi = np.where(fs.demand > 0, rate / fs.demand, 0.0)
            inj_carried, inj_offered = fs.injection(phi, n)
            xmit = sw_carried[:n] + inj_carried
            offered = sw_offered[:n] + inj_offered
        else:
            xmit = np.zeros(n)
            offered = np.zeros(n)
        xmit[~up] = 0.0
        peer = f.peer_of_port
        rcv = np.where(peer >= 0, xmit[np.maximum(peer, 0)], 0.0)
        wait = xmit_wait_rate(capacity, offered, xmit)
        dt, mtu = inp["tick_s"], inp["mtu"]
        pt = np.empty((7, n))
        pt[0] = xmit * dt / 4.0
        pt[1] = rcv * dt / 4.0
        pt[2] = xmit * dt / mtu
        pt[3] = rcv * dt / mtu
        pt[4] = wait * dt
        pt[5] = pt[2]
        pt[6] = pt[3]
        return {"seq": inp["seq"], "lft": lft, "route": inp["route"], "route_s": route_s, "flows": fs, "paths": paths, "path_ok": path_ok, "xmit": xmit, "rcv": rcv,
                "per_tick": pt, "iterations": iterations, "converged": converged,
                "seconds": _time.perf_counter() - t}

    def _realloc_install(self, r: dict) -> None:
        """Make a computed result the current rates (lock held)."""
        if r["seq"] != self._realloc_seq:        # another reallocation was installed meanwhile
            self._need_alloc = True
            return
        if r["route"] is not None:
            if self.routing != r["route"]["engine"]:     # an external SM took over meanwhile
                self._route_pending = False
                self._need_paths = True
                return
            need = (self._need_paths, self._need_alloc)  # set by changes made meanwhile, if any
            self._install_routes(r["lft"], r["route_s"], "sweep")
            self._need_paths, self._need_alloc = need    # the paths below are on these LFTs
        self._realloc_seq += 1
        self._flows, self._paths, self._path_ok = r["flows"], r["paths"], r["path_ok"]
        self.xmit_rate, self.rcv_rate = r["xmit"], r["rcv"]
        np.copyto(self._per_tick, r["per_tick"])
        st = self.stats
        st["alloc_iterations"] += r["iterations"]
        st["alloc_unconverged"] += int(not r["converged"])
        st["reallocations"] += 1
        st["aggregates"] = r["flows"].n
        st["realloc_s"] += r["seconds"]
