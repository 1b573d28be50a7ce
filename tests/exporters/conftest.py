"""Fixtures for the exporter tests: real servers on loopback, a fixed snapshot, a small run.

Servers (carbon-cache, graphite-web, rsyslog, prometheus) are the Debian
binaries, started with ``subprocess.Popen`` on free 127.0.0.1 ports with
private configuration and storage under ``tmp_path``, and stopped by PID in
teardown (SIGTERM, then SIGKILL after a bounded wait). A test that needs a
server is skipped, with the package to install, only when its binary is
absent. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ibsim.bench.carbon import write_carbon_config
from ibsim.engine import Simulation, Snapshot
from ibsim.fabric import FabricState, compile_fabric
from ibsim.faults import Fault
from ibsim.topology import fat_tree
from ibsim.traffic import Job

DATA = Path(__file__).resolve().parents[1] / "data"


# ---------------------------------------------------------------------- helpers
def free_port(kind=socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float, what: str, interval: float = 0.1, proc=None, log=None):
    """Poll ``pred`` until true or fail after ``timeout`` seconds (or when ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
            pytest.fail(f"{what}: server exited with {proc.returncode}\n{tail}")
        if time.monotonic() > deadline:
            tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{tail}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def need(binary: str, package: str) -> str:
    path = shutil.which(binary) or (binary if os.path.exists(binary) else None)
    if not path:
        pytest.skip(f"{binary} not found: apt-get install {package}")
    return path


@dataclass
class Server:
    """A server process started by a test; ``stop()`` ends it by PID."""

    proc: subprocess.Popen
    dir: Path
    log: Path
    ports: dict = field(default_factory=dict)

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start(cmd, dir: Path, name: str, env=None) -> Server:
    log = dir / f"{name}.log"
    fh = open(log, "ab")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=dir, env=env, start_new_session=True)
    fh.close()
    return Server(proc, dir, log)


# ---------------------------------------------------------------------- servers
def start_carbon(d: Path) -> Server:
    exe = need("carbon-cache", "graphite-carbon")
    ports = {"line": free_port(), "pickle": free_port(), "query": free_port()}
    conf = write_carbon_config(d, ports)
    srv = start([exe, f"--config={conf}", "--debug", "start"], d, "carbon")
    srv.ports = ports
    wait_until(lambda: port_open(ports["line"]) and port_open(ports["pickle"]), 60,
               "carbon-cache to listen", proc=srv.proc, log=srv.log)
    return srv


@pytest.fixture
def carbon(tmp_path):
    """A private carbon-cache: ``.ports['line'|'pickle']``, whisper root ``.dir/storage/whisper``."""
    srv = start_carbon(tmp_path / "carbon")
    yield srv
    srv.stop()


GRAPHITE_WEB_SETTINGS = """SECRET_KEY = "ibsim-test"
TIME_ZONE = "UTC"
STORAGE_DIR = "{d}/storage"
WHISPER_DIR = "{d}/storage/whisper"
LOG_DIR = "{d}/log"
INDEX_FILE = "{d}/storage/index"
CARBONLINK_HOSTS = []
DATABASES = {{"default": {{"NAME": "{d}/graphite.db", "ENGINE": "django.db.backends.sqlite3",
                         "USER": "", "PASSWORD": "", "HOST": "", "PORT": ""}}}}
"""


