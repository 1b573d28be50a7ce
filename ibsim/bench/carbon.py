"""A private carbon-cache for the monitoring benchmark and the tests.

:class:`Carbon` starts Debian's ``carbon-cache`` on free loopback ports (line,
pickle, cache query) with its configuration and whisper files under one
directory, and stops it by its PID. What carbon holds is read back two ways:
the points still in its cache through the cache-query protocol graphite-web
uses (carbonlink: a 4-byte length-prefixed pickle request and answer), and
the points already written through the whisper files. :meth:`Carbon.points`
merges both, so a point is visible from the moment carbon has received it.

Whisper files are pre-allocated (retention x 12 bytes per series): keep the
retention short (default ``1s:30m``, 21.6 kB per series) and remove the
directory when done.
"""

from __future__ import annotations

import pickle
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from ..errors import BenchError

__all__ = ["CARBON_CONF", "Carbon", "free_port", "write_carbon_config"]

CARBON_CONF = """[cache]
STORAGE_DIR = {d}/storage
LOCAL_DATA_DIR = {d}/storage/whisper
WHITELISTS_DIR = {d}/storage/lists
CONF_DIR = {d}
LOG_DIR = {d}/log
PID_DIR = {d}
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 100000
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line}
ENABLE_UDP_LISTENER = {udp_enabled}
UDP_RECEIVER_INTERFACE = 127.0.0.1
UDP_RECEIVER_PORT = {udp}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {query}
USE_FLOW_CONTROL = True
LOG_UPDATES = False
LOG_CREATES = False
LOG_LISTENER_CONNECTIONS = False
ENABLE_TAGS = False
CARBON_METRIC_INTERVAL = 0
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now (TCP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_carbon_config(d: Path, ports: dict, retention: str = "1s:2h") -> Path:
    """Configuration of a private carbon-cache under ``d``; returns ``carbon.conf``.

    Parameters
    ----------
    d : Path
        Directory for the configuration, logs and ``storage/whisper``.
    ports : dict
        Loopback TCP ports ``line``, ``pickle``, ``query``; optional ``udp``
        (a UDP line receiver, off when absent).
    retention : str
        Carbon retention of every series (``1s:2h``: one point a second for
        two hours, 86.4 kB per series); the aggregation keeps the last value.
    """
    d = Path(d)
    for sub in ("storage/whisper", "storage/lists", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "storage-schemas.conf").write_text(f"[default]\npattern = .*\nretentions = {retention}\n")
    (d / "storage-aggregation.conf").write_text("[default]\npattern = .*\nxFilesFactor = 0\n"
                                                "aggregationMethod = last\n")
    conf = d / "carbon.conf"
    udp = ports.get("udp")
    conf.write_text(CARBON_CONF.format(d=d, line=ports["line"], pickle=ports["pickle"],
                                       query=ports["query"], udp=udp or 0,
                                       udp_enabled="True" if udp else "False"))
    return conf


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Carbon:
    """One carbon-cache process with private ports and storage.

    Parameters
    ----------
    workdir : path
        Configuration, logs and whisper files go under it.
    retention : str
        Retention of every series (default ``1s:30m``).
    udp : bool
        Also listen for plaintext lines on a UDP port (``ports["udp"]``).
    timeout : float
        Seconds to wait for the listeners (s).

    Raises
    ------
    BenchError
        ``carbon-cache`` is not installed, or exits or does not listen in time.
    """

    def __init__(self, workdir, *, retention: str = "1s:30m", udp: bool = False, timeout: float = 60.0):
        exe = shutil.which("carbon-cache")
        if not exe:
            raise BenchError("carbon-cache not found: apt-get install graphite-carbon")
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = {"line": free_port(), "pickle": free_port(), "query": free_port()}
        if udp:
            self.ports["udp"] = free_port(socket.SOCK_DGRAM)
        self.retention = retention
        self.whisper_dir = self.dir / "storage" / "whisper"
        conf = write_carbon_config(self.dir, self.ports, retention)
        self.log = self.dir / "carbon.log"
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([exe, f"--config={conf}", "--debug", "start"], stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (_port_open(self.ports["line"]) and _port_open(self.ports["query"])):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-400:].strip().splitlines()[-1:] or ["(no log)"]
                self.stop()
                raise BenchError(f"carbon-cache in {self.dir} did not listen within {timeout:g} s: {tail[0]}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    # ------------------------------------------------------------ reading back
    def _query(self, request: dict, timeout: float = 30.0) -> dict:
        payload = pickle.dumps(request, protocol=2)
        with socket.create_connection(("127.0.0.1", self.ports["query"]), timeout=timeout) as s:
            s.sendall(struct.pack("!L", len(payload)) + payload)
            head = _recv_exact(s, 4)
            body = _recv_exact(s, struct.unpack("!L", head)[0])
        return pickle.loads(body)

    def cached(self, metrics) -> dict:
        """Points still in carbon's cache: ``{metric: [(timestamp, value), ...]}`` (bulk cache query)."""
        metrics = list(metrics)
        if not metrics:
            return {}
        answer = self._query({"type": "cache-query-bulk", "metrics": metrics})
        return {m: list(v) for m, v in answer.get("datapointsByMetric", {}).items()}

    def wsp_path(self, metric: str) -> Path:
        return self.whisper_dir.joinpath(*metric.split(".")).with_suffix(".wsp")

    def stored(self, metric: str, since: float = 0.0) -> list:
        """Points written to the whisper file of ``metric`` since ``since`` (unix s): ``[(ts, value)]``."""
        import whisper
        fp = self.wsp_path(metric)
        if not fp.exists():
            return []
        try:
            (start, _end, step), values = whisper.fetch(str(fp), max(int(since) - 1, 0))
        except (whisper.CorruptWhisperFile, OSError, struct.error):
            return []                      # created, header not written yet
        return [(start + i * step, v) for i, v in enumerate(values) if v is not None]

    def points(self, metrics, since: float = 0.0) -> dict:
        """Everything carbon holds for ``metrics`` since ``since``: whisper merged with the cache.

        Returns ``{metric: {timestamp: value}}`` (cache values win: they are newer).
        """
        metrics = list(metrics)
        out = {m: dict(self.stored(m, since)) for m in metrics}
        for m, pts in self.cached(metrics).items():
            for ts, v in pts:
                if ts >= since:
                    out[m][int(ts)] = v
        return out

    def series(self) -> list[str]:
        """Every metric with a whisper file (dotted names), sorted."""
        if not self.whisper_dir.exists():
            return []
        root = self.whisper_dir
        return sorted(".".join(p.relative_to(root).with_suffix("").parts) for p in root.rglob("*.wsp"))

    def disk_bytes(self) -> int:
        """Bytes of the whisper files."""
        return sum(p.stat().st_size for p in self.whisper_dir.rglob("*.wsp")) if self.whisper_dir.exists() else 0

    # ------------------------------------------------------------ lifetime
    def stop(self, timeout: float = 30.0) -> None:
        """Stop carbon-cache by its PID (SIGTERM, then SIGKILL after ``timeout`` s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def remove(self) -> None:
        """Stop and delete the directory (whisper files are pre-allocated: do not leave them)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Carbon:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("carbon closed the cache-query connection")
        buf += chunk
    return bytes(buf)
