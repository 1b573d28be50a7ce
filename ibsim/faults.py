"""Faults: what can go wrong, expanded into timed primitive actions.

A :class:`Fault` names a kind, a target and a time. :func:`expand` turns it
into primitive :class:`Action` s the engine applies at tick boundaries:

============== ============================================== ===================
kind           target                                         parameters
============== ============================================== ===================
unplug         node (description or GUID): all its links      ``for`` (s): replug after
replug         node                                           -
link_down      link, named by one end ``"leaf03:17"``         ``for`` (s)
link_up        link                                           -
flap           link                                           ``period`` (s), ``count``
ber            link                                           ``rate`` (bit-error rate), ``down_above``
port_disable   port ``"node:port"`` (PortPhysicalState Disabled) ``for`` (s)
port_enable    port                                           -
switch_down    switch: every port                             ``for`` (s)
switch_up      switch                                         -
degrade        link: retrains at most at ``width``/``speed``   ``width`` (lanes or
               (down, then up in Init until the SM's sweep)   ``"1x"``), ``speed``
                                                              (``"SDR"``...), ``for`` (s)
============== ============================================== ===================

"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ScenarioError, TopologyError, lookup
from .linkrate import WIDTHS, parse_speed, parse_width

__all__ = ["Fault", "Action", "FAULTS", "expand"]


@dataclass(frozen=True)
class Action:
    """A primitive change applied by the engine at ``at_s``.

    ``op`` is one of ``hold`` (force ports down; ``scope`` says which
    ports: ``node``, ``link``, ``port`` or ``switch``), ``release`` (undo one
    hold), ``ber`` (set a cable's bit-error rate), ``degrade`` (cap the
    width and speed a link trains at, and retrain it; ``None`` lifts a cap).
    """

    at_s: float
    op: str
    scope: str
    target: str
    params: dict = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Fault:
    """A fault as written in a scenario or passed to ``Simulation.inject``.

    Parameters
    ----------
    kind : str
        One of :data:`FAULTS`.
    target : str
        Node, link (``"node:port"``, either end) or port, by description or GUID.
    at_s : float
        Simulated time in seconds.
    params : dict
        Kind-specific: ``for_s``, ``period_s``, ``count``, ``rate``, ``down_above``.
    """

    kind: str
    target: str
    at_s: float = 0.0
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        spec = lookup(FAULTS, self.kind, "fault kind")
        extra = set(self.params) - spec["params"]
        if extra:
            raise ScenarioError(f"fault {self.kind!r} takes no parameter {sorted(extra)[0]!r}"
                                + (f"; it takes: {', '.join(sorted(spec['params']))}"
                                   if spec["params"] else ""))
        if self.at_s < 0:
            raise ScenarioError(f"fault {self.kind!r}: time must be >= 0, got {self.at_s}")


def _hold(scope):
    def build(f: Fault) -> list[Action]:
        acts = [Action(f.at_s, "hold", scope, f.target, reason=f.kind)]
        dur = f.params.get("for_s")
        if dur is not None:
            if dur <= 0:
                raise ScenarioError(f"fault {f.kind!r}: 'for' must be positive, got {dur}")
            acts.append(Action(f.at_s + dur, "release", scope, f.target, reason=f.kind))
        return acts
    return build


def _release(scope):
    def build(f: Fault) -> list[Action]:
        return [Action(f.at_s, "release", scope, f.target, reason=f.kind)]
    return build


def _flap(f: Fault) -> list[Action]:
    period = f.params.get("period_s", 2.0)
    count = int(f.params.get("count", 1))
    if period <= 0 or count < 1:
        raise ScenarioError(f"flap: period must be > 0 and count >= 1, got {period}s x {count}")
    acts = []
    for i in range(count):
        t = f.at_s + i * period
        acts.append(Action(t, "hold", "link", f.target, reason="flap"))
        acts.append(Action(t + period / 2, "release", "link", f.target, reason="flap"))
    return acts


def _ber(f: Fault) -> list[Action]:
    rate = float(f.params.get("rate", 1e-9))
    if not 0 <= rate < 1:
        raise ScenarioError(f"ber: rate must be in [0, 1), got {rate}")
    acts = [Action(f.at_s, "ber", "link", f.target,
                   {"rate": rate, "down_above": float(f.params.get("down_above", 1e-6))}, "ber")]
    dur = f.params.get("for_s")
    if dur is not None:
        acts.append(Action(f.at_s + dur, "ber", "link", f.target, {"rate": 0.0, "down_above": 1.0}, "ber"))
    return acts


def _degrade(f: Fault) -> list[Action]:
    width, speed = f.params.get("width"), f.params.get("speed")
    if width is None and speed is None:
        raise ScenarioError("degrade: give the 'width' (e.g. 1x) or the 'speed' (e.g. SDR) the link "
                            "trains at, or both")
    try:
        cap = {"width": WIDTHS[parse_width(width)] if width is not None else None,
               "speed": parse_speed(speed) if speed is not None else None}
    except TopologyError as exc:
        raise ScenarioError(f"degrade: {exc}") from None
    acts = [Action(f.at_s, "degrade", "link", f.target, cap, "degrade")]
    dur = f.params.get("for_s")
    if dur is not None:
        if dur <= 0:
            raise ScenarioError(f"fault 'degrade': 'for' must be positive, got {dur}")
        acts.append(Action(f.at_s + dur, "degrade", "link", f.target, {"width": None, "speed": None},
                           "degrade"))
    return acts


#: fault kind -> {"build": expander, "params": allowed parameter names, "target": what it names}
FAULTS: dict[str, dict] = {
    "unplug": {"build": _hold("node"), "params": {"for_s"}, "target": "node"},
    "replug": {"build": _release("node"), "params": set(), "target": "node"},
    "link_down": {"build": _hold("link"), "params": {"for_s"}, "target": "link"},
    "link_up": {"build": _release("link"), "params": set(), "target": "link"},
    "flap": {"build": _flap, "params": {"period_s", "count"}, "target": "link"},
    "ber": {"build": _ber, "params": {"rate", "down_above", "for_s"}, "target": "link"},
    "port_disable": {"build": _hold("port"), "params": {"for_s"}, "target": "port"},
    "port_enable": {"build": _release("port"), "params": set(), "target": "port"},
    "switch_down": {"build": _hold("switch"), "params": {"for_s"}, "target": "node"},
    "switch_up": {"build": _release("switch"), "params": set(), "target": "node"},
    "degrade": {"build": _degrade, "params": {"width", "speed", "for_s"}, "target": "link"},
}


def expand(fault: Fault) -> list[Action]:
    """The primitive actions of a fault, in time order."""
    return sorted(FAULTS[fault.kind]["build"](fault), key=lambda a: a.at_s)
