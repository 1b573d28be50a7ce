"""Prometheus exporter: the fabric's counters over HTTP, under node_exporter's InfiniBand names.

Prometheus scrapes ``http://<host>:<port>/metrics``. Every counter of the
schema is served as ``node_infiniband_<metric>`` (``port_xmit_data`` as
``node_infiniband_port_data_transmitted_bytes_total``, multiplied by 4 into
bytes as node_exporter does; every other counter as is), plus
``node_infiniband_state_id`` and ``node_infiniband_physical_state_id``
gauges and ``ibsim_simulated_time_seconds``. Each port series is labelled
like node_exporter's (``device``, ``port``) and with the fabric identity of
the port (``node_guid``, ``node_desc``, ``peer_guid``, ``peer_port``);
``device`` is the node's unique path-safe name (its description, or its GUID
where descriptions are shared).

Traffic jobs (``snapshot.jobs``: scenario jobs, Slurm jobs) are served as
``ibsim_job_xmit_bytes_total``, ``ibsim_job_rcv_bytes_total`` (bytes their
hosts' CA ports sent and received since the job started),
``ibsim_job_xmit_wait_total`` (XmitWait ticks on those ports) and the gauges
``ibsim_job_share`` (the job's fraction, 0..1, of the bytes all CA ports sent
meanwhile) and ``ibsim_job_hosts``, labelled ``job_id`` (the Slurm job id,
else the job's name), ``job_name`` (its Slurm name, else its name) and
``user`` (empty when not known). Jobs that ended stay, with their final
values, until the exporter closes; a requeued job's series restart with the
new run (a counter reset to Prometheus).

The response is built at scrape time from the latest snapshot by
:class:`FabricCollector`: :meth:`FabricCollector.render` lays out each metric
for all ports at once as a byte matrix (no Python object per port, none held
between scrapes), so a 70k-port fabric (1.6 million series, about 300 MB of
text) scrapes in about 1.5 s, where prometheus_client's own exposition of the
same samples took 21 s; set a ``scrape_timeout`` to match on such fabrics.
:meth:`FabricCollector.collect` yields the same metrics as prometheus_client
families (needs ``pip install 'ibsim[prometheus]'``), for registering the
fabric in a registry of your own. The endpoint binds 127.0.0.1 unless told
otherwise; ``port: 0`` takes any free port (``exporter.port`` says which).

Options (YAML)::

    exporters:
      - prometheus:
          host: 127.0.0.1
          port: 9684              # 0 = any free port
          ports: cabled           # cabled (the rows of counters.csv) or all
          every: 1s
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
import urllib.parse

import numpy as np

from ibsim.export import (COUNTERS, CliFlag, Exporter, ExporterError, Option, ascii_uint, assemble, choice,
                          host, node_names, parse_host_port, port, selected_ports, squeeze,
                          text_matrix)

__all__ = ["LABELS", "METRICS", "JOB_LABELS", "JOB_METRICS", "job_labels", "FabricCollector",
           "PrometheusExporter", "CONTENT_TYPE"]

#: text exposition format served
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: label names of every port series, in order
LABELS = ("device", "port", "node_guid", "node_desc", "peer_guid", "peer_port")

_STATE_HELP = ("State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, "
               "5: act defer)")
_PHYS_HELP = ("Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, "
              "4: shift, 5: link up, 6: link error recover, 7: phytest)")

#: (metric name, type, help, source, scale): one per schema counter, then the state gauges
METRICS: tuple[tuple[str, str, str, str, int], ...] = tuple(
    ("node_infiniband_" + c.metric, "counter",
     c.help + (" (in bytes: the 4-octet word count times 4)" if c.unit == "4-octet words" else ""),
     c.name, 4 if c.unit == "4-octet words" else 1)
    for c in COUNTERS
) + (("node_infiniband_state_id", "gauge", _STATE_HELP, "port_state", 1),
     ("node_infiniband_physical_state_id", "gauge", _PHYS_HELP, "phys_state", 1))

_ROW = {c.name: i for i, c in enumerate(COUNTERS)}

#: label names of every job series, in order
JOB_LABELS = ("job_id", "job_name", "user")
#: (metric name, type, help, JobStat field) of the job series
JOB_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("ibsim_job_xmit_bytes_total", "counter",
     "Bytes the job's hosts' CA ports sent since the job started (PortXmitData times 4)", "xmit_bytes"),
    ("ibsim_job_rcv_bytes_total", "counter",
     "Bytes the job's hosts' CA ports received since the job started (PortRcvData times 4)", "rcv_bytes"),
    ("ibsim_job_xmit_wait_total", "counter",
     "XmitWait ticks the job's hosts' CA ports counted since the job started", "xmit_wait"),
    ("ibsim_job_share", "gauge",
     "Fraction (0..1) of the bytes all CA ports sent since the job started that the job's hosts sent", "share"),
    ("ibsim_job_hosts", "gauge", "Hosts of the job", "hosts"),
)


def job_labels(job) -> tuple[str, str, str]:
    """``(job_id, job_name, user)`` of a job stat: its key, its Slurm name or name, its user or ``""``."""
    return str(job.key), job.labels.get("job_name") or job.name, job.labels.get("user", "")


def _job_value(job, field: str):
    return len(job.hosts) if field == "hosts" else getattr(job, field)


def _escape_help(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _bytes_array(strings) -> np.ndarray:
    return np.array([s.encode() for s in strings], dtype=np.bytes_)


def label_values(fabric, ports: np.ndarray) -> dict[str, list[str]]:
    """The label values of the selected ports, by label name (plain strings, for the client path)."""
    names = node_names(fabric)
    node = fabric.node_of_port[ports]
    peer = fabric.peer_of_port[ports]
    cabled = peer >= 0
    pnode = fabric.node_of_port[np.maximum(peer, 0)]
    guid = [f"0x{int(g):016x}" for g in fabric.node_guid]
    return {
        "device": [str(names[n]) for n in node],
        "port": [str(int(p)) for p in fabric.port_num[ports]],
        "node_guid": [guid[n] for n in node],
        "node_desc": [fabric.node_desc[n] for n in node],
        "peer_guid": [guid[m] if c else "" for m, c in zip(pnode, cabled)],
        "peer_port": [str(int(fabric.port_num[q])) if c else "" for q, c in zip(peer, cabled)],
    }


def label_block(fabric, ports: np.ndarray) -> np.ndarray:
    """``{device="...",port="1",...}`` of every selected port as an ``(n, w)`` uint8 matrix.

    Built from per-node strings and per-port arrays (no Python object per port).
    """
    node = fabric.node_of_port[ports]
    peer = fabric.peer_of_port[ports]
    cabled = peer >= 0
    pnode = fabric.node_of_port[np.maximum(peer, 0)]
    guid = _bytes_array(f"0x{int(g):016x}" for g in fabric.node_guid)
    cols = {
        "device": _bytes_array(_escape_label(str(s)) for s in node_names(fabric))[node],
        "port": fabric.port_num[ports].astype("S3"),
        "node_guid": guid[node],
        "node_desc": _bytes_array(_escape_label(d) for d in fabric.node_desc)[node],
        "peer_guid": np.where(cabled, guid[pnode], b""),
        "peer_port": np.where(cabled, fabric.port_num[np.maximum(peer, 0)].astype("S3"), b""),
    }
    out = np.full(ports.size, b"{", dtype="S1")
    for i, name in enumerate(LABELS):                    # loops over labels, never ports
        out = np.char.add(out, (("," if i else "") + name + '="').encode())
        out = np.char.add(np.char.add(out, cols[name]), b'"')
    return text_matrix(np.char.add(out, b"}"))


class FabricCollector:
    """Metrics of the latest snapshot, built when scraped.

    ``update(snapshot)`` swaps the reference; :meth:`render` gives the text
    exposition; :meth:`collect` gives prometheus_client metric families.
    """

    def __init__(self, ports: str = "cabled"):
        self.ports_option = ports
        self.snapshot = None
        self._fabric = None
        #: job labels -> the latest stat of that job (ended ones kept), replaced as a whole
        self.jobs: dict[tuple, object] = {}

    def update(self, snapshot) -> None:
        """Serve ``snapshot`` from now on (and its jobs, besides the ended ones served so far)."""
        if snapshot.jobs:
            jobs = dict(self.jobs)
            for j in snapshot.jobs:                   # start order: a requeued job's latest run wins
                jobs[job_labels(j)] = j
            self.jobs = jobs
        self.snapshot = snapshot

    def _job_lines(self, jobs: dict) -> list[bytes]:
        """Exposition of the job series (nothing without jobs)."""
        if not jobs:
            return []
        sel = ["{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in zip(JOB_LABELS, labels)) + "}"
               for labels in jobs]                    # loops over jobs
        out = []
        for name, typ, help_, field in JOB_METRICS:
            lines = [f"# HELP {name} {_escape_help(help_)}\n# TYPE {name} {typ}\n"]
            lines += [f"{name}{s} {_job_value(j, field)!r}\n" for s, j in zip(sel, jobs.values())]
            out.append("".join(lines).encode())
        return out

    def _prepare(self, fabric):
        if fabric is not self._fabric:
            self._ports = selected_ports(fabric, self.ports_option)
            self._labels = label_block(fabric, self._ports)
            self._fabric = fabric
        return self._ports, self._labels

    @staticmethod
    def _values(snap, source: str, scale: int, ports: np.ndarray) -> np.ndarray:
        if source in _ROW:
            v = snap.counters[_ROW[source], ports]
            return v * np.uint64(scale) if scale != 1 else v
        return getattr(snap, source)[ports]

    def render(self, snapshot=None) -> bytes:
        """The text exposition (format 0.0.4) of the latest snapshot."""
        snap = self.snapshot if snapshot is None else snapshot
        if snap is None:
            return b""
        ports, labels = self._prepare(snap.fabric)
        out = []
        for name, typ, help_, source, scale in METRICS:   # loops over metrics, never ports
            out.append(f"# HELP {name} {_escape_help(help_)}\n# TYPE {name} {typ}\n".encode())
            if ports.size:
                vals = self._values(snap, source, scale, ports)
                out.append(squeeze(assemble([name.encode(), labels, b" ", ascii_uint(vals), b"\n"],
                                            ports.size)))
        out += self._job_lines(self.jobs)
        out.append(b"# HELP ibsim_simulated_time_seconds Simulated time of the snapshot served\n"
                   b"# TYPE ibsim_simulated_time_seconds gauge\n"
                   + f"ibsim_simulated_time_seconds {float(snap.time_s)!r}\n".encode())
        return b"".join(out)

    def describe(self):
        """No fixed description (metrics exist only once a snapshot has arrived)."""
        return []

    def collect(self):
        """prometheus_client metric families of the latest snapshot (one sample object per port)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        snap = self.snapshot
        if snap is None:
            return
        ports, _ = self._prepare(snap.fabric)
        lv = label_values(snap.fabric, ports)
        rows = list(zip(*(lv[k] for k in LABELS)))
        for name, typ, help_, source, scale in METRICS:
            fam = (CounterMetricFamily if typ == "counter" else GaugeMetricFamily)(name, help_, labels=LABELS)
            for labels, v in zip(rows, self._values(snap, source, scale, ports).tolist()):
                fam.add_metric(labels, v)
            yield fam
        jobs = self.jobs
        if jobs:
            for name, typ, help_, field in JOB_METRICS:
                fam = (CounterMetricFamily if typ == "counter" else GaugeMetricFamily)(name, help_,
                                                                                      labels=JOB_LABELS)
                for labels, j in jobs.items():
                    fam.add_metric(labels, _job_value(j, field))
                yield fam
        yield GaugeMetricFamily("ibsim_simulated_time_seconds", "Simulated time of the snapshot served",
                                value=float(snap.time_s))


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "ibsim-prometheus"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        exp = self.server.exporter
        path = urllib.parse.urlsplit(self.path).path
        if path == "/metrics":
            snap = exp.collector.snapshot
            try:
                body = exp.collector.render(snap)
            except Exception as exc:  # isolation: a bad scrape is a 500, never a crash
                exp.errors.error(type(exc).__name__, f"scrape failed: {exc!r}")
                self.send_error(500, "scrape failed")
                return
            ctype = CONTENT_TYPE
        elif path == "/":
            body = b'<html><body><a href="/metrics">/metrics</a> (ibsim)</body></html>\n'
            ctype = "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if path == "/metrics":
            self.wfile.flush()
            exp.served(snap)

    def log_message(self, *args):  # requests are not logged
        pass


