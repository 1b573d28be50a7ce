"""The tool-sweep collector against the live fabric: real tools, real OpenSM, real carbon-cache.

One fat_tree(4, 2) runs in real time with an all-to-all and an incast job
(PortXmitWait on the congested ports) and a bit-error rate on leaf2:1
(SymbolErrorCounter, LinkErrorRecoveryCounter, PortRcvErrors there) under
OpenSM until the counters are large; then its clock is stopped (``sim.stop``)
so traffic no longer changes them. The collector process then sweeps twice.

What is compared, honestly: the sweeps' own MADs (and OpenSM's) still cross
links after the freeze, and each adds one packet and ``MAD_WORDS`` words to
``port_xmit_packets``/``unicast_xmit_packets``/``port_xmit_data`` of the
egress port and the matching receive counters of its peer. So every value a
sweep read lies between the engine's counters just before the collector
started (``before``) and just after it ended (``after``), and those two
differ only by MADs: a few hundred packets against millions from traffic
(checked). Counters MADs never touch (errors, PortXmitWait, multicast) must
equal the engine's exactly. ``ibqueryerrors`` reads errors and PortXmitWait
from PortCounters, so those are compared with the legacy (saturated) view.

Waits are bounded; nothing asserts on time.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ibsim.bench.carbon import Carbon
from ibsim.bench.ofed import OpenSM, have_tools, stop_process
from ibsim.fabric import COUNTER_ROW, legacy_view
from ibsim.mad import start_mad_server
from ibsim.topology import fat_tree
from ibsim.traffic import Job
from tests.mad.conftest import make_sim, unique_sockname

pytestmark = [pytest.mark.requires_opensm, pytest.mark.requires_ibsim_c,
              pytest.mark.skipif(not have_tools("opensm", "ibnetdiscover", "perfquery", "ibqueryerrors"),
                                 reason="needs opensm, infiniband-diags and libumad2sim"),
              pytest.mark.skipif(not __import__("shutil").which("carbon-cache"),
                                 reason="needs graphite-carbon")]

ROOT = Path(__file__).resolve().parents[2]
HOST = "node002 HCA-1"
EXT = ("port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets", "unicast_xmit_packets",
       "unicast_rcv_packets", "multicast_xmit_packets", "multicast_rcv_packets")
MAD_TOUCHED = {"port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets",
               "unicast_xmit_packets", "unicast_rcv_packets"}
IQE_ERRORS = ("symbol_error", "link_error_recovery", "link_downed", "port_rcv_errors",
              "port_rcv_remote_physical_errors", "port_xmit_discards", "port_xmit_constraint_errors",
              "port_rcv_constraint_errors", "local_link_integrity_errors", "excessive_buffer_overrun_errors",
              "VL15_dropped", "port_xmit_wait")     # port_rcv_switch_relay_errors: --suppress-common


class Fabric:
    """A served simulation whose clock can be frozen."""

    def __init__(self, sim, sock):
        self.sim, self.sock = sim, sock
        self.thread = threading.Thread(target=sim.run, kwargs={"until": math.inf, "realtime": 1.0}, daemon=True)
        self.thread.start()

    def freeze(self):
        self.sim.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """fat_tree(4, 2) with traffic and errors under OpenSM, frozen; a carbon-cache."""
    tmp = tmp_path_factory.mktemp("sweeps")
    sim = make_sim(fat_tree(4, 2), routing="opensm", tick=0.1)
    sim.add_job(Job("a2a", "all_to_all", load=0.3))
    sim.add_job(Job("hot", "incast", load=0.5))
    sock = unique_sockname("sweeps")
    srv = start_mad_server(sim, sockname=sock)
    fab = Fabric(sim, sock)
    carbon = None
    try:
        sim.inject("ber", "leaf2:1", rate=1e-8)
        with OpenSM(tmp / "osm", sockname=sock, sim_host="node001 HCA-1") as osm:
            osm.wait_up(120)
            start = sim.time_s
            deadline = time.monotonic() + 60
            while sim.time_s < start + 2.0 and time.monotonic() < deadline:
                time.sleep(0.1)
            fab.freeze()
            carbon = Carbon(tmp / "carbon")
            yield fab, carbon, tmp
    finally:
        if carbon is not None:
            carbon.remove()
        if fab.thread.is_alive():
            fab.freeze()
        srv.close()


def collector(tmp, sock, carbon_port, mode, prefix, *extra, sweeps=2, interval=1.5, wait=True):
    """Start ``python -m ibsim.bench.sweeps``; when ``wait``, wait (bounded) and return (rc, stderr, stats)."""
    stats = Path(tmp) / f"{prefix}.jsonl"
    args = [sys.executable, "-m", "ibsim.bench.sweeps", "--mode", mode, "--interval", str(interval),
            "--carbon", f"127.0.0.1:{carbon_port}", "--prefix", prefix, "--stats", str(stats),
            "--sockname", sock, "--sim-host", HOST, *extra]
    if sweeps is not None:
        args += ["--sweeps", str(sweeps)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc, stats
    try:
        _out, err = proc.communicate(timeout=180)
    finally:
        stop_process(proc)
    return proc.returncode, err, read_stats(stats)


def read_stats(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def metric(prefix, f, p, name) -> str:
    return f"{prefix}.{int(f.node_guid[f.node_of_port[p]]):016x}.p{int(f.port_num[p]):02d}.{name}"


def wait_points(carbon, names, timeout=60.0) -> dict:
    """Carbon's points of ``names``, once every one has at least one (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        pts = carbon.points(names)
        if all(pts[m] for m in names) or time.monotonic() > deadline:
            return pts
        time.sleep(0.5)


