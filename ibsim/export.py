"""The exporter interface: protocol, discovery, options, time mapping, failure isolation.

An exporter is any class with ``open()``, ``write(snapshot)`` and ``close()``
(optionally ``stats()``), built from keyword options that it validates at
construction, rejecting unknown keys with a suggestion. Exporters are found
through the entry-point group ``ibsim.exporters`` (the built-in ones in the
top-level ``exporters`` package are registered the same way in
``pyproject.toml``) and looked up by name with :func:`build_exporter`.

:func:`attach` registers each exporter as an observer of a
:class:`~ibsim.engine.Simulation`, each with its own interval, and returns an
:class:`ExportStage`. Every exporter runs on its own worker thread behind a
one-snapshot slot, so a slow or failing server never stops the simulation:

* transport failures are counted and logged once per kind (ECONNREFUSED,
  timeout, ...), never once per tick; a summary of the repeats is logged at
  close;
* push exporters reconnect with exponential backoff and keep unsent data in a
  bounded buffer (oldest dropped first, counted in ``dropped``);
* in fast mode the simulation waits for a busy exporter (nothing is skipped);
  in real-time mode a snapshot that finds the exporter busy replaces the
  waiting one (counted in ``skipped``; its events are carried over, so none
  is lost);
* the run's last snapshot (``Simulation.finish()``) is always delivered, so
  the final values a server holds equal ``counters.csv``;
* :meth:`ExportStage.close` flushes, with a bounded wait, and its
  :meth:`~ExportStage.stats` give ``sent``, ``dropped``, ``reconnects`` and
  ``errors`` per exporter for ``metadata.json`` and the run summary.

Time mapping
------------
Servers store points at wall-clock epochs, and whisper refuses points in the
future or older than its retention. The stage therefore rewrites
``snapshot.wall_time`` and every ``event.wall_time`` with a :class:`TimeMap`
before an exporter sees them; exporters use those fields as the timestamp:

* fast mode (no pacing), planned end ``until`` known: the run is anchored so
  it *ends* at the wall time it started, whole seconds:
  ``epoch(t) = floor(start_wall) - until + t``. Every point is in the past,
  spaced exactly like simulated time;
* real-time mode with factor ``f`` (simulated seconds per wall second):
  ``epoch(t) = start_wall + t / f``, i.e. the wall clock of the moment;
* an ``epoch:`` option (epoch seconds, ISO 8601, or a YAML timestamp)
  pins simulated time 0: ``epoch(t) = epoch + t``;
* fast mode with no planned end: ``epoch(t) = start_wall + t`` (points may
  lie in the future; a warning says so).

:meth:`TimeMap.for_run` computes it from (start wall time, planned end,
real-time factor).

Exporter implementations import everything they need from here: the
counter schema, option converters (``_options``), transports that survive
outages (``_sender``) and vectorised text and naming helpers (``_textcols``).
May import: errors, units, fabric (the counter schema), engine (Snapshot,
Event) and those private modules; never ``exporters``.

Wiring, from the CLI or a scenario::

    specs = specs_from_cli(args)                      # --graphite HOST:PORT ...
    specs += specs_from_scenario(doc.get("exporters", []), source=path)
    stage = attach(sim, specs, every="1s", until=end_s, realtime=factor)
    sim.run(until=end_s, realtime=factor)            # finish() exports the last values
    stage.close()
    metadata["exporters"] = stage.stats()
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import logging
import math
import re
import threading
import time as _time
import urllib.parse
from dataclasses import dataclass, field
from typing import ClassVar, Iterable, Mapping, Protocol, runtime_checkable

from ._options import (Option, boolean, choice, counters, duration, epoch_value, event_kinds, host,
                       integer, number, parse_options, port, text, text_list)
from ._sender import Backoff, ErrorLog, HttpPoster, TcpSender, UdpSender, failure_kind
from ._textcols import (ascii_decimal, ascii_uint, assemble, iso_utc, node_names, port_labels,
                        selected_ports, squeeze, squeeze_chunks, text_matrix)
from .engine.snapshot import Event, Snapshot
from .errors import ExporterError, ScenarioError, UnknownNameError, lookup
from .fabric.counters import COUNTER_NAMES, COUNTER_ROW, COUNTERS, Counter
from .units import parse_duration

__all__ = [
    # protocol and discovery
    "ExporterProtocol", "Exporter", "GROUP", "exporter_names", "exporter_class", "build_exporter",
    # options
    "Option", "parse_options", "integer", "number", "duration", "boolean", "text", "choice",
    "host", "port", "text_list", "counters", "event_kinds", "epoch_value",
    # specs and wiring
    "ExporterSpec", "parse_spec", "specs_from_scenario", "specs_from_cli", "add_cli_arguments",
    "STAGE_OPTIONS", "TimeMap", "attach", "ExportStage", "ExportHandle",
    # for exporter implementations
    "COUNTERS", "COUNTER_NAMES", "COUNTER_ROW", "Counter", "Snapshot", "Event", "ExporterError",
    "ErrorLog", "Backoff", "TcpSender", "UdpSender", "HttpPoster", "failure_kind",
    "ascii_uint", "ascii_decimal", "text_matrix", "assemble", "squeeze", "squeeze_chunks",
    "node_names", "port_labels", "selected_ports", "iso_utc",
]

log = logging.getLogger(__name__)

#: entry-point group of exporter classes
GROUP = "ibsim.exporters"

# Used only when the installed metadata lacks a built-in (running from a source tree).
_BUILTIN = {
    "graphite": "exporters.graphite:GraphiteExporter",
    "graphite_pickle": "exporters.graphite:GraphitePickleExporter",
    "graphite_events": "exporters.graphite:GraphiteEventsExporter",
    "logstash": "exporters.logstash:LogstashExporter",
    "prometheus": "exporters.prometheus:PrometheusExporter",
}

#: options every exporter accepts, handled by the export stage (not the exporter)
STAGE_OPTIONS = ("every", "epoch")


# ====================================================================== protocol
@runtime_checkable
class ExporterProtocol(Protocol):
    """What the stage needs from an exporter (``stats()`` is optional)."""

    def open(self) -> None: ...

    def write(self, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


# ====================================================================== base class
class Exporter:
    """Convenience base: options parsed from ``OPTIONS``, an :class:`ErrorLog`, empty stats.

    Subclasses set ``name`` (the registry name), ``unit`` (what ``sent``
    counts) and ``OPTIONS``, and implement ``write``. A push exporter keeps
    its sender (TCP, UDP or HTTP, from :mod:`ibsim._sender`) in ``transport``;
    the base then closes it (waiting up to the ``close_timeout`` option) and
    reports its counts.
    """

    #: the exporter's sender, or None (pull exporters)
    transport = None

    name: ClassVar[str] = "exporter"
    unit: ClassVar[str] = "points"
    OPTIONS: ClassVar[dict[str, Option]] = {}

    def __init__(self, **options):
        self.options = parse_options(self.name, options, self.OPTIONS)
        self.errors = ErrorLog(self.name)

    def open(self) -> None:
        """Prepare the transport (must not raise because a server is down)."""

    def write(self, snapshot: Snapshot) -> None:  # pragma: no cover - abstract
        """Export one snapshot."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush (bounded by the ``close_timeout`` option) and release the transport."""
        if self.transport is not None:
            self.transport.close(getattr(self.options, "close_timeout", 0.0))

    def stats(self) -> dict:
        """``sent``, ``dropped``, ``reconnects``, ``errors`` (counts of ``unit``)."""
        t = self.transport
        return {"sent": t.sent if t else 0, "dropped": t.dropped if t else 0,
                "reconnects": t.reconnects if t else 0, "errors": self.errors.total}