def _listen_address(v: str, opt: str) -> dict:
    """``--prometheus [HOST:]PORT`` (host 127.0.0.1 by default) -> options."""
    if re.fullmatch(r"\d+", v.strip()):
        return {"port": int(v)}
    h, pt = parse_host_port(v, 9684, opt)
    return {"host": h, "port": pt}


class PrometheusExporter(Exporter):
    """An HTTP endpoint serving the latest snapshot for Prometheus to scrape."""

    name = "prometheus"
    CLI = CliFlag("[HOST:]PORT", "serve counters for Prometheus (host 127.0.0.1 by default; "
                  "port 0 = any free port)", _listen_address)
    unit = "scrapes"
    DELIVERY = ("pull: sent = scrape responses written completely, each with the latest snapshot; "
                "nothing is buffered or re-sent, snapshots between scrapes are not seen; "
                "last_scrape_time_s = simulated time of the snapshot the last scrape got")
    OPTIONS = {
        "host": Option("127.0.0.1", host, "address to bind"),
        "port": Option(9684, port, "port to bind, 0 = any free port"),
        "ports": Option("cabled", choice("cabled", "all"), "which ports are served"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.collector = FabricCollector(self.options.ports)
        self.server = None
        self.port = None
        self.scrapes = 0
        self.last_scrape_time_s = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str | None:
        """``http://host:port/metrics`` once open."""
        if self.port is None:
            return None
        h = self.options.host
        return f"http://{'[' + h + ']' if ':' in h else h}:{self.port}/metrics"

    def open(self) -> None:
        """Bind and serve on a daemon thread.

        Raises
        ------
        ExporterError
            If the address cannot be bound (port in use, no such address).
        """
        cls = http.server.ThreadingHTTPServer
        if ":" in self.options.host:
            cls = type("V6Server", (http.server.ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        try:
            self.server = cls((self.options.host, self.options.port), _Handler)
        except OSError as exc:
            raise ExporterError(f"prometheus: cannot listen on {self.options.host}:{self.options.port}: "
                                f"{exc.strerror or exc}") from exc
        self.server.daemon_threads = True
        self.server.exporter = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="ibsim-prometheus", daemon=True).start()

    def write(self, snapshot) -> None:
        self.collector.update(snapshot)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def served(self, snapshot) -> None:
        """Count a scrape whose response was written completely (``snapshot``: what it served)."""
        with self._lock:
            self.scrapes += 1
            if snapshot is not None:
                self.last_scrape_time_s = float(snapshot.time_s)

    def stats(self) -> dict:
        return {"sent": self.scrapes, "unconfirmed": 0, "dropped": 0, "resent": 0, "reconnects": 0,
                "errors": self.errors.total, "url": self.url, "last_scrape_time_s": self.last_scrape_time_s,
                "delivery": self.delivery()}