def check_values(sim, carbon, prefix, expect: dict, before, after):
    """``expect``: {metric: (port index, counter, view)}; view 'ext' (64-bit) or 'legacy'."""
    pts = wait_points(carbon, list(expect))
    missing = [m for m in expect if not pts[m]]
    assert not missing, f"{len(missing)} of {len(expect)} metrics never reached carbon, e.g. {missing[:3]}"
    lo_ext, hi_ext = before.counters, after.counters
    lo_leg, hi_leg = legacy_view(before.counters), legacy_view(after.counters)
    for m, (p, name, view) in expect.items():
        r = COUNTER_ROW[name]
        lo, hi = (lo_ext, hi_ext) if view == "ext" else (lo_leg, hi_leg)
        for ts, v in pts[m].items():
            if name in MAD_TOUCHED:
                assert int(lo[r, p]) <= v <= int(hi[r, p]), (m, ts, v, int(lo[r, p]), int(hi[r, p]))
            else:
                assert int(lo[r, p]) == int(hi[r, p]) == v, (m, ts, v, int(hi[r, p]))
    # the window is MADs only: tiny next to what traffic put in the counters
    rows = [COUNTER_ROW[n] for n in ("port_xmit_packets", "port_rcv_packets")]
    ports = sorted({p for p, _n, _v in expect.values()})
    drift = (after.counters[rows][:, ports] - before.counters[rows][:, ports]).astype(np.int64)
    assert drift.min() >= 0 and drift.max() < 10_000
    assert before.counters[rows][:, ports].min() > 100_000


def cabled(f, switches: bool):
    sel = (f.peer_of_port >= 0) & (f.is_switch if switches else ~f.is_switch)
    return np.flatnonzero(sel)


def check_stats(stats, n=2):
    assert len(stats) == n + 1 and stats[-1]["final"] is True and stats[-1]["values"] == "cumulative"
    for k, s in enumerate(stats[:-1]):
        assert s["sweep"] == k and s["ok"] and s["timeouts"] == 0 and s["dropped"] == 0
        assert s["t0"] <= s["t1"] and s["points"] > 0 and s["output_bytes"] > 0
        for key in ("tool_calls", "tool_failures", "output_bytes", "parse_s", "send_s", "ports"):
            assert key in s
    assert stats[-1]["sweeps"] == n and stats[-1]["failed_sweeps"] == 0
    assert stats[-1]["points"] == sum(s["points"] for s in stats[:-1])


@pytest.mark.parametrize("concurrency", [1, 3])
def test_perfquery_mode_reports_every_cabled_switch_port(live, concurrency):
    fab, carbon, tmp = live
    sim, f = fab.sim, fab.sim.fabric
    prefix = f"pq{concurrency}"
    before = sim.snapshot()
    rc, err, stats = collector(tmp, fab.sock, carbon.ports["line"], "perfquery", prefix,
                               "--concurrency", str(concurrency))
    after = sim.snapshot()
    assert rc == 0, err
    check_stats(stats)
    ports = cabled(f, switches=True)
    # per sweep: ibnetdiscover --ports + one perfquery per switch (+ one ibnetdiscover the first time)
    assert [s["tool_calls"] for s in stats[:-1]] == [2 + f.n_switches, 1 + f.n_switches]
    assert all(s["ports"] == len(ports) and s["points"] == len(ports) * len(EXT) for s in stats[:-1])
    expect = {metric(prefix, f, p, n): (p, n, "ext") for p in ports for n in EXT}
    check_values(sim, carbon, prefix, expect, before, after)


