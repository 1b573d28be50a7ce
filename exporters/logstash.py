"""Logstash exporter: fabric events as JSON, lines over TCP or datagrams over UDP.

For a Logstash ``tcp`` input with ``codec => json_lines`` (one document per
line) or a ``udp`` input with ``codec => json`` (one document per datagram);
syslog-ng's ``json-parser`` and rsyslog's ``mmjsonparse`` read the same.
Each fabric event becomes one document::

    {"@timestamp": "2025-01-01T00:00:12.300Z", "@version": "1",
     "message": "t=12.300s link_down leaf1 port 5 <-> node005 HCA-1 port 1 (reason=flap, ...)",
     "type": "ibsim", "tags": ["ibsim", "link_down"], "host": {"name": "leaf1"},
     "ib": {"kind": "link_down", "time_s": 12.3, "node_guid": "0x...", "node_desc": "leaf1",
            "port": 5, "peer_guid": "0x...", "peer_desc": "node005 HCA-1", "peer_port": 1,
            "trap": 128, "details": {"reason": "flap", "discarded_packets": 3}}}

Log lines noted into the simulation (events of kind ``log``, whose details
hold ``host``, ``program``, ``message`` and maybe ``level``: a Slurm job's
output, a daemon's syslog) become documents of their own: ``message`` is the
line, ``host.name`` the host that wrote it, ``log`` holds ``program`` and
``level``, and ``ib.details`` any other details (``job_id`` ...)::

    {"@timestamp": "2025-01-01T00:00:12.041Z", "@version": "1", "message": "step 3 converged",
     "type": "ibsim", "tags": ["ibsim", "log"], "host": {"name": "node001"},
     "log": {"program": "slurmstepd", "level": "info"},
     "ib": {"kind": "log", "time_s": 12.1, "node_desc": "node001 HCA-1", "details": {"job_id": "12"}}}

Job events (``job_start``, ``job_end``, ``job_requeue``, ``job_error``) are
documents like any event.

``@timestamp`` is the event's mapped epoch (see :mod:`ibsim.export`) in ISO
8601 UTC with milliseconds. ``host`` is an object, as Logstash 8's ECS mode
requires (a string ``host`` makes ECS inputs fail to parse the event): the
node the event is about, or ``host_name`` for fabric-wide events (reroutes,
jobs). Fields that do not apply are left out. ``ib.details`` holds the
kind-specific data, including counter deltas when the event has them.

With ``samples: true`` every snapshot also sends one document per port
(``tags`` end with ``counters``) whose ``ib.counters`` holds the raw 64-bit
counters in sysfs units.

Over TCP documents go over one connection at a time; while the receiver is
away they wait in a bounded buffer (oldest dropped first, counted in
``dropped``) and are sent after a reconnect. A document is ``sent`` once the
connection that carried it closed orderly (the receiver read it; connections
are rotated every ``confirm_every``/``confirm_bytes`` to confirm, see
:mod:`ibsim.export.tcp`); documents on a connection that failed are written
again (``resent``: at least once, a receiver may see a duplicate); those on a
last connection whose close did not complete are ``unconfirmed``. UDP is
fire-and-forget: every datagram is ``unconfirmed``.

Options (YAML)::

    exporters:
      - logstash:
          host: 127.0.0.1
          port: 5000
          protocol: tcp           # tcp (json_lines) or udp (one JSON document per datagram)
          type: ibsim
          tags: [ibsim]           # every document also gets its kind as a tag
          host_name: ibsim        # host.name of fabric-wide events (default: this machine's name)
          kinds: all              # or a list: [link_down, link_up, symbol_errors]
          samples: false          # also send counters, one document per port per snapshot
          sample_counters: all    # which counters the samples carry
          ports: cabled           # which ports get samples: cabled or all
          buffer: 10000           # documents kept: waiting, or written and not yet confirmed (tcp)
          timeout: 5s             # connect timeout
          deliver_timeout: 5s     # most time in all a dead or stalled receiver may hold the run up
          confirm_every: 10s      # close the connection orderly this often, to confirm delivery (tcp)
          confirm_bytes: 16000000
          every: 1s
"""

