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
from .params import Param, check, duration, integer, number

__all__ = ["Fault", "Action", "FAULTS", "expand", "fault_params"]


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
        lookup(FAULTS, self.kind, "fault kind")
        allowed = _keys(self.kind)
        extra = set(self.params) - set(allowed)
        if extra:
            raise ScenarioError(f"fault {self.kind!r} takes no parameter {sorted(extra)[0]!r}"
                                + (f"; it takes: {', '.join(sorted(allowed))}" if allowed else ""))
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


_FOR = Param(None, duration(positive=True), "how long until it is undone", unit="s", key="for_s")

#: fault kind -> {"build": expander, "params": YAML name -> Param (``key``: the Fault's name),
#: "target": what it names}; a kind declared here is validated by the scenario as it is
FAULTS: dict[str, dict] = {
    "unplug": {"build": _hold("node"), "params": {"for": _FOR}, "target": "node"},
    "replug": {"build": _release("node"), "params": {}, "target": "node"},
    "link_down": {"build": _hold("link"), "params": {"for": _FOR}, "target": "link"},
    "link_up": {"build": _release("link"), "params": {}, "target": "link"},
    "flap": {"build": _flap, "params": {
        "period": Param(None, duration(positive=True), "down/up cycle (default 2 s)", unit="s",
                        key="period_s"),
        "count": Param(None, integer(lo=1), "number of cycles (default 1)")}, "target": "link"},
    "ber": {"build": _ber, "params": {
        "rate": Param(None, number(lo=0), "bit-error rate (default 1e-9)", unit="errors/bit"),
        "down_above": Param(None, number(lo=0), "the link goes down above this rate (default 1e-6)",
                            unit="errors/bit"),
        "for": _FOR}, "target": "link"},
    "port_disable": {"build": _hold("port"), "params": {"for": _FOR}, "target": "port"},
    "port_enable": {"build": _release("port"), "params": {}, "target": "port"},
    "switch_down": {"build": _hold("switch"), "params": {"for": _FOR}, "target": "node"},
    "switch_up": {"build": _release("switch"), "params": {}, "target": "node"},
    "degrade": {"build": _degrade, "params": {
        "width": Param(None, parse_width, "width the link trains at (lanes or 1x..12x)"),
        "speed": Param(None, parse_speed, "speed the link trains at (SDR..XDR)"),
        "for": _FOR}, "target": "link"},
}


def _keys(kind: str) -> dict[str, str]:
    """Fault parameter name -> YAML name of fault ``kind``."""
    return {p.key or k: k for k, p in FAULTS[kind]["params"].items()}


def fault_params(kind: str, given, *, path: tuple = (), doc=None, keywords: bool = False) -> dict:
    """Validate and convert the parameters of fault ``kind``; the one map from YAML names.

    Parameters
    ----------
    kind : str
        One of :data:`FAULTS` (unknown: the valid kinds and the closest).
    given : mapping
        YAML name -> value as written (``for: 10s``, ``count: 3``).
    path, doc
        Where ``given`` is, for messages (see :func:`ibsim.params.check`).
    keywords : bool
        Also accept the Fault's own names and Python spellings (``for_s=10``,
        ``for_="10s"``), as :meth:`Simulation.inject` does.

    Returns
    -------
    dict
        The :attr:`Fault.params`: given parameters under the Fault's names
        (``for_s``, ``period_s``...), durations in seconds.
    """
    spec = lookup(FAULTS, kind, "fault kind")["params"]
    if keywords:
        names = _keys(kind)
        given = {names.get(k.rstrip("_"), k.rstrip("_")): v for k, v in dict(given or {}).items()}
    return check(f"fault {kind!r}", given, spec, path=path, doc=doc, fill=False)


def expand(fault: Fault) -> list[Action]:
    """The primitive actions of a fault, in time order."""
    return sorted(FAULTS[fault.kind]["build"](fault), key=lambda a: a.at_s)
