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
* ``sent`` counts only what the server confirmed: TCP data written on a
  connection whose orderly close completed (connections are rotated every
  ``confirm_bytes``/``confirm_every`` to confirm), HTTP bodies answered 2xx.
  Data on a connection that failed is written again (``resent``: at least
  once, duplicates possible); what the protocol cannot confirm (UDP, a last
  connection that could not be closed cleanly) is ``unconfirmed``;
* a dead or stalled server holds the run up ``deliver_timeout`` seconds (5 s
  by default) in all, close included; after that the exporter stops waiting;
* in fast mode the simulation waits for a busy exporter (nothing is skipped);
  in real-time mode a snapshot that finds the exporter busy replaces the
  waiting one (counted in ``skipped``; its events are carried over, so none
  is lost);
* the run's last snapshot (``Simulation.finish()``) is always delivered, so
  the final values a server holds equal ``counters.csv``;
* :meth:`ExportStage.close` flushes, with a bounded wait, and its
  :meth:`~ExportStage.stats` give ``sent``, ``unconfirmed``, ``dropped``,
  ``resent``, ``reconnects``, ``errors`` and ``delivery`` (the guarantee, in
  words) per exporter for ``metadata.json`` and the run summary.

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

An event that carries its own wall time (``Event.own_wall_time``: a log line
noted with ``Simulation.note(..., wall_time=...)``) keeps it unmapped.

``snapshot.jobs`` holds a :class:`JobStat` per job run that has started
(bytes, XmitWait and share of the fabric's CA traffic since its start).

:meth:`TimeMap.for_run` computes it from (start wall time, planned end,
real-time factor).

Exporter implementations import everything they need from here: the
counter schema, option converters (:mod:`.options`), transports that survive
outages (:mod:`.transports`) and vectorised text and naming helpers
(:mod:`.textcols`). Each exporter declares its own options and its
command-line shorthand (:class:`CliFlag`); this package names none of them.

protocol    Exporter base class and protocol, entry-point discovery, specs, CLI shorthands
stage       TimeMap, ExportStage and attach(): one worker thread per exporter
options     Option and the option converters
transports  UDP/HTTP senders with backoff and bounded buffers; ErrorLog, StallBudget
tcp         the TCP sender: confirmed delivery by orderly close, resend, stall budget
textcols    vectorised ASCII columns, node and port names

Wiring, from the CLI or a scenario::

    specs = specs_from_cli(args)                      # --graphite HOST:PORT ...
    specs += specs_from_scenario(doc.get("exporters", []), source=path)
    stage = attach(sim, specs, every="1s", until=end_s, realtime=factor)
    sim.run(until=end_s, realtime=factor)            # finish() exports the last values
    stage.close()
    metadata["exporters"] = stage.stats()
"""


from ..engine.accounting import JobStat
from ..engine.snapshot import Event, Snapshot
from ..errors import ExporterError
from ..fabric.counters import COUNTER_NAMES, COUNTER_ROW, COUNTERS, Counter
from .options import (Option, boolean, choice, counters, duration, epoch_value, event_kinds, host,
                      integer, number, parse_options, port, text, text_list)
from .protocol import (GROUP, STAGE_OPTIONS, CliFlag, Exporter, ExporterProtocol, ExporterSpec,
                       add_cli_arguments, build_exporter, exporter_class, exporter_names,
                       host_port_flag, parse_host_port, parse_spec, specs_from_cli, specs_from_scenario)
from .stage import ExportHandle, ExportStage, TimeMap, attach, summary_line
from .textcols import (ascii_decimal, ascii_uint, assemble, iso_utc, node_names, path_segment, port_labels,
                       selected_ports, squeeze, squeeze_chunks, text_matrix)
from .tcp import DELIVERY_OPTIONS, TcpSender, tcp_sender
from .transports import Backoff, ErrorLog, HttpPoster, StallBudget, UdpSender, failure_kind

__all__ = [
    # protocol and discovery
    "GROUP", "ExporterProtocol", "Exporter", "CliFlag", "exporter_names", "exporter_class",
    "build_exporter",
    # options
    "Option", "parse_options", "integer", "number", "duration", "boolean", "text", "choice",
    "host", "port", "text_list", "counters", "event_kinds", "epoch_value",
    # specs and wiring
    "ExporterSpec", "parse_spec", "specs_from_scenario", "specs_from_cli", "add_cli_arguments",
    "parse_host_port", "host_port_flag", "STAGE_OPTIONS", "TimeMap", "attach", "ExportStage",
    "ExportHandle", "summary_line",
    # for exporter implementations
    "COUNTERS", "COUNTER_NAMES", "COUNTER_ROW", "Counter", "Snapshot", "Event", "JobStat", "ExporterError",
    "ErrorLog", "Backoff", "StallBudget", "TcpSender", "UdpSender", "HttpPoster", "failure_kind",
    "DELIVERY_OPTIONS", "tcp_sender",
    "ascii_uint", "ascii_decimal", "text_matrix", "assemble", "squeeze", "squeeze_chunks",
    "node_names", "path_segment", "port_labels", "selected_ports", "iso_utc",
]
