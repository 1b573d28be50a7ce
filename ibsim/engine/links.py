"""Link state: faults holding ports down, links going down and training up, bit errors.

:class:`LinkState` is one part of a :class:`~ibsim.engine.simulation.Simulation`.
It owns the physical layer's bookkeeping (fault holds, port disables, degrade
caps, the enables a subnet manager set, bit-error rates), changes port and
link states only through :class:`~ibsim.fabric.state.FabricState`'s mutators
and records every change as an event. What a change means elsewhere is said
through two callbacks: the data plane must be recomputed
(``invalidate(flows=..., alloc=...)``) and the subnet manager should sweep
(``request_sweep()``).

A fault's primitive actions (:class:`~ibsim.faults.Action`) are dispatched by
their ``op`` through :data:`OPS`; a new primitive is one entry there.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..errors import ScenarioError, TopologyError
from ..fabric.counters import COUNTER_ROW
from ..fabric.index import SPEED_NAMES, WIDTH_NAMES
from ..fabric.state import DISABLED, INIT, POLLING
from ..faults import Action
from ..linkrate import SPEEDS
from .snapshot import TRAPS

__all__ = ["LinkState", "OPS", "trained_rate"]

#: (lanes, PortInfo LinkWidthEnabled bit), widest first
_WIDTH_BITS = ((12, 8), (8, 4), (4, 2), (2, 16), (1, 1))
#: (speed code, LinkSpeedEnabled bit, LinkSpeedExtEnabled bit), fastest first
_SPEED_BITS = tuple((code, SPEEDS[name].speed_code, SPEEDS[name].ext_code)
                    for code, name in reversed(list(enumerate(SPEED_NAMES))) if name)
_FDR10 = SPEED_NAMES.index("FDR10")


def trained_rate(cable_width, cable_speed, width_mask, speed_mask, ext_mask):
    """Width (lanes) and speed (code) links train at, given what both ends enable.

    Parameters
    ----------
    cable_width, cable_speed : ndarray
        What each cable supports (lanes, speed codes).
    width_mask, speed_mask, ext_mask : ndarray
        LinkWidthEnabled, LinkSpeedEnabled and LinkSpeedExtEnabled common to
        both ends (bitwise and).

    Returns
    -------
    (ndarray of uint8, ndarray of uint8)
        The widest enabled width within the cable's, and the fastest enabled
        speed within the cable's (FDR10 only on an FDR10 cable); 1x and SDR,
        which every port supports, when nothing is common.
    """
    width = np.zeros(len(cable_width), dtype=np.uint8)
    for lanes, bit in _WIDTH_BITS:               # loops over the 5 widths, not ports
        ok = (width == 0) & ((width_mask & bit) != 0) & (lanes <= cable_width)
        width[ok] = lanes
    width[width == 0] = 1
    speed = np.zeros(len(cable_speed), dtype=np.uint8)
    for code, bit, ext in _SPEED_BITS:           # over the 9 speeds
        allowed = ((ext_mask & ext) != 0) if ext else ((speed_mask & bit) != 0)
        if code == _FDR10:
            allowed = allowed & (cable_speed == _FDR10)
        ok = (speed == 0) & allowed & (code <= cable_speed)
        speed[ok] = code
    speed[speed == 0] = 1
    return width, speed


class LinkState:
    """Fault targets, holds, link down/up and training, bit errors.

    Parameters
    ----------
    fabric : FabricIndex
    state : FabricState
        Written through its mutators only.
    emit : callable
        ``emit(kind, port, details, trap)`` records an event.
    clock : callable
        ``clock()`` is the simulated time in seconds.
    invalidate : callable
        ``invalidate(flows=False, paths=False, alloc=False)``: the data plane is stale.
    request_sweep : callable
        ``request_sweep(trap=...)``: the subnet manager should sweep (links
        changed; ``trap``: a switch port among them, so trap 128 tells it).
    xmit_rate : callable
        ``xmit_rate()`` -> ndarray of float64: current bytes/s leaving each port.
    tick_s : float
        Seconds per tick.
    mtu : int
        Bytes per packet.
    port_buffer : float
        Bytes buffered per port: what is in flight, and discarded, when its link goes down.
    rng : numpy.random.Generator
        Draws bit errors.
    """

    def __init__(self, fabric, state, *, emit: Callable, clock: Callable, invalidate: Callable,
                 request_sweep: Callable, xmit_rate: Callable, tick_s: float, mtu: int,
                 port_buffer: float, rng: np.random.Generator):
        self.fabric = fabric
        self.state = state
        self._emit = emit
        self._clock = clock
        self._invalidate = invalidate
        self._request_sweep = request_sweep
        self._xmit_rate = xmit_rate
        self.tick_s = tick_s
        self.mtu = mtu
        self.port_buffer = port_buffer
        self.rng = rng
        n = fabric.n_ports
        self.held = np.zeros(n, dtype=np.int16)       # faults holding this end down
        self.disabled = np.zeros(n, dtype=np.int16)   # port_disable holds (phys Disabled)
        self.cap_width = np.zeros(n, dtype=np.uint8)  # degrade: most lanes a link trains at (0: cable)
        self.cap_speed = np.zeros(n, dtype=np.uint8)  # degrade: fastest speed code (0: cable)
        self.en_width = np.full(n, 0xFF, dtype=np.uint8)  # LinkWidthEnabled an SM set (all)
        self.en_speed = np.full(n, 0x0F, dtype=np.uint8)  # LinkSpeedEnabled (SDR..QDR)
        self.en_ext = np.full(n, 0x1F, dtype=np.uint8)    # LinkSpeedExtEnabled (FDR..XDR)
        self.sm_disabled: set[int] = set()           # ports an SM's PhysLinkState Set disabled
        self.ber: dict[int, dict] = {}               # port (one end) -> {rate, down_above, ...}
        #: bumped whenever a link goes down or comes up (physical states changed)
        self.version = 0

    # ------------------------------------------------------------ targets
    def ports_of(self, scope: str, target: str) -> np.ndarray:
        """Port indices a fault's ``scope`` (node, switch, link, port) and ``target`` name.

        Raises
        ------
        ScenarioError
            When the target does not exist or does not fit the scope.
        """
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

    # ------------------------------------------------------------ fault actions
    def apply(self, a: Action) -> None:
        """Apply one primitive fault action (dispatched by ``a.op`` through :data:`OPS`)."""
        OPS[a.op](self, a, self.ports_of(a.scope, a.target))

    def _op_hold(self, a: Action, ports: np.ndarray) -> None:
        if a.scope == "port":
            self.disabled[ports] += 1
        # a node's (or port's) own ends go down, their peers Polling; a link by its named end
        self.hold(ports if a.scope != "link" else ports[:1], 1, reason=a.reason)

    def _op_release(self, a: Action, ports: np.ndarray) -> None:
        if not (self.held[ports] > 0).any():
            return
        if a.scope == "port":
            self.disabled[ports] -= 1
        if a.scope != "link":
            self.hold(ports, -1, reason=a.reason)
        else:
            # release the end that holds the link (a link may be named by either end)
            end = ports[:1] if self.held[ports[0]] > 0 else ports[1:2]
            self.hold(end, -1, reason=a.reason)

    def _op_ber(self, a: Action, ports: np.ndarray) -> None:
        p = int(ports[0])
        rate = a.params["rate"]
        if rate > 0:
            self.ber[p] = {"rate": rate, "down_above": a.params["down_above"],
                           "last_event": -math.inf, "pending": 0}
            self._emit("fault", p, {"fault": "ber", "rate": rate})
            if rate >= a.params["down_above"]:
                self.hold(ports, 1, reason="ber")
                self.ber[p]["holding"] = True
        else:
            info = self.ber.pop(p, None)
            if info and info.get("holding"):
                self.hold(ports, -1, reason="ber")
            self._emit("fault", p, {"fault": "ber", "rate": 0.0})

    def _op_degrade(self, a: Action, ports: np.ndarray) -> None:
        """Cap the rate a link trains at (None: lift) and retrain it if it is up."""
        width, speed = a.params["width"], a.params["speed"]
        self.cap_width[ports] = width or 0
        self.cap_speed[ports] = SPEED_NAMES.index(speed) if speed else 0
        self._emit("fault", int(ports[0]), {"fault": "degrade", "width": f"{width}x" if width else None,
                                            "speed": speed})
        self.retrain(ports, "retrain")

    # ------------------------------------------------------------ link state
    def physically_up(self, ports: np.ndarray) -> np.ndarray:
        """Ports whose cable is present and held down at neither end."""
        q = self.fabric.peer_of_port[ports]
        return (q >= 0) & (self.held[ports] == 0) & (self.held[np.maximum(q, 0)] == 0)

    def hold(self, ports: np.ndarray, delta: int, reason: str) -> None:
        """Change the hold count of ports and bring links down or up accordingly."""
        f = self.fabric
        ports = np.asarray(ports, dtype=np.int64)
        ends = np.unique(np.concatenate([ports, f.peer_of_port[ports]]))
        ends = ends[ends >= 0]
        was_up = self.physically_up(ends)
        np.add.at(self.held, ports, delta)
        np.maximum(self.held, 0, out=self.held)
        now_up = self.physically_up(ends)
        going_down = ends[was_up & ~now_up]
        coming_up = ends[~was_up & now_up]
        if going_down.size:
            self.link_down(going_down, reason)
        if coming_up.size:
            self.link_up(coming_up, reason)
        # a disabled port reports phys Disabled even while its peer polls
        dis = ends[(self.disabled[ends] > 0)]
        self.state.phys_state[dis] = DISABLED

    def link_down(self, ends: np.ndarray, reason: str) -> None:
        """Links of ``ends`` (both ends of each) go down: in-flight packets discarded, LinkDowned."""
        f = self.fabric
        st = self.state
        self.version += 1
        # packets in flight on the dying links (up to one port buffer) are discarded
        # at the sending port
        inflight_bytes = np.minimum(self._xmit_rate()[ends] * self.tick_s, self.port_buffer)
        inflight = np.rint(inflight_bytes / self.mtu).astype(np.uint64)
        st.counters[COUNTER_ROW["port_xmit_discards"], ends] += inflight
        st.counters[COUNTER_ROW["link_downed"], ends] += np.uint64(1)
        st.set_ports_down(ends, POLLING)
        for p, q in self.cables(ends):     # one event per cable (events are few)
            lost = int(inflight[(ends == p) | (ends == q)].sum())
            self._emit("link_down", p, {"reason": reason, "discarded_packets": lost}, TRAPS["link_down"])
        # a host that lost its link takes its demands with it
        host = not f.is_switch[ends].all() or not f.is_switch[f.peer_of_port[ends]].all()
        self._invalidate(flows=host, alloc=True)
        self._request_sweep(trap=bool(f.is_switch[ends].any()))

    def link_up(self, ends: np.ndarray, reason: str) -> None:
        """Links of ``ends`` train (LinkUp, port Init) at what both ends enable, within caps."""
        st = self.state
        f = self.fabric
        self.version += 1
        width, speed = self.trained_rate_of(ends)
        st.set_ports_up(f, ends, INIT, width, speed)
        for p, _ in self.cables(ends):
            details = {"reason": reason, "state": "Init"}
            if st.width[p] != f.cable_width[p] or st.speed[p] != f.cable_speed[p]:
                details.update(width=WIDTH_NAMES.get(int(st.width[p]), str(st.width[p])),
                               speed=SPEED_NAMES[int(st.speed[p])])
            self._emit("link_up", p, details, TRAPS["link_up"])
        self._request_sweep(trap=bool(f.is_switch[ends].any()))

    def retrain(self, ends: np.ndarray, reason: str) -> None:
        """The links of ``ends`` go down and train again, if they are up."""
        if self.physically_up(ends).all():
            self.link_down(ends, reason)
            self.link_up(ends, reason)

    def trained_rate_of(self, ends: np.ndarray):
        """(width, speed) the links of ``ends`` train at: enables of both ends, degrade caps."""
        f = self.fabric
        peer = f.peer_of_port[ends]
        width, speed = trained_rate(f.cable_width[ends], f.cable_speed[ends],
                                    self.en_width[ends] & self.en_width[peer],
                                    self.en_speed[ends] & self.en_speed[peer],
                                    self.en_ext[ends] & self.en_ext[peer])
        cw, cs = self.cap_width[ends], self.cap_speed[ends]
        width = np.where(cw > 0, np.minimum(width, cw), width)
        speed = np.where(cs > 0, np.minimum(speed, cs), speed)
        return width, speed

    def cables(self, ends: np.ndarray):
        """Yield ``(port, peer)`` once per cable among the port indices ``ends``."""
        peer = self.fabric.peer_of_port
        seen = set()
        for p in ends.tolist():
            q = int(peer[p])
            key = (min(p, q), max(p, q))
            if key not in seen:
                seen.add(key)
                yield p, q

    # ------------------------------------------------------------ subnet manager Sets
    def set_enabled_rates(self, port: int, width_mask: int, speed_mask: int, ext_mask: int) -> None:
        """LinkWidthEnabled/LinkSpeedEnabled/LinkSpeedExtEnabled of a port, used when it next trains."""
        self.en_width[port] = width_mask
        self.en_speed[port] = speed_mask
        self.en_ext[port] = ext_mask

    def set_phys_enabled(self, port: int, enabled: bool) -> None:
        """PhysLinkState Set: Disabled takes the link down; Polling undoes that, or retrains a live link."""
        p = int(port)
        if not enabled and p not in self.sm_disabled:
            self.sm_disabled.add(p)
            self.disabled[p] += 1
            self.hold(np.array([p]), 1, reason="sm_disable")
        elif enabled and p in self.sm_disabled:
            self.sm_disabled.discard(p)
            self.disabled[p] -= 1
            self.hold(np.array([p]), -1, reason="sm_enable")
        elif enabled:
            self.retrain_port(p, "sm_retrain")

    def retrain_port(self, port: int, reason: str) -> None:
        """The link of ``port`` goes down and trains again, if it is cabled and up."""
        q = int(self.fabric.peer_of_port[port])
        if q >= 0:
            self.retrain(np.array([port, q]), reason)

    # ------------------------------------------------------------ bit errors
    def bit_errors(self) -> None:
        """Symbol errors grow with the bits received on a cable with a bit-error rate."""
        f = self.fabric
        c = self.state.counters
        xmit = self._xmit_rate()
        now = self._clock()
        for p, info in self.ber.items():   # loops over faulty cables only
            q = int(f.peer_of_port[p])
            for src, dst in ((p, q), (q, p)):
                bits = xmit[src] * 8 * self.tick_s
                n_err = int(self.rng.poisson(bits * info["rate"])) if bits > 0 else 0
                if not n_err:
                    continue
                pkts = xmit[src] * self.tick_s / self.mtu
                c[COUNTER_ROW["symbol_error"], dst] += np.uint64(n_err)
                c[COUNTER_ROW["port_rcv_errors"], dst] += np.uint64(min(n_err, int(pkts)))
                # roughly one error burst in a hundred needs link error recovery
                ler = int(self.rng.binomial(n_err, 0.01))
                if ler:
                    c[COUNTER_ROW["link_error_recovery"], dst] += np.uint64(ler)
                info["pending"] += n_err
            if info["pending"] and now - info["last_event"] >= 10.0:
                self._emit("symbol_errors", p, {"errors": info["pending"], "ber": info["rate"]},
                           TRAPS["symbol_errors"])
                info["pending"] = 0
                info["last_event"] = now


#: Action.op -> handler(link_state, action, ports); a new primitive fault op is one entry here
OPS: dict[str, Callable[[LinkState, Action, np.ndarray], None]] = {
    "hold": LinkState._op_hold,
    "release": LinkState._op_release,
    "ber": LinkState._op_ber,
    "degrade": LinkState._op_degrade,
}
