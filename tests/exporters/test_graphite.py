"""Graphite exporters: wire formats byte for byte, then real carbon-cache and graphite-web."""

from __future__ import annotations

import json
import os
import pickle
import struct
import urllib.request

import numpy as np
import pytest

from exporters.graphite import (build_paths, counter_rates, counter_values, format_job_pickle,
                                format_job_plaintext, format_pickle, format_plaintext, graphite_event,
                                job_paths, jobs_to_send, parse_template, pickle_heads, template_prefix)
from ibsim.engine import Event
from ibsim.errors import ScenarioError
from ibsim.export import COUNTER_NAMES, ExporterSpec, attach, build_exporter, node_names, selected_ports
from ibsim.fabric import compile_fabric
from ibsim.topology import Topology

TS = 1_700_000_000
REGEN = os.environ.get("IBSIM_REGEN_GOLDEN") == "1"


def golden(helpers, name: str, data: bytes) -> bytes:
    path = helpers.DATA / name
    if REGEN:
        path.write_bytes(data)
    return path.read_bytes()


def naive_points(snap, template="ib.<node>.<port>.<counter>"):
    """The expected (path, value) list, built the slow obvious way (per port, in Python)."""
    f = snap.fabric
    names = node_names(f)
    out = []
    for r, name in enumerate(COUNTER_NAMES):
        for p in selected_ports(f, "cabled"):
            n = f.node_of_port[p]
            path = (template.replace("<node>", str(names[n])).replace("<port>", f"p{int(f.port_num[p]):02d}")
                    .replace("<counter>", name))
            out.append((path, int(snap.counters[r, p])))
    return out


@pytest.fixture
def tiny(tiny_topology, helpers):
    f = compile_fabric(tiny_topology)
    snap = helpers.fixed_snapshot(f)
    ports = selected_ports(f, "cabled")
    return snap, ports, build_paths(f, "ib.<node>.<port>.<counter>", COUNTER_NAMES, ports)


def test_plaintext_matches_golden_file_and_naive_formatting(tiny, helpers):
    snap, ports, paths = tiny
    chunks = format_plaintext(counter_values(snap, COUNTER_NAMES, ports), paths, TS, batch=5)
    payload = b"".join(bytes(c) for c, _ in chunks)
    assert payload == golden(helpers, "graphite-plaintext.golden", payload)
    expected = "".join(f"{p} {v} {TS}\n" for p, v in naive_points(snap)).encode()
    assert payload == expected
    assert all(n <= 5 for _, n in chunks) and sum(n for _, n in chunks) == len(expected.splitlines())
    assert b"ib.node04_HCA-1.p01.port_xmit_data 18446744073709551615 " in payload


def _unframe(data: bytes) -> list[bytes]:
    bodies = []
    while data:
        (n,) = struct.unpack("!L", data[:4])
        bodies.append(data[4:4 + n])
        data = data[4 + n:]
    return bodies


def test_pickle_matches_golden_file_and_unpickles_to_carbon_tuples(tiny, helpers):
    snap, ports, paths = tiny
    values = counter_values(snap, COUNTER_NAMES, ports)
    msgs = format_pickle(values, pickle_heads(paths), TS)
    payload = b"".join(m for m, _ in msgs)
    assert payload == golden(helpers, "graphite-pickle.golden", payload)
    bodies = _unframe(payload)
    points = [pt for b in bodies for pt in pickle.loads(b)]
    assert points == [(p, (TS, float(v))) for p, v in naive_points(snap)]
    assert all(isinstance(ts, int) and isinstance(v, float) for _, (ts, v) in points)
    assert pickle.loads(bodies[0])[0] == ("ib.sw1.p01.symbol_error", (TS, 0.0))