# ====================================================================== discovery
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}
    for name, target in _BUILTIN.items():
        eps.setdefault(name, importlib.metadata.EntryPoint(name, target, GROUP))
    return eps


def exporter_names() -> list[str]:
    """Names of every installed exporter."""
    return sorted(_entry_points())


def exporter_class(name: str) -> type:
    """The exporter class registered under ``name``.

    Raises
    ------
    UnknownNameError
        Listing the installed exporters and the closest name.
    ExporterError
        When the plugin cannot be imported.
    """
    ep = lookup(_entry_points(), name, "exporter")
    try:
        return ep.load()
    except ImportError as exc:
        raise ExporterError(f"exporter {name!r} ({ep.value}) cannot be imported: {exc}") from exc


def build_exporter(name: str, options: Mapping | None = None):
    """Build exporter ``name`` from its options (stage options ``every``/``epoch`` excluded)."""
    cls = exporter_class(name)
    try:
        return cls(**dict(options or {}))
    except ScenarioError as exc:
        raise ScenarioError(exc.message, path=f"{name}.{exc.path}" if exc.path else name) from None


# ====================================================================== specs
@dataclass(frozen=True)
class ExporterSpec:
    """An exporter to attach: its name, its options, and the stage options.

    ``every`` (seconds) is its observer interval (None: the ``attach``
    default); ``epoch`` pins simulated time 0 to that epoch (None: the run's
    :class:`TimeMap`).
    """

    name: str
    options: Mapping = field(default_factory=dict)
    every: float | None = None
    epoch: float | None = None

    def build(self):
        """A new exporter object."""
        return build_exporter(self.name, self.options)