from __future__ import annotations

import json
import socket

import numpy as np

from ibsim.export import (COUNTER_ROW, DELIVERY_OPTIONS, CliFlag, Exporter, Option, UdpSender, boolean,
                          choice, counters, duration, event_kinds, host, integer, iso_utc,
                          parse_host_port, port, selected_ports, tcp_sender, text, text_list)
from ibsim.errors import ScenarioError

__all__ = ["event_document", "log_document", "sample_documents", "encode", "LogstashExporter"]

_SAMPLE_BATCH = 1000


def _guid(g) -> str | None:
    return None if g is None else f"0x{int(g):016x}"


#: details of a ``log`` event that make the document's own fields
_LOG_FIELDS = ("host", "program", "message", "level")


def log_document(event, *, type_: str = "ibsim", tags=("ibsim",), host_name: str = "ibsim") -> dict:
    """The Logstash document of a ``log`` event: the line as ``message`` (see the module docstring)."""
    d = event.details or {}
    log = {k: str(d[k]) for k in ("program", "level") if d.get(k) is not None}
    ib = {"kind": event.kind, "time_s": round(float(event.time_s), 9), "node_desc": event.node_desc,
          "details": {k: v for k, v in d.items() if k not in _LOG_FIELDS} or None}
    doc = {"@timestamp": iso_utc(event.wall_time), "@version": "1", "message": str(d.get("message", "")),
           "type": type_, "tags": [*tags, event.kind],
           "host": {"name": str(d.get("host") or event.node_desc or host_name)}}
    if log:
        doc["log"] = log
    doc["ib"] = {k: v for k, v in ib.items() if v is not None}
    return doc


def event_document(event, *, type_: str = "ibsim", tags=("ibsim",), host_name: str = "ibsim") -> dict:
    """The Logstash document of one fabric event (see the module docstring); ``log`` events
    are laid out by :func:`log_document`."""
    if event.kind == "log":
        return log_document(event, type_=type_, tags=tags, host_name=host_name)
    ib = {"kind": event.kind, "time_s": round(float(event.time_s), 9),
          "node_guid": _guid(event.node_guid), "node_desc": event.node_desc, "port": event.port,
          "peer_guid": _guid(event.peer_guid), "peer_desc": event.peer_desc,
          "peer_port": event.peer_port, "trap": event.trap,
          "details": dict(event.details) if event.details else None}
    return {"@timestamp": iso_utc(event.wall_time), "@version": "1", "message": event.message(),
            "type": type_, "tags": [*tags, event.kind], "host": {"name": event.node_desc or host_name},
            "ib": {k: v for k, v in ib.items() if v is not None}}


def sample_documents(snapshot, names: tuple[str, ...], ports: np.ndarray, *, type_: str = "ibsim",
                     tags=("ibsim",)) -> list[dict]:
    """One counters document per port (raw 64-bit counters in sysfs units)."""
    f = snapshot.fabric
    node = f.node_of_port[ports]
    peer = f.peer_of_port[ports]
    ts = iso_utc(snapshot.wall_time)
    values = snapshot.counters[[COUNTER_ROW[n] for n in names]][:, ports].T.tolist()
    guids = [f"0x{int(g):016x}" for g in f.node_guid]          # per node, not per port
    nums = f.port_num[ports].tolist()
    peer_node = np.where(peer >= 0, f.node_of_port[np.maximum(peer, 0)], -1).tolist()
    peer_num = np.where(peer >= 0, f.port_num[np.maximum(peer, 0)], 0).tolist()
    docs = []
    for i, n in enumerate(node.tolist()):
        desc = f.node_desc[n]
        ib = {"kind": "counters", "time_s": round(float(snapshot.time_s), 9), "node_guid": guids[n],
              "node_desc": desc, "port": nums[i], "counters": dict(zip(names, values[i]))}
        if peer_node[i] >= 0:
            ib["peer_guid"] = guids[peer_node[i]]
            ib["peer_port"] = peer_num[i]
        docs.append({"@timestamp": ts, "@version": "1", "message": f"counters {desc} port {nums[i]}",
                     "type": type_, "tags": [*tags, "counters"], "host": {"name": desc}, "ib": ib})
    return docs


