"""Exporter options: :class:`~ibsim.params.Param` s checked at construction by the one checker.

Unknown keys are rejected naming the valid ones and the closest; a bad
value names the key. Integers follow the one rule of :mod:`ibsim.params`
(a YAML/Python integer, not ``"5"``). Used through :mod:`ibsim.export`.
"""

from __future__ import annotations

import datetime as _dt
from typing import Mapping

from ..errors import ScenarioError, lookup
from ..fabric.counters import COUNTER_NAMES, COUNTER_ROW
from ..params import Param, boolean, check, choice, integer, number, text
from ..params import duration as _duration

__all__ = ["Option", "parse_options", "integer", "number", "duration", "boolean", "text", "choice",
           "host", "port", "text_list", "counters", "event_kinds", "epoch_value"]


#: an exporter option is a :class:`~ibsim.params.Param`: ``Option(default, convert, help)``
Option = Param


def parse_options(kind: str, given: Mapping | None, spec: Mapping[str, Option]):
    """Validate ``given`` against ``spec`` with :func:`ibsim.params.check`; a namespace with every option.

    Raises
    ------
    ScenarioError
        For an unknown key (naming the valid ones and the closest) or a bad
        value; ``path`` is the key.
    """
    return _Options(**check(f"exporter {kind}", given, spec))


class _Options(dict):
    """Options as a dict that also reads as attributes."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


#: converter: seconds from ``10s``/``500ms`` or a number; must be positive
duration = _duration(positive=True)


def host(v) -> str:
    """Converter: a host name or address without blanks."""
    if not isinstance(v, str) or not v or any(c.isspace() for c in v):
        raise ScenarioError(f"expected a host name or address, got {v!r}")
    return v.strip("[]")


port = integer(0, 65535)


def text_list(v) -> tuple[str, ...]:
    """Converter: a list of non-empty strings (a single string is a list of one)."""
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(s, str) and s for s in v):
        raise ScenarioError(f"expected a list of strings, got {v!r}")
    return tuple(v)


def counters(v) -> tuple[str, ...]:
    """Converter: ``all`` or a list of sysfs counter names (checked against the schema)."""
    if v == "all" or v is None:
        return COUNTER_NAMES
    names = text_list(v)
    for n in names:
        lookup(COUNTER_ROW, n, "counter")
    return tuple(n for n in COUNTER_NAMES if n in set(names))


def event_kinds(v) -> tuple[str, ...] | None:
    """Converter: ``all`` (None: every event kind) or a list of event kinds."""
    return None if v == "all" else text_list(v)


def epoch_value(v) -> float:
    """Converter: epoch seconds from a number, an ISO 8601 string or a datetime (UTC if naive)."""
    if isinstance(v, bool):
        raise ScenarioError(f"expected an epoch or an ISO 8601 time, got {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            v = _dt.datetime.fromisoformat(v.strip())
        except ValueError:
            raise ScenarioError(f"expected an epoch or an ISO 8601 time like "
                                f"'2025-01-01T00:00:00Z', got {v!r}") from None
    if isinstance(v, _dt.date) and not isinstance(v, _dt.datetime):
        v = _dt.datetime(v.year, v.month, v.day)
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        return v.timestamp()
    raise ScenarioError(f"expected an epoch or an ISO 8601 time, got {v!r}")