def parse_spec(item: Mapping, *, source: str | None = None, path: str = "exporters[0]") -> ExporterSpec:
    """One scenario entry: ``{graphite: {host: ..., every: 10s}}`` or ``{name: graphite, host: ...}``.

    The exporter is built once to validate its options.
    """
    if not isinstance(item, Mapping):
        raise ScenarioError(f"expected a mapping like {{graphite: {{host: ..., port: ...}}}}, got {item!r}",
                            source=source, path=path)
    if "name" in item:
        name, opts = item["name"], {k: v for k, v in item.items() if k != "name"}
        where = path
    elif len(item) == 1:
        name, opts = next(iter(item.items()))
        opts = {} if opts is None else opts
        where = f"{path}.{name}"
        if not isinstance(opts, Mapping):
            raise ScenarioError(f"options of {name!r} must be a mapping, got {opts!r}",
                                source=source, path=where)
    else:
        raise ScenarioError("an exporter entry has one key, the exporter name "
                            "({graphite: {...}}), or a 'name' key", source=source, path=path)
    opts = dict(opts)
    try:
        every = duration(opts.pop("every")) if "every" in opts else None
    except ScenarioError as exc:
        raise ScenarioError(exc.message, source=source, path=f"{where}.every") from None
    try:
        epoch = opts.pop("epoch", None)
        epoch = epoch_value(epoch) if epoch is not None else None
    except ScenarioError as exc:
        raise ScenarioError(exc.message, source=source, path=f"{where}.epoch") from None
    spec = ExporterSpec(str(name), opts, every, epoch)
    try:
        spec.build()
    except UnknownNameError as exc:
        raise UnknownNameError(exc.message, source=source, path=path) from None
    except ScenarioError as exc:
        sub = exc.path.split(".", 1)[1] if exc.path and "." in exc.path else None
        raise ScenarioError(exc.message, source=source,
                            path=f"{where}.{sub}" if sub else where) from None
    return spec


def specs_from_scenario(items: Iterable[Mapping] | None, *, source: str | None = None,
                        key: str = "exporters") -> list[ExporterSpec]:
    """The ``exporters:`` list of a scenario as validated specs (errors name file and key path)."""
    if items is None:
        return []
    if not isinstance(items, (list, tuple)):
        raise ScenarioError(f"expected a list of exporters, got {items!r}", source=source, path=key)
    return [parse_spec(it, source=source, path=f"{key}[{i}]") for i, it in enumerate(items)]


