"""The subnet manager part: the embedded SM's sweeps and routing, and an external SM's Sets.

:class:`SubnetManager` is one part of a :class:`~ibsim.engine.simulation.Simulation`.
The embedded SM reacts as OpenSM does. A link change at a switch port raises
trap 128, and the SM answers with a heavy sweep ``sweep_delay`` later (by
default :func:`reaction_delay`: about a second, growing with the fabric as
OpenSM's heavy sweep does); besides, it sweeps every ``sweep_interval``
(10 s, OpenSM's default) and so catches, at the next multiple of the
interval, any change whose trap it ignores (``sweep_delay: off``) or that
raises none (a link between two CAs). A sweep walks trained ports
Init -> Armed -> Active and recomputes the LFTs with its routing engine
(on copies, without the simulation's lock: see :mod:`ibsim.engine.rates`).
When an external SM (OpenSM through the MAD server) takes over
(``routing="opensm"``), the MAD server calls the ``sm_set_*`` methods of the
:class:`~ibsim.engine.simulation.Simulation`, with its lock held, for every
Set that reaches a port; they land here, so the simulation stays the one
writer of the state. The data plane follows an external SM's changes once it
has been quiet for ``sm_settle``.
"""

from __future__ import annotations

import math as _math
import time as _time
from typing import Callable

import numpy as np

from ..errors import ScenarioError
from ..fabric.state import ACTIVE, INIT, LINKUP, NO_ROUTE
from ..fabric.state import STATE as STATE_NAMES
from ..routing import compute_lfts
from ..units import parse_duration
from .snapshot import TRAPS

__all__ = ["SubnetManager", "EXTERNAL_SM", "reaction_delay", "sweep_times", "REACTION_BASE_S",
           "REACTION_PER_PORT_S", "SWEEP_INTERVAL_S"]

#: ``routing=`` value meaning "an external subnet manager (OpenSM) routes"
EXTERNAL_SM = "opensm"
#: OpenSM's reaction to trap 128 on a small fabric: the port is Active about a second after it
#: came up (seconds)
REACTION_BASE_S = 1.0
#: what OpenSM's heavy sweep adds per port of the fabric (seconds): the slope of trap-to-Active
#: against ports, measured with ``benchmarks/sm_reaction.py`` (OpenSM 3.3 against our server,
#: fat_tree(r, 2) for r = 8..36, 140..2646 ports: 0.04..0.32 s, 1.1e-4 s per port)
REACTION_PER_PORT_S = 1.1e-4
#: OpenSM's default sweep interval (its ``-s``), seconds
SWEEP_INTERVAL_S = 10.0


def reaction_delay(n_ports: int) -> float:
    """The embedded SM's default trap reaction (``sweep_delay: auto``), in seconds.

    ``REACTION_BASE_S + REACTION_PER_PORT_S * n_ports``: 1.0 s on a small
    fabric, 1.3 s on fat_tree(36, 2) (2646 ports), 8.9 s on fat_tree(36, 3)
    (71,604 ports), as OpenSM's heavy sweep grows linearly with the ports it
    queries.
    """
    return REACTION_BASE_S + REACTION_PER_PORT_S * int(n_ports)


def sweep_times(sweep_delay, sweep_interval, n_ports: int) -> tuple[float | None, float | None]:
    """Seconds of the trap reaction and of the periodic sweep; None where ``"off"``.

    Parameters
    ----------
    sweep_delay : float, str or None
        Seconds (or a duration text) from a trap to the SM's sweep, ``"auto"``
        (:func:`reaction_delay` of ``n_ports``), or ``"off"``/None: traps are ignored.
    sweep_interval : float, str or None
        Seconds between periodic sweeps, or ``"off"``/None/0: none.
    n_ports : int
        Ports of the fabric (for ``"auto"``).

    Raises
    ------
    ScenarioError
        For a negative time, or when both are off (a port that retrains would never be Active).
    """
    def parse(v, name):
        if v is None or v is False or (isinstance(v, str) and v.strip().lower() == "off"):
            return None
        if isinstance(v, str) and v.strip().lower() == "auto" and name == "sweep_delay":
            return reaction_delay(n_ports)
        s = parse_duration(v)
        if s < 0:
            raise ScenarioError(f"{name} must not be negative, got {v!r}")
        return s
    delay = parse(sweep_delay, "sweep_delay")
    interval = parse(sweep_interval, "sweep_interval") or None
    if delay is None and interval is None:
        raise ScenarioError("sweep_delay and sweep_interval are both off: ports that retrain would "
                            "never become Active; give one of them a duration")
    return delay, interval


