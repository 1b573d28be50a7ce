"""The benchmark's OpenSM event plugins, built with gcc and loaded by a real OpenSM.

Each test runs ibsim's MAD server on a private socket name, a real OpenSM
with PerfMgr (1 s sweeps) and a plugin, and a private carbon-cache on free
loopback ports; everything is stopped by PID and removed. Waits are bounded;
nothing is timed.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from ibsim.bench.carbon import Carbon, free_port
from ibsim.bench.ofed import OpenSM, have_tools
from ibsim.bench.approaches import read_stats
from ibsim.bench.plugins import (PLUGINS, SOURCE_DIR, build_plugin, opensm_config,
                                 wait_plugin_loaded)
from ibsim.engine.simulation import MAD_WORDS
from ibsim.errors import BenchError
from ibsim.fabric import COUNTER_NAMES, COUNTER_ROW
from ibsim.topology import fat_tree
from ibsim.traffic import Job
from tests.mad.conftest import make_sim, serving, ticking

HAVE_BUILD = bool(shutil.which("gcc")) and Path("/usr/include/infiniband/opensm/osm_event_plugin.h").exists()
needs_build = pytest.mark.skipif(not HAVE_BUILD, reason="needs gcc, libopensm-dev and libibumad-dev")
needs_opensm = [needs_build, pytest.mark.requires_opensm,
                pytest.mark.skipif(not have_tools("opensm"), reason="needs opensm and libumad2sim0"),
                pytest.mark.skipif(not shutil.which("carbon-cache"), reason="needs graphite-carbon")]
WAIT = 120.0
#: rows PerfMgr's own MADs add to (ibsim counts every MAD on every link it crosses)
MAD_ROWS = ("port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets",
            "unicast_xmit_packets", "unicast_rcv_packets")


def cabled_metrics(sim, prefix="ib") -> dict[str, tuple[int, int]]:
    """Every metric a plugin must send for the cabled ports: name -> (counter row, port index)."""
    f = sim.fabric
    out = {}
    for p in np.flatnonzero(f.peer_of_port >= 0):
        base = f"{prefix}.{int(f.node_guid[f.node_of_port[p]]):016x}.p{int(f.port_num[p]):02d}"
        for row, c in enumerate(COUNTER_NAMES):
            out[f"{base}.{c}"] = (row, int(p))
    return out


def wait_sweeps(stats, n: int, osm: OpenSM, timeout: float = WAIT) -> list[dict]:
    """Wait until the plugin has written ``n`` sweep lines; return them."""
    deadline = time.monotonic() + timeout
    while True:
        sweeps, _ = read_stats(stats)
        if len(sweeps) >= n:
            return sweeps
        assert osm.proc.poll() is None, "opensm exited:\n" + osm.tail()
        assert time.monotonic() < deadline, f"{len(sweeps)} of {n} sweeps within {timeout:g} s:\n" + osm.tail()
        time.sleep(0.2)


def wait_points(carbon: Carbon, metrics, *, since: float = 0.0, timeout: float = WAIT) -> dict:
    """Wait until carbon holds a point at or after ``since`` for every metric; return the points."""
    metrics = list(metrics)
    deadline = time.monotonic() + timeout
    while True:
        pts = carbon.points(metrics, since=0)
        missing = [m for m in metrics if not pts[m] or max(pts[m]) < int(since)]
        if not missing:
            return pts
        assert time.monotonic() < deadline, f"{len(missing)} of {len(metrics)} series missing, e.g. {missing[:3]}"
        time.sleep(0.5)


@contextmanager
def plugin_opensm(tmp_path, name, sim, sock, **kw):
    """carbon-cache + OpenSM with PerfMgr and event plugin ``name``; yields (osm, carbon, stats)."""
    carbon = Carbon(tmp_path / "carbon", udp=True)
    stats = tmp_path / f"{name}.jsonl"
    osm = None
    try:
        kw.setdefault("carbon", carbon)
        config, env = opensm_config(name, stats=stats, sweep_time_s=1, outdir=tmp_path / "build", **kw)
        osm = OpenSM(tmp_path / "osm", sockname=sock, sim_host="node001 HCA-1", config=config, env=env)
        wait_plugin_loaded(osm, name)
        osm.wait_up(WAIT)
        yield osm, carbon, stats
    finally:
        if osm is not None:
            osm.stop()
        carbon.remove()


def last_values(pts: dict) -> dict:
    return {m: v[max(v)] for m, v in pts.items()}


def assert_equal_to_engine(pts: dict, want: dict, truth) -> None:
    """The last cumulative values in ``pts`` equal the frozen engine counters ``truth``.

    Rows PerfMgr's MADs do not move are exact; in the data rows the engine is
    ahead by exactly the MADs counted since the reading. A port's data rows are
    taken from one reading (the latest second all of them have): carbon may
    hold only part of the plugin's newest sweep when it is asked.
    """
    got = last_values(pts)
    mad_rows = {COUNTER_ROW[c] for c in MAD_ROWS}
    for m, (r, p) in want.items():
        if r not in mad_rows:                           # nothing but the plugin's sum: exact
            assert got[m] == truth[r, p], (m, got[m], int(truth[r, p]))
    rows = {c: COUNTER_ROW[c] for c in MAD_ROWS}
    data = {}
    for m, (r, p) in want.items():
        if r in mad_rows:
            data.setdefault(p, {})[r] = pts[m]
    by_port = {}
    for p, series in data.items():
        ts = max(set.intersection(*(set(v) for v in series.values())))
        by_port[p] = {r: int(v[ts]) for r, v in series.items()}
    for p, v in by_port.items():
        ahead = {c: int(truth[r, p]) - v[r] for c, r in rows.items()}
        assert 0 <= ahead["port_xmit_packets"] < 1000, (p, ahead)
        assert ahead["port_xmit_data"] == MAD_WORDS * ahead["port_xmit_packets"], (p, ahead)
        assert ahead["port_rcv_data"] == MAD_WORDS * ahead["port_rcv_packets"], (p, ahead)
        assert ahead["unicast_xmit_packets"] == ahead["port_xmit_packets"], (p, ahead)
        assert ahead["unicast_rcv_packets"] == ahead["port_rcv_packets"], (p, ahead)


# ------------------------------------------------------------------ builds
@needs_build
def test_build_is_cached_by_source_hash(tmp_path):
    a = build_plugin("naive", tmp_path)
    mtime = a.stat().st_mtime_ns
    assert a.name == f"lib{PLUGINS['naive'].library}.so"
    assert build_plugin("naive", tmp_path) == a and a.stat().st_mtime_ns == mtime
    b = build_plugin("batched", tmp_path)
    assert b.parent != a.parent and b.exists()


def test_build_without_gcc_is_one_bench_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BenchError) as e:
        build_plugin("batched", tmp_path)
    assert "gcc not found" in str(e.value) and "\n" not in str(e.value)


def test_build_without_headers_names_the_package(tmp_path):
    with pytest.raises(BenchError) as e:
        build_plugin("naive", tmp_path, include_dir=tmp_path / "nowhere")
    assert "osm_event_plugin.h" in str(e.value) and "libopensm-dev" in str(e.value)
    assert "\n" not in str(e.value)


@needs_build
def test_a_missing_header_found_by_gcc_names_it(tmp_path):
    inc = tmp_path / "inc"
    (inc / "opensm").mkdir(parents=True)
    (inc / "opensm" / "osm_event_plugin.h").write_text("")
    (inc / "opensm" / "osm_version.h").write_text('#define OSM_VERSION "OpenSM 3.3.23"\n')
    with pytest.raises(BenchError) as e:
        build_plugin("batched", tmp_path / "out", include_dir=inc)
    msg = str(e.value)
    assert "opensm/osm_config.h not found" in msg and "libopensm-dev" in msg and "\n" not in msg


def test_unknown_plugin_lists_the_choices(tmp_path):
    with pytest.raises(BenchError, match="choose one of: batched, naive"):
        build_plugin("batchd", tmp_path)


# ------------------------------------------------------------------ running in OpenSM
def opensm_test(fn):
    """A slow test that runs OpenSM with a plugin."""
    for m in needs_opensm:
        fn = m(fn)
    return pytest.mark.slow(fn)


@opensm_test
def test_a_plugin_opensm_cannot_load_is_a_bench_error(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    with serving(sim) as (srv, sock):
        with pytest.raises(BenchError) as e:
            with plugin_opensm(tmp_path, "batched", sim, sock, extra={"event_plugin_options": "colour=red"}):
                pass
    assert "cannot load plugin" in str(e.value) and "unknown option 'colour'" in str(e.value)


@opensm_test
def test_naive_plugin_sends_every_port_wraps_ints_and_leaks_a_descriptor_per_event(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    sim.add_job(Job("a2a", "all_to_all", load=0.9, stop_s=1.0))
    sim.run(until=1.0)                   # port_xmit_data in [2^31, 2^32) words: "%d" shows them negative
    want = cabled_metrics(sim)
    before = sim.snapshot().counters     # the clock stays stopped: only MADs move counters now
    row = COUNTER_ROW["port_xmit_data"]
    assert (before[row][[p for r, p in want.values()]] >= 2**31).all()
    with serving(sim) as (srv, sock):
        with plugin_opensm(tmp_path, "naive", sim, sock) as (osm, carbon, stats):
            pts = wait_points(carbon, want)                         # 100 % of the cabled ports
            k = len(wait_sweeps(stats, 4, osm))
            fds_a = len(os.listdir(f"/proc/{osm.proc.pid}/fd"))
            sweeps = wait_sweeps(stats, k + 2, osm)
            fds_b = len(os.listdir(f"/proc/{osm.proc.pid}/fd"))
            # out of descriptors: every later event's socket() fails and is counted
            limit = fds_b + 40
            resource.prlimit(osm.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
            sweeps = wait_sweeps(stats, len(sweeps) + 3, osm)
        _, final = read_stats(stats)
    # the first report of a port is PerfMgr's absolute reading, shown as a C int
    for m, (r, p) in want.items():
        if r != row:
            continue
        first = pts[m][min(pts[m])]
        assert first < 0
        read = (int(first) - int(before[row, p])) % 2**32            # MADs counted between
        assert read % MAD_WORDS == 0 and read // MAD_WORDS < 1000
    # one descriptor per event, while they last
    # (a sweep's line counts OpenSM's descriptors after its last event)
    events = [s["dc"] + s["pe"] for s in sweeps]
    grow = [b["fds"] - a["fds"] for a, b in zip(sweeps[:k - 1], sweeps[1:k])]
    assert all(g >= e - 2 for g, e in zip(grow, events[1:k])), (grow, events)
    assert fds_b - fds_a >= events[k + 1] - 2                  # sweep k+2 ran between the two looks
    assert sweeps[-1]["send_errors"] > 0 and sweeps[-1]["dropped"] > 0 and sweeps[-1]["fds"] <= limit
    # every point of every event was sent or counted as dropped
    assert sum(s["points"] + s["dropped"] for s in sweeps) == sum(13 * s["pe"] + 8 * s["dc"] for s in sweeps)
    # Out of descriptors, OpenSM itself may not stop cleanly (glibc's pthread_cancel has to
    # dlopen libgcc_s and aborts): then there is no final line.
    if final is not None:
        assert final["values"] == "delta" and final["send_errors"] > 0


@opensm_test
def test_batched_cumulative_values_equal_the_engine_counters(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    sim.add_job(Job("a2a", "all_to_all", load=0.02))    # far from PerfMgr's overflow clears
    sim.inject("ber", "leaf2:1", rate=1e-9)              # error counters move too
    want = cabled_metrics(sim)
    with serving(sim) as (srv, sock):
        with plugin_opensm(tmp_path, "batched", sim, sock, proto="pickle") as (osm, carbon, stats):
            with ticking(sim):
                wait_points(carbon, want)                          # 100 % of the cabled ports
                n = len(wait_sweeps(stats, 3, osm))
            # the clock is stopped: traffic and bit errors no longer move the counters; two
            # whole sweeps later PerfMgr's last reading is of the frozen counters
            sweeps = wait_sweeps(stats, n + 3, osm)
            since = sweeps[-1]["t0"]
            pts = wait_points(carbon, want, since=since)
        truth = sim.snapshot().counters
        _, final = read_stats(stats)
    got = last_values(pts)
    sym = COUNTER_ROW["symbol_error"]
    assert any(got[m] > 0 for m, (r, _) in want.items() if r == sym)
    assert any(got[m] > 0 for m, (r, _) in want.items() if r == COUNTER_ROW["port_xmit_data"])
    assert_equal_to_engine(pts, want, truth)
    assert final["values"] == "cumulative" and final["dropped"] == 0
    assert final["points"] == 13 * final["pe"] + 8 * final["dc"] + final["traps"]


@opensm_test
def test_batched_totals_restart_from_the_absolute_value_when_a_node_reappears(tmp_path):
    # A CA's cable goes down: OpenSM's heavy sweep drops the CA, PerfMgr (perfmgr_rm_nodes,
    # the default) deletes it from its DB. When it is back, PerfMgr's first reading of its
    # port is against a zero "previous": the absolute counter, not a delta.
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    sim.add_job(Job("a2a", "all_to_all", load=0.02))
    f = sim.fabric
    node = "node008 HCA-1"                               # OpenSM itself is on node001 HCA-1
    port = int(np.flatnonzero((f.node_of_port == f.find_node(node)) & (f.peer_of_port >= 0))[0])
    label = f.port_label(port)
    want = cabled_metrics(sim)
    with serving(sim) as (srv, sock):
        with plugin_opensm(tmp_path, "batched", sim, sock) as (osm, carbon, stats):
            with ticking(sim):
                wait_points(carbon, want)
                wait_sweeps(stats, len(read_stats(stats)[0]) + 2, osm)
                sim.inject("link_down", label)
                osm.wait_for("no longer exists so removing from PerfMgr monitoring", timeout=WAIT)
                sim.inject("link_up", label)
                k = len(wait_sweeps(stats, len(read_stats(stats)[0]) + 1, osm))
                deadline = time.monotonic() + WAIT
                while wait_sweeps(stats, k, osm)[-1]["dc"] < len(want) // len(COUNTER_NAMES):
                    assert time.monotonic() < deadline, "the CA's port was not read again:\n" + osm.tail()
                    k += 1                                                  # until its port is read again
                n = len(wait_sweeps(stats, k + 2, osm))
            sweeps = wait_sweeps(stats, n + 3, osm)                         # frozen: two whole sweeps
            pts = wait_points(carbon, want, since=sweeps[-1]["t0"])
        truth = sim.snapshot().counters
    got = last_values(pts)
    assert truth[COUNTER_ROW["link_downed"], port] == 1
    mine = {m for m, (r, p) in want.items() if p == port and r == COUNTER_ROW["port_xmit_data"]}
    assert len(mine) == 1 and got[mine.pop()] > 0
    assert_equal_to_engine(pts, want, truth)


@opensm_test
def test_a_link_down_trap_reaches_the_batched_plugin(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    f = sim.fabric
    with serving(sim) as (srv, sock), ticking(sim):
        with plugin_opensm(tmp_path, "batched", sim, sock) as (osm, carbon, stats):
            wait_sweeps(stats, 2, osm)
            sim.inject("link_down", "leaf2:3")
            osm.wait_for("Received Generic Notice type:1 num:128", timeout=WAIT)
            with sim.lock:
                lids = {int(sim.state.lid[f.first_port[f.find_node(n)]]) for n in ("leaf2", "spine1")}
            deadline = time.monotonic() + WAIT
            while True:
                traps = [s for s in carbon.series() if s.startswith("ib.traps.")]
                if not traps:
                    cached = carbon.cached([f"ib.traps.trap128.lid{lid}" for lid in lids])
                    traps = [m for m, v in cached.items() if v]
                if traps:
                    break
                assert time.monotonic() < deadline, "no trap series in carbon"
                time.sleep(0.5)
        _, final = read_stats(stats)
    assert any(t in {f"ib.traps.trap128.lid{lid}" for lid in lids} for t in traps), (traps, lids)
    assert final["traps"] >= 1


def restart_carbon(carbon: Carbon) -> None:
    """Start the stopped carbon-cache again, same configuration and ports (stopped by its PID later)."""
    import subprocess
    with open(carbon.log, "ab") as fh:
        carbon.proc = subprocess.Popen(["carbon-cache", f"--config={carbon.dir / 'carbon.conf'}", "--debug",
                                        "start"], stdout=fh, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=carbon.dir, start_new_session=True)


@opensm_test
def test_batched_plugin_reconnects_and_resends_what_carbon_missed(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    sim.add_job(Job("a2a", "all_to_all", load=0.02))
    want = cabled_metrics(sim)
    with serving(sim) as (srv, sock), ticking(sim):
        with plugin_opensm(tmp_path, "batched", sim, sock) as (osm, carbon, stats):
            wait_points(carbon, want)
            carbon.stop()                                     # carbon goes away ...
            down = time.time()
            n = len(wait_sweeps(stats, len(read_stats(stats)[0]) + 3, osm))
            restart_carbon(carbon)                            # ... and comes back on the same ports
            up = time.time()
            sweeps = wait_sweeps(stats, n + 2, osm)
            missed = [s for s in sweeps if down < s["t0"] and s["t1"] < up]
            assert missed
            pts = wait_points(carbon, want, since=sweeps[-1]["t0"])
    # every sweep PerfMgr made while carbon was away arrived, for every cabled port
    for m in want:
        for s in missed:
            assert any(int(s["t0"]) <= ts <= int(s["t1"]) + 1 for ts in pts[m]), (m, s)
    assert sum(s["send_errors"] for s in sweeps) >= 1
    assert sweeps[-1]["connects"] >= 2


def test_the_c_sources_are_package_data():
    import fnmatch
    import tomllib
    root = Path(__file__).resolve().parents[2]
    with open(root / "pyproject.toml", "rb") as fh:
        globs = tomllib.load(fh)["tool"]["setuptools"]["package-data"]["ibsim.bench"]
    files = [p.relative_to(SOURCE_DIR.parent).as_posix() for p in SOURCE_DIR.iterdir()]
    assert {spec.source for spec in PLUGINS.values()} <= {Path(f).name for f in files}
    assert all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)


@opensm_test
def test_batched_plugin_drops_when_its_queue_is_full_and_never_blocks_perfmgr(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    nowhere = ("127.0.0.1", free_port())                      # nothing listens: every send fails
    with serving(sim) as (srv, sock), ticking(sim):
        with plugin_opensm(tmp_path, "batched", sim, sock, carbon=nowhere, queue=16, batch=8,
                           flush_s=1.0) as (osm, carbon, stats):
            sweeps = wait_sweeps(stats, 4, osm)
        _, final = read_stats(stats)
    # PerfMgr went on sweeping every port; what found no room (or no carbon by the end) was counted
    assert all(s["dc"] == s["pe"] == 32 for s in sweeps)
    assert sweeps[-1]["dropped"] == 21 * 32 and sweeps[-1]["queue_max"] == 16
    assert final is not None and final["points"] == 0 and final["send_errors"] >= 1
    assert final["dropped"] == 13 * final["pe"] + 8 * final["dc"] + final["traps"]