def test_pickle_messages_stay_under_the_limit(tiny):
    snap, ports, paths = tiny
    values = counter_values(snap, COUNTER_NAMES, ports)
    msgs = format_pickle(values, pickle_heads(paths), TS, max_message=2048)
    assert len(msgs) > 3
    bodies = _unframe(b"".join(m for m, _ in msgs))
    assert all(len(b) <= 2048 for b in bodies)
    assert [len(pickle.loads(b)) for b in bodies] == [n for _, n in msgs]
    assert sum(n for _, n in msgs) == values.size


def test_rates_are_per_second_with_data_in_bytes():
    names = ("port_xmit_data", "port_xmit_packets")
    prev = np.array([[100, 0], [10, 5]], dtype=np.uint64)
    cur = np.array([[300, 0], [30, 4]], dtype=np.uint64)          # the last one was reset
    r = counter_rates(prev, cur, 2.0, names)
    assert r.tolist() == [[400.0, 0.0], [10.0, 0.0]]
    paths = [np.array([b"a.p01.x", b"a.p02.x"]), np.array([b"a.p01.y", b"a.p02.y"])]
    text = b"".join(bytes(c) for c, _ in format_plaintext(r / 3, paths, TS))
    assert text == (f"a.p01.x 133.333 {TS}\na.p02.x 0 {TS}\na.p01.y 3.333 {TS}\na.p02.y 0 {TS}\n").encode()


def test_node_names_fall_back_to_guid_when_descriptions_are_shared():
    t = Topology("dup")
    for g in (0x10, 0x20):
        t.add_switch(g, 4, "MF0;switch-ib:SB7800/U1")
    t.add_switch(0x30, 4, "core.1 a/b")
    t.add_ca(0x100, 1, "node01 HCA-1")
    t.add_link(0x10, 1, 0x20, 1)
    t.add_link(0x20, 2, 0x30, 1)
    t.add_link(0x10, 2, 0x100, 1)
    f = compile_fabric(t)
    names = dict(zip(f.node_guid.tolist(), node_names(f).tolist()))
    assert names == {0x10: "0x0000000000000010", 0x20: "0x0000000000000020", 0x30: "core_1_a_b",
                     0x100: "node01_HCA-1"}


@pytest.mark.requires_entry_points
def test_templates_are_checked_and_rendered(tiny):
    snap, ports, _ = tiny
    paths = build_paths(snap.fabric, "fab.<counter>.<guid>.<port_num>", ("link_downed",), ports)
    assert paths[0][0] == b"fab.link_downed.0x0000000000000100.1"
    for bad in ("ib.<node>.<port>", "ib.<node>.<counter>", "ib <node>.<port>.<counter>",
                "ib.<nod>.<port>.<counter>"):
        with pytest.raises(ScenarioError):
            parse_template(bad)
    with pytest.raises(ScenarioError, match="did you mean <node>"):
        build_exporter("graphite", {"template": "ib.<nod>.<port>.<counter>"})


def test_event_body_for_graphite_web():
    ev = Event(12.3456, "link_down", 0x100, "leaf 1", 5, 0x200, "spine1", 1, 128,
               {"reason": "flap"}, 1_700_000_012.3456)
    body = graphite_event(ev, ("ibsim", "run42"))
    assert body == {"what": "link_down leaf 1:5", "tags": ["ibsim", "run42", "link_down", "leaf_1"],
                    "data": ev.message(), "when": 1_700_000_012.346}
    assert json.loads(graphite_event(ev, data="json")["data"])["node_guid"] == "0x0000000000000100"


