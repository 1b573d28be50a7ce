"""Declared parameters and the one checker every section of ibsim validates with.

A :class:`Param` says what one parameter accepts (its converter), its unit,
default and help. :func:`check` validates a mapping of given values against a
mapping of Params: it rejects unknown keys naming the closest valid one,
converts every value and fills in defaults. Traffic patterns
(:data:`ibsim.traffic.PATTERNS`), fault kinds (:data:`ibsim.faults.FAULTS`),
topology generators (:data:`ibsim.topology.GENERATORS`), exporter options
(``OPTIONS`` of each exporter) and the YAML topology reader all declare
Params and go through :func:`check`.

Errors are :class:`~ibsim.errors.ScenarioError` with one format: the key path
(``traffic[1].k``) and, when the caller passes the document it read
(anything with ``error(path, message)``, such as
:class:`ibsim.yamldoc.YamlDoc`), the file and the line.

The integer rule
----------------
An integer is a Python (or numpy) integer that is not a bool: ``5`` is one;
``5.0``, ``"5"``, ``true`` are not. Text is accepted only where a Param
explicitly allows it: identifiers written in hex (``integer(text=True)``:
GUIDs, vendor and device IDs, ``"0x0002c903..."``) and integer lists given
as text (``int_list``: ``"4x4x4"``, ``"18,36"``).

>>> spec = {"k": Param(1, integer(lo=0), "shift distance", unit="hosts")}
>>> check("pattern 'shift'", {"k": 3}, spec)
{'k': 3}
>>> check("pattern 'shift'", {"kk": 3}, spec, path=("traffic", 1))
Traceback (most recent call last):
...
ibsim.errors.ScenarioError: traffic[1].kk: unknown key 'kk' (did you mean 'k'?); pattern 'shift' takes: k
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .errors import ScenarioError, TopologyError, format_path, suggest
from .units import parse_duration, parse_rate, parse_size

__all__ = ["Param", "REQUIRED", "check", "describe", "integer", "number", "duration", "duration_or", "rate", "size",
           "boolean", "text", "name", "choice", "int_list", "name_pairs", "anything", "optional",
           "list_of", "mapping_of"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: default of a parameter that must be given
REQUIRED = _Required()


def _identity(value):
    return value


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    Parameters
    ----------
    default : object
        Value used when the key is absent (converted too, unless None);
        :data:`REQUIRED` when it must be given.
    convert : callable
        ``convert(value) -> value``; raises ScenarioError (or TopologyError,
        ValueError, TypeError) for a bad value. Converters made here
        (:func:`integer`, :func:`duration`, ...) carry their bounds or choices
        and a ``cli`` attribute: how a command-line string becomes a value.
    help : str
        One line for ``--help`` and documentation.
    unit : str, optional
        Unit of the converted value (``s``, ``bytes/s``, ``hosts``...).
    key : str, optional
        Name the value is stored under after conversion, when it differs
        from the key it is given as (a fault's ``for`` is ``for_s``).
    """

    default: Any = REQUIRED
    convert: Callable[[Any], Any] = _identity
    help: str = ""
    unit: str = ""
    key: str | None = None

    @property
    def required(self) -> bool:
        """Whether the parameter has no default."""
        return self.default is REQUIRED


