"""InfiniBand link widths, speeds and data rates (one table each).

Rates are unidirectional data rates after line encoding (8b/10b up to QDR,
64b/66b for FDR10/FDR/EDR, post-FEC payload rate from HDR on), as tabulated
by the IBTA roadmap and Linux ``ib_rate_to_mbps``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import TopologyError

__all__ = ["WIDTHS", "SPEEDS", "Speed", "parse_width", "parse_speed",
           "parse_rate_label", "data_rate_bps", "rate_label", "WIDTH_CODE",
           "DEFAULT_WIDTH", "DEFAULT_SPEED"]

#: width name -> number of lanes
WIDTHS: dict[str, int] = {"1x": 1, "2x": 2, "4x": 4, "8x": 8, "12x": 12}

#: width name -> PortInfo LinkWidthActive/Enabled/Supported bit (IBA 14.2.5.6)
WIDTH_CODE: dict[str, int] = {"1x": 1, "4x": 2, "8x": 4, "12x": 8, "2x": 16}


class Speed(NamedTuple):
    """One IB lane speed."""

    name: str
    signal_gbps: float       #: lane signalling rate, Gb/s
    data_gbps: float         #: lane data rate after encoding, Gb/s
    speed_code: int          #: PortInfo LinkSpeedActive bit (SDR/DDR/QDR), else 0
    ext_code: int            #: PortInfo LinkSpeedExtActive bit (FDR..NDR), else 0


#: speed name -> Speed, ordered from slowest to fastest
SPEEDS: dict[str, Speed] = {
    s.name: s for s in (
        Speed("SDR", 2.5, 2.0, 1, 0),
        Speed("DDR", 5.0, 4.0, 2, 0),
        Speed("QDR", 10.0, 8.0, 4, 0),
        Speed("FDR10", 10.3125, 10.0, 4, 0),   # Mellanox: reported as QDR + MLNX ExtPortInfo
        Speed("FDR", 14.0625, 14.0625 * 64 / 66, 0, 1),
        Speed("EDR", 25.78125, 25.0, 0, 2),
        Speed("HDR", 53.125, 50.0, 0, 4),
        Speed("NDR", 106.25, 100.0, 0, 8),
        Speed("XDR", 212.5, 200.0, 0, 16),
    )
}

DEFAULT_WIDTH = "4x"
DEFAULT_SPEED = "EDR"

_LABEL = re.compile(r"^(\d+)x\s*([A-Za-z0-9]+)$")


def parse_width(value) -> str:
    """Normalise a width (``4``, ``"4x"``, ``"4X"``) to its name; raise TopologyError."""
    text = str(value).strip().lower()
    if not text.endswith("x"):
        text += "x"
    if text not in WIDTHS:
        raise TopologyError(f"unknown link width {value!r}; choose one of: {', '.join(WIDTHS)}")
    return text


def parse_speed(value) -> str:
    """Normalise a speed name (``"edr"`` -> ``"EDR"``); raise TopologyError."""
    text = str(value).strip().upper()
    if text not in SPEEDS:
        raise TopologyError(f"unknown link speed {value!r}; choose one of: {', '.join(SPEEDS)}")
    return text


def parse_rate_label(label: str) -> tuple[str, str]:
    """Split ``"4xEDR"`` into ``("4x", "EDR")``; raise TopologyError."""
    m = _LABEL.match(label.strip())
    if not m:
        raise TopologyError(f"link rate {label!r} is not of the form <width>x<speed>, e.g. 4xEDR")
    return parse_width(m.group(1)), parse_speed(m.group(2))


def rate_label(width: str, speed: str) -> str:
    """``("4x", "EDR")`` -> ``"4xEDR"``, as ibnetdiscover prints it."""
    return f"{width}{speed}"


def data_rate_bps(width: str, speed: str) -> float:
    """Unidirectional data rate of a link, in bits per second.

    Examples
    --------
    >>> data_rate_bps("4x", "EDR")
    100000000000.0
    >>> data_rate_bps("4x", "QDR")
    32000000000.0
    """
    return WIDTHS[width] * SPEEDS[speed].data_gbps * 1e9