def encode(doc: dict) -> bytes:
    """Compact JSON, UTF-8, no trailing newline."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _logstash_target(v: str, opt: str) -> dict:
    """``--logstash tcp://HOST:PORT`` (or ``udp://``; plain ``HOST:PORT`` is tcp) -> options."""
    scheme, _, rest = v.rpartition("://")
    scheme = scheme or "tcp"
    if scheme not in ("tcp", "udp"):
        raise ScenarioError(f"expected tcp://HOST:PORT or udp://HOST:PORT, got {v!r}", path=opt)
    h, p = parse_host_port(rest, None, opt)
    return {"protocol": scheme, "host": h, "port": p}


class LogstashExporter(Exporter):
    """Events (and optionally counter samples) as JSON to a Logstash tcp/udp input."""

    name = "logstash"
    CLI = CliFlag("tcp://HOST:PORT", "send events as JSON lines (tcp://) or datagrams (udp://)",
                  _logstash_target)
    unit = "documents"
    OPTIONS = {
        "host": Option("127.0.0.1", host, "receiver host"),
        "port": Option(5000, port, "receiver port"),
        "protocol": Option("tcp", choice("tcp", "udp"), "tcp (json_lines) or udp (json datagrams)"),
        "type": Option("ibsim", text, "the type field"),
        "tags": Option(("ibsim",), text_list, "tags of every document"),
        "host_name": Option(None, text, "host.name of fabric-wide events"),
        "kinds": Option("all", event_kinds, "event kinds, or all"),
        "samples": Option(False, boolean, "also send counter samples"),
        "sample_counters": Option("all", counters, "counters in each sample"),
        "ports": Option("cabled", choice("cabled", "all"), "ports that get samples"),
        "buffer": Option(10_000, integer(1), "documents kept: waiting, or written and not yet "
                                             "confirmed (tcp)"),
        "timeout": Option(5.0, duration, "connect timeout (s)"),
        **DELIVERY_OPTIONS,
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.host_name = self.options.host_name or socket.gethostname()
        self.transport = None
        self._last_tick = None

    def open(self) -> None:
        o = self.options
        if o.protocol == "tcp":
            self.transport = tcp_sender(o, name=self.name, errors=self.errors)
        else:
            self.transport = UdpSender(o.host, o.port, name=self.name, errors=self.errors)

    def delivery(self) -> str:
        if self.options.protocol == "udp":
            return "none (udp): every datagram is unconfirmed; dropped = refused by the kernel"
        return ("at least once, confirmed by orderly TCP close: sent = read by the receiver; "
                "unconfirmed = written, close not confirmed; resent = written again after a failed "
                "connection (the receiver may see duplicates)")

    def write(self, snapshot) -> None:
        o = self.options
        events = [encode(event_document(e, type_=o.type, tags=o.tags, host_name=self.host_name))
                  for e in snapshot.events if o.kinds is None or e.kind in o.kinds]
        samples = []
        if o.samples and snapshot.tick != self._last_tick:
            ports = selected_ports(snapshot.fabric, o.ports)
            samples = [encode(d) for d in sample_documents(snapshot, o.sample_counters, ports,
                                                            type_=o.type, tags=o.tags)]
        self._last_tick = snapshot.tick
        if o.protocol == "udp":
            self.transport.send(events + samples)
            return
        # one chunk per event (the buffer drops whole documents); samples in batches
        chunks = [(d + b"\n", 1) for d in events]
        for i in range(0, len(samples), _SAMPLE_BATCH):
            part = samples[i:i + _SAMPLE_BATCH]
            chunks.append((b"\n".join(part) + b"\n", len(part)))
        if chunks:
            self.transport.send(chunks)
        else:
            self.transport.flush()