def _kind(value) -> str:
    """``'a list'``, ``"the string 'x'"``... for messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


describe = _kind


class _ItemError(ScenarioError):
    """A bad item of a list value; ``sub`` is its path below the parameter."""

    def __init__(self, message: str, sub: tuple):
        super().__init__(message)
        self.sub = sub


def _item(conv, value, index):
    """``conv(value)``; a failure names the item ``index``."""
    try:
        return conv(value)
    except _ItemError as exc:
        raise _ItemError(exc.message, (index,) + exc.sub) from None
    except ScenarioError as exc:
        raise _ItemError(exc.message, (index,)) from None


def check(kind: str, given: Mapping | None, spec: Mapping[str, Param], *, path: tuple = (),
          doc=None, fill: bool = True, elsewhere: Mapping[str, str] | None = None) -> dict:
    """Validate and convert ``given`` against ``spec``.

    Parameters
    ----------
    kind : str
        What takes these parameters, for messages (``"pattern 'shift'"``).
    given : mapping or None
        Key -> value as written (YAML data, keyword arguments).
    spec : mapping of str to Param
        The declaration.
    path : tuple
        Key path of ``given`` in its document (``("traffic", 1)``).
    doc : object, optional
        Anything with ``error(path, message) -> ScenarioError`` (a
        :class:`~ibsim.yamldoc.YamlDoc`): errors then name its file and line.
    fill : bool
        Add absent keys with their default (required ones must be present).
        With False, only the given keys are returned.
    elsewhere : mapping, optional
        Unknown key -> where it belongs, added to its message
        (``"(it belongs to shift)"``).

    Returns
    -------
    dict
        Converted values, stored under each Param's ``key`` (default: its name).

    Raises
    ------
    ScenarioError
        Unknown key (with the closest valid key and the valid ones), missing
        required key, or a value its converter rejects; ``path`` is the key
        path (``traffic[1].k``).
    """
    def fail(p: tuple, message: str) -> ScenarioError:
        if doc is not None:
            return doc.error(p, message)
        return ScenarioError(message, path=format_path(p) or None)

    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise fail(path, f"{kind} expects a mapping of parameters, got {_kind(given)}")
    for key in given:
        if key not in spec:
            hint = suggest(str(key), spec)
            msg = f"unknown key {key!r}"
            if elsewhere and key in elsewhere:
                msg += f" (it belongs to {elsewhere[key]})"
            elif hint:
                msg += f" (did you mean {hint!r}?)"
            msg += f"; {kind} takes: {', '.join(spec)}" if spec else f"; {kind} takes no parameters"
            raise fail(path + (key,), msg)
    out = {}
    for key, param in spec.items():
        if key in given:
            value = given[key]
        elif not fill:
            continue
        elif param.required:
            raise fail(path, f"missing required key {key!r} ({param.help})" if param.help
                       else f"missing required key {key!r}")
        else:
            value = param.default
        if key in given or value is not None:
            try:
                value = param.convert(value)
            except _ItemError as exc:
                raise fail(path + (key,) + exc.sub, exc.message) from None
            except ScenarioError as exc:
                raise fail(path + (key,), exc.message) from None
            except TopologyError as exc:
                raise fail(path + (key,), getattr(exc, "message", str(exc))) from None
            except (TypeError, ValueError) as exc:
                raise fail(path + (key,), f"invalid value {given.get(key, param.default)!r}: {exc}") from None
        out[param.key or key] = value
    return out


# ----------------------------------------------------------------- converters
def _with(conv, cli, what: str):
    conv.cli = cli
    conv.what = what
    return conv


def _range_text(lo, hi, lo_open=False) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]" if not lo_open else f"in ({lo}, {hi}]"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"<= {hi}"


def integer(lo: int | None = None, hi: int | None = None, *, text: bool = False):
    """Converter: an integer in [lo, hi] (the integer rule in the module docstring).

    ``text=True`` also accepts a string in Python integer syntax, such as hex
    ``"0x2c9"`` (identifiers only).
    """
    def conv(v):
        if text and isinstance(v, str):
            try:
                v = int(v.strip(), 0)
            except ValueError:
                raise ScenarioError(f"expected an integer, got {_kind(v)}") from None
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ScenarioError(f"expected an integer, got {_kind(v)}")
        n = int(v)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            shown = f"{n:#x}" if text else str(n)
            raise ScenarioError(f"must be {_range_text(lo, hi)}, got {shown}")
        return n
    return _with(conv, int, "an integer" + (f" {_range_text(lo, hi)}" if lo is not None or hi is not None
                                            else ""))


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False):
    """Converter: a float in [lo, hi] (``lo_open``: > lo); numeric text too (YAML reads 1e-9 as text)."""
    def conv(v):
        if isinstance(v, bool) or not isinstance(v, (numbers.Real, str)):
            raise ScenarioError(f"expected a number, got {_kind(v)}")
        try:
            x = float(v)
        except ValueError:
            raise ScenarioError(f"expected a number, got {v!r}") from None
        if lo is not None and (x < lo or (lo_open and x == lo)):
            raise ScenarioError(f"must be {'>' if lo_open else '>='} {lo}, got {v!r}")
        if hi is not None and x > hi:
            raise ScenarioError(f"must be <= {hi}, got {v!r}")
        return x
    return _with(conv, float, "a number")


def duration(positive: bool = False):
    """Converter: seconds from ``100ms``/``10s``/``2m`` or a number; >= 0 (or > 0)."""
    def conv(v):
        s = parse_duration(v)
        if s < 0 or (positive and s == 0):
            raise ScenarioError(f"must be {'positive' if positive else '>= 0'}, got {v!r}")
        return s
    return _with(conv, str, "a duration")


def duration_or(*words: str, positive: bool = False):
    """Converter: a duration (as :func:`duration`), or one of ``words`` (returned as given).

    YAML reads a bare ``off`` as false: false is taken as ``"off"`` when that is one of the words.
    """
    dur = duration(positive)

    def conv(v):
        if v is False and "off" in words:
            return "off"
        if isinstance(v, str) and v.strip().lower() in words:
            return v.strip().lower()
        try:
            return dur(v)
        except ScenarioError as exc:
            raise ScenarioError(f"expected a duration or one of: {', '.join(words)}; {exc}") from None
    return _with(conv, str, "a duration or " + " / ".join(words))


def rate(v) -> float:
    """Converter: a positive data rate in bytes/s from ``40Gbps`` or ``5GB/s``."""
    r = parse_rate(v)
    if r <= 0:
        raise ScenarioError(f"must be positive, got {v!r}")
    return r


_with(rate, str, "a data rate")


def size(v) -> int:
    """Converter: a size in bytes from ``4096``, ``4KiB`` or ``2MB``."""
    return parse_size(v)


_with(size, str, "a size")


def boolean(v) -> bool:
    """Converter: a real boolean (YAML true/false)."""
    if not isinstance(v, bool):
        raise ScenarioError(f"expected true or false, got {v!r}")
    return v


_with(boolean, "bool", "true or false")


def text(v) -> str:
    """Converter: a non-empty string."""
    if not isinstance(v, str) or not v:
        raise ScenarioError(f"expected a non-empty string, got {v!r}")
    return v


_with(text, str, "a string")


def name(v) -> str:
    """Converter: a name (a string; a YAML integer such as ``42`` is read as its text)."""
    if isinstance(v, bool) or not isinstance(v, (str, numbers.Integral)):
        raise ScenarioError(f"expected a string, got {_kind(v)}")
    return str(v)


_with(name, str, "a name")


def anything(v):
    """Converter: any value, unchanged (the consumer checks it)."""
    return v


_with(anything, str, "a value")


def choice(*values):
    """Converter: one of ``values`` (closest suggested)."""
    def conv(v):
        if v not in values:
            hint = suggest(v, values)
            raise ScenarioError(f"expected one of: {', '.join(map(str, values))}, got {v!r}"
                                + (f" (did you mean {hint!r}?)" if hint else ""))
        return v
    return _with(conv, str, "one of " + ", ".join(map(str, values)))


def _split_ints(value: str) -> tuple:
    """``"4,4,4"``/``"4x4x4"`` -> ``(4, 4, 4)`` (items that are not integers kept as text)."""
    out = []
    for part in str(value).replace("x", ",").split(","):
        part = part.strip()
        if part:
            try:
                out.append(int(part))
            except ValueError:
                out.append(part)
    return tuple(out)


def int_list(lo: int | None = None, *, scalar: bool = False):
    """Converter: a list of integers >= lo, or its text ``"18,36"``/``"4x4x4"`` -> tuple.

    ``scalar=True`` also accepts a single integer (kept as it is).
    """
    item = integer(lo)

    def conv(v):
        if scalar and isinstance(v, numbers.Integral) and not isinstance(v, bool):
            return v
        if isinstance(v, str):
            return v            # the consumer parses the text form and names its own errors
        if not isinstance(v, (list, tuple)):
            raise ScenarioError(f"expected a list of integers, got {_kind(v)}")
        return tuple(_item(item, x, j) for j, x in enumerate(v))
    return _with(conv, _split_ints, "a list of integers")


def name_pairs(v) -> tuple:
    """Converter: a list of ``[source, destination]`` names -> tuple of 2-tuples of str."""
    if not isinstance(v, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in v):
        raise ScenarioError("expected a list of [source, destination] host names")
    return tuple((_item(lambda x: _item(name, x, 0), a, j), _item(lambda x: _item(name, x, 1), b, j))
                 for j, (a, b) in enumerate(v))


_with(name_pairs, str, "a list of [source, destination] names")


def optional(conv):
    """Converter: None (YAML null) stays None, anything else goes through ``conv``."""
    def opt(v):
        return None if v is None else conv(v)
    return _with(opt, getattr(conv, "cli", str), getattr(conv, "what", "a value") + " or null")


def list_of(conv):
    """Converter: a list whose items go through ``conv`` -> tuple (a bad item names its index)."""
    def conv_list(v):
        if not isinstance(v, (list, tuple)):
            raise ScenarioError(f"expected a list, got {_kind(v)}")
        return tuple(_item(conv, x, j) for j, x in enumerate(v))
    return _with(conv_list, str, "a list")


def mapping_of(key_conv, value_conv):
    """Converter: a mapping whose keys and values go through the converters (errors name the key)."""
    def conv_map(v):
        if not isinstance(v, Mapping):
            raise ScenarioError(f"expected a mapping, got {_kind(v)}")
        return {_item(key_conv, k, k): _item(value_conv, x, k) for k, x in v.items()}
    return _with(conv_map, str, "a mapping")
