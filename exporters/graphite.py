"""Graphite exporters: carbon plaintext (``graphite``), carbon pickle (``graphite_pickle``)
and graphite-web events (``graphite_events``).

Counters go to carbon-cache over one persistent TCP connection, in batches.
Each point's path comes from a template, by default ``ib.<node>.<port>.<counter>``:

``<node>``      the node description made path-safe (``node01 HCA-1`` -> ``node01_HCA-1``), or
                the GUID (``0x0002c90300a1b2c0``) where descriptions are shared or empty
``<guid>``      the node GUID, ``0x`` and 16 hex digits
``<port>``      the port number zero-padded so it sorts as text: ``p01`` ... ``p36``
``<port_num>``  the bare port number
``<counter>``   the Linux sysfs counter name (``port_xmit_data``, ``symbol_error``, ...)

In ``mode: counters`` (the default) the value is the raw 64-bit counter in
its sysfs unit (``port_xmit_data`` in 4-octet words), as in ``counters.csv``;
graph it with ``perSecond()`` and roll it up with ``last`` or ``max``. In
``mode: rates`` the value is the per-second increase over the last interval,
data counters in bytes/s (nothing is sent for the first snapshot, which only
sets the baseline); roll it up with ``average``.

The timestamp of every point is the snapshot's mapped epoch (see
:mod:`ibsim.export`), in whole seconds.

Jobs: at every write, each job in ``snapshot.jobs`` that runs, or ended since
the previous write (the latest run of a requeued job last, so it wins), gets five points under the template's literal prefix
(``ib`` by default) and its key (the Slurm ``job_id``, else its name) made
path-safe like node names: ``ib.jobs.<key>.xmit_bytes`` and ``.rcv_bytes``
(bytes its hosts' CA ports sent and received since it started), ``.xmit_wait``
(XmitWait ticks on those ports), ``.share`` (its fraction, 0..1, of the bytes
all CA ports sent meanwhile) and ``.hosts`` (its host count). They are totals
since the job started in both modes; graph the first three with ``perSecond()``.

Wire formats (pure functions, no socket): :func:`format_plaintext` lays out a
whole counter row of a 70k-port fabric as one ``uint8`` matrix and squeezes it
to ``path value timestamp\\n`` lines; :func:`format_pickle` builds the
protocol-2 pickle of a list of ``(path, (timestamp, value))`` tuples directly
from arrays, framed with a 4-byte ``!L`` length, each message below carbon's
1 MiB ``PICKLE_RECEIVER_MAX_LENGTH``.

Events are POSTed one by one to graphite-web's ``/events/`` API as JSON
``{"what", "tags", "data", "when"}``; overlay them on a chart with
``target=drawAsInfinite(events("ibsim"))``, or use a Grafana Graphite
annotation with tag ``ibsim``. Log lines (events of kind ``log``) would
drown the overlay: they are posted only when ``kinds`` lists ``log``.

Delivery (``sent`` in ``metadata.json`` counts only what the server confirmed):
carbon has no acknowledgement, so the carbon exporters confirm by closing the
connection orderly (see :mod:`ibsim.export.tcp`): a point is ``sent`` once the
connection that carried it closed cleanly, which means carbon-cache read it.
Points on a connection that was reset or closed early are sent again (at
least once; carbon keeps the last value per series and timestamp, so a
re-sent point changes nothing); points written on a last connection whose
close did not complete are ``unconfirmed``. ``sent`` does not mean written to
whisper: a carbon-cache killed before it flushes its cache loses points it
confirmed. Events are ``sent`` when graphite-web answered 2xx.

Options (YAML)::

    exporters:
      - graphite:
          host: 127.0.0.1
          port: 2003
          template: ib.<node>.<port>.<counter>
          counters: all           # or a list of sysfs names
          ports: cabled           # cabled (the rows of counters.csv) or all
          mode: counters          # counters (raw, sysfs units) or rates (per second, data in bytes/s)
          jobs: true              # also <prefix>.jobs.<key>.{xmit_bytes,rcv_bytes,xmit_wait,share,hosts}
          batch: 10000            # lines per send
          buffer: 2000000         # points kept: waiting, or written and not yet confirmed
          timeout: 10s            # connect timeout
          deliver_timeout: 5s     # most time in all a dead or stalled carbon may hold the run up
          confirm_every: 10s      # close the connection orderly this often, to confirm delivery
          confirm_bytes: 16000000 # ... or after this many bytes
          every: 10s
      - graphite_pickle:
          host: 127.0.0.1
          port: 2004
          template: ib.<node>.<port>.<counter>
          counters: [port_xmit_data, port_rcv_data, symbol_error, link_downed]
          ports: cabled
          mode: counters
          jobs: true
          max_message: 1000000    # bytes per pickle message (carbon's limit is 1 MiB)
          buffer: 2000000
          timeout: 10s
          deliver_timeout: 5s
          confirm_every: 10s
          confirm_bytes: 16000000
          every: 10s
      - graphite_events:
          url: http://127.0.0.1:8080/events/
          tags: [ibsim]           # every event also gets its kind and node as tags
          kinds: all              # all but log lines, or a list: [link_down, link_up, log]
          data: message           # message (one readable line) or json (the event as JSON)
          buffer: 10000           # events kept while graphite-web is away
          timeout: 5s             # one request
          deliver_timeout: 5s     # most time in all a dead or stalled graphite-web may hold the run up
          every: 1s
"""

