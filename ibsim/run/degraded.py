"""Degraded links of a run: cables up below what the devices at both ends support.

A cable that trained at 4xDDR between two EDR switches, or a link a
``degrade`` fault slowed, carries traffic at its trained rate while both
ports could run faster (:func:`ibsim.fabric.devices.degraded_ports`). The
:class:`~ibsim.run.recorder.Recorder` follows them at every sample with a
:class:`DegradedLinks`; ``metadata.json`` lists them under
``degraded_links``, and ``summary.txt`` and ``overview.png`` mark them.
"""

from __future__ import annotations

import numpy as np

from ..fabric.devices import link_caps
from ..fabric.index import SPEED_NAMES, WIDTH_NAMES
from ..fabric.names import node_names

__all__ = ["DegradedLinks", "summary_lines", "rate_text"]


def rate_text(width: int, speed: int) -> str:
    """``(4, 2)`` -> ``"4xDDR"``."""
    return f"{WIDTH_NAMES.get(int(width), f'{int(width)}x')}{SPEED_NAMES[int(speed)]}"


class DegradedLinks:
    """Which cabled ports ran degraded during a run, since when, at what rate.

    Parameters
    ----------
    fabric : FabricIndex
    ports : ndarray of int
        The recorder's cabled ports.
    """

    def __init__(self, fabric, ports: np.ndarray):
        self.fabric = fabric
        self.ports = ports
        cw, cs = link_caps(fabric)
        self.cap_width, self.cap_speed = cw[ports], cs[ports]
        n = len(ports)
        self.since = np.full(n, np.nan)                 # first sample seen degraded [s]
        self.width = np.zeros(n, dtype=np.uint8)        # trained rate the last time seen degraded
        self.speed = np.zeros(n, dtype=np.uint8)

    def update(self, time_s: float, width: np.ndarray, speed: np.ndarray) -> None:
        """One sample: ``width``/``speed`` are the snapshot's (all ports)."""
        w, s = width[self.ports], speed[self.ports]
        bad = (w > 0) & ((w < self.cap_width) | (s < self.cap_speed))
        if bad.any():
            self.since[bad & np.isnan(self.since)] = time_s
            self.width[bad] = w[bad]
            self.speed[bad] = s[bad]

    def to_meta(self) -> list[dict]:
        """One entry per cable that ran degraded: ends, trained and supported rates, since when."""
        f = self.fabric
        names = node_names(f)
        idx = np.flatnonzero(~np.isnan(self.since))
        out = []
        seen = set()
        for i in idx.tolist():
            p = int(self.ports[i])
            q = int(f.peer_of_port[p])
            if (min(p, q), max(p, q)) in seen:
                continue
            seen.add((min(p, q), max(p, q)))
            out.append({"port": f"{names[f.node_of_port[p]]}:{int(f.port_num[p])}",
                        "peer": f"{names[f.node_of_port[q]]}:{int(f.port_num[q])}",
                        "trained": rate_text(self.width[i], self.speed[i]),
                        "supported": rate_text(self.cap_width[i], self.cap_speed[i]),
                        "since_s": round(float(self.since[i]), 9)})
        return out


def summary_lines(meta: dict, max_rows: int = 15) -> list[str]:
    """The ``Degraded links`` section of ``summary.txt`` (empty when the run had none)."""
    links = meta.get("degraded_links") or []
    if not links:
        return []
    lines = ["", f"Degraded links ({len(links)}: up below what both ends support)"]
    rows = [[d["port"], d["peer"], d["trained"], d["supported"], f"{d['since_s']:g}"] for d in links[:max_rows]]
    head = ["port", "peer", "trained", "could be", "since s"]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    for r in [head] + rows:
        lines.append("  " + "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())
    if len(links) > max_rows:
        lines.append(f"  ... and {len(links) - max_rows} more")
    return lines
