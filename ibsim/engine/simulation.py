"""Simulation: the clock, the only writer of fabric state, and its tick pipeline.

A :class:`Simulation` owns the live :class:`~ibsim.fabric.state.FabricState`
of a :class:`~ibsim.fabric.index.FabricIndex` and is composed of parts, each
with its own state and a narrow view of the others (callbacks, not shared
attributes):

===================================  ==============================================
:class:`~.links.LinkState`           fault holds, link down/up and training, bit errors
:class:`~.sm.SubnetManager`          the embedded SM's sweeps and routing; an external SM's Sets
:class:`~.jobs.Workload`             traffic jobs: hosts, start/stop, offered load
:class:`~.rates.RateModel`           flows -> paths -> max-min rates -> per-tick increments
:class:`~.accounting.JobAccounting`  per-job bytes, XmitWait and share, from job start to stop
===================================  ==============================================

The simulation itself keeps the clock, the lock, the command inbox, the
events and the observers. Per tick, in this order (loops over hops or
counters only; never over ports or flows):

1. run posted commands, apply due fault actions; a due subnet-manager sweep
   (Init ports become Active, routes are recomputed); jobs start and stop;
2. if flows, link states or routes changed: rebuild aggregates, walk the
   LFTs, allocate max-min fair rates and precompute per-port per-tick
   increments (the only expensive step; it runs only on change, on copies
   taken under the lock and without holding it: :mod:`ibsim.engine.rates`);
3. advance the traffic counters by one tick: one in-place add over the seven
   contiguous traffic rows of the counter array, with a fractional carry so
   no word or packet is lost between ticks;
4. draw bit errors on cables with a bit-error rate;
5. advance the clock and notify observers whose interval has come round.

Every step but the computation in 2 holds :attr:`Simulation.lock`. Adapters
(the MAD server, exporters, the recorder) read :class:`Snapshot` copies and
change the fabric only through the methods below (``sm_set_*``,
``reset_counters``, ``count_mgmt``, ``inject``, ``post``). Another thread
starts and ends jobs and adds events with ``start_job``, ``end_job`` and
``note`` (posted: they take effect at the next tick boundary).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time as _time
from collections import deque

import numpy as np

from ..errors import ScenarioError
from ..fabric.counters import COUNTER_ROW
from ..fabric.state import FabricState
from ..faults import Action, Fault, expand, fault_params
from ..traffic import Job
from ..units import parse_duration
from .accounting import JobAccounting, JobStat
from .jobs import Workload
from .links import LinkState
from .rates import TRAFFIC_ROWS, RateModel, xmit_wait_rate
from .sm import EXTERNAL_SM, SWEEP_INTERVAL_S, SubnetManager, sweep_times
from .snapshot import Event, Snapshot

__all__ = ["Simulation", "JobStat", "TRAFFIC_ROWS", "xmit_wait_rate", "EXTERNAL_SM", "MAD_WORDS"]

log = logging.getLogger(__name__)

#: 4-octet words one management datagram adds to PortXmitData/PortRcvData per link:
#: the 256-byte MAD plus its 32-byte frame, as linux-rdma's ibsim counts it
MAD_WORDS = 72
_XMIT_ROWS = [COUNTER_ROW[n] for n in ("port_xmit_data", "port_xmit_packets", "unicast_xmit_packets")]
_RCV_ROWS = [COUNTER_ROW[n] for n in ("port_rcv_data", "port_rcv_packets", "unicast_rcv_packets")]
_PER_MAD = np.array([[MAD_WORDS], [1], [1]], dtype=np.uint64)


class Simulation:
    """Drive a fabric's counters with traffic and faults, tick by tick.

    Parameters
    ----------
    fabric : FabricIndex
        The compiled fabric. The simulation owns a new
        :class:`~ibsim.fabric.state.FabricState` for it (``sim.state``) and
        is its only writer.
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
        Seconds from a trap (a link change at a switch port) to the embedded
        subnet manager's sweep that activates ports and reroutes; ``"auto"``
        (default): :func:`ibsim.engine.sm.reaction_delay`, 1 s plus 0.11 ms
        per port of the fabric, as OpenSM's heavy sweep; ``"off"``: traps are
        ignored, only the periodic sweep finds changes.
    sweep_interval : float or str
        Seconds between the embedded SM's periodic sweeps, which catch any
        change still pending at the next multiple of it (OpenSM's ``-s``,
        default 10 s); ``"off"``: none.
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
                 routing_options: dict | None = None, mtu: int = 4096, sweep_delay="auto",
                 max_iter: int = 32, port_buffer=1 << 20, sm_settle=0.5, sweep_interval=SWEEP_INTERVAL_S):
        self.fabric = fabric
        #: the live state; only this simulation writes it (adapters read snapshots)
        self.state = FabricState(fabric)
        self.tick_s = parse_duration(tick)
        if self.tick_s <= 0:
            raise ScenarioError(f"tick must be positive, got {tick!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        self.seed = int(seed)
        self._seedseq = np.random.SeedSequence(self.seed)
        self.rng = np.random.default_rng(self._seedseq.spawn(1)[0])
        self.mtu = int(mtu)
        if self.mtu <= 0:
            raise ScenarioError(f"mtu must be positive, got {mtu}")
        sm_settle_s = parse_duration(sm_settle)
        if sm_settle_s < 0:
            raise ScenarioError(f"sm_settle must not be negative, got {sm_settle!r}")
        #: held by step() and by any other thread that reads or writes state
        self.lock = threading.RLock()
        self._listeners: list = []
        self._inbox: deque = deque()
        #: egress ports of MADs not yet in the counters (see :meth:`count_mgmt`)
        self.mgmt_pending: list[int] = []
        self.ticks = 0
        self.events: list[Event] = []
        self._actions: list[Action] = []
        self._observers: list[dict] = []
        self._stop = False
        self.stats = {"reallocations": 0, "reroutes": 0, "alloc_iterations": 0,
                      "alloc_unconverged": 0, "aggregates": 0, "realloc_s": 0.0, "reroute_s": 0.0,
                      "behind_s": 0.0}
        self._t0_wall = _time.time()
        # the parts
        clock = lambda: self.time_s  # noqa: E731
        self.rates = RateModel(fabric, self.state, tick_s=self.tick_s, mtu=self.mtu,
                               max_iter=int(max_iter), stats=self.stats)
        self.links = LinkState(fabric, self.state, emit=self._event, clock=clock,
                               invalidate=self.rates.invalidate,
                               request_sweep=lambda trap=True: self.sm.request_sweep(trap),
                               xmit_rate=lambda: self.rates.xmit_rate, tick_s=self.tick_s, mtu=self.mtu,
                               port_buffer=float(port_buffer), rng=self.rng)
        delay_s, interval_s = sweep_times(sweep_delay, sweep_interval, fabric.n_ports)
        self.sm = SubnetManager(fabric, self.state, self.links, emit=self._event, clock=clock,
                                invalidate=self.rates.invalidate, routing=routing,
                                routing_options=routing_options or {},
                                sweep_delay_s=delay_s, sweep_interval_s=interval_s, sm_settle_s=sm_settle_s,
                                stats=self.stats)
        self.accounting = JobAccounting(fabric, self.state)
        self.workload = Workload(fabric, spawn_rng=lambda: np.random.default_rng(self._seedseq.spawn(1)[0]),
                                 emit=self._event, clock=clock, invalidate=self.rates.invalidate,
                                 on_start=self.accounting.started, on_stop=self.accounting.stopped)
        self.sm.reroute(reason="initial")

    # ------------------------------------------------------------ reading
    @property
    def topology(self):
        """The :class:`~ibsim.topology.Topology` (its ``.graph`` is networkx)."""
        return self.fabric.topology

    @property
    def time_s(self) -> float:
        """Simulated seconds since the start."""
        return self.ticks * self.tick_s

    @property
    def routing(self) -> str:
        """The routing engine in force (``"opensm"`` while an external SM programs the fabric)."""
        return self.sm.routing

    @property
    def routing_options(self) -> dict:
        """Options of the embedded SM's routing engine."""
        return self.sm.routing_options

    @property
    def jobs(self) -> list[Job]:
        """The traffic jobs, in the order they were added."""
        return self.workload.jobs

    def job_ports(self, i: int) -> np.ndarray:
        """Port indices of job ``i``'s hosts (its CAs' first cabled ports), in host order."""
        return self.workload.ports(i)

    @property
    def xmit_rate(self) -> np.ndarray:
        """Current data rate leaving each port [bytes/s], (n_ports,)."""
        return self.rates.xmit_rate

    @property
    def rcv_rate(self) -> np.ndarray:
        """Current data rate arriving at each port [bytes/s], (n_ports,)."""
        return self.rates.rcv_rate

    @property
    def link_version(self) -> int:
        """Bumped whenever a link goes down or comes up."""
        return self.links.version

    # ------------------------------------------------------------ building
    def add_job(self, job: Job) -> None:
        """Add a traffic job (resolves its hosts now, with the seed)."""
        self.workload.add(job)

    def start_job(self, job: Job) -> None:
        """Start ``job`` at the next tick boundary, from any thread.

        Its hosts are resolved now, in the calling thread (only the frozen
        fabric index is read), so a job that cannot run fails here; then it
        is posted: at the next tick boundary it is added with ``start_s`` =
        that tick's time (its ``stop_s`` is kept; leave it None) and becomes
        active, and its :class:`JobStat` baseline is taken.

        Raises
        ------
        ScenarioError
            The hosts cannot be resolved (fewer than 2, an unknown name, not
            a cabled CA) or the pattern does not fit them.
        """
        self.workload.check(job)
        self.post(lambda sim: sim.workload.start(job))

    def end_job(self, name: str) -> None:
        """End the running job named ``name`` at the next tick boundary, from any thread.

        Its ``stop_s`` becomes that tick's time, its flows are removed and
        its :class:`JobStat` is frozen. With several runs of one name (a
        requeued job), the latest one that has not ended ends. An unknown or
        already ended name is no error.
        """
        self.post(lambda sim: sim.workload.end(name))

    def note(self, kind: str, details: dict | None = None, *, node_desc: str | None = None,
             wall_time: float | None = None) -> None:
        """Produce an :class:`Event` at the next tick boundary, from any thread.

        The event goes the way of every event (listeners, observers'
        snapshots, exporters, the recorder's ``events.jsonl``), in the order
        the notes were made. Slurm job events (``job_start``, ``job_end``,
        ``job_requeue``) and log lines (``log``, with ``host``, ``program``,
        ``message``) come this way.

        Parameters
        ----------
        kind : str
            The event kind.
        details : dict, optional
            Kind-specific data (JSON-ready).
        node_desc : str, optional
            The node the event is about.
        wall_time : float, optional
            Epoch seconds of the event (a log line's own time); default: the
            simulation's wall time of the tick. Exporters keep it as is.
        """
        details = dict(details or {})
        self.post(lambda sim: sim._event(kind, None, details, node_desc=node_desc, wall_time=wall_time))

    def job_stats(self) -> list[JobStat]:
        """A :class:`JobStat` per job run that has started (running or ended), in start order."""
        with self.lock:
            self.flush_mgmt()
            return self.accounting.stats(self.workload.jobs)

    def schedule(self, fault: Fault) -> None:
        """Schedule a fault (its actions apply at the first tick boundary at or after their time)."""
        with self.lock:
            for a in expand(fault):
                self.links.ports_of(a.scope, a.target)      # a wrong target fails now
                self._actions.append(a)
            self._actions.sort(key=lambda a: a.at_s)

    def inject(self, kind: str, target: str, **params) -> None:
        """Inject a fault now (applied at the next tick boundary).

        Durations may be given as ``for_s=10`` or ``for_="10s"``.
        """
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
               trap: int | None = None, *, node_desc: str | None = None,
               wall_time: float | None = None) -> Event:
        f = self.fabric
        kw = {"node_desc": node_desc} if node_desc is not None else {}
        if port is not None:
            n = int(f.node_of_port[port])
            kw = {"node_guid": int(f.node_guid[n]), "node_desc": f.node_desc[n], "port": int(f.port_num[port])}
            q = int(f.peer_of_port[port])
            if q >= 0:
                m = int(f.node_of_port[q])
                kw.update(peer_guid=int(f.node_guid[m]), peer_desc=f.node_desc[m], peer_port=int(f.port_num[q]))
        if wall_time is not None:
            kw.update(wall_time=float(wall_time), own_wall_time=True)
        else:
            kw.update(wall_time=self._t0_wall + self.time_s)
        ev = Event(self.time_s, kind, trap=trap, details=details or {}, **kw)
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
    def step(self) -> None:
        """Advance one tick.

        The tick holds :attr:`lock`, except while it recomputes flows, paths
        and rates (seconds on a big fabric): that reads copies taken under
        the lock, so the MAD server keeps answering meanwhile.
        """
        with self.lock:
            inputs = self._step_begin()
        result = self.rates.compute(inputs, self.sm.compute) if inputs is not None else None
        with self.lock:
            if result is not None:
                self.rates.install(result, self._install_sweep_routes)
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
            self.links.apply(self._actions.pop(0))
        self.sm.tick()
        self.workload.update()
        if self.rates.due:
            return self.rates.inputs(self.workload.demands, self.sm.route_request())
        return None

    def _install_sweep_routes(self, lft, seconds: float) -> bool:
        """Put a sweep's LFTs in force, unless an external SM took over meanwhile."""
        if self.sm.route_pending and self.sm.routing != EXTERNAL_SM:
            self.sm.install_routes(lft, seconds, "sweep")
            return True
        self.sm.route_pending = False
        return False

    def _step_end(self) -> None:
        """Add this tick's traffic to the counters, advance the clock, notify observers."""
        self.rates.advance()
        if self.links.ber:
            self.links.bit_errors()
        self.ticks += 1
        self._notify()

    # ------------------------------------------------------------ commands of adapters
    # The MAD server calls these with :attr:`lock` held when a management
    # datagram reaches a port: the simulation stays the one writer of the state.
    def count_mgmt(self, egress) -> None:
        """Note management packets (MADs) leaving ports ``egress`` (port indices, one per link crossed).

        Cheap (a list extend); :meth:`flush_mgmt` adds them to the counters
        at the next tick, snapshot or PerfMgt read. Call with :attr:`lock` held.
        """
        self.mgmt_pending.extend(egress)

    def flush_mgmt(self) -> None:
        """Add the noted management packets to the counters: per link crossed, the
        egress port counts 1 packet (``port_xmit_packets``, ``unicast_xmit_packets``)
        and :data:`MAD_WORDS` words of ``port_xmit_data``; its peer the same as received."""
        pending = self.mgmt_pending
        if not pending:
            return
        e = np.asarray(pending, dtype=np.intp)
        pending.clear()                             # the same list: the C fast path appends to it
        ctr = self.state.counters
        f = self.fabric
        if e.size * 8 < f.n_ports:                     # a few: per element
            for ports, rows in ((e, _XMIT_ROWS), (f.peer_of_port[e], _RCV_ROWS)):
                for r, amount in zip(rows, _PER_MAD[:, 0]):
                    np.add.at(ctr[r], ports, amount)
            return
        for ports, rows in ((e, _XMIT_ROWS), (f.peer_of_port[e], _RCV_ROWS)):
            n = np.bincount(ports, minlength=f.n_ports).astype(np.uint64)
            ctr[rows] += n * _PER_MAD

    def reset_counters(self, ports, rows) -> None:
        """Zero counter ``rows`` of ``ports`` (a PerfMgt Set with a CounterSelect mask, ``perfquery -r``)."""
        self.state.reset_counters(ports, rows)

    def counted_totals(self) -> np.ndarray:
        """What every port counted since the start, resets undone: ``counters + cleared``.

        A copy, shape (n_counters, n_ports), uint64; the ground truth a monitoring
        system that lost nothing would hold (the MADs noted so far included).
        """
        with self.lock:
            self.flush_mgmt()
            st = self.state
            return st.counters.copy() if st.cleared is None else st.counters + st.cleared

    def set_external_sm(self, on: bool) -> None:
        """Let an external SM program the fabric (``routing="opensm"``), or hand back.

        Handing back reinstates the embedded SM's engine and sweeps now.
        """
        self.sm.set_external(on)

    def reroute(self, reason: str = "manual") -> None:
        """Recompute the LFTs on the current link states (the SM's routing step), now."""
        self.sm.reroute(reason)

    def sm_set_lid(self, port: int, lid: int) -> None:
        """Set the LID of a CA port, or of a switch (``port`` is its port 0)."""
        self.sm.set_lid(port, lid)

    def sm_set_port_state(self, ports, state: int) -> None:
        """Move ports to a logical state (Init, Armed, Active), as an SM's PortInfo Set does."""
        self.sm.set_port_state(ports, state)

    def sm_set_lft_block(self, switch_row: int, block: int, entries: bytes) -> None:
        """Write one 64-entry LFT block of a switch (LinearForwardingTable Set)."""
        self.sm.set_lft_block(switch_row, block, entries)

    def sm_set_block(self, table: str, key, value: bytes) -> None:
        """Store an SMA attribute block an SM set (P_Key, SL2VL, VLArb, MFT, GUIDInfo, Mellanox
        ExtendedPortInfo; see :class:`~ibsim.fabric.state.SmaTables`)."""
        self.sm.set_block(table, key, value)

    def sm_set_switch_info(self, switch_row: int, fdb_top: int, life_time: int) -> None:
        """SwitchInfo Set: LinearFDBTop and LifeTimeValue (5 bits) of a switch."""
        self.sm.set_switch_info(switch_row, fdb_top, life_time)

    def sm_set_enabled(self, port: int, enabled: bool) -> None:
        """PortInfo PhysLinkState Set: Disabled (3) takes the link down; Polling (2) undoes
        that, or, on a live link, makes it train again (``ibportstate ... reset``)."""
        self.links.set_phys_enabled(port, enabled)

    def sm_set_rate_enabled(self, port: int, width_mask: int, speed_mask: int, ext_mask: int) -> None:
        """PortInfo LinkWidthEnabled/LinkSpeedEnabled/LinkSpeedExtEnabled of a port, as an SM
        (or ``ibportstate``) set them: used the next time the link trains (after a PortState
        Down Set, a Disable/Enable, or any link down/up)."""
        self.links.set_enabled_rates(port, width_mask, speed_mask, ext_mask)

    def sm_retrain(self, port: int) -> None:
        """The link goes down and trains again, at what both ends enable (a PortState Down
        Set, or PhysLinkState Polling on a live link)."""
        self.links.retrain_port(port, "sm_retrain")

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
                        st.width.copy(), st.speed.copy(), st.lid.copy(), self.rates.xmit_rate.copy(),
                        self.rates.rcv_rate.copy(), tuple(events), st.sma.copy(),
                        tuple(self.accounting.stats(self.workload.jobs)))

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