def test_perfquery_mode_with_hcas(live):
    fab, carbon, tmp = live
    sim, f = fab.sim, fab.sim.fabric
    before = sim.snapshot()
    rc, err, stats = collector(tmp, fab.sock, carbon.ports["line"], "perfquery", "pqhca", "--hca",
                               "--concurrency", "4")
    after = sim.snapshot()
    assert rc == 0, err
    check_stats(stats)
    cas = cabled(f, switches=False)
    ports = np.concatenate([cabled(f, switches=True), cas])
    assert all(s["ports"] == len(ports) for s in stats[:-1])
    # CA metrics carry the node GUID (the tools print the port GUID, which differs)
    assert (f.port_guid[cas] != f.node_guid[f.node_of_port[cas]]).all()
    expect = {metric("pqhca", f, p, n): (p, n, "ext") for p in ports for n in EXT}
    check_values(sim, carbon, "pqhca", expect, before, after)


def test_ibqueryerrors_mode_reports_the_ports_it_prints(live):
    fab, carbon, tmp = live
    sim, f = fab.sim, fab.sim.fabric
    before = sim.snapshot()
    rc, err, stats = collector(tmp, fab.sock, carbon.ports["line"], "ibqueryerrors", "iqe")
    after = sim.snapshot()
    assert rc == 0, err
    check_stats(stats)
    # ibqueryerrors prints a port when an error counter or PortXmitWait is above 0
    # (threshold 0), with every nonzero counter: expected from the engine's counters
    leg = legacy_view(before.counters)
    err_rows = [COUNTER_ROW[n] for n in IQE_ERRORS]
    ports = [p for p in np.flatnonzero(f.peer_of_port >= 0) if leg[err_rows, p].any()]
    assert len(ports) >= 8                              # incast and BER made a few
    assert any(leg[COUNTER_ROW["symbol_error"], p] for p in ports)
    expect = {}
    for p in ports:
        for n in IQE_ERRORS:
            if leg[COUNTER_ROW[n], p]:
                expect[metric("iqe", f, p, n)] = (p, n, "legacy")
        for n in EXT:
            if before.counters[COUNTER_ROW[n], p]:
                expect[metric("iqe", f, p, n)] = (p, n, "ext")
    assert all(s["ports"] == len(ports) and s["points"] == len(expect) for s in stats[:-1])
    assert stats[0]["tool_calls"] == 2 and stats[1]["tool_calls"] == 1   # + the GUID map once
    check_values(sim, carbon, "iqe", expect, before, after)


def test_sigterm_ends_with_a_final_line(live):
    fab, carbon, tmp = live
    proc, path = collector(tmp, fab.sock, carbon.ports["line"], "ibqueryerrors", "term",
                           "--until", str(time.time() + 3600), sweeps=None, interval=0.5, wait=False)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and path.read_text().count("\n") >= 2:
                break
            time.sleep(0.1)
        proc.terminate()
        proc.wait(timeout=60)
    finally:
        stop_process(proc)
    stats = read_stats(path)
    assert stats[-1]["final"] is True and stats[-1]["sweeps"] == len(stats) - 1 >= 2
    assert proc.returncode == 0


def test_no_sa_is_a_failed_sweep(tmp_path):
    sim = make_sim(fat_tree(4, 2), routing="minhop", tick=0.1)     # embedded SM: LIDs, no SA
    sock = unique_sockname("nosa")
    srv = start_mad_server(sim, sockname=sock)
    try:
        rc, err, stats = collector(tmp_path, sock, 9, "ibqueryerrors", "nosa", sweeps=1, interval=0.2)
        assert rc == 0, err
        s = stats[0]
        assert s["ok"] is False and s["no_sa"] is True and s["timeouts"] >= 1 and s["points"] == 0
        assert stats[-1]["failed_sweeps"] == 1
        # perfquery -G resolves the GUID through the SA too: every call fails, the sweep fails
        rc, err, stats = collector(tmp_path, sock, 9, "perfquery", "nosapq", "--timeout", "20",
                                   sweeps=1, interval=0.2)
        assert rc == 0, err
        s = stats[0]
        assert s["ok"] is False and s["tool_failures"] == sim.fabric.n_switches and s["points"] == 0
    finally:
        srv.close()


GOOD = ["--mode", "perfquery", "--interval", "1", "--sweeps", "1", "--carbon", "127.0.0.1:9",
        "--sockname", "x"]


@pytest.mark.parametrize("change", [
    {"--mode": "nope"},
    {"--interval": "0"},
    {"--carbon": "nohost"},
    {"--sweeps": None},                         # neither --sweeps nor --until
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, change):
    args = list(GOOD)
    for opt, val in change.items():
        i = args.index(opt)
        args[i:i + 2] = [] if val is None else [opt, val]
    r = subprocess.run([sys.executable, "-m", "ibsim.bench.sweeps", *args, "--stats", str(tmp_path / "s")],
                       cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       timeout=60)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "sweeps" in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()
