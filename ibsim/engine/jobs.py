"""The workload part: traffic jobs, their hosts, when they run, and what they offer.

:class:`Workload` is one part of a :class:`~ibsim.engine.simulation.Simulation`.
A job's hosts are resolved (with the seed) when it is added; at each tick
boundary it starts, stops or redraws its pattern, which makes the flows
stale; :meth:`Workload.demands` gives the running jobs' offered load per
host, capped at each host's link rate. Jobs can also start and end at run
time (:meth:`Workload.start`, :meth:`Workload.end`, called at a tick
boundary by the simulation's posted commands).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..errors import ScenarioError, TopologyError
from ..traffic import Job, redraw_interval, resolve_pattern

__all__ = ["Workload"]


class Workload:
    """The jobs of a simulation.

    Parameters
    ----------
    fabric : FabricIndex
    spawn_rng : callable
        ``spawn_rng()`` -> a new ``numpy.random.Generator`` from the simulation's seed.
    emit, clock, invalidate : callable
        As for :class:`~ibsim.engine.links.LinkState`.
    on_start, on_stop : callable, optional
        ``on_start(i, job, ports, t)`` when job ``i`` becomes active at ``t``
        [s], ``on_stop(i, t)`` when it stops (job accounting).

    Attributes
    ----------
    jobs : list of Job
    """

    def __init__(self, fabric, *, spawn_rng: Callable, emit: Callable, clock: Callable,
                 invalidate: Callable, on_start: Callable | None = None, on_stop: Callable | None = None):
        self.fabric = fabric
        self._on_start = on_start
        self._on_stop = on_stop
        self._spawn_rng = spawn_rng
        self._emit = emit
        self._clock = clock
        self._invalidate = invalidate
        self.jobs: list[Job] = []
        self._state: list[dict] = []
        #: indices of the jobs that may still start, run or stop (the ones that ended for good
        #: leave it), so a tick's loops stay as short as the jobs that matter
        self._live: list[int] = []
        self._cabled: dict[int, int] | None = None

    def add(self, job: Job) -> None:
        """Add a traffic job (resolves its hosts now, with the seed)."""
        ports, names = self._resolve_hosts(job)
        self.jobs.append(job)
        self._state.append({"ports": ports, "names": names, "rng": self._spawn_rng(), "running": False,
                            "pattern": None, "drawn_at": None, "end_s": None})
        self._live.append(len(self.jobs) - 1)
        self._invalidate(flows=True)

    def check(self, job: Job) -> None:
        """Raise :class:`ScenarioError` if ``job``'s hosts cannot be resolved.

        Reads only the frozen fabric index (no draw from the simulation's
        seed), so any thread may call it: a count is checked against the
        cabled CAs, names are looked up, the pattern is drawn once on a
        throwaway generator (incast ``targets``, ``pairs`` names).
        """
        ports, names = self._resolve_hosts(job, pick=False)
        resolve_pattern(job, ports.size, np.random.default_rng(0), names)   # incast targets, pairs

    def start(self, job: Job) -> int:
        """Add ``job`` starting now (``start_s`` = the current time); its index."""
        self.add(dataclasses.replace(job, start_s=self._clock()))
        return len(self.jobs) - 1

    def end(self, name: str) -> bool:
        """End the latest job named ``name`` that has not ended (``stop_s`` = now).

        Returns whether one was found; it stops at this tick boundary's
        :meth:`update`.
        """
        t = self._clock()
        for i in reversed(self._live):
            job, js = self.jobs[i], self._state[i]
            if job.name != name or js["end_s"] is not None or (job.stop_s is not None and job.stop_s <= t):
                continue
            js["end_s"] = t
            if t > job.start_s:                 # else it ends before it ever ran
                self.jobs[i] = dataclasses.replace(job, stop_s=t)
            return True
        return False

    def ports(self, i: int) -> np.ndarray:
        """Port indices of job ``i``'s hosts, in host order."""
        return self._state[i]["ports"]

    def _first_cabled(self) -> dict[int, int]:
        """CA node -> its first cabled port (computed once: the fabric index is frozen)."""
        if self._cabled is None:
            f = self.fabric
            cabled = np.flatnonzero((~f.is_switch) & (f.peer_of_port >= 0))
            nodes = f.node_of_port[cabled]
            first = np.unique(nodes, return_index=True)[1]           # the lowest port of each node
            self._cabled = {int(nodes[k]): int(cabled[k]) for k in first}
        return self._cabled

    def _resolve_hosts(self, job: Job, pick: bool = True):
        f = self.fabric
        ca_nodes = np.flatnonzero(f.node_type == 1)
        first_cabled = self._first_cabled()
        hosts = job.hosts
        if hosts == "all" or hosts is None:
            nodes = [int(x) for x in ca_nodes if int(x) in first_cabled]
        elif isinstance(hosts, (int, np.integer)) and not isinstance(hosts, bool):
            pool = [int(x) for x in ca_nodes if int(x) in first_cabled]
            if not 1 <= hosts <= len(pool):
                raise ScenarioError(f"job {job.name!r}: hosts={hosts} but the fabric has {len(pool)} "
                                    f"cabled CAs")
            if pick:
                chosen = self._spawn_rng().choice(len(pool), hosts, replace=False)
                nodes = [pool[i] for i in sorted(chosen)]
            else:                               # a check only (no draw): any `hosts` of them will do
                nodes = pool[:hosts]
        else:
            nodes = []
            for name in hosts:
                try:
                    nd = f.find_node(str(name))
                except TopologyError as exc:
                    raise ScenarioError(f"job {job.name!r}: {exc}") from None
                if nd not in first_cabled:
                    raise ScenarioError(f"job {job.name!r}: host {name!r} is not a cabled CA")
                nodes.append(nd)
        if len(nodes) < 2:
            raise ScenarioError(f"job {job.name!r} needs at least 2 hosts, got {len(nodes)}")
        ports = np.array([first_cabled[n] for n in nodes], dtype=np.int64)
        names = {}
        for i, n in enumerate(nodes):
            names[f.node_desc[n]] = i
            names[f"0x{int(f.node_guid[n]):016x}"] = i
            names[str(int(f.node_guid[n]))] = i
        return ports, names

    def update(self) -> None:
        """At a tick boundary: jobs start, stop, or redraw their pattern."""
        t = self._clock()
        live = []
        for i in self._live:                                   # loops over live jobs
            job, js = self.jobs[i], self._state[i]
            run = job.active(t) and (js["end_s"] is None or t < js["end_s"])
            over = (js["end_s"] is not None and t >= js["end_s"]) or (job.stop_s is not None and t >= job.stop_s)
            if not (over and not run and not js["running"]):
                live.append(i)
            if run != js["running"]:
                js["running"] = run
                js["pattern"] = None
                self._invalidate(flows=True)
                if run and self._on_start is not None:
                    self._on_start(i, job, js["ports"], t)
                elif not run and self._on_stop is not None:
                    self._on_stop(i, t)
                if job.announce:
                    self._emit("job_start" if run else "job_stop", None,
                               {"job": job.name, "pattern": job.pattern, "hosts": int(js["ports"].size)})
            elif run and (interval := redraw_interval(job)) is not None:
                if js["drawn_at"] is not None and t - js["drawn_at"] >= interval - 1e-9:
                    js["pattern"] = None
                    self._invalidate(flows=True)
        self._live = live

    def demands(self) -> list[tuple]:
        """(ports, demand bytes/s, pattern) of each running job, host links capped."""
        f = self.fabric
        active = []
        for i in self._live:
            job, js = self.jobs[i], self._state[i]
            if not js["running"]:
                continue
            ports = js["ports"]
            cap = f.capacity_bytes(f.cable_width[ports], f.cable_speed[ports])
            dem = cap * job.load if job.load is not None else np.full(ports.size, float(job.rate))
            if js["pattern"] is None:
                js["pattern"] = resolve_pattern(job, ports.size, js["rng"], js["names"])
                js["drawn_at"] = self._clock()
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