# ---------------------------------------------------------------------- real servers
def _whisper_value(whisper, path, ts):
    (start, _, step), values = whisper.fetch(str(path), ts - 1, ts)
    return values[(ts - start) // step] if values else None


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_carbon_holds_the_simulated_counters_plaintext_and_pickle(carbon, helpers):
    whisper = pytest.importorskip("whisper", reason="pip install whisper (reads carbon's files back)")
    sim = helpers.small_sim()
    recorded = {}
    specs = [ExporterSpec("graphite", {"port": carbon.ports["line"]}),
             ExporterSpec("graphite_pickle", {"port": carbon.ports["pickle"],
                                              "template": "ibp.<node>.<port>.<counter>"}, every=2.0)]
    stage = attach(sim, specs, every=1.0, until=8.0)
    jobs = []                                          # the job stats of each snapshot

    def record(s):
        recorded.setdefault(int(stage.timemap(s.time_s)), s.counters.copy())
        jobs.append(s.jobs)
    sim.observe(1.0, record)
    sim.run(until=8.0)
    stats = stage.close()
    f = sim.fabric
    ports = selected_ports(f, "cabled")
    n_points = len(ports) * len(COUNTER_NAMES)
    # and 5 points per job running, or ended since the previous write
    n_jobs = [len(jobs_to_send(js, t - step if t > step else None))
              for step in (1, 2) for t, js in enumerate(jobs[:8], 1) if t % step == 0]
    assert stats["graphite"]["sent"] == 8 * n_points + 5 * sum(n_jobs[:8]) and stats["graphite"]["dropped"] == 0
    assert stats["graphite_pickle"]["sent"] == 4 * n_points + 5 * sum(n_jobs[8:])
    assert stats["graphite_pickle"]["errors"] == 0
    end = int(stage.timemap(8.0))
    assert sorted(recorded) == list(range(end - 7, end + 1))

    root = carbon.dir / "storage" / "whisper"
    names = node_names(f)
    table = sim.counters_table()                       # what counters.csv holds at the end

    def series(prefix, p, counter):
        return root / prefix / str(names[f.node_of_port[p]]) / f"p{int(f.port_num[p]):02d}" / f"{counter}.wsp"

    files = [series(prefix, p, c) for prefix in ("ib", "ibp") for p in ports for c in COUNTER_NAMES]

    def all_written():
        return all(fp.exists() and _whisper_value(whisper, fp, end) is not None for fp in files)

    helpers.wait_until(all_written, 120, f"carbon to write the last point of {len(files)} series",
                       interval=0.5, proc=carbon.proc, log=carbon.log)
    mism = []
    for r, counter in enumerate(COUNTER_NAMES):
        for i, p in enumerate(ports):
            for prefix, times in (("ib", range(end - 7, end + 1)), ("ibp", range(end - 6, end + 1, 2))):
                for ts in times:
                    got = _whisper_value(whisper, series(prefix, p, counter), ts)
                    want = float(recorded[ts][r, p])
                    if got != want:
                        mism.append((prefix, counter, int(p), ts, got, want))
            assert _whisper_value(whisper, series("ib", p, counter), end) == float(table[counter][i])
    assert not mism, mism[:10]
    assert sum(recorded[end][12, ports]) > 0           # traffic flowed


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_graphite_web_receives_the_events(graphite_web):
    from ibsim.engine import Simulation
    from ibsim.fabric import compile_fabric as cf
    from ibsim.faults import Fault
    from ibsim.topology import fat_tree
    sim = Simulation(cf(fat_tree(4, 2)), seed=3, routing="ftree", sweep_delay=1.0)
    sim.schedule(Fault("flap", "leaf1:3", 1.0, {"period_s": 1.0, "count": 2}))
    base = f"http://127.0.0.1:{graphite_web.ports['http']}"
    spec = ExporterSpec("graphite_events", {"url": base + "/events/", "tags": ["ibsim", "t1"]})
    stage = attach(sim, [spec], every=0.5, until=6.0)
    sim.run(until=6.0)
    stats = stage.close()["graphite_events"]
    assert stats["sent"] == len(sim.events) > 4 and stats["errors"] == 0
    with urllib.request.urlopen(base + "/events/get_data?from=-1d&until=now&tags=ibsim", timeout=10) as r:
        got = json.loads(r.read())
    assert len(got) == len(sim.events)
    want = sorted((int(stage.timemap(e.time_s)), e.kind) for e in sim.events)
    assert sorted((g["when"], g["what"].split()[0]) for g in got) == want
    downs = [g for g in got if g["what"].startswith("link_down")]
    assert downs and all({"ibsim", "t1", "link_down"} <= set(g["tags"]) for g in downs)
    assert all(g["data"].startswith("t=") for g in got)
    # the render API can overlay them: events('ibsim') counts one per event
    render = base + "/render?target=events('ibsim')&from=-1d&format=json"
    with urllib.request.urlopen(render, timeout=30) as r:
        series = json.loads(r.read())
    assert sum(v for v, _ in series[0]["datapoints"] if v) == len(sim.events)


# ---------------------------------------------------------------------- jobs
def job_stats():
    from ibsim.engine import JobStat
    return [JobStat("cfd", "12", {"job_id": "12", "job_name": "cfd", "user": "alice"}, "shift",
                    ("node001 HCA-1", "node002 HCA-1"), 1.0, None, True, 4096, 2048, 7, 0.5),
            JobStat("x y", "x y.z", {}, "shift", ("a", "b", "c"), 0.0, 3.0, False, 0, 0, 0, 0.0),
            JobStat("big", "big", {}, "all_to_all", ("a", "b"), 0.0, None, True, 2**63, 1, 0, 1 / 3)]


def test_job_points_match_golden_files_in_both_formats(helpers):
    jobs = job_stats()
    plain = b"".join(bytes(c) for c, _ in format_job_plaintext(jobs, "ib", TS))
    assert plain == golden(helpers, "graphite-jobs-plaintext.golden", plain)
    lines = plain.decode().splitlines()
    assert len(lines) == 15
    assert f"ib.jobs.12.xmit_bytes 4096 {TS}" in lines and f"ib.jobs.12.share 0.5 {TS}" in lines
    assert f"ib.jobs.x_y_z.hosts 3 {TS}" in lines           # the key made path-safe like node names
    assert f"ib.jobs.big.share 0.333333 {TS}" in lines
    msgs = format_job_pickle(jobs, "ib", TS)
    pick = b"".join(m for m, _ in msgs)
    assert pick == golden(helpers, "graphite-jobs-pickle.golden", pick)
    points = [pt for b in _unframe(pick) for pt in pickle.loads(b)]
    assert [(p, (int(ts), float(v))) for p, v, ts in (ln.split() for ln in lines)
            if not p.endswith("share")] == [pt for pt in points if not pt[0].endswith("share")]
    assert ("ib.jobs.big.share", (TS, 1 / 3)) in points
    assert format_job_plaintext([], "ib", TS) == [] and format_job_pickle([], "ib", TS) == []


def test_job_prefix_and_which_jobs_are_sent():
    assert template_prefix("ib.<node>.<port>.<counter>") == "ib"
    assert template_prefix("site.ib.<guid>.<port_num>.<counter>") == "site.ib"
    assert template_prefix("<node>.<port>.<counter>") == ""
    assert job_paths("", job_stats()[:1])[0][0] == b"jobs.12.xmit_bytes"
    jobs = job_stats()
    assert [j.name for j in jobs_to_send(jobs, None)] == ["cfd", "x y", "big"]
    assert [j.name for j in jobs_to_send(jobs, 3.0)] == ["cfd", "x y", "big"]   # ended at the last write
    assert [j.name for j in jobs_to_send(jobs, 3.5)] == ["cfd", "big"]


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_carbon_holds_the_job_metrics(carbon, helpers):
    whisper = pytest.importorskip("whisper", reason="pip install whisper (reads carbon's files back)")
    from ibsim.engine import Simulation
    from ibsim.topology import single_switch
    from ibsim.traffic import Job
    sim = Simulation(compile_fabric(single_switch(8)), seed=5)
    sim.add_job(Job("bg", "shift", hosts=["node003 HCA-1", "node004 HCA-1"], load=0.5))
    specs = [ExporterSpec("graphite", {"port": carbon.ports["line"]}),
             ExporterSpec("graphite_pickle", {"port": carbon.ports["pickle"],
                                              "template": "ibp.<node>.<port>.<counter>"}),
             ExporterSpec("graphite", {"port": carbon.ports["line"], "template": "ibn.<node>.<port>.<counter>",
                                       "jobs": False})]
    stage = attach(sim, specs, every=1.0, until=6.0)
    sim.run(until=1.0)
    sim.start_job(Job("cfd", "shift", hosts=["node001 HCA-1", "node002 HCA-1"], load=1.0,
                      labels={"job_id": "12", "job_name": "cfd"}))
    sim.run(until=4.0)
    sim.end_job("cfd")
    sim.run(until=6.0)
    stats = stage.close()
    assert stats["graphite"]["errors"] == 0 and stats["graphite_pickle"]["errors"] == 0
    bg, cfd = sim.job_stats()
    end, stopped = int(stage.timemap(6.0)), int(stage.timemap(5.0))
    root = carbon.dir / "storage" / "whisper"
    want = {("12", "xmit_bytes", stopped): cfd.xmit_bytes, ("12", "rcv_bytes", stopped): cfd.rcv_bytes,
            ("12", "share", stopped): cfd.share, ("12", "hosts", stopped): 2.0,
            ("12", "xmit_bytes", end): None,                  # ended: no more points after it was sent ended
            ("bg", "xmit_bytes", end): bg.xmit_bytes, ("bg", "share", end): bg.share}
    files = {k: root / prefix / "jobs" / k[0] / f"{k[1]}.wsp" for k in want for prefix in ("ib",)}
    helpers.wait_until(lambda: all(files[k].exists() for k in want) and all(
        _whisper_value(whisper, root / p / "jobs" / "bg" / "xmit_bytes.wsp", end) is not None
        for p in ("ib", "ibp")), 120, "carbon to write the job series", interval=0.5, proc=carbon.proc,
        log=carbon.log)
    for (key, metric, ts), value in want.items():
        for prefix in ("ib", "ibp"):
            got = _whisper_value(whisper, root / prefix / "jobs" / key / f"{metric}.wsp", ts)
            assert got == (pytest.approx(value, rel=1e-6) if value is not None else None), (prefix, key, metric)
    assert cfd.xmit_bytes > 0 and not cfd.running
    assert (root / "ibn").is_dir() and not (root / "ibn" / "jobs").exists()      # jobs: false


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_graphite_events_posts_log_lines_only_when_listed(graphite_web):
    from ibsim.engine import Simulation
    from ibsim.topology import single_switch
    sim = Simulation(compile_fabric(single_switch(4)), seed=1)
    base = f"http://127.0.0.1:{graphite_web.ports['http']}"
    specs = [ExporterSpec("graphite_events", {"url": base + "/events/", "tags": ["dflt"]}),
             ExporterSpec("graphite_events", {"url": base + "/events/", "tags": ["logs"], "kinds": ["log"]})]
    stage = attach(sim, specs, every=0.5, until=2.0)
    sim.run(until=0.5)
    sim.note("job_start", {"job_id": "12"})
    sim.note("log", {"host": "node001", "program": "slurmd", "message": "launched"}, node_desc="node001")
    sim.note("job_end", {"job_id": "12"})
    sim.run(until=2.0)
    stats = stage.close()
    assert stats["graphite_events"]["sent"] == 2 and stats["graphite_events#2"]["sent"] == 1

    def kinds(tag):
        with urllib.request.urlopen(base + f"/events/get_data?from=-1d&until=now&tags={tag}", timeout=10) as r:
            return sorted(g["what"].split()[0] for g in json.loads(r.read()))
    assert kinds("dflt") == ["job_end", "job_start"]
    assert kinds("logs") == ["log"]
