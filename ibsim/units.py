"""Parse quantities with units: durations, data rates, sizes.

>>> parse_duration("100ms"), parse_duration("2m"), parse_duration(5)
(0.1, 120.0, 5.0)
>>> parse_rate("40Gbps"), parse_rate("1.5 GB/s")
(5000000000.0, 1500000000.0)
>>> parse_size("4KiB"), parse_size(4096)
(4096, 4096)
"""

from __future__ import annotations

import re

from .errors import ScenarioError

__all__ = ["parse_duration", "parse_rate", "parse_size", "format_duration"]

_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
              "m": 60.0, "min": 60.0, "h": 3600.0}
# rates: bits per second (b) or bytes per second (B, B/s)
_RATE_UNITS = {"bps": 1 / 8, "kbps": 1e3 / 8, "mbps": 1e6 / 8, "gbps": 1e9 / 8, "tbps": 1e12 / 8,
               "b/s": 1.0, "kb/s": 1e3, "mb/s": 1e6, "gb/s": 1e9, "tb/s": 1e12,
               "bps_bytes": 1.0}
_SIZE_UNITS = {"b": 1, "": 1, "kb": 1000, "mb": 10**6, "gb": 10**9,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def _split(value, what: str) -> tuple[float, str]:
    if isinstance(value, bool):
        raise ScenarioError(f"expected a {what}, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value), ""
    m = re.fullmatch(_NUM + r"\s*([A-Za-zµ/]*)", str(value).strip())
    if not m:
        raise ScenarioError(f"expected a {what} like {_EXAMPLES[what]}, got {value!r}")
    return float(m.group(1)), m.group(2)


_EXAMPLES = {"duration": "'100ms', '10s' or '2m'", "rate": "'40Gbps' or '5GB/s'",
             "size": "'4096', '4KiB' or '2MB'"}


def parse_duration(value) -> float:
    """A duration in seconds from ``100ms``/``10s``/``2m``/``1h`` or a number of seconds."""
    num, unit = _split(value, "duration")
    if unit == "":
        return num
    try:
        return num * _DUR_UNITS[unit]
    except KeyError:
        raise ScenarioError(f"unknown duration unit {unit!r} in {value!r}; "
                            f"use one of: {', '.join(_DUR_UNITS)}") from None


def parse_rate(value) -> float:
    """A data rate in **bytes per second** from ``40Gbps`` (bits) or ``5GB/s`` (bytes)."""
    num, unit = _split(value, "rate")
    if unit == "":
        return num
    key = unit.lower() if unit.lower().endswith("bps") else unit
    if key.endswith("bps"):
        mult = _RATE_UNITS.get(key)
    else:
        mult = {"B/s": 1.0, "kB/s": 1e3, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12}.get(unit)
    if mult is None:
        raise ScenarioError(f"unknown rate unit {unit!r} in {value!r}; use bits (bps, Mbps, Gbps) "
                            f"or bytes per second (MB/s, GB/s)")
    return num * mult


def parse_size(value) -> int:
    """A size in bytes from ``4096``, ``4KiB``, ``2MB``."""
    num, unit = _split(value, "size")
    try:
        return int(num * _SIZE_UNITS[unit.lower()])
    except KeyError:
        raise ScenarioError(f"unknown size unit {unit!r} in {value!r}; "
                            f"use one of: B, KB, MB, GB, KiB, MiB, GiB") from None


def format_duration(seconds: float) -> str:
    """``90.0`` -> ``'90s'``; ``0.1`` -> ``'100ms'``."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
