"""A private Prometheus scraping node_exporter in container hosts, read back in the suite's terms.

:class:`Prometheus` runs Debian's ``prometheus`` on a free loopback port
with its own TSDB directory and a file-based target list, and stops it by
PID. :class:`PrometheusSink` answers the suite's one question of a monitoring
system, :meth:`points` (``{metric: {timestamp: value}}`` for names like
``ib.<guid>.p01.port_xmit_data``), from Prometheus' HTTP API, mapping each
counter to node_exporter's ``node_infiniband_*`` series (bytes back to
4-octet words).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import BenchError
from .carbon import free_port
from .live import port_key

__all__ = ["NODE_EXPORTER_SERIES", "Prometheus", "PrometheusSink"]

#: ibsim counter -> (node_exporter series, divisor back to the counter's unit)
NODE_EXPORTER_SERIES = {
    "port_xmit_data": ("node_infiniband_port_data_transmitted_bytes_total", 4),
    "port_rcv_data": ("node_infiniband_port_data_received_bytes_total", 4),
    "port_xmit_packets": ("node_infiniband_port_packets_transmitted_total", 1),
    "port_rcv_packets": ("node_infiniband_port_packets_received_total", 1),
    "link_downed": ("node_infiniband_link_downed_total", 1),
    "symbol_error": ("node_infiniband_symbol_error_total", 1),
    "port_rcv_errors": ("node_infiniband_port_errors_received_total", 1),
    "port_xmit_wait": ("node_infiniband_port_transmit_wait_total", 1),
}

_CONF = """global:
  scrape_interval: {interval}s
  scrape_timeout: {timeout}s
  evaluation_interval: {interval}s
scrape_configs:
  - job_name: ibsim
    file_sd_configs:
      - files: ["{targets}"]
        refresh_interval: 5s
"""


class Prometheus:
    """One Prometheus server scraping the targets in ``targets`` (a file_sd JSON file).

    Parameters
    ----------
    workdir : path
    targets : path
        Prometheus file_sd targets file (the virtual cluster writes one).
    interval : float
        Scrape interval (s).
    """

    def __init__(self, workdir, targets, *, interval: float, timeout: float = 60.0):
        exe = shutil.which("prometheus")
        if not exe:
            raise BenchError("prometheus not found: apt-get install prometheus")
        self.dir = Path(workdir)
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "prometheus.yml"
        conf.write_text(_CONF.format(interval=max(int(interval), 1), timeout=max(int(interval), 1),
                                     targets=targets))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "prometheus.log"
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([exe, f"--config.file={conf}", f"--storage.tsdb.path={self.dir}/data",
                                          f"--web.listen-address=127.0.0.1:{self.port}"],
                                         stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.base + "/-/ready", timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise BenchError(f"prometheus in {self.dir} did not become ready; see {self.log}") from None
                time.sleep(0.2)

    def query(self, promql: str, at: float | None = None) -> list:
        """An instant query; the ``result`` list of the answer."""
        args = {"query": promql}
        if at is not None:
            args["time"] = f"{at:.3f}"
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode(args)
        with urllib.request.urlopen(url, timeout=30) as r:
            doc = json.load(r)
        return doc.get("data", {}).get("result", [])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class PrometheusSink:
    """The suite's view of Prometheus: points of ``ib.<guid>.pNN.<counter>`` names.

    Parameters
    ----------
    prom : Prometheus
    instances : dict
        ``{node GUID: instance label ("address:9100")}`` of the scraped hosts.
    """

    def __init__(self, prom: Prometheus, instances: dict):
        self.prom = prom
        self.by_instance = {v: k for k, v in instances.items()}

    def points(self, metrics, since: float = 0.0) -> dict:
        metrics = list(metrics)
        out = {m: {} for m in metrics}
        want: dict[str, list] = {}
        for m in metrics:
            key = port_key(m)
            if key is not None and key[2] in NODE_EXPORTER_SERIES:
                want.setdefault(key[2], []).append((m, key[0], key[1]))
        now = time.time()
        span = max(int(now - since) + 1, 1) if since else 3600
        for counter, items in want.items():
            series, div = NODE_EXPORTER_SERIES[counter]
            try:
                res = self.prom.query(f'{series}{{job="ibsim"}}[{span}s]', at=now)
            except OSError:
                continue
            got = {}
            for r in res:
                guid = self.by_instance.get(r["metric"].get("instance"))
                if guid is None:
                    continue
                got[(guid, int(r["metric"].get("port", 0)))] = {int(float(t)): float(v) / div
                                                               for t, v in r.get("values", [])}
            for m, guid, port in items:
                out[m] = got.get((guid, port), {})
        return out