class SubnetManager:
    """Sweeps, routing, and the Sets of an external subnet manager.

    Parameters
    ----------
    fabric : FabricIndex
    state : FabricState
    links : LinkState
        For the cables of ports and retraining.
    emit, clock, invalidate : callable
        As for :class:`~ibsim.engine.links.LinkState`.
    routing : str
        Routing engine of the embedded SM, or ``"opensm"``.
    routing_options : dict
        Passed to :func:`ibsim.routing.compute_lfts` (e.g. ``roots``).
    sweep_delay_s : float or None
        Seconds from a trap (a link change at a switch port) to the embedded
        SM's sweep; None: the SM ignores traps.
    sweep_interval_s : float or None
        Seconds between the embedded SM's periodic sweeps (at multiples of
        it); None: no periodic sweeps.
    sm_settle_s : float
        Seconds an external SM must be quiet before the data plane follows it.
    stats : dict
        The simulation's statistics (``reroutes``, ``reroute_s`` are added to).
    """

    def __init__(self, fabric, state, links, *, emit: Callable, clock: Callable, invalidate: Callable,
                 routing: str, routing_options: dict, sweep_delay_s: float | None, sm_settle_s: float,
                 stats: dict, sweep_interval_s: float | None = SWEEP_INTERVAL_S):
        self.fabric = fabric
        self.state = state
        self.links = links
        self._emit = emit
        self._clock = clock
        self._invalidate = invalidate
        self.routing = routing
        self.routing_options = dict(routing_options or {})
        #: engine the embedded SM returns to when an external SM detaches
        self.embedded_routing = routing if routing != EXTERNAL_SM else "minhop"
        self.sweep_delay_s = sweep_delay_s
        self.sweep_interval_s = sweep_interval_s
        self.sm_settle_s = sm_settle_s
        self.stats = stats
        self.sweep_at: float | None = None
        #: a sweep's LFTs are still to be computed (by the next reallocation)
        self.route_pending = False
        self._need = {"flows": False, "paths": False, "alloc": False}  # SM changes not yet applied
        self._quiet_at = 0.0                   # simulated time the SM's last change settles
        if routing == EXTERNAL_SM:
            self.unconfigure()

    # ------------------------------------------------------------ embedded SM
    def request_sweep(self, trap: bool = True) -> None:
        """Links changed: sweep at the next periodic sweep or ``sweep_delay_s`` after the trap.

        Parameters
        ----------
        trap : bool
            A switch port changed, so trap 128 reaches the SM (a link between
            two CAs raises none: only the periodic sweep finds it).
        """
        now = self._clock()
        due = []
        if trap and self.sweep_delay_s is not None:
            due.append(now + self.sweep_delay_s)
        if self.sweep_interval_s:
            k = _math.floor(now / self.sweep_interval_s + 1e-9) + 1
            due.append(k * self.sweep_interval_s)
        if not due:
            return
        at = min(due)
        if self.sweep_at is None or at < self.sweep_at:
            self.sweep_at = at

    def tick(self) -> None:
        """At a tick boundary: a due sweep, and an external SM's changes once it is quiet."""
        now = self._clock()
        if self.sweep_at is not None and self.sweep_at <= now + 1e-9:
            self.sweep_at = None
            self.sweep(defer=True)
        need = self._need
        if (need["flows"] or need["paths"] or need["alloc"]) and now + 1e-9 >= self._quiet_at:
            self._invalidate(**need)
            for k in need:
                need[k] = False

    def sweep(self, defer: bool = False) -> None:
        """The embedded subnet manager's sweep: activate trained ports, reroute.

        ``defer``: leave the LFT computation to the tick's reallocation, which
        runs it without the lock (:mod:`ibsim.engine.rates`)."""
        if self.routing == EXTERNAL_SM:
            return                          # the external SM brings ports up itself
        st = self.state
        f = self.fabric
        init = np.flatnonzero((st.port_state == INIT) & (st.phys_state == LINKUP))
        if init.size:
            # the SM walks each port Init -> Armed -> Active in one sweep
            st.port_state[init] = ACTIVE
            for p, _ in self.links.cables(init):
                self._emit("port_state_change", p, {"from": "Init", "to": "Active", "via": "Armed"},
                           TRAPS["port_state_change"])
            st.version += 1
            # a host is back: its demands return
            self._invalidate(flows=not f.is_switch[init].all())
        if defer:
            self.route_pending = True
            self._invalidate(paths=True)
        else:
            self.reroute(reason="sweep")

    def route_request(self) -> dict | None:
        """What a pending sweep's routing step needs (engine, options), or None."""
        if self.route_pending and self.routing != EXTERNAL_SM:
            return {"engine": self.routing, "options": dict(self.routing_options)}
        return None

    def compute(self, up: np.ndarray, lid: np.ndarray, lft_size: int, request: dict) -> np.ndarray:
        """The embedded SM's LFTs for the links ``up`` and LIDs ``lid`` (no state read or written)."""
        return compute_lfts(self.fabric, request["engine"], up=up, lid=lid, lft_size=lft_size,
                            **request["options"])

    def reroute(self, reason: str = "manual") -> None:
        """Recompute the LFTs on the current link states (the SM's routing step), now."""
        t = _time.perf_counter()
        lft = None
        if self.routing != EXTERNAL_SM:     # else the LFTs are what the external SM set
            st = self.state
            lft = self.compute(st.link_up_mask(self.fabric), st.lid, st.lft.shape[1],
                               {"engine": self.routing, "options": self.routing_options})
        self.install_routes(lft, _time.perf_counter() - t, reason)

    def install_routes(self, lft, dt: float, reason: str) -> None:
        """New LFTs (None: keep the external SM's) in force: stats, paths to re-walk, an event."""
        self.route_pending = False
        if lft is not None:
            self.state.lft = np.ascontiguousarray(lft)
        self.state.version += 1
        self.stats["reroutes"] += 1
        self.stats["reroute_s"] += dt
        self._invalidate(paths=True, alloc=True)
        if reason != "initial":
            self._emit("reroute", None, {"engine": self.routing, "reason": reason, "seconds": round(dt, 4)})

    # ------------------------------------------------------------ external SM
    def set_external(self, on: bool) -> None:
        """Let an external SM program the fabric (``routing="opensm"``), or hand back.

        Handing back reinstates the embedded SM's engine and sweeps now.
        """
        if on and self.routing != EXTERNAL_SM:
            self.routing = EXTERNAL_SM
            self._emit("sm_change", None, {"routing": EXTERNAL_SM})
        elif not on and self.routing == EXTERNAL_SM:
            self.routing = self.embedded_routing
            self._emit("sm_change", None, {"routing": self.routing})
            self.sweep()

    def unconfigure(self) -> None:
        """The fabric as no SM has seen it: links trained but Init, only file LIDs, no routes."""
        f = self.fabric
        st = self.state
        cabled = (f.peer_of_port >= 0) & (st.phys_state == LINKUP)
        st.port_state[cabled] = INIT
        lid = f.preset_lid.copy()
        # a switch answers on every port with its port-0 LID
        sw_nodes = f.node_of_switch
        lid[f.is_switch] = np.repeat(lid[f.first_port[sw_nodes]], f.first_port[sw_nodes + 1] - f.first_port[sw_nodes])
        st.lid[:] = lid
        st.lft[:] = NO_ROUTE
        st.sma.fdb_top[:] = st.max_lid
        st.version += 1

    def set_lid(self, port: int, lid: int) -> None:
        """Set the LID of a CA port, or of a switch (``port`` is its port 0)."""
        f = self.fabric
        st = self.state
        if f.is_switch[port]:
            n = int(f.node_of_port[port])
            st.lid[f.first_port[n]:f.first_port[n + 1]] = lid
        else:
            st.lid[port] = lid
        st.grow_lft(int(lid) + 1)
        st.version += 1
        self._changed(flows=True, paths=True)

    def set_port_state(self, ports, state: int) -> None:
        """Move ports (a few indices) to a logical state (Init, Armed, Active), as an SM Set does.

        One ``port_state_change`` event per link that becomes Active at both ends.
        """
        f = self.fabric
        st = self.state
        ps = st.port_state
        changed = []
        for p in ports:
            p = int(p)
            old = int(ps[p])
            if old != state:
                ps[p] = state
                changed.append((p, old))
        if not changed:
            return
        st.version += 1
        self._changed(alloc=True)
        for p, old in changed:
            if not f.is_switch[p]:
                self._changed(flows=True)     # a host's link changed: its demands follow
            q = int(f.peer_of_port[p])
            if state == ACTIVE and q >= 0 and ps[q] == ACTIVE:
                self._emit("port_state_change", p, {"from": STATE_NAMES.get(old, str(old)),
                                                    "to": "Active", "reason": "sm"})

    def set_lft_block(self, switch_row: int, block: int, entries: bytes) -> None:
        """Write one 64-entry LFT block of a switch (LinearForwardingTable Set)."""
        st = self.state
        end = (block + 1) * 64
        st.grow_lft(end)
        st.lft[switch_row, block * 64:end] = np.frombuffer(entries, dtype=np.uint8, count=64)
        st.version += 1
        self._changed(paths=True, alloc=True)

    def set_block(self, table: str, key, value: bytes) -> None:
        """Store an attribute block an SM set (see :class:`~ibsim.fabric.state.SmaTables`)."""
        if table not in self.state.sma.BLOCKS:
            raise KeyError(f"unknown SMA table {table!r}; choose one of: {', '.join(self.state.sma.BLOCKS)}")
        getattr(self.state.sma, table)[key] = bytes(value)

    def set_switch_info(self, switch_row: int, fdb_top: int, life_time: int) -> None:
        """SwitchInfo Set: LinearFDBTop and LifeTimeValue of a switch."""
        self.state.sma.fdb_top[switch_row] = fdb_top
        self.state.sma.life_time[switch_row] = life_time & 0x1F

    def _changed(self, flows: bool = False, paths: bool = False, alloc: bool = False) -> None:
        """Note what an SM Set changed; applied by :meth:`tick` once the SM is quiet."""
        need = self._need
        need["flows"] |= flows
        need["paths"] |= paths
        need["alloc"] |= alloc
        self._quiet_at = self._clock() + self.sm_settle_s
