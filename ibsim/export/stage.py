"""The export stage: time mapping, one worker thread per exporter, failure isolation, stats."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time as _time
from dataclasses import dataclass
from typing import Iterable

from ..engine.snapshot import Snapshot
from ..errors import ExporterError
from ..units import parse_duration
from .options import duration
from .protocol import ExporterSpec
from .transports import ErrorLog, failure_kind

__all__ = ["TimeMap", "ExportHandle", "ExportStage", "attach", "summary_line"]

log = logging.getLogger(__name__)


# ====================================================================== time mapping
@dataclass(frozen=True)
class TimeMap:
    """Simulated seconds to wall-clock epoch seconds: ``epoch(t) = origin + t / factor``."""

    origin: float
    factor: float = 1.0

    def __call__(self, t_s: float) -> float:
        return self.origin + t_s / self.factor

    @classmethod
    def fixed(cls, epoch: float) -> "TimeMap":
        """Simulated time 0 at ``epoch``, one simulated second per second."""
        return cls(float(epoch), 1.0)

    @classmethod
    def for_run(cls, start_wall: float, *, until: float | None = None, realtime: float | None = None,
                now_s: float = 0.0) -> "TimeMap":
        """The mapping for a run starting now (see the module docstring).

        Parameters
        ----------
        start_wall : float
            Wall-clock epoch seconds when the run starts.
        until : float, optional
            Planned end, simulated seconds (absolute). Fast mode only.
        realtime : float, optional
            Real-time factor (simulated seconds per wall second); None = fast mode.
        now_s : float
            Simulated time at ``start_wall`` (0 for a fresh simulation).

        Examples
        --------
        >>> TimeMap.for_run(1_700_000_000.7, until=60)(60)      # fast: ends at the start time
        1700000000.0
        >>> TimeMap.for_run(1_700_000_000.0, realtime=2.0)(10)  # 10 s simulated = 5 s of wall time
        1700000005.0
        """
        if realtime:
            return cls(start_wall - now_s / realtime, float(realtime))
        if until is not None and math.isfinite(until):
            return cls(math.floor(start_wall) - float(until), 1.0)
        return cls(start_wall - now_s, 1.0)


# ====================================================================== stage
_SUMMARY_COUNTS = ("unconfirmed", "dropped", "resent", "reconnects", "errors")


def summary_line(label: str, st: dict) -> str:
    """One line of the run summary for an exporter's stats (see :meth:`ExportStage.stats`).

    Examples
    --------
    >>> summary_line("logstash", {"sent": 3, "unconfirmed": 0, "dropped": 1, "errors": 2})
    'exporter logstash: sent 3 (confirmed), unconfirmed 0, dropped 1, errors 2'
    """
    parts = [f"sent {st.get('sent', 0)} (confirmed)"]
    parts += [f"{k} {st[k]}" for k in _SUMMARY_COUNTS if k in st]
    if st.get("waited_s"):
        parts.append(f"waited {st['waited_s']:g} s")
    if st.get("url"):
        parts.append(f"url {st['url']}")
    line = f"exporter {label}: " + ", ".join(parts)
    return line + (f"; delivery: {st['delivery']}" if st.get("delivery") else "")


class ExportHandle:
    """One attached exporter: its observer callback, worker thread and counts."""

    def __init__(self, exporter, *, label: str, every_s: float, timemap: TimeMap, block: bool,
                 close_timeout: float = 60.0):
        self.exporter = exporter
        self.label = label
        self.every_s = every_s
        self.timemap = timemap
        self.block = block
        self.close_timeout = close_timeout
        self.errors = ErrorLog(label)
        self.written = 0
        self.skipped = 0
        self._slot: Snapshot | None = None
        self._cv = threading.Condition()
        self._closing = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"ibsim-export-{label}", daemon=True)
        self._thread.start()

    def _remap(self, snap: Snapshot) -> Snapshot:
        tm = self.timemap
        evs = tuple(e if e.own_wall_time else dataclasses.replace(e, wall_time=tm(e.time_s))
                    for e in snap.events)
        return dataclasses.replace(snap, wall_time=tm(snap.time_s), events=evs)

    def __call__(self, snapshot: Snapshot) -> None:
        """The observer: hand the snapshot to the worker (waits in fast mode, replaces in real time)."""
        snap = self._remap(snapshot)
        with self._cv:
            if self._closing:
                return
            if self._slot is not None:
                if self.block:
                    while self._slot is not None and self._thread.is_alive():
                        self._cv.wait(1.0)
                else:
                    snap = snap.with_events(self._slot.events + snap.events)
                    self.skipped += 1
            self._slot = snap
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._slot is None and not self._closing:
                    self._cv.wait()
                if self._slot is None:
                    return
                snap, self._slot = self._slot, None
                self._cv.notify_all()
            try:
                self.exporter.write(snap)
                self.written += 1
            except Exception as exc:      # isolation: a broken exporter never stops the run
                self.errors.error(failure_kind(exc), f"write failed: {exc!r}")
                log.debug("exporter %s: write failed", self.label, exc_info=True)

    def stats(self) -> dict:
        """The exporter's counts (``sent`` confirmed, ``unconfirmed``, ``dropped``, ``resent``,
        ``reconnects``, ``errors``, ...) plus ``written``/``skipped`` snapshots."""
        st = {"sent": 0, "unconfirmed": 0, "dropped": 0, "resent": 0, "reconnects": 0, "errors": 0}
        getter = getattr(self.exporter, "stats", None)
        if getter is not None:
            try:
                st.update(getter())
            except Exception as exc:  # pragma: no cover - defensive
                self.errors.error(failure_kind(exc), f"stats failed: {exc!r}")
        st["errors"] = st.get("errors", 0) + self.errors.total
        st.update({"exporter": getattr(self.exporter, "name", type(self.exporter).__name__),
                   "unit": getattr(self.exporter, "unit", "points"), "every_s": self.every_s,
                   "written": self.written, "skipped": self.skipped})
        return st

    def close(self) -> None:
        """Deliver the waiting snapshot, stop the worker, close the exporter (bounded waits)."""
        if self._closed:
            return
        self._closed = True
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(self.close_timeout)
        if self._thread.is_alive():
            self.errors.error("close_timeout", f"still writing after {self.close_timeout:g} s; abandoned")
        try:
            self.exporter.close()
        except Exception as exc:
            self.errors.error(failure_kind(exc), f"close failed: {exc!r}")
        self.errors.summary()
        exp_errors = getattr(self.exporter, "errors", None)
        if isinstance(exp_errors, ErrorLog):
            exp_errors.summary()


class ExportStage:
    """The exporters attached to one simulation (iterable over :class:`ExportHandle`)."""

    def __init__(self, handles: list[ExportHandle], timemap: TimeMap):
        self.handles = handles
        self.timemap = timemap

    def __iter__(self):
        return iter(self.handles)

    def __len__(self) -> int:
        return len(self.handles)

    def stats(self) -> dict[str, dict]:
        """Per exporter label: ``sent`` (confirmed), ``unconfirmed``, ``dropped``, ``resent``,
        ``reconnects``, ``errors``, ``waited_s``, ``delivery``, ..."""
        return {h.label: h.stats() for h in self.handles}

    def summary(self, stats: dict[str, dict] | None = None) -> list[str]:
        """The run summary's lines, one per exporter (:func:`summary_line`)."""
        return [summary_line(label, st) for label, st in (stats or self.stats()).items()]

    def close(self) -> dict[str, dict]:
        """Flush and close every exporter (in parallel, each bounded); returns :meth:`stats`."""
        threads = [threading.Thread(target=h.close, daemon=True) for h in self.handles]
        for t in threads:
            t.start()
        for t, h in zip(threads, self.handles):
            t.join(h.close_timeout + 30.0)
        return self.stats()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def attach(sim, exporters: Iterable, *, every=1.0, until=None, realtime: float | None = None,
           timemap: TimeMap | None = None, start_wall: float | None = None,
           block: bool | None = None, close_timeout: float = 60.0) -> ExportStage:
    """Open each exporter and register it as an observer of ``sim``.

    Parameters
    ----------
    sim : Simulation
    exporters : iterable of ExporterSpec or exporter objects
    every : float or str
        Default observer interval (simulated seconds) for specs without one.
    until : float or str, optional
        Planned end of the run (simulated, absolute), for the fast-mode time map.
    realtime : float, optional
        Real-time factor the run will use (None: fast mode).
    timemap : TimeMap, optional
        Overrides the mapping computed by :meth:`TimeMap.for_run`.
    start_wall : float, optional
        Wall time of the start (default: now).
    block : bool, optional
        Wait for a busy exporter (default: in fast mode) instead of skipping.
    close_timeout : float
        Seconds :meth:`ExportStage.close` waits for each worker.

    Raises
    ------
    ExporterError
        If an exporter cannot open (e.g. its HTTP port is taken). A server
        that is down is not an error: the exporter retries.
    """
    every_s = duration(every)
    until_s = parse_duration(until) if until is not None else None
    if timemap is None:
        timemap = TimeMap.for_run(_time.time() if start_wall is None else start_wall, until=until_s,
                                  realtime=realtime, now_s=sim.time_s)
        if not realtime and until_s is None:
            log.warning("exporters: no planned end, so simulated time maps to wall time from now on; "
                        "servers may drop points stamped in the future")
    if block is None:
        block = not realtime
    handles: list[ExportHandle] = []
    seen: dict[str, int] = {}
    try:
        for item in exporters:
            if isinstance(item, ExporterSpec):
                exp, h_every, tm = item.build(), item.every or every_s, \
                    (TimeMap.fixed(item.epoch) if item.epoch is not None else timemap)
            else:
                exp, h_every, tm = item, every_s, timemap
            name = getattr(exp, "name", type(exp).__name__)
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            if isinstance(getattr(exp, "errors", None), ErrorLog):
                exp.errors.name = label
            try:
                exp.open()
            except ExporterError:
                raise
            except OSError as exc:
                raise ExporterError(f"exporter {label} cannot open: {exc}") from exc
            handle = ExportHandle(exp, label=label, every_s=h_every, timemap=tm, block=block,
                                  close_timeout=close_timeout)
            handles.append(handle)
    except BaseException:
        for h in handles:
            h.close()
        raise
    for h in handles:
        sim.observe(h.every_s, h)
    return ExportStage(handles, timemap)