from __future__ import annotations

import json
import re
import struct
import urllib.parse

import numpy as np

from ibsim.export import (COUNTERS, COUNTER_ROW, DELIVERY_OPTIONS, CliFlag, Exporter, HttpPoster, Option,
                          host_port_flag, path_segment, tcp_sender,
                          TcpSender, ascii_decimal, ascii_uint, assemble, boolean, choice, counters,
                          duration, event_kinds, host, integer, node_names, port, port_labels,
                          selected_ports,
                          squeeze, squeeze_chunks, text, text_list, text_matrix)
from ibsim.errors import ScenarioError, suggest

__all__ = ["PLACEHOLDERS", "parse_template", "build_paths", "counter_values", "counter_rates",
           "format_plaintext", "pickle_heads", "format_pickle", "graphite_event", "JOB_METRICS",
           "template_prefix", "jobs_to_send", "job_paths", "format_job_plaintext", "format_job_pickle",
           "GraphiteExporter", "GraphitePickleExporter", "GraphiteEventsExporter"]

#: template placeholders
PLACEHOLDERS = ("node", "guid", "port", "port_num", "counter")
_TOKEN = re.compile(r"<([^<>]*)>")
_DATA_ROWS = np.array([c.unit == "4-octet words" for c in COUNTERS])


# ====================================================================== pure functions
def parse_template(template: str) -> tuple:
    """Split a path template into literals (bytes) and placeholder names (str).

    Raises
    ------
    ScenarioError
        For an unknown placeholder, whitespace, or a template whose paths
        would not be unique (it needs ``<counter>``, ``<node>`` or ``<guid>``,
        and ``<port>`` or ``<port_num>``).
    """
    if not isinstance(template, str) or not template or any(c.isspace() for c in template):
        raise ScenarioError(f"a path template is a non-empty string without blanks, got {template!r}")
    parts, at = [], 0
    for m in _TOKEN.finditer(template):
        if m.start() > at:
            parts.append(template[at:m.start()].encode())
        name = m.group(1)
        if name not in PLACEHOLDERS:
            hint = suggest(name, PLACEHOLDERS)
            raise ScenarioError(f"unknown placeholder <{name}> in {template!r}; use "
                                + ", ".join(f"<{p}>" for p in PLACEHOLDERS)
                                + (f" (did you mean <{hint}>?)" if hint else ""))
        parts.append(name)
        at = m.end()
    if at < len(template):
        parts.append(template[at:].encode())
    names = {p for p in parts if isinstance(p, str)}
    if "counter" not in names or not names & {"node", "guid"} or not names & {"port", "port_num"}:
        raise ScenarioError(f"template {template!r} must contain <counter>, <node> or <guid>, and "
                            f"<port> or <port_num>, so that every path is unique")
    return tuple(parts)