def start_graphite_web(d: Path) -> Server:
    """Debian's graphite-web (runs under /usr/bin/python3) with a private sqlite database in ``d``."""
    manage = need("/usr/bin/graphite-manage", "graphite-web")
    py = need("/usr/bin/python3", "python3")
    for sub in ("storage/whisper", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "ibsim_gw_settings.py").write_text(GRAPHITE_WEB_SETTINGS.format(d=d))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "GRAPHITE_SETTINGS_MODULE": "ibsim_gw_settings",
           "PYTHONPATH": str(d), "HOME": str(d)}
    r = subprocess.run([py, manage, "migrate", "--run-syncdb"], cwd=d, env=env, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    port = free_port()
    srv = start([py, manage, "runserver", f"127.0.0.1:{port}", "--noreload"], d, "graphite-web", env=env)
    srv.ports = {"http": port}
    wait_until(lambda: port_open(port), 60, "graphite-web to listen", proc=srv.proc, log=srv.log)
    return srv


@pytest.fixture
def graphite_web(tmp_path):
    """Debian's graphite-web (runs under /usr/bin/python3) with a private sqlite database."""
    srv = start_graphite_web(tmp_path / "graphite-web")
    yield srv
    srv.stop()


RSYSLOG_CONF = """global(workDirectory="{d}/work" maxMessageSize="256k")
module(load="imtcp")
module(load="imudp")
module(load="mmjsonparse")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="json")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="json")
template(name="parsed" type="list") {{ property(name="$!") constant(value="\\n") }}
template(name="raw" type="list") {{ property(name="rawmsg") constant(value="\\n") }}
ruleset(name="json") {{
  action(type="mmjsonparse" cookie="" useRawMsg="on")
  if $parsesuccess == "OK" then {{
    action(type="omfile" file="{d}/out/parsed.jsonl" template="parsed")
  }} else {{
    action(type="omfile" file="{d}/out/unparsed.log" template="raw")
  }}
}}
"""


class Rsyslog:
    """rsyslogd with imtcp/imudp + mmjsonparse writing parsed JSON lines; restartable on the same ports."""

    def __init__(self, d: Path):
        self.exe = need("rsyslogd", "rsyslog")
        self.dir = d
        (d / "work").mkdir(parents=True, exist_ok=True)
        (d / "out").mkdir(exist_ok=True)
        self.tcp, self.udp = free_port(), free_port(socket.SOCK_DGRAM)
        self.conf = d / "rsyslog.conf"
        self.conf.write_text(RSYSLOG_CONF.format(d=d, tcp=self.tcp, udp=self.udp))
        self.out = d / "out" / "parsed.jsonl"
        self.server: Server | None = None

    def start(self) -> None:
        self.server = start([self.exe, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslog.pid")],
                            self.dir, "rsyslog")
        wait_until(lambda: port_open(self.tcp), 30, "rsyslogd to listen", proc=self.server.proc,
                   log=self.server.log)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def documents(self) -> list[dict]:
        import json
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]


@pytest.fixture
def rsyslog(tmp_path):
    r = Rsyslog(tmp_path / "rsyslog")
    r.start()
    yield r
    r.stop()


@pytest.fixture
def prometheus_server_binary():
    return need("prometheus", "prometheus")


# ---------------------------------------------------------------------- data
def fixed_snapshot(fabric, wall_time: float = 1_700_000_000.0, time_s: float = 10.0) -> Snapshot:
    """A deterministic snapshot: counters are a fixed pattern (one 20-digit value included)."""
    n = fabric.n_ports
    st = FabricState(fabric)
    k = np.arange(21 * n, dtype=np.uint64).reshape(21, n)
    counters = (k * np.uint64(1_000_003) + np.uint64(7)) % np.uint64(2**40)
    counters[12, n - 1] = np.uint64(2**64 - 1)
    counters[0, :] = 0
    return Snapshot(time_s, 100, wall_time, fabric, counters, st.port_state.copy(), st.phys_state.copy(),
                    st.width.copy(), st.speed.copy(), st.lid.copy(), np.zeros(n), np.zeros(n), ())


def small_sim(seed: int = 7) -> Simulation:
    """fat_tree(4, 2) with ftree routing, an all-to-all job, a link that goes down for 2 s and flaps."""
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=seed, routing="ftree", sweep_delay=1.0)
    sim.add_job(Job("a2a", "all_to_all", load=0.6))
    sim.add_job(Job("perm", "permutation", hosts=4, load=0.9, start_s=1.0, stop_s=5.0))
    sim.schedule(Fault("link_down", "leaf1:3", 2.0, {"for_s": 2.0}))
    sim.schedule(Fault("flap", "leaf2:4", 5.0, {"period_s": 1.0, "count": 2}))
    return sim


@pytest.fixture
def helpers():
    """The helpers above, for test modules (``--import-mode=importlib`` cannot import conftest)."""
    import types
    return types.SimpleNamespace(fixed_snapshot=fixed_snapshot, small_sim=small_sim, wait_until=wait_until,
                                 free_port=free_port, port_open=port_open, start=start, need=need,
                                 start_carbon=start_carbon, Rsyslog=Rsyslog, DATA=DATA)
