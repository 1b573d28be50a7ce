"""Simulation: the clock, the only writer of fabric state, and its tick pipeline.

Per tick, in this order (loops over hops or counters only; never over ports
or flows):

1. apply due fault actions and injected commands; run a due subnet-manager
   sweep (Init ports become Active, routes are recomputed);
2. if flows, link states or routes changed: rebuild aggregates, walk the
   LFTs, allocate max-min fair rates and precompute per-port per-tick
   increments (this is the only expensive step, and it runs only on change,
   on copies taken under the lock and without holding it:
   :mod:`ibsim.engine.rates`);
3. advance the traffic counters by one tick: one in-place add over the seven
   contiguous traffic rows of the counter array, with a fractional carry so
   no word or packet is lost between ticks;
4. draw bit errors on cables with a bit-error rate;
5. advance the clock and notify observers whose interval has come round.

Every step but the computation in 2 holds :attr:`Simulation.lock`.
"""

from __future__ import annotations

import logging
import math
import threading
import time as _time
from collections import deque

import numpy as np

from ..errors import ScenarioError, TopologyError
from ..fabric.counters import COUNTER_ROW
from ..faults import Action, Fault, expand
from ..traffic import Job
from ..units import parse_duration
from .links import EXTERNAL_SM, LinkStateMixin
from .rates import RatesMixin, xmit_wait_rate
from .sm import ExternalSMMixin
from .snapshot import Event, Snapshot

__all__ = ["Simulation", "TRAFFIC_ROWS", "xmit_wait_rate", "EXTERNAL_SM"]

log = logging.getLogger(__name__)

# the traffic counters are contiguous rows of the schema (asserted below)
_R0 = COUNTER_ROW["port_xmit_data"]
TRAFFIC_ROWS = ("port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets",
                "port_xmit_wait", "unicast_xmit_packets", "unicast_rcv_packets")
assert [COUNTER_ROW[n] - _R0 for n in TRAFFIC_ROWS] == list(range(len(TRAFFIC_ROWS)))
_TRAFFIC = slice(_R0, _R0 + len(TRAFFIC_ROWS))


