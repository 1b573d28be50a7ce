"""Read-only views of the simulation: events and snapshots.

Exporters, recorders and servers read these; they never touch the live
state.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..fabric.counters import COUNTER_ROW

if TYPE_CHECKING:  # pragma: no cover
    from ..fabric import FabricIndex
    from ..fabric.state import SmaTables

__all__ = ["Event", "Snapshot", "TRAPS"]

#: IB trap numbers (IBA 14.2.5.1 / 14.3.x) by event kind
TRAPS = {
    "link_down": 128,           # link state change
    "link_up": 128,
    "port_state_change": 128,
    "local_link_integrity": 129,
    "excessive_buffer_overrun": 130,
    "flow_control_watchdog": 131,
    "symbol_errors": 129,
}


@dataclass(frozen=True)
class Event:
    """One state change in the fabric.

    Attributes
    ----------
    time_s : float
        Simulated time, seconds since the start of the run.
    kind : str
        ``link_down``, ``link_up``, ``port_state_change``, ``symbol_errors``,
        ``reroute``, ``job_start``, ``job_stop``, ``fault``, ...
    node_guid, node_desc, port : node and port concerned (None for fabric-wide events)
    peer_guid, peer_desc, peer_port : the other end of the link, when there is one
    trap : int or None
        IB trap number (128 link state change, 129-131 errors).
    details : dict
        Kind-specific data (counter deltas, reason, job name, ...).
    wall_time : float
        Wall-clock epoch seconds when the event was produced (or the event's
        own time, e.g. a log line's, when ``own_wall_time``).
    own_wall_time : bool
        ``wall_time`` was given with the event (``Simulation.note``):
        exporters' time mapping keeps it instead of mapping ``time_s``.
    """

    time_s: float
    kind: str
    node_guid: int | None = None
    node_desc: str | None = None
    port: int | None = None
    peer_guid: int | None = None
    peer_desc: str | None = None
    peer_port: int | None = None
    trap: int | None = None
    details: dict = field(default_factory=dict)
    wall_time: float = 0.0
    own_wall_time: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (GUIDs as ``0x`` hex strings, wall time ISO 8601 UTC)."""
        d = {
            "time_s": round(self.time_s, 9),
            "wall_time": _dt.datetime.fromtimestamp(self.wall_time, _dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "kind": self.kind,
            "node_guid": f"0x{self.node_guid:016x}" if self.node_guid is not None else None,
            "node_desc": self.node_desc,
            "port": self.port,
            "peer_guid": f"0x{self.peer_guid:016x}" if self.peer_guid is not None else None,
            "peer_desc": self.peer_desc,
            "peer_port": self.peer_port,
            "trap": self.trap,
            "details": self.details,
        }
        return d

    def message(self) -> str:
        """One readable line."""
        where = ""
        if self.node_desc is not None:
            where = f" {self.node_desc}"
            if self.port is not None:
                where += f" port {self.port}"
            if self.peer_desc is not None:
                where += f" <-> {self.peer_desc} port {self.peer_port}"
        extra = ", ".join(f"{k}={v}" for k, v in self.details.items()) if self.details else ""
        return f"t={self.time_s:.3f}s {self.kind}{where}" + (f" ({extra})" if extra else "")


@dataclass(frozen=True)
class Snapshot:
    """An immutable copy of the fabric state at one instant.

    Attributes
    ----------
    time_s : float
        Simulated seconds since the start.
    tick : int
        Ticks done.
    wall_time : float
        Wall-clock epoch seconds when the snapshot was taken.
    fabric : FabricIndex
        The compiled fabric: frozen index arrays, shared by every snapshot
        (the live state is not reachable from it).
    counters : ndarray of uint64, shape (n_counters, n_ports)
        64-bit counter values, rows in ``COUNTERS`` order.
    port_state, phys_state, width, speed : ndarray of uint8, (n_ports,)
    lid : ndarray of uint16, (n_ports,)
    xmit_rate, rcv_rate : ndarray of float64, (n_ports,)
        Current data rates in bytes/s.
    events : tuple of Event
        Events since the previous snapshot given to the same observer.
    sma : SmaTables or None
        Attribute blocks a subnet manager set (P_Key, SL2VL, VLArb, ...).
    jobs : tuple of JobStat
        Every job run that has started (running or ended), with its bytes,
        XmitWait and share so far (:class:`~ibsim.engine.accounting.JobStat`).
    """

    time_s: float
    tick: int
    wall_time: float
    fabric: "FabricIndex"
    counters: np.ndarray
    port_state: np.ndarray
    phys_state: np.ndarray
    width: np.ndarray
    speed: np.ndarray
    lid: np.ndarray
    xmit_rate: np.ndarray
    rcv_rate: np.ndarray
    events: tuple = ()
    sma: "SmaTables | None" = field(default=None, repr=False, compare=False)
    jobs: tuple = ()

    def counter(self, name: str) -> np.ndarray:
        """One counter row (n_ports,) by sysfs name."""
        return self.counters[COUNTER_ROW[name]]

    def with_events(self, events) -> "Snapshot":
        """A copy that carries ``events`` (arrays shared, not copied)."""
        return dataclasses.replace(self, events=tuple(events))
