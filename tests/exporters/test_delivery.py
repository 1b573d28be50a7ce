"""Honest delivery: ``sent`` counts only what a server read, against servers that misbehave.

The servers here are real TCP servers on 127.0.0.1 (threads of this process):
one that closes each connection after N bytes, one that resets every
connection at once (SO_LINGER 0), one that accepts and never reads. For each,
nothing may be reported ``sent`` that the server did not read, every point is
accounted for (sent + unconfirmed + dropped), and the time the exporter waited
on a server that made no progress stays within ``deliver_timeout``.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import struct
import subprocess
import threading

import numpy as np
import pytest

from ibsim.export import COUNTER_ROW, ExporterSpec, attach, build_exporter, selected_ports
from ibsim.fabric import compile_fabric
from ibsim.topology import fat_tree

pytestmark = pytest.mark.requires_entry_points

DELIVER_S = 1.0
_SAMPLES = {"logstash": {"samples": True, "kinds": ["none"]}}   # logstash: one document per port


class Misbehaving:
    """A TCP server on 127.0.0.1 that misbehaves.

    ``mode``: ``close_after`` (each connection: read ``n`` bytes, then close),
    ``close_first`` (only the first connection does that; later ones read to
    EOF and close, like carbon), ``reset`` (close every connection at once
    with SO_LINGER 0), ``never_read`` (accept, never read; a small receive
    buffer so the sender's socket fills).
    """

    def __init__(self, mode: str, n: int = 0):
        self.mode, self.n = mode, n
        self.srv = socket.socket()
        if mode == "never_read":
            self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.received: list[bytes] = []      # bytes read, one entry per connection
        self.held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = False
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        k = 0
        while not self._stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            k += 1
            t = threading.Thread(target=self._serve, args=(c, k), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, c: socket.socket, k: int) -> None:
        if self.mode == "reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            return
        if self.mode == "never_read":
            self.held.append(c)
            return
        limit = self.n if self.mode == "close_after" or (self.mode == "close_first" and k == 1) else None
        got = bytearray()
        c.settimeout(30)
        try:
            while limit is None or len(got) < limit:
                b = c.recv(65536 if limit is None else min(65536, limit - len(got)))
                if not b:
                    break
                got += b
        except OSError:
            pass
        with self._lock:
            self.received.append(bytes(got))
        c.close()                            # with unread data this is a reset, as in a real server

    def lines(self) -> set[bytes]:
        """Distinct complete lines read (a partial last line of a connection is discarded)."""
        with self._lock:
            return {ln for data in self.received for ln in data.split(b"\n")[:-1]}

    def nbytes(self) -> int:
        with self._lock:
            return sum(len(d) for d in self.received)

    def close(self) -> None:
        self._stop = True
        for t in self._threads[:1]:
            t.join(5)
        for c in self.held:
            c.close()
        self.srv.close()


@pytest.fixture
def misbehaving():
    made = []

    def make(mode, n=0):
        made.append(Misbehaving(mode, n))
        return made[-1]
    yield make
    for s in made:
        s.close()


def _feed(helpers, name: str, port: int, n_snaps: int = 30, **options):
    """Write ``n_snaps`` distinct snapshots of fat_tree(8, 2) (every port) and close; returns
    (stats, points offered)."""
    fabric = compile_fabric(fat_tree(8, 2))
    base = helpers.fixed_snapshot(fabric)
    opts = {"port": port, "deliver_timeout": DELIVER_S, "confirm_bytes": 200_000, **options}
    if name != "logstash":
        opts["ports"] = "all"
    exp = build_exporter(name, opts)
    exp.open()
    for k in range(n_snaps):
        exp.write(dataclasses.replace(base, tick=k + 1, time_s=float(k + 1), wall_time=1.7e9 + k))
    exp.close()
    per = (selected_ports(fabric, "all").size * 21 if name != "logstash"
           else selected_ports(fabric, "cabled").size)
    return exp.stats(), n_snaps * per


def _honest(st: dict, offered: int, server: Misbehaving | None) -> None:
    assert st["sent"] + st["unconfirmed"] + st["dropped"] == offered, st
    assert 0.0 <= st["waited_s"] <= DELIVER_S, st          # the stall budget holds
    if server is not None:
        assert st["sent"] <= len(server.lines()), st        # nothing sent that the server did not read


@pytest.mark.parametrize("name", ["graphite", "logstash"])
def test_server_that_closes_after_n_bytes_confirms_nothing_it_did_not_read(name, misbehaving, helpers):
    srv = misbehaving("close_after", 1024)
    st, offered = _feed(helpers, name, srv.port, **_SAMPLES.get(name, {}))
    _honest(st, offered, srv)
    assert srv.nbytes() > 0 and st["sent"] < offered and st["errors"] > 0


@pytest.mark.parametrize("name", ["graphite", "logstash"])
def test_a_connection_closed_early_is_resent_and_then_everything_is_confirmed(name, misbehaving, helpers):
    srv = misbehaving("close_first", 1024)
    st, offered = _feed(helpers, name, srv.port, **_SAMPLES.get(name, {}))
    _honest(st, offered, srv)
    assert st["sent"] == offered == len(srv.lines()), st   # every line read, every line confirmed
    assert st["resent"] > 0 and st["reconnects"] >= 1 and st["unconfirmed"] == st["dropped"] == 0


def test_server_that_resets_at_once_gets_nothing_and_nothing_is_sent(misbehaving, helpers):
    srv = misbehaving("reset")
    st, offered = _feed(helpers, "graphite", srv.port)
    _honest(st, offered, srv)
    assert st["sent"] == 0 and srv.nbytes() == 0
    assert st["unconfirmed"] + st["dropped"] == offered and st["errors"] > 0


def test_server_that_never_reads_bounds_the_wait_and_reports_nothing_sent(misbehaving, helpers):
    srv = misbehaving("never_read")
    st, offered = _feed(helpers, "graphite", srv.port)
    _honest(st, offered, srv)
    assert st["sent"] == 0 and st["unconfirmed"] > 0 and st["dropped"] > 0   # written, then the rest
    assert st["waited_s"] == pytest.approx(DELIVER_S, abs=0.01)              # gave up waiting, once


def test_http_events_to_a_server_that_never_answers_are_bounded(misbehaving, helpers):
    srv = misbehaving("never_read")
    sim = helpers.small_sim()
    stage = attach(sim, [ExporterSpec("graphite_events", {"url": f"http://127.0.0.1:{srv.port}/events/",
                                                          "timeout": 0.4, "deliver_timeout": DELIVER_S})],
                   every=0.5, until=8.0)
    sim.run(until=8.0)
    st = stage.close()["graphite_events"]
    assert st["sent"] == 0 and st["dropped"] == len(sim.events) > 0
    assert st["waited_s"] <= DELIVER_S + 0.5          # one request's timeout past the budget at most
    assert st["resent"] == 0 and st["errors"] > 0


def test_stage_summary_names_every_count():
    from ibsim.export import summary_line
    line = summary_line("graphite", {"sent": 5, "unconfirmed": 2, "dropped": 1, "resent": 3, "reconnects": 1,
                                     "errors": 4, "waited_s": 0.5, "delivery": "at least once"})
    assert line == ("exporter graphite: sent 5 (confirmed), unconfirmed 2, dropped 1, resent 3, "
                    "reconnects 1, errors 4, waited 0.5 s; delivery: at least once")


# ---------------------------------------------------------------------- a real carbon-cache
def _restart(carbon) -> None:
    """Start carbon-cache again on the same configuration and ports (stopped by its PID later)."""
    with open(carbon.log, "ab") as fh:
        carbon.proc = subprocess.Popen(["carbon-cache", f"--config={carbon.dir / 'carbon.conf'}", "--debug",
                                        "start"], stdout=fh, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=carbon.dir, start_new_session=True)


@pytest.mark.slow
def test_carbon_killed_and_restarted_mid_run_holds_the_final_counters(tmp_path, helpers):
    pytest.importorskip("whisper", reason="pip install whisper (reads carbon's files back)")
    helpers.need("carbon-cache", "graphite-carbon")
    from exporters.graphite import build_paths
    from ibsim.bench.carbon import Carbon
    carbon = Carbon(tmp_path / "carbon")
    try:
        sim = helpers.small_sim()
        stage = attach(sim, [ExporterSpec("graphite", {"port": carbon.ports["line"]}),
                             ExporterSpec("graphite_pickle", {"port": carbon.ports["pickle"],
                                                              "template": "pk.<node>.<port>.<counter>"})],
                       every=0.5, until=10.0)
        sim.run(until=3.0)
        carbon.proc.send_signal(signal.SIGKILL)          # killed: no clean shutdown
        carbon.proc.wait(10)
        (carbon.dir / "carbon-cache-a.pid").unlink(missing_ok=True)
        sim.run(until=6.0)
        _restart(carbon)
        helpers.wait_until(lambda: helpers.port_open(carbon.ports["line"]) and
                           helpers.port_open(carbon.ports["pickle"]), 60, "carbon-cache to listen again",
                           proc=carbon.proc, log=carbon.log)
        sim.run(until=10.0)
        stats = stage.close()
        ports = selected_ports(sim.fabric, "cabled")
        names = ("port_xmit_data", "port_rcv_data", "link_downed", "symbol_error")
        final = sim.state.counters
        want = {}
        for prefix in ("ib", "pk"):
            paths = build_paths(sim.fabric, f"{prefix}.<node>.<port>.<counter>", names, ports)
            for name, row in zip(names, paths):
                for p, path in zip(ports, row.tolist()):
                    want[path.decode()] = float(final[COUNTER_ROW[name], p])
        end = int(stage.timemap(10.0))

        def held():
            pts = carbon.points(want, since=end - 1)
            return {m: v.get(end) for m, v in pts.items()}
        helpers.wait_until(lambda: held() == want, 60, "carbon to hold the final counters", interval=0.5)
        for label in ("graphite", "graphite_pickle"):
            st = stats[label]
            assert st["reconnects"] >= 1 and st["errors"] >= 1, st
            # everything offered is accounted for; after the restart nothing is left unconfirmed
            assert st["sent"] > 0 and st["unconfirmed"] == 0 and st["dropped"] == 0, st
        assert np.isfinite(sim.time_s)
    finally:
        carbon.remove()


def test_deliver_timeout_is_an_option_with_a_clear_error():
    from ibsim.errors import ScenarioError
    with pytest.raises(ScenarioError, match="deliver_timeout"):
        build_exporter("graphite", {"deliver_timeout": "soon"})
    with pytest.raises(ScenarioError, match="close_timeout"):
        build_exporter("graphite", {"close_timeout": "10s"})      # replaced by deliver_timeout
    assert build_exporter("logstash", {"deliver_timeout": "2s"}).options.deliver_timeout == 2.0