def build_paths(fabric, template: str, names: tuple[str, ...], ports: np.ndarray) -> list[np.ndarray]:
    """The path of every (counter, port): one ``bytes_`` array ``(n_ports_selected,)`` per counter."""
    parts = parse_template(template)
    node = fabric.node_of_port[ports]
    per_port = {
        "node": node_names(fabric).astype("S")[node],
        "guid": np.array([f"0x{int(g):016x}" for g in fabric.node_guid], dtype="S18")[node],
        "port": port_labels(fabric, ports),
        "port_num": fabric.port_num[ports].astype("S3"),
    }
    out = []
    for name in names:                                   # loops over counters, never ports
        path = np.zeros(ports.size, dtype="S1")
        for p in parts:
            piece = p if isinstance(p, bytes) else (name.encode() if p == "counter" else per_port[p])
            path = np.char.add(path, piece)
        out.append(path)
    return out


def counter_values(snapshot, names: tuple[str, ...], ports: np.ndarray) -> np.ndarray:
    """Raw counters ``(n_counters, n_ports)`` uint64 in sysfs units."""
    rows = [COUNTER_ROW[n] for n in names]
    return snapshot.counters[rows][:, ports]


def counter_rates(prev: np.ndarray, cur: np.ndarray, dt_s: float, names: tuple[str, ...]) -> np.ndarray:
    """Per-second increase of raw counters, data counters converted to bytes/s (float64).

    A counter that went down (reset by a PerfMgt Set) gives 0 for that interval.
    """
    scale = np.where(_DATA_ROWS[[COUNTER_ROW[n] for n in names]], 4.0, 1.0)[:, None]
    delta = np.where(cur >= prev, cur - prev, 0).astype(np.float64)
    return delta * (scale / dt_s)


def format_plaintext(values: np.ndarray, paths: list[np.ndarray], timestamp: int,
                     batch: int = 10_000, decimals: int = 3) -> list[tuple[bytes, int]]:
    """Carbon plaintext ``path value timestamp\\n`` lines, in chunks of at most ``batch`` lines.

    Parameters
    ----------
    values : ndarray, shape (n_counters, n_ports)
        uint64 counters (written as integers) or float rates (written with up
        to ``decimals`` places, trailing zeros dropped).
    paths : list of ndarray of bytes_
        From :func:`build_paths`, one per counter row.
    timestamp : int
        Epoch seconds.

    Returns
    -------
    list of (bytes-like, n_lines)
    """
    tail = b" %d\n" % int(timestamp)
    out = []
    for r, path in enumerate(paths):                     # loops over counters, never ports
        v = values[r]
        if v.dtype.kind in "ui":
            digits, nd = ascii_uint(v, return_lengths=True)
            lengths = np.char.str_len(path) + (nd + 1 + len(tail))
        else:
            digits, lengths = ascii_decimal(v, decimals), None
        m = assemble([text_matrix(path), b" ", digits, tail], path.size)
        out.extend(squeeze_chunks(m, batch, lengths=lengths))
    return out


