"""The exporter interface: discovery, options, specs, time mapping, isolation, transports."""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import importlib.metadata
import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import ibsim.export as export
from ibsim.errors import ExporterError, ScenarioError, UnknownNameError
from ibsim.export import (ExporterSpec, TcpSender, TimeMap, ascii_decimal, ascii_uint, attach,
                          build_exporter, exporter_names, parse_spec, specs_from_cli,
                          specs_from_scenario)
from ibsim import compile_fabric, fat_tree
from ibsim.engine import Simulation
from ibsim.faults import Fault

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = {"graphite", "graphite_pickle", "graphite_events", "logstash", "prometheus"}


class Sink:
    """A loopback TCP server on port 0 that keeps what each connection sent and, like carbon,
    closes a connection when it reads its end (which is how the sender confirms delivery)."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen()
        self.port = self.srv.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.data: list[bytearray] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            buf = bytearray()
            self.conns.append(c)
            self.data.append(buf)
            threading.Thread(target=self._read, args=(c, buf), daemon=True).start()

    @staticmethod
    def _read(c, buf):
        while True:
            try:
                b = c.recv(65536)
            except OSError:
                return
            if not b:
                c.close()
                return
            buf += b

    def drop_connections(self):
        for c in self.conns:
            c.shutdown(socket.SHUT_RDWR)
            c.close()

    def lines(self) -> list[bytes]:
        return b"".join(self.data).splitlines()

    def close(self):
        self._stop = True
        self.srv.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---------------------------------------------------------------------- discovery and options
@pytest.mark.requires_entry_points
def test_builtin_exporters_are_registered_as_entry_points():
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=export.GROUP)}
    assert BUILTIN <= set(eps)
    assert BUILTIN <= set(exporter_names())
    for name in BUILTIN:
        exp = build_exporter(name, {})
        assert exp.name == name and isinstance(exp, export.ExporterProtocol)


@pytest.mark.requires_entry_points
def test_unknown_names_and_keys_are_rejected_with_a_suggestion():
    with pytest.raises(UnknownNameError, match="did you mean 'prometheus'"):
        build_exporter("prometeus")
    with pytest.raises(ScenarioError, match=r"graphite\.prot: .*did you mean 'port'"):
        build_exporter("graphite", {"prot": 2003})
    with pytest.raises(ScenarioError, match=r"logstash\.protocol: .*'tcp'"):
        build_exporter("logstash", {"protocol": "tpc"})
    with pytest.raises(ScenarioError, match=r"graphite\.port"):
        build_exporter("graphite", {"port": 70000})
    with pytest.raises(ScenarioError, match=r"graphite\.batch: expected an integer"):
        build_exporter("graphite", {"batch": "many"})


@pytest.mark.requires_entry_points
def test_scenario_entries_in_both_shapes_with_stage_options():
    specs = specs_from_scenario([
        {"graphite": {"host": "127.0.0.1", "port": 2003, "every": "10s"}},
        {"name": "prometheus", "port": 0},
        {"logstash": None},
        {"graphite_pickle": {"epoch": "2025-01-01T00:00:00Z"}},
    ], source="fab.yml")
    assert [s.name for s in specs] == ["graphite", "prometheus", "logstash", "graphite_pickle"]
    assert specs[0] == ExporterSpec("graphite", {"host": "127.0.0.1", "port": 2003}, 10.0, None)
    assert specs[3].epoch == dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    with pytest.raises(ScenarioError) as e:
        specs_from_scenario([{"graphite": {}}, {"graphite": {"hots": "x"}}], source="fab.yml")
    assert e.value.source == "fab.yml" and e.value.path == "exporters[1].graphite.hots"
    with pytest.raises(UnknownNameError) as e:
        specs_from_scenario([{"grafite": {}}], source="fab.yml")
    assert e.value.path == "exporters[0]" and "did you mean 'graphite'" in str(e.value)
    with pytest.raises(ScenarioError, match="every"):
        parse_spec({"graphite": {"every": "-1s"}})
    with pytest.raises(ScenarioError, match="one key"):
        parse_spec({"graphite": {}, "logstash": {}})


@pytest.mark.requires_entry_points
def test_cli_shortcuts():
    ap = argparse.ArgumentParser()
    export.add_cli_arguments(ap)
    args = ap.parse_args(["--graphite", "carbon:2103", "--graphite", "127.0.0.1",
                          "--graphite-pickle", "[::1]:2004", "--graphite-events", "http://gw:8080",
                          "--logstash", "udp://127.0.0.1:5140", "--logstash", "ls:5000",
                          "--prometheus", "0"])
    got = [(s.name, dict(s.options)) for s in specs_from_cli(args)]
    assert got == [
        ("graphite", {"host": "carbon", "port": 2103}),
        ("graphite", {"host": "127.0.0.1", "port": 2003}),
        ("graphite_events", {"url": "http://gw:8080/events/"}),
        ("graphite_pickle", {"host": "::1", "port": 2004}),
        ("logstash", {"protocol": "udp", "host": "127.0.0.1", "port": 5140}),
        ("logstash", {"protocol": "tcp", "host": "ls", "port": 5000}),
        ("prometheus", {"port": 0}),
    ]
    assert specs_from_cli({"prometheus": "0.0.0.0:9100"})[0].options == {"host": "0.0.0.0", "port": 9100}
    assert specs_from_cli(ap.parse_args([])) == []
    with pytest.raises(ScenarioError, match="--logstash"):
        specs_from_cli({"logstash": "http://x:1"})
    with pytest.raises(ScenarioError, match="--graphite"):
        specs_from_cli({"graphite": "host:port"})


def test_time_map():
    fast = TimeMap.for_run(1_700_000_000.9, until=60.0)
    assert fast(60.0) == 1_700_000_000 and fast(0.0) == 1_700_000_000 - 60
    assert TimeMap.for_run(100.0, realtime=4.0)(8.0) == 102.0
    assert TimeMap.for_run(100.0, realtime=2.0, now_s=10.0)(10.0) == 100.0
    assert TimeMap.for_run(100.0)(5.0) == 105.0
    assert TimeMap.fixed(export.epoch_value("2025-01-01"))(1.5) == 1735689601.5
    with pytest.raises(ScenarioError):
        export.epoch_value("yesterday")


def test_text_helpers_cover_the_extremes():
    v = np.array([0, 9, 10, 2**64 - 1], dtype=np.uint64)
    assert [bytes(r).strip(b"\0") for r in ascii_uint(v)] == [b"0", b"9", b"10", b"18446744073709551615"]
    d = ascii_decimal(np.array([0.0, 0.0004, 0.0006, 1.1, 100.0, -3.0, np.nan]), 3)
    assert [bytes(r).replace(b"\0", b"") for r in d] == [b"0", b"0", b"0.001", b"1.1", b"100", b"0", b"0"]
    assert ascii_uint(np.array([], dtype=np.uint64)).shape == (0, 1)


# ---------------------------------------------------------------------- the stage
class Recorder:
    name = "recorder"

    def __init__(self, fail_at=(), delay=0.0):
        self.snaps, self.fail_at, self.delay, self.closed = [], set(fail_at), delay, False

    def open(self):
        pass

    def write(self, snap):
        time.sleep(self.delay)
        self.snaps.append(snap)
        if len(self.snaps) in self.fail_at:
            raise RuntimeError("boom")

    def close(self):
        self.closed = True


def _sim():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=2, routing="ftree", sweep_delay=0.5)
    sim.schedule(Fault("flap", "leaf1:3", 0.5, {"period_s": 0.4, "count": 3}))
    return sim


def test_a_failing_exporter_never_stops_the_run_and_is_logged_once(caplog):
    sim = _sim()
    bad, good = Recorder(fail_at=range(1, 1000)), Recorder()
    with caplog.at_level(logging.WARNING, logger="ibsim.export"):
        stage = attach(sim, [bad, good], every=0.1, until=2.0)
        sim.run(until=2.0)
        stats = stage.close()
    assert sim.time_s == pytest.approx(2.0)
    assert stats["recorder"]["errors"] == len(bad.snaps) > 10
    assert stats["recorder#2"]["errors"] == 0 and good.closed
    boom = [r for r in caplog.records if "boom" in r.getMessage()]
    assert len(boom) == 1
    assert any("repeated failures not logged: RuntimeError x" in r.getMessage() for r in caplog.records)


def test_fast_mode_delivers_every_snapshot_with_mapped_times_and_all_events():
    sim = _sim()
    rec = Recorder(delay=0.002)
    stage = attach(sim, [rec], every=0.1, until=2.0, start_wall=1_000_000.5)
    sim.run(until=2.0)
    stage.close()
    times = [round(s.time_s, 6) for s in rec.snaps]
    assert times[:-1] == [round(0.1 * k, 6) for k in range(1, 21)] and times[-1] == 2.0
    assert [s.wall_time for s in rec.snaps[:2]] == [pytest.approx(1_000_000 - 2 + 0.1),
                                                    pytest.approx(1_000_000 - 2 + 0.2)]
    evs = [e for s in rec.snaps for e in s.events]
    assert [e.kind for e in evs] == [e.kind for e in sim.events] and len(evs) > 5
    assert all(e.wall_time == pytest.approx(1_000_000 - 2 + e.time_s) for e in evs)


def test_realtime_mode_skips_busy_intervals_but_keeps_events_and_the_last_snapshot():
    sim = _sim()
    rec = Recorder(delay=0.05)
    stage = attach(sim, [rec], every=0.01, realtime=50.0)
    sim.run(until=2.0, realtime=50.0)                    # 2 s simulated in 40 ms of wall time
    st = stage.close()["recorder"]
    assert st["skipped"] > 0 and st["written"] == len(rec.snaps) < 200
    assert rec.snaps[-1].time_s == pytest.approx(2.0)
    assert [e.kind for s in rec.snaps for e in s.events] == [e.kind for e in sim.events]


@pytest.mark.requires_entry_points
def test_open_failure_is_an_exporter_error():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(ExporterError, match="cannot listen"):
            attach(_sim(), [ExporterSpec("prometheus", {"port": taken.getsockname()[1]})], until=1.0)
    finally:
        taken.close()


# ---------------------------------------------------------------------- transports
def test_tcp_sender_keeps_one_connection_and_reconnects_without_loss(sink):
    s = TcpSender("127.0.0.1", sink.port, name="t", buffer=100)
    for i in range(5):
        s.send([(b"a %d\n" % i, 1)])
    wait_for(lambda: len(sink.lines()) == 5)
    assert len(sink.conns) == 1
    sink.drop_connections()                               # the server goes away and comes back
    time.sleep(0.1)
    s.send([(b"b 0\n", 1)])                               # noticed before writing into a dead socket
    s.close(timeout=5)
    wait_for(lambda: len(sink.lines()) == 6)
    assert sink.lines() == [b"a %d" % i for i in range(5)] + [b"b 0"]
    # the server closed after reading everything: confirmed, not an error; the new connection is a reconnect
    assert (s.sent, s.unconfirmed, s.dropped, s.reconnects) == (6, 0, 0, 1) and s.errors.total == 0


def test_a_small_buffer_drops_nothing_while_the_server_keeps_up(sink):
    s = TcpSender("127.0.0.1", sink.port, name="t", buffer=2)
    s.send([(b"y %d\n" % i, 1) for i in range(10)])
    s.close(timeout=5)
    wait_for(lambda: len(sink.lines()) == 10)
    assert (s.sent, s.dropped) == (10, 0)


def test_tcp_sender_buffers_while_away_and_drops_the_oldest_past_the_bound():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    p = port.getsockname()[1]
    port.close()                                          # nobody listens
    s = TcpSender("127.0.0.1", p, name="t", buffer=3, timeout=1.0)
    for i in range(5):
        s.send([(b"x %d\n" % i, 1)])
    assert s.buffered == 3 and s.dropped == 2
    srv = Sink.__new__(Sink)
    srv.srv = socket.socket()
    srv.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.srv.bind(("127.0.0.1", p))
    srv.srv.listen()
    srv.port, srv.conns, srv.data, srv._stop = p, [], [], False
    threading.Thread(target=srv._accept, daemon=True).start()
    try:
        s.close(timeout=5)                               # never connected: one last try
        wait_for(lambda: len(srv.lines()) == 3)
        assert srv.lines() == [b"x 2", b"x 3", b"x 4"] and s.sent == 3
    finally:
        srv.close()


@pytest.mark.requires_entry_points
def test_graphite_exporter_over_loopback_sends_batches_on_one_connection(sink):
    sim = _sim()
    stage = attach(sim, [ExporterSpec("graphite", {"port": sink.port, "batch": 100,
                                                   "counters": ["port_xmit_data", "link_downed"]})],
                   every=0.5, until=2.0)
    sim.run(until=2.0)
    st = stage.close()["graphite"]
    n_ports = int((sim.fabric.peer_of_port >= 0).sum())
    wait_for(lambda: len(sink.lines()) == 4 * 2 * n_ports)
    assert st["sent"] == 4 * 2 * n_ports and len(sink.conns) == 1
    ts = sorted({int(line.split()[2]) for line in sink.lines()})
    assert ts == sorted({int(stage.timemap(t)) for t in (0.5, 1.0, 1.5, 2.0)})


# ---------------------------------------------------------------------- plugin hygiene
def _module_sample(mod) -> dict:
    doc = mod.__doc__
    marker = "Options (YAML)::"
    assert marker in doc, f"{mod.__name__} docstring lacks its YAML sample"
    return yaml.safe_load(doc.split(marker, 1)[1])


@pytest.mark.requires_entry_points
@pytest.mark.parametrize("module", ["exporters.graphite", "exporters.logstash", "exporters.prometheus"])
def test_docstring_yaml_sample_builds_and_documents_every_option(module):
    mod = __import__(module, fromlist=["_"])
    sample = _module_sample(mod)
    specs = specs_from_scenario(sample["exporters"], source=f"{module} docstring")
    assert specs
    for item, spec in zip(sample["exporters"], specs):
        cls = export.exporter_class(spec.name)
        assert cls.__module__ == module
        keys = set(next(iter(item.values())))
        assert keys - set(export.STAGE_OPTIONS) == set(cls.OPTIONS), spec.name
        spec.build()


def test_exporters_import_only_the_export_interface():
    allowed = {"ibsim.export", "ibsim.errors"}
    for path in (ROOT / "exporters").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ibsim"):
                assert node.module in allowed, f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("ibsim") and a.name not in allowed for a in node.names)
    core = ROOT / "ibsim"
    for path in core.rglob("*.py"):
        assert "import exporters" not in path.read_text() and "from exporters" not in path.read_text()
