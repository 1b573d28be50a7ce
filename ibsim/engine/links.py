"""Link state: faults holding ports down, links going down and training up, sweeps.

:class:`LinkStateMixin` is part of :class:`~ibsim.engine.simulation.Simulation`
(kept apart to keep rooms small); it changes port and link states only
through :class:`~ibsim.fabric.state.FabricState`'s mutators and records every
change as an event.
"""

from __future__ import annotations

import math
import time as _time

import numpy as np

from ..errors import ScenarioError, TopologyError
from ..fabric.counters import COUNTER_ROW
from ..fabric.index import SPEED_NAMES, WIDTH_NAMES
from ..fabric.state import ACTIVE, DISABLED, INIT, LINKUP, POLLING
from ..faults import Action
from ..routing import compute_lfts
from .snapshot import TRAPS

__all__ = ["LinkStateMixin", "EXTERNAL_SM"]

#: ``routing=`` value meaning "an external subnet manager (OpenSM) routes"
EXTERNAL_SM = "opensm"


class LinkStateMixin:
    """Fault targets, link down/up, the embedded SM's sweep and rerouting, bit errors."""

    # ------------------------------------------------------------ targets
    def _ports_of(self, scope: str, target: str) -> np.ndarray:
        f = self.fabric
        try:
            if scope in ("node", "switch"):
                nd = f.find_node(target)
                if scope == "switch" and f.node_type[nd] != 2:
                    raise ScenarioError(f"{target!r} is not a switch")
                ports = f.ports_of_node(nd)
                return ports[f.peer_of_port[ports] >= 0]
            p = f.find_port(target)
        except TopologyError as exc:
            raise ScenarioError(str(exc)) from None
        if scope == "link":
            if f.peer_of_port[p] < 0:
                raise ScenarioError(f"link {target!r}: port {f.port_label(p)} is not cabled")
            return np.array([p, f.peer_of_port[p]])
        return np.array([p])

    def _check_target(self, a: Action) -> None:
        self._ports_of(a.scope, a.target)


    # ------------------------------------------------------------ link state
    def _physically_up(self, ports: np.ndarray) -> np.ndarray:
        f = self.fabric
        q = f.peer_of_port[ports]
        return (q >= 0) & (self._held[ports] == 0) & (self._held[np.maximum(q, 0)] == 0)

    def _apply(self, a: Action) -> None:
        ports = self._ports_of(a.scope, a.target)
        if a.op == "degrade":
            self._degrade(ports, a.params["width"], a.params["speed"])
            return
        if a.op == "ber":
            p = int(ports[0])
            if a.params["rate"] > 0:
                self._ber[p] = {"rate": a.params["rate"], "down_above": a.params["down_above"],
                                "last_event": -math.inf, "pending": 0}
                self._event("fault", p, {"fault": "ber", "rate": a.params["rate"]})
                if a.params["rate"] >= a.params["down_above"]:
                    self._hold(ports, 1, reason="ber")
                    self._ber[p]["holding"] = True
            else:
                info = self._ber.pop(p, None)
                if info and info.get("holding"):
                    self._hold(ports, -1, reason="ber")
                self._event("fault", p, {"fault": "ber", "rate": 0.0})
            return
        delta = 1 if a.op == "hold" else -1
        if a.op == "release" and not (self._held[ports] > 0).any():
            return
        if a.scope == "port":
            self._disabled[ports] += delta
        if a.scope in ("node", "switch", "port"):
            # the node's (or port's) own ends; their peers go Polling
            self._hold(ports, delta, reason=a.reason)
        elif delta > 0:
            self._hold(ports[:1], delta, reason=a.reason)
        else:
            # release the end that holds the link (a link may be named by either end)
            end = ports[:1] if self._held[ports[0]] > 0 else ports[1:2]
            self._hold(end, delta, reason=a.reason)

    def _hold(self, ports: np.ndarray, delta: int, reason: str) -> None:
        """Change the hold count of ports and bring links down or up accordingly."""
        f = self.fabric
        st = self.state
        ports = np.asarray(ports, dtype=np.int64)
        ends = np.unique(np.concatenate([ports, f.peer_of_port[ports]]))
        ends = ends[ends >= 0]
        was_up = self._physically_up(ends)
        np.add.at(self._held, ports, delta)
        np.maximum(self._held, 0, out=self._held)
        now_up = self._physically_up(ends)
        going_down = ends[was_up & ~now_up]
        coming_up = ends[~was_up & now_up]
        if going_down.size:
            self._link_down(going_down, reason)
        if coming_up.size:
            self._link_up(coming_up, reason)
        # a disabled port reports phys Disabled even while its peer polls
        dis = ends[(self._disabled[ends] > 0)]
        st.phys_state[dis] = DISABLED

    def _link_down(self, ends: np.ndarray, reason: str) -> None:
        f = self.fabric
        st = self.state
        self.link_version += 1
        # packets in flight on the dying links (up to one port buffer) are discarded
        # at the sending port
        inflight_bytes = np.minimum(self.xmit_rate[ends] * self.tick_s, self.port_buffer)
        inflight = np.rint(inflight_bytes / self.mtu).astype(np.uint64)
        st.counters[COUNTER_ROW["port_xmit_discards"], ends] += inflight
        st.counters[COUNTER_ROW["link_downed"], ends] += np.uint64(1)
        st.set_ports_down(ends, POLLING)
        for p, q in self._cables(ends):     # one event per cable (events are few)
            lost = int(inflight[(ends == p) | (ends == q)].sum())
            self._event("link_down", p, {"reason": reason, "discarded_packets": lost},
                        TRAPS["link_down"])
        self._need_alloc = True
        if not f.is_switch[ends].all() or not f.is_switch[f.peer_of_port[ends]].all():
            self._need_flows = True         # a host lost its link: its demands go
        self._request_sweep()

    def _link_up(self, ends: np.ndarray, reason: str) -> None:
        st = self.state
        f = self.fabric
        self.link_version += 1
        # trained (LinkUp) but not yet Active: at what both ends enable, within the cable's
        # rate and any degrade cap
        width, speed = self._trained_rate(ends)
        st.set_ports_up(ends, INIT, width, speed)
        for p, _ in self._cables(ends):
            details = {"reason": reason, "state": "Init"}
            if st.width[p] != f.cable_width[p] or st.speed[p] != f.cable_speed[p]:
                details.update(width=WIDTH_NAMES.get(int(st.width[p]), str(st.width[p])),
                               speed=SPEED_NAMES[int(st.speed[p])])
            self._event("link_up", p, details, TRAPS["link_up"])
        self._request_sweep()

    def _degrade(self, ends: np.ndarray, width: int | None, speed: str | None) -> None:
        """Cap the rate a link trains at (None: lift) and retrain it if it is up."""
        self._cap_width[ends] = width or 0
        self._cap_speed[ends] = SPEED_NAMES.index(speed) if speed else 0
        self._event("fault", int(ends[0]), {"fault": "degrade", "width": f"{width}x" if width else None,
                                            "speed": speed})
        up = self._physically_up(ends)
        if up.all():
            self._link_down(ends, "retrain")
            self._link_up(ends, "retrain")

    def _cables(self, ends: np.ndarray):
        """Yield ``(port, peer)`` once per cable among the port indices ``ends``."""
        peer = self.fabric.peer_of_port
        seen = set()
        for p in ends.tolist():
            q = int(peer[p])
            key = (min(p, q), max(p, q))
            if key not in seen:
                seen.add(key)
                yield p, q

    def _request_sweep(self) -> None:
        due = self.time_s + self.sweep_delay_s
        if self._sweep_at is None or due < self._sweep_at:
            self._sweep_at = due

    def _sweep(self, defer: bool = False) -> None:
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
            for p, _ in self._cables(init):
                self._event("port_state_change", p, {"from": "Init", "to": "Active", "via": "Armed"},
                            TRAPS["port_state_change"])
            st.version += 1
            if not f.is_switch[init].all():
                self._need_flows = True     # a host is back: its demands return
        if defer:
            self._route_pending = True
            self._need_paths = True
        else:
            self.reroute(reason="sweep")

    def reroute(self, reason: str = "manual") -> None:
        """Recompute the LFTs on the current link states (the SM's routing step), now."""
        t = _time.perf_counter()
        lft = None
        if self.routing != EXTERNAL_SM:     # else the LFTs are what the external SM set
            lft = compute_lfts(self.fabric, self.routing, **self.routing_options)
        self._install_routes(lft, _time.perf_counter() - t, reason)

    def _install_routes(self, lft, dt: float, reason: str) -> None:
        """New LFTs (None: keep the external SM's) in force: stats, paths to re-walk, an event."""
        self._route_pending = False
        if lft is not None:
            self.state.lft = lft
        self.state.version += 1
        self.stats["reroutes"] += 1
        self.stats["reroute_s"] += dt
        self._need_paths = True
        self._need_alloc = True
        if reason != "initial":
            self._event("reroute", None, {"engine": self.routing, "reason": reason,
                                          "seconds": round(dt, 4)})


    def _bit_errors(self) -> None:
        """Symbol errors grow with the bits received on a cable with a bit-error rate."""
        f = self.fabric
        c = self.state.counters
        for p, info in self._ber.items():   # loops over faulty cables only
            q = int(f.peer_of_port[p])
            for src, dst in ((p, q), (q, p)):
                bits = self.xmit_rate[src] * 8 * self.tick_s
                n_err = int(self.rng.poisson(bits * info["rate"])) if bits > 0 else 0
                if not n_err:
                    continue
                pkts = self.xmit_rate[src] * self.tick_s / self.mtu
                c[COUNTER_ROW["symbol_error"], dst] += np.uint64(n_err)
                c[COUNTER_ROW["port_rcv_errors"], dst] += np.uint64(min(n_err, int(pkts)))
                # roughly one error burst in a hundred needs link error recovery
                ler = int(self.rng.binomial(n_err, 0.01))
                if ler:
                    c[COUNTER_ROW["link_error_recovery"], dst] += np.uint64(ler)
                info["pending"] += n_err
            if info["pending"] and self.time_s - info["last_event"] >= 10.0:
                self._event("symbol_errors", p, {"errors": info["pending"], "ber": info["rate"]},
                            TRAPS["symbol_errors"])
                info["pending"] = 0
                info["last_event"] = self.time_s