def pickle_heads(paths: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The fixed start of each pickle record: ``X`` (BINUNICODE), length, path.

    Returns, per counter row, ``(head matrix, keep mask, record length)`` where the
    record length counts the head only.
    """
    out = []
    for path in paths:
        m = text_matrix(path)
        n, w = m.shape
        lens = np.char.str_len(path).astype(np.int64)
        head = np.zeros((n, 5 + w), dtype=np.uint8)
        head[:, 0] = ord("X")
        head[:, 1:5] = lens.astype("<u4").view(np.uint8).reshape(n, 4)
        head[:, 5:] = m
        keep = np.ones_like(head, dtype=bool)
        keep[:, 5:] = np.arange(w) < lens[:, None]
        out.append((head, keep, 5 + lens))
    return out


_PICKLE_START = b"\x80\x02](" # PROTO 2, EMPTY_LIST, MARK
_PICKLE_END = b"e."           # APPENDS, STOP


def format_pickle(values: np.ndarray, heads, timestamp: int,
                  max_message: int = 1_000_000) -> list[tuple[bytes, int]]:
    """Carbon pickle messages: ``!L`` length + protocol-2 pickle of ``[(path, (ts, value)), ...]``.

    The pickle is built from arrays: each record is BINUNICODE path, the
    timestamp (BININT, or BINFLOAT past 2038), the value (BINFLOAT), TUPLE2,
    TUPLE2; records are appended to the list with one MARK ... APPENDS per
    message. ``pickle.loads`` of a message body gives exactly the list of
    tuples (ts an int, value a float).

    Returns
    -------
    list of (framed message bytes, n_points), every body at most ``max_message`` bytes.
    """
    ts = int(timestamp)
    tsb = b"J" + struct.pack("<i", ts) if -2**31 <= ts < 2**31 else b"G" + struct.pack(">d", ts)
    tail_len = len(tsb) + 1 + 8 + 2
    recs, lens = [], []
    for r, (head, keep, hlen) in enumerate(heads):       # loops over counters, never ports
        n = head.shape[0]
        val = np.ascontiguousarray(values[r].astype(">f8")).view(np.uint8).reshape(n, 8)
        m = assemble([head, tsb, b"G", val, b"\x86\x86"], n)
        k = np.ones(m.shape, dtype=bool)
        k[:, :head.shape[1]] = keep
        recs.append(squeeze(m, k))
        lens.append(hlen + tail_len)
    if not recs:
        return []
    data = memoryview(b"".join(recs))
    ends = np.cumsum(np.concatenate(lens))
    budget = max_message - len(_PICKLE_START) - len(_PICKLE_END)
    out, start, off = [], 0, 0
    while start < ends.size:                             # loops over messages
        stop = int(np.searchsorted(ends, off + budget, side="right"))
        if stop == start:
            raise ValueError(f"a single pickle record exceeds max_message={max_message}")
        end = int(ends[stop - 1])
        body = b"".join((_PICKLE_START, data[off:end], _PICKLE_END))
        out.append((struct.pack("!L", len(body)) + body, stop - start))
        start, off = stop, end
    return out


#: per-job points: the integer ones, then the share (0..1)
JOB_METRICS = ("xmit_bytes", "rcv_bytes", "xmit_wait", "hosts", "share")


def template_prefix(template: str) -> str:
    """The literal start of a path template before its first placeholder, without the
    trailing dot (``ib.<node>.<port>.<counter>`` -> ``ib``; empty when it starts with one)."""
    first = parse_template(template)[0]
    return first.decode().rstrip(".") if isinstance(first, bytes) else ""


def jobs_to_send(jobs, since_s: float | None) -> list:
    """The job stats (``snapshot.jobs``) that run, or ended at or after ``since_s`` [s] (None: any).

    A job that ended at the previous write's time is sent once more, as ended.
    """
    return [j for j in jobs if j.running or since_s is None or (j.end_s is not None and j.end_s >= since_s)]


def job_paths(prefix: str, jobs) -> list[np.ndarray]:
    """``<prefix>.jobs.<key>.<metric>`` of every job, one ``bytes_`` array per :data:`JOB_METRICS`."""
    head = f"{prefix}.jobs." if prefix else "jobs."
    keys = [head + (path_segment(str(j.key)) or "_") + "." for j in jobs]     # loops over jobs
    return [np.array([(k + m).encode() for k in keys], dtype=np.bytes_) for m in JOB_METRICS]


def _job_values(jobs) -> tuple[np.ndarray, np.ndarray]:
    ints = np.array([[j.xmit_bytes, j.rcv_bytes, j.xmit_wait, len(j.hosts)] for j in jobs],
                    dtype=np.uint64).reshape(-1, 4).T
    share = np.array([[j.share for j in jobs]], dtype=np.float64)
    return ints, share


def format_job_plaintext(jobs, prefix: str, timestamp: int, batch: int = 10_000) -> list[tuple[bytes, int]]:
    """Carbon plaintext lines of the jobs' points (see the module docstring); share to 6 places."""
    if not jobs:
        return []
    paths = job_paths(prefix, jobs)
    ints, share = _job_values(jobs)
    return (format_plaintext(ints, paths[:4], timestamp, batch)
            + format_plaintext(share, paths[4:], timestamp, batch, decimals=6))


def format_job_pickle(jobs, prefix: str, timestamp: int, max_message: int = 1_000_000) -> list[tuple[bytes, int]]:
    """Carbon pickle messages of the jobs' points (see :func:`format_pickle`)."""
    if not jobs:
        return []
    ints, share = _job_values(jobs)
    values = np.vstack((ints.astype(np.float64), share))
    return format_pickle(values, pickle_heads(job_paths(prefix, jobs)), timestamp, max_message)


_TAG_UNSAFE = re.compile(r"\s+")


def graphite_event(event, tags: tuple[str, ...] = ("ibsim",), data: str = "message") -> dict:
    """The graphite-web ``/events/`` body for one fabric event.

    ``what`` is the kind and place (``link_down leaf1:5``), ``tags`` the
    configured tags plus the kind and the node (blanks replaced, since
    graphite-web stores tags space-separated), ``data`` the readable line (or
    the event as JSON), ``when`` the mapped epoch (ms precision).
    """
    what = event.kind
    if event.node_desc is not None:
        what += f" {event.node_desc}" + (f":{event.port}" if event.port is not None else "")
    tag_list = list(tags) + [event.kind]
    if event.node_desc:
        tag_list.append(_TAG_UNSAFE.sub("_", event.node_desc))
    return {"what": what[:255], "tags": tag_list,
            "data": event.message() if data == "message" else json.dumps(event.to_dict()),
            "when": round(float(event.wall_time), 3)}


# ====================================================================== transports
def _template(v) -> str:
    parse_template(v)
    return v


_CARBON_OPTIONS = {
    "host": Option("127.0.0.1", host, "carbon host"),
    "template": Option("ib.<node>.<port>.<counter>", _template, "path template"),
    "counters": Option("all", counters, "sysfs names to send, or all"),
    "ports": Option("cabled", choice("cabled", "all"), "which ports"),
    "mode": Option("counters", choice("counters", "rates"), "raw counters or per-second rates"),
    "jobs": Option(True, boolean, "also send <prefix>.jobs.<key>.* per traffic job"),
    "buffer": Option(2_000_000, integer(1), "points kept: waiting, or written and not yet confirmed"),
    "timeout": Option(10.0, duration, "connect timeout (s)"),
    **DELIVERY_OPTIONS,
}

_CARBON_DELIVERY = ("at least once, confirmed by orderly TCP close: sent = read by carbon-cache; "
                    "unconfirmed = written, close not confirmed; resent = written again after a failed "
                    "connection (duplicates are harmless: carbon keeps the last value per timestamp)")


class _Carbon(Exporter):
    """Shared by the plaintext and pickle exporters: paths, rates state, the TCP sender."""

    unit = "points"
    DELIVERY = _CARBON_DELIVERY

    def __init__(self, **options):
        super().__init__(**options)
        self._fabric = None
        self._prev = None
        self._last_tick = None
        self._jobs_since: float | None = None
        self._prefix = template_prefix(self.options.template)
        self.transport: TcpSender | None = None

    def open(self) -> None:
        self.transport = tcp_sender(self.options, name=self.name, errors=self.errors)

    def _prepare(self, fabric) -> None:
        o = self.options
        self._ports = selected_ports(fabric, o.ports)
        self._paths = build_paths(fabric, o.template, o.counters, self._ports)
        self._fabric = fabric
        self._prev = None

    def _values(self, snapshot):
        """Counter values to send now, or None (the rates baseline)."""
        if snapshot.fabric is not self._fabric:
            self._prepare(snapshot.fabric)
        raw = counter_values(snapshot, self.options.counters, self._ports)
        if self.options.mode == "counters":
            return raw
        prev, self._prev = self._prev, (snapshot.time_s, raw)
        if prev is None or snapshot.time_s <= prev[0]:
            return None
        return counter_rates(prev[1], raw, snapshot.time_s - prev[0], self.options.counters)

    def _jobs(self, snapshot) -> list:
        """Job stats to send with this snapshot (running, or ended since the previous write)."""
        if not self.options.jobs:
            return []
        jobs = jobs_to_send(snapshot.jobs, self._jobs_since)
        self._jobs_since = float(snapshot.time_s)
        return jobs

    def write(self, snapshot) -> None:
        chunks = []
        if snapshot.tick != self._last_tick:          # else a repeated snapshot (the final one)
            self._last_tick = snapshot.tick
            ts = int(snapshot.wall_time)
            values = self._values(snapshot)
            jobs = self._jobs(snapshot)
            chunks = (self._format(values, ts) if values is not None else []) + \
                (self._format_jobs(jobs, ts) if jobs else [])
        if chunks:
            self.transport.send(chunks)
        else:
            self.transport.flush()


class GraphiteExporter(_Carbon):
    """Counters to carbon's plaintext receiver (TCP 2003): ``path value timestamp`` lines."""

    name = "graphite"
    CLI = host_port_flag(2003, "send counters to carbon's plaintext receiver (port 2003 by default)")
    OPTIONS = {**_CARBON_OPTIONS, "port": Option(2003, port, "carbon line receiver port"),
               "batch": Option(10_000, integer(1), "lines per send")}

    def _format(self, values, ts: int):
        return format_plaintext(values, self._paths, ts, self.options.batch)

    def _format_jobs(self, jobs, ts: int):
        return format_job_plaintext(jobs, self._prefix, ts, self.options.batch)


class GraphitePickleExporter(_Carbon):
    """Counters to carbon's pickle receiver (TCP 2004), messages below 1 MiB."""

    name = "graphite_pickle"
    CLI = host_port_flag(2004, "send counters to carbon's pickle receiver (port 2004 by default)")
    OPTIONS = {**_CARBON_OPTIONS, "port": Option(2004, port, "carbon pickle receiver port"),
               "max_message": Option(1_000_000, integer(1024, 1 << 20), "bytes per pickle message")}

    def _prepare(self, fabric) -> None:
        super()._prepare(fabric)
        self._heads = pickle_heads(self._paths)

    def _format(self, values, ts: int):
        return format_pickle(values, self._heads, ts, self.options.max_message)

    def _format_jobs(self, jobs, ts: int):
        return format_job_pickle(jobs, self._prefix, ts, self.options.max_message)


def _http_url(v) -> str:
    u = urllib.parse.urlsplit(text(v))
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ScenarioError(f"expected an http(s) URL like http://127.0.0.1:8080/events/, got {v!r}")
    return v


def _events_url(v: str, opt: str) -> dict:
    """``--graphite-events http://HOST:PORT`` -> ``{url: http://HOST:PORT/events/}``."""
    u = urllib.parse.urlsplit(v if "://" in v else "http://" + v)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ScenarioError(f"expected a URL like http://HOST:PORT, got {v!r}", path=opt)
    path = u.path if u.path not in ("", "/") else "/events/"
    return {"url": urllib.parse.urlunsplit((u.scheme, u.netloc, path, u.query, ""))}


class GraphiteEventsExporter(Exporter):
    """Fabric events to graphite-web's ``POST /events/`` (one request per event)."""

    name = "graphite_events"
    CLI = CliFlag("URL", "post fabric events to graphite-web (http://HOST:PORT; /events/ is added)",
                  _events_url)
    unit = "events"
    DELIVERY = ("at least once: sent = answered 2xx by graphite-web; resent = posted again after a "
                "request that may have reached it; dropped = rejected (4xx) or never posted")
    OPTIONS = {
        "url": Option("http://127.0.0.1:8080/events/", _http_url, "graphite-web events URL"),
        "tags": Option(("ibsim",), text_list, "tags added to every event"),
        "kinds": Option("all", event_kinds, "event kinds to post, or all (every kind but log)"),
        "data": Option("message", choice("message", "json"), "event body: readable line or JSON"),
        "buffer": Option(10_000, integer(1), "events kept while graphite-web is away"),
        "timeout": Option(5.0, duration, "HTTP timeout of one request (s)"),
        "deliver_timeout": DELIVERY_OPTIONS["deliver_timeout"],
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.transport: HttpPoster | None = None

    def open(self) -> None:
        o = self.options
        self.transport = HttpPoster(o.url, name=self.name, buffer=o.buffer, timeout=o.timeout,
                                    deliver_timeout=o.deliver_timeout, errors=self.errors)

    def write(self, snapshot) -> None:
        kinds = self.options.kinds
        bodies = [json.dumps(graphite_event(e, self.options.tags, self.options.data)).encode()
                  for e in snapshot.events if (e.kind != "log" if kinds is None else e.kind in kinds)]
        if bodies:
            self.transport.send(bodies)
        else:
            self.transport.flush()

