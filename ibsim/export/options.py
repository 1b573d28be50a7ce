"""Exporter options: declared once with a default and a converter, checked at construction.

Unknown keys are rejected naming the valid ones and the closest; a bad
value names the key. Used through :mod:`ibsim.export`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import ScenarioError, lookup, suggest
from ..fabric.counters import COUNTER_NAMES, COUNTER_ROW
from ..units import parse_duration

__all__ = ["Option", "parse_options", "integer", "number", "duration", "boolean", "text", "choice",
           "host", "port", "text_list", "counters", "event_kinds", "epoch_value"]


@dataclass(frozen=True)
class Option:
    """One exporter option: its default, a converter that validates it, and help."""

    default: Any
    convert: Callable[[Any], Any] = lambda v: v
    help: str = ""


def parse_options(kind: str, given: Mapping | None, spec: Mapping[str, Option]):
    """Validate ``given`` against ``spec``; returns a namespace with every option.

    Raises
    ------
    ScenarioError
        For an unknown key (naming the valid ones and the closest) or a bad
        value; ``path`` is the key.
    """
    given = dict(given or {})
    for key in given:
        if key not in spec:
            hint = suggest(key, spec)
            raise ScenarioError(f"{kind} has no option {key!r}; its options are: "
                                f"{', '.join(sorted(spec))}" + (f" (did you mean {hint!r}?)" if hint else ""),
                                path=str(key))
    out = {}
    for key, opt in spec.items():
        value = given.get(key, opt.default)
        if key in given or value is not None:
            try:
                value = opt.convert(value)
            except ScenarioError as exc:
                raise ScenarioError(exc.message, path=key) from None
            except (TypeError, ValueError) as exc:
                raise ScenarioError(f"invalid value {given.get(key, opt.default)!r}: {exc}",
                                    path=key) from None
        out[key] = value
    return _Options(**out)


class _Options(dict):
    """Options as a dict that also reads as attributes."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def integer(lo: int | None = None, hi: int | None = None):
    """Converter: an integer in [lo, hi]."""
    def conv(v):
        try:
            ok = not isinstance(v, bool) and float(v) == int(float(v))
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise ScenarioError(f"expected an integer, got {v!r}")
        n = int(float(v))
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise ScenarioError(f"expected an integer in [{lo}, {hi}], got {n}")
        return n
    return conv


def number(lo: float | None = None):
    """Converter: a float >= lo."""
    def conv(v):
        try:
            x = float(v) if not isinstance(v, bool) else None
        except (TypeError, ValueError):
            x = None
        if x is None:
            raise ScenarioError(f"expected a number, got {v!r}")
        if lo is not None and x < lo:
            raise ScenarioError(f"expected a number >= {lo}, got {x}")
        return x
    return conv


def duration(v) -> float:
    """Converter: seconds from ``10s``/``500ms`` or a number; must be positive."""
    s = parse_duration(v)
    if s <= 0:
        raise ScenarioError(f"expected a positive duration, got {v!r}")
    return s


def boolean(v) -> bool:
    """Converter: a real boolean (YAML true/false)."""
    if not isinstance(v, bool):
        raise ScenarioError(f"expected true or false, got {v!r}")
    return v


def text(v) -> str:
    """Converter: a non-empty string."""
    if not isinstance(v, str) or not v:
        raise ScenarioError(f"expected a non-empty string, got {v!r}")
    return v


def choice(*values: str):
    """Converter: one of ``values``."""
    def conv(v):
        if v not in values:
            hint = suggest(v, values)
            raise ScenarioError(f"expected one of: {', '.join(values)}, got {v!r}"
                                + (f" (did you mean {hint!r}?)" if hint else ""))
        return v
    return conv


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