def _host_port(value: str, default_port: int | None, opt: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", value.strip())
    if not m:
        raise ScenarioError(f"expected HOST:PORT, got {value!r}", path=opt)
    h = m.group(1) or m.group(3)
    p = m.group(2) or m.group(4)
    if p is None:
        if default_port is None:
            raise ScenarioError(f"expected HOST:PORT, got {value!r} (no port)", path=opt)
        p = default_port
    return h, int(p)


def _carbon_cli(default_port: int):
    def parse(v: str, opt: str) -> dict:
        h, p = _host_port(v, default_port, opt)
        return {"host": h, "port": p}
    return parse


def _events_cli(v: str, opt: str) -> dict:
    u = urllib.parse.urlsplit(v if "://" in v else "http://" + v)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ScenarioError(f"expected a URL like http://HOST:PORT, got {v!r}", path=opt)
    path = u.path if u.path not in ("", "/") else "/events/"
    return {"url": urllib.parse.urlunsplit((u.scheme, u.netloc, path, u.query, ""))}


def _logstash_cli(v: str, opt: str) -> dict:
    scheme, _, rest = v.rpartition("://")
    scheme = scheme or "tcp"
    if scheme not in ("tcp", "udp"):
        raise ScenarioError(f"expected tcp://HOST:PORT or udp://HOST:PORT, got {v!r}", path=opt)
    h, p = _host_port(rest, None, opt)
    return {"protocol": scheme, "host": h, "port": p}


def _prometheus_cli(v: str, opt: str) -> dict:
    if re.fullmatch(r"\d+", v.strip()):
        return {"port": int(v)}
    h, p = _host_port(v, 9684, opt)
    return {"host": h, "port": p}


#: CLI shortcut (argparse dest) -> (exporter, value parser, metavar, help)
_CLI = {
    "graphite": ("graphite", _carbon_cli(2003), "HOST[:PORT]",
                 "send counters to carbon's plaintext receiver (port 2003 by default)"),
    "graphite_pickle": ("graphite_pickle", _carbon_cli(2004), "HOST[:PORT]",
                        "send counters to carbon's pickle receiver (port 2004 by default)"),
    "graphite_events": ("graphite_events", _events_cli, "URL",
                        "post fabric events to graphite-web (http://HOST:PORT; /events/ is added)"),
    "logstash": ("logstash", _logstash_cli, "tcp://HOST:PORT",
                 "send events as JSON lines (tcp://) or datagrams (udp://)"),
    "prometheus": ("prometheus", _prometheus_cli, "[HOST:]PORT",
                   "serve counters for Prometheus (host 127.0.0.1 by default; port 0 = any free port)"),
}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--graphite``, ``--graphite-pickle``, ``--graphite-events``, ``--logstash``, ``--prometheus``."""
    g = parser.add_argument_group("exporters (repeatable; scenario 'exporters:' entries add to these)")
    for attr, (_, _, metavar, help_) in _CLI.items():
        g.add_argument("--" + attr.replace("_", "-"), dest=attr, action="append", default=None,
                       metavar=metavar, help=help_)


def specs_from_cli(args) -> list[ExporterSpec]:
    """Specs from the CLI shortcuts (an argparse namespace or a mapping of them).

    Reads ``graphite``, ``graphite_pickle``, ``graphite_events``, ``logstash``
    and ``prometheus``; each is None, a string or a list of strings:

    * ``--graphite HOST[:PORT]``, ``--graphite-pickle HOST[:PORT]``
    * ``--graphite-events http://HOST:PORT`` (``/events/`` is appended when no path is given)
    * ``--logstash tcp://HOST:PORT`` or ``udp://HOST:PORT`` (plain ``HOST:PORT`` means tcp)
    * ``--prometheus [HOST:]PORT`` (host defaults to 127.0.0.1)

    Raises
    ------
    ScenarioError
        With ``path`` the option (``--logstash``) and the value in the message.
    """
    get = args.get if isinstance(args, Mapping) else (lambda k, d=None: getattr(args, k, d))
    specs = []
    for attr, (name, parse, _, _) in _CLI.items():
        values = get(attr, None)
        if values is None:
            continue
        opt = "--" + attr.replace("_", "-")
        for v in [values] if isinstance(values, str) else values:
            opts = parse(v, opt)
            try:
                build_exporter(name, opts)
            except ScenarioError as exc:
                raise ScenarioError(f"{v!r}: {exc.message}", path=opt) from None
            specs.append(ExporterSpec(name, opts))
    return specs


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
        evs = tuple(dataclasses.replace(e, wall_time=tm(e.time_s)) for e in snap.events)
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
        """``sent``, ``dropped``, ``reconnects``, ``errors``, plus ``written``/``skipped`` snapshots."""
        st = {"sent": 0, "dropped": 0, "reconnects": 0, "errors": 0}
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
        """Per exporter label: ``sent``, ``dropped``, ``reconnects``, ``errors``, ..."""
        return {h.label: h.stats() for h in self.handles}

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