class Simulation(RatesMixin, LinkStateMixin, ExternalSMMixin):
    """Drive a fabric's counters with traffic and faults, tick by tick.

    Parameters
    ----------
    fabric : Fabric
        Compiled fabric; the simulation becomes the only writer of its state.
    tick : float or str
        Simulated time per tick (seconds or ``"100ms"``).
    seed : int, optional
        Seed of every random choice; drawn from the OS and recorded when None.
    routing : str
        Routing engine of the embedded subnet manager (``minhop``, ``updn``,
        ``ftree``), or ``opensm``: an external subnet manager programs the
        fabric (LIDs, port states, LFTs) through the MAD server; the embedded
        one then neither activates ports nor routes.
    routing_options : dict, optional
        Passed to :func:`ibsim.routing.compute_lfts` (e.g. ``roots``).
    mtu : int
        Bytes per packet for the packet counters.
    sweep_delay : float or str
        Seconds between a link change and the subnet manager's sweep that
        activates ports and reroutes (OpenSM sweeps every 10 s).
    max_iter : int
        Bound on max-min freezing rounds per reallocation.
    sm_settle : float or str
        With an external SM: the data plane re-walks its paths once the SM
        has set no LID, port state or LFT block for this long (simulated
        seconds), not once per tick while it programs thousands of blocks;
        until then traffic keeps the paths it had. 0: after every tick.
    port_buffer : int
        Bytes buffered per port: what is in flight, and discarded, when its
        link goes down.

    Examples
    --------
    >>> from ibsim import compile_fabric, fat_tree
    >>> from ibsim.traffic import Job
    >>> sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    >>> sim.add_job(Job("a2a", "all_to_all", load=0.5))
    >>> sim.run(until="1s")
    >>> int(sim.time_s)
    1
    """

    def __init__(self, fabric, *, tick=0.1, seed: int | None = None, routing: str = "minhop",
                 routing_options: dict | None = None, mtu: int = 4096, sweep_delay=10.0,
                 max_iter: int = 32, port_buffer=1 << 20, sm_settle=0.5):
        self.fabric = fabric
        self.state = fabric.state
        self.tick_s = parse_duration(tick)
        if self.tick_s <= 0:
            raise ScenarioError(f"tick must be positive, got {tick!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        self.seed = int(seed)
        self._seedseq = np.random.SeedSequence(self.seed)
        self.rng = np.random.default_rng(self._seedseq.spawn(1)[0])
        self.routing = routing
        self.routing_options = dict(routing_options or {})
        #: engine the embedded SM returns to when an external SM detaches
        self.embedded_routing = routing if routing != EXTERNAL_SM else "minhop"
        #: held by step() and by any other thread that reads or writes state
        self.lock = threading.RLock()
        self._listeners: list = []
        self._inbox: deque = deque()
        self._sm_disabled: set[int] = set()
        #: egress ports of MADs not yet in the counters (see :meth:`count_mgmt`)
        self.mgmt_pending: list[int] = []
        #: bumped whenever a link goes down or comes up (physical states changed)
        self.link_version = 0
        self.mtu = int(mtu)
        if self.mtu <= 0:
            raise ScenarioError(f"mtu must be positive, got {mtu}")
        self.sweep_delay_s = parse_duration(sweep_delay)
        self.sm_settle_s = parse_duration(sm_settle)
        if self.sm_settle_s < 0:
            raise ScenarioError(f"sm_settle must not be negative, got {sm_settle!r}")
        self._sm_need = [False, False, False]          # flows, paths, alloc: SM changes not yet applied
        self._sm_quiet_at = 0.0                        # simulated time the SM's last change settles
        self.max_iter = int(max_iter)
        self.port_buffer = float(port_buffer)
        self.ticks = 0
        self.events: list[Event] = []
        self.jobs: list[Job] = []
        self._job_state: list[dict] = []
        self._actions: list[Action] = []
        self._observers: list[dict] = []
        n = fabric.n_ports
        self._held = np.zeros(n, dtype=np.int16)      # faults holding this end down
        self._disabled = np.zeros(n, dtype=np.int16)  # port_disable holds (phys Disabled)
        self._cap_width = np.zeros(n, dtype=np.uint8)  # degrade: most lanes a link trains at (0: cable)
        self._cap_speed = np.zeros(n, dtype=np.uint8)  # degrade: fastest speed code (0: cable)
        self._en_width = np.full(n, 0xFF, dtype=np.uint8)  # LinkWidthEnabled an SM set (all)
        self._en_speed = np.full(n, 0x0F, dtype=np.uint8)  # LinkSpeedEnabled (SDR..QDR)
        self._en_ext = np.full(n, 0x1F, dtype=np.uint8)    # LinkSpeedExtEnabled (FDR..XDR)
        self._ber: dict[int, dict] = {}               # port (one end) -> {rate, down_above, ...}
        self._acc = np.zeros((len(TRAFFIC_ROWS), n), dtype=np.float64)
        self._per_tick = np.zeros_like(self._acc)
        self._whole = np.zeros_like(self._acc)
        self._whole_u = np.zeros(self._acc.shape, dtype=np.uint64)
        self.xmit_rate = np.zeros(n)
        self.rcv_rate = np.zeros(n)
        self._flows = None
        self._paths = None
        self._path_ok = None
        self._need_flows = True
        self._need_paths = True
        self._need_alloc = True
        self._sweep_at: float | None = None
        self._route_pending = False                    # a sweep's LFTs are still to be computed
        self._stop = False
        self.stats = {"reallocations": 0, "reroutes": 0, "alloc_iterations": 0,
                      "alloc_unconverged": 0, "aggregates": 0, "realloc_s": 0.0, "reroute_s": 0.0,
                      "behind_s": 0.0}
        self._t0_wall = _time.time()
        if routing == EXTERNAL_SM:
            self._unconfigure()
        self.reroute(reason="initial")

    # ------------------------------------------------------------ building
    @property
    def topology(self):
        """The :class:`~ibsim.topology.Topology` (its ``.graph`` is networkx)."""
        return self.fabric.topology

    @property
    def time_s(self) -> float:
        """Simulated seconds since the start."""
        return self.ticks * self.tick_s

    def add_job(self, job: Job) -> None:
        """Add a traffic job (resolves its hosts now, with the seed)."""
        ports, names = self._resolve_hosts(job)
        rng = np.random.default_rng(self._seedseq.spawn(1)[0])
        self.jobs.append(job)
        self._job_state.append({"ports": ports, "names": names, "rng": rng, "running": False,
                                "pattern": None, "drawn_at": None})
        self._need_flows = True

    def _resolve_hosts(self, job: Job):
        f = self.fabric
        ca_nodes = np.flatnonzero(f.node_type == 1)
        first_cabled = {}
        cabled = np.flatnonzero((~f.is_switch) & (f.peer_of_port >= 0))
        for p in cabled[::-1]:
            first_cabled[int(f.node_of_port[p])] = int(p)
        hosts = job.hosts
        if hosts == "all" or hosts is None:
            nodes = [int(x) for x in ca_nodes if int(x) in first_cabled]
        elif isinstance(hosts, (int, np.integer)) and not isinstance(hosts, bool):
            pool = [int(x) for x in ca_nodes if int(x) in first_cabled]
            if not 1 <= hosts <= len(pool):
                raise ScenarioError(f"job {job.name!r}: hosts={hosts} but the fabric has {len(pool)} "
                                    f"cabled CAs")
            pick = np.random.default_rng(self._seedseq.spawn(1)[0]).choice(len(pool), hosts, replace=False)
            nodes = [pool[i] for i in sorted(pick)]
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

    def schedule(self, fault: Fault) -> None:
        """Schedule a fault (its actions apply at the first tick boundary at or after their time)."""
        with self.lock:
            for a in expand(fault):
                self._check_target(a)
                self._actions.append(a)
            self._actions.sort(key=lambda a: a.at_s)

    def inject(self, kind: str, target: str, **params) -> None:
        """Inject a fault now (applied at the next tick boundary).

        Durations may be given as ``for_s=10`` or ``for_="10s"``.
        """
        from ..faults import fault_params
        norm = fault_params(kind, params, keywords=True)
        with self.lock:
            self.schedule(Fault(kind, str(target), self.time_s, norm))

    def observe(self, every, callback) -> None:
        """Call ``callback(snapshot)`` every ``every`` simulated seconds (and at the end)."""
        every_s = parse_duration(every)
        if every_s <= 0:
            raise ScenarioError(f"observer interval must be positive, got {every!r}")
        self._observers.append({"every": every_s, "cb": callback, "next": self.time_s + every_s,
                                "ev": len(self.events)})

    # ------------------------------------------------------------ events
    def _event(self, kind: str, port: int | None = None, details: dict | None = None,
               trap: int | None = None) -> Event:
        f = self.fabric
        kw = {}
        if port is not None:
            n = int(f.node_of_port[port])
            kw = {"node_guid": int(f.node_guid[n]), "node_desc": f.node_desc[n], "port": int(f.port_num[port])}
            q = int(f.peer_of_port[port])
            if q >= 0:
                m = int(f.node_of_port[q])
                kw.update(peer_guid=int(f.node_guid[m]), peer_desc=f.node_desc[m], peer_port=int(f.port_num[q]))
        ev = Event(self.time_s, kind, trap=trap, details=details or {},
                   wall_time=self._t0_wall + self.time_s, **kw)
        self.events.append(ev)
        for fn in self._listeners:
            try:
                fn(ev, port)
            except Exception:  # noqa: BLE001 - a listener never breaks the tick
                log.exception("event listener %r failed", fn)
        return ev

    def add_listener(self, fn) -> None:
        """Call ``fn(event, port_index)`` for every event, as it is produced.

        It runs in the thread that produced the event, with :attr:`lock`
        held, so it must be quick (queue work, do not block).
        """
        with self.lock:
            self._listeners.append(fn)

    def remove_listener(self, fn) -> None:
        """Stop calling ``fn`` (no error if it was not registered)."""
        with self.lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def post(self, fn) -> None:
        """Queue ``fn(sim)`` from any thread; it runs at the next tick boundary."""
        self._inbox.append(fn)

    # ------------------------------------------------------------ the tick
    def _update_jobs(self) -> None:
        from ..traffic import redraw_interval
        t = self.time_s
        for job, js in zip(self.jobs, self._job_state):
            run = job.active(t)
            if run != js["running"]:
                js["running"] = run
                js["pattern"] = None
                self._need_flows = True
                self._event("job_start" if run else "job_stop", None,
                            {"job": job.name, "pattern": job.pattern, "hosts": int(js["ports"].size)})
            elif run and (interval := redraw_interval(job)) is not None:
                if js["drawn_at"] is not None and t - js["drawn_at"] >= interval - 1e-9:
                    js["pattern"] = None
                    self._need_flows = True

    def step(self) -> None:
        """Advance one tick.

        The tick holds :attr:`lock`, except while it recomputes flows, paths
        and rates (seconds on a big fabric): that reads copies taken under
        the lock, so the MAD server keeps answering meanwhile.
        """
        with self.lock:
            inputs = self._step_begin()
        result = self._realloc_compute(inputs) if inputs is not None else None
        with self.lock:
            if result is not None:
                self._realloc_install(result)
            self._step_end()

    def _step_begin(self):
        """Commands, faults, sweeps and jobs of this tick; the reallocation's inputs, if one is due."""
        while self._inbox:
            fn = self._inbox.popleft()
            try:
                fn(self)
            except Exception:  # noqa: BLE001 - a posted command never breaks the tick
                log.exception("posted command %r failed", fn)
        self.flush_mgmt()
        t = self.time_s
        while self._actions and self._actions[0].at_s <= t + 1e-9:
            self._apply(self._actions.pop(0))
        if self._sweep_at is not None and self._sweep_at <= t + 1e-9:
            self._sweep_at = None
            self._sweep(defer=True)
        self._update_jobs()
        self._sm_settled()
        if self._need_flows or self._need_paths or self._need_alloc:
            return self._realloc_inputs()
        return None

    def _step_end(self) -> None:
        """Add this tick's traffic to the counters, advance the clock, notify observers."""
        # traffic counters: loops over counter rows only, never ports
        acc, whole = self._acc, self._whole
        np.add(acc, self._per_tick, out=acc)
        np.floor(acc, out=whole)
        np.subtract(acc, whole, out=acc)
        np.copyto(self._whole_u, whole, casting="unsafe")
        ctr = self.state.counters[_TRAFFIC]
        np.add(ctr, self._whole_u, out=ctr)
        if self._ber:
            self._bit_errors()
        self.ticks += 1
        self._notify()

    # ------------------------------------------------------------ observers
    def snapshot(self, events=()) -> Snapshot:
        """An immutable copy of the current state."""
        with self.lock:
            return self._snapshot(events)

    def _snapshot(self, events=()) -> Snapshot:
        self.flush_mgmt()
        st = self.state
        return Snapshot(self.time_s, self.ticks, self._t0_wall + self.time_s, self.fabric,
                        st.counters.copy(), st.port_state.copy(), st.phys_state.copy(),
                        st.width.copy(), st.speed.copy(), st.lid.copy(), self.xmit_rate.copy(),
                        self.rcv_rate.copy(), tuple(events))

    def _notify(self, final: bool = False) -> None:
        if not self._observers:
            return
        snap = None
        t = self.time_s
        for ob in self._observers:
            if final or t + 1e-9 >= ob["next"]:
                if snap is None:
                    snap = self.snapshot()
                evs = self.events[ob["ev"]:]
                ob["ev"] = len(self.events)
                while ob["next"] <= t + 1e-9:
                    ob["next"] += ob["every"]
                ob["cb"](snap.with_events(evs))

    def stop(self) -> None:
        """Ask :meth:`run` to stop after the current tick."""
        self._stop = True

    def run(self, until=None, *, realtime: float | None = None, progress=None) -> None:
        """Run until simulated time ``until`` (seconds or ``"30s"``).

        Parameters
        ----------
        until : float or str
            End time in simulated seconds (absolute, from the start).
        realtime : float, optional
            Pace at this factor (1.0 = one simulated second per wall second);
            warns (at most once per 10 s of wall time) when it falls more than
            a second or five ticks behind.
        progress : callable, optional
            Called as ``progress(sim)`` after every tick.
        """
        end = parse_duration(until) if until is not None else math.inf
        if realtime is not None and realtime <= 0:
            raise ScenarioError(f"realtime factor must be positive, got {realtime}")
        self._stop = False
        wall0 = _time.monotonic()
        sim0 = self.time_s
        last_warn = -math.inf
        n_ticks = math.ceil((end - sim0) / self.tick_s - 1e-9) if math.isfinite(end) else None
        done = 0
        try:
            while not self._stop and (n_ticks is None or done < n_ticks):
                self.step()
                done += 1
                if progress is not None:
                    progress(self)
                if realtime:
                    target = wall0 + (self.time_s - sim0) / realtime
                    lag = _time.monotonic() - target
                    if lag < 0:
                        _time.sleep(-lag)
                    elif lag > max(1.0, 5 * self.tick_s / realtime) and _time.monotonic() - last_warn > 10:
                        self.stats["behind_s"] = lag
                        log.warning("real-time pacing is %.2f s behind at t=%.1f s", lag, self.time_s)
                        last_warn = _time.monotonic()
        finally:
            self.finish()

    def finish(self) -> None:
        """Give every observer a final snapshot (so exporters hold the final values)."""
        self._notify(final=True)

    # ------------------------------------------------------------ tables
    def counters_table(self) -> dict:
        """Final-state table of connected ports as columns (see ``counters.csv``)."""
        from .table import counters_table
        return counters_table(self.snapshot())

    def counters(self):
        """Counters of every connected port as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover
            raise ImportError("sim.counters() needs pandas: pip install 'ibsim[pandas]'") from exc
        return pd.DataFrame(self.counters_table())

