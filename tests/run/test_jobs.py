"""Jobs in the run directory: jobs.csv, the summary's Jobs table, the timeline's job bars, events.jsonl."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest

from ibsim import compile_fabric, fat_tree
from ibsim.engine import Simulation
from ibsim.run import Recorder
from ibsim.run.jobs import JOBS_COLUMNS, job_label
from ibsim.run.recorder import load_run
from ibsim.run.report import _pack_lanes, _timeline_items
from ibsim.traffic import Job

PLOT = importlib.util.find_spec("matplotlib") is not None


def slurm(jid, name, hosts, load=0.5):
    return Job(name, "all_to_all", hosts=hosts, load=load, announce=False,
               labels={"job_id": jid, "job_name": name, "user": "alice", "nodes": f"{len(hosts)} nodes"})


A = ["node001 HCA-1", "node002 HCA-1", "node003 HCA-1", "node004 HCA-1"]
B = ["node005 HCA-1", "node006 HCA-1"]


@pytest.fixture
def run(tmp_path):
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1, routing="ftree")
    sim.add_job(Job("bg", "shift", hosts=["node007 HCA-1", "node008 HCA-1"], load=0.2, start_s=0.5))
    rec = Recorder(sim, every=0.5)
    rec.start(tmp_path / "run")
    sim.run(until=1.0)
    sim.start_job(slurm("12", "cfd", A))
    sim.note("job_start", {"job_id": "12", "job_name": "cfd"})
    sim.note("log", {"host": "node001", "program": "slurmd", "message": "launch 12"}, node_desc="node001 HCA-1",
             wall_time=1_700_000_000.0)
    sim.run(until=3.0)
    sim.start_job(slurm("13", "md", B))
    sim.run(until=4.0)
    sim.end_job("cfd")
    sim.note("job_end", {"job_id": "12"})
    sim.run(until=5.0)
    return sim, rec.write(plot=PLOT)


def test_jobs_csv_has_a_row_per_job_run(run):
    sim, res = run
    path = res.path / "jobs.csv"
    assert "jobs.csv" in res.metadata["files"]
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == JOBS_COLUMNS
    assert [(r["key"], r["name"], r["user"], r["start_s"], r["end_s"]) for r in rows] == [
        ("bg", "bg", "", "0.5", ""), ("12", "cfd", "alice", "1.0", "4.0"), ("13", "md", "alice", "3.0", "")]
    stats = sim.job_stats()
    for r, st in zip(rows, stats):
        assert int(r["xmit_bytes"]) == st.xmit_bytes > 0 and int(r["rcv_bytes"]) == st.rcv_bytes
        assert int(r["xmit_wait"]) == st.xmit_wait and float(r["share"]) == pytest.approx(st.share)
        assert r["hosts"].split(";") == list(st.hosts)
    assert rows[1]["nodes"] == "4 nodes" and rows[1]["job_name"] == "cfd" and rows[1]["pattern"] == "all_to_all"
    back = load_run(res.path).jobs
    assert [(j["key"], j["end_s"], j["xmit_bytes"]) for j in back] == \
        [(s.key, s.end_s, s.xmit_bytes) for s in stats]


def test_summary_has_a_jobs_table(run):
    _, res = run
    text = (res.path / "summary.txt").read_text()
    i = text.index("Jobs (3 runs")
    table = text[i:].splitlines()
    assert table[1].split() == ["key", "name", "hosts", "start-end", "s", "sent", "share", "%", "xmit_wait"]
    assert table[3].split()[:4] == ["12", "cfd", "4", "nodes"] and "1-4" in table[3]
    assert "5 (running)" in table[4]


def test_events_jsonl_holds_the_notes_in_order(run):
    _, res = run
    kinds = [json.loads(line)["kind"] for line in (res.path / "events.jsonl").read_text().splitlines()]
    assert [k for k in kinds if k in ("job_start", "log", "job_end")] == ["job_start", "job_start", "log", "job_end"]
    log = next(e for e in res.events if e["kind"] == "log")
    assert log["details"]["message"] == "launch 12" and log["wall_time"] == "2023-11-14T22:13:20.000Z"


def test_no_jobs_no_jobs_csv(tmp_path):
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    rec = Recorder(sim)
    sim.run(until=1.0)
    res = rec.write(tmp_path / "run", plot=False)
    assert not (res.path / "jobs.csv").exists() and "Jobs (" not in res.summary and res.jobs == []


def test_timeline_bars_per_job_run_share_lanes_when_apart():
    rows = [{"key": "12", "name": "cfd", "job_name": "cfd", "nodes": "node[001-004]", "hosts": "a;b",
             "pattern": "all_to_all", "start_s": 1.0, "end_s": 40.0},
            {"key": "13", "name": "md", "job_name": "", "nodes": "", "hosts": "c;d;e",
             "pattern": "shift", "start_s": 10.0, "end_s": None},
            {"key": "12", "name": "cfd", "job_name": "cfd", "nodes": "node[001-004]", "hosts": "a;b",
             "pattern": "all_to_all", "start_s": 60.0, "end_s": 90.0},
            {"key": "late", "name": "late", "job_name": "", "nodes": "", "hosts": "a;b",
             "pattern": "shift", "start_s": 120.0, "end_s": None}]
    meta = {"jobs": [{"name": "ignored", "pattern": "shift", "hosts": 2, "load": 0.5, "start_s": 0.0,
                      "stop_s": None}]}
    items = _timeline_items(meta, [], 100.0, 3.0, {}, set(), rows)
    jobs = [it for it in items if it["kind"] == "job"]
    assert [(it["start"], it["end"], it["label"]) for it in jobs] == [
        (1.0, 40.0, "12 cfd (all_to_all, node[001-004])"), (10.0, 100.0, "13 md (shift, 3 hosts)"),
        (60.0, 90.0, "12 cfd (all_to_all, node[001-004])")]
    assert jobs[0]["color"] == jobs[2]["color"] != jobs[1]["color"]       # a requeued job looks alike
    assert _pack_lanes(jobs, 100.0) == [0, 1, 0]
    assert job_label({"key": "bg", "name": "bg", "job_name": ""}) == "bg"
    # without job rows: the scenario's jobs from the metadata, as before
    assert [it["label"] for it in _timeline_items(meta, [], 100.0, 3.0, {}, set())] == \
        ["ignored: shift, 2 hosts, load 0.5"]


@pytest.mark.skipif(not PLOT, reason="needs matplotlib")
def test_overview_is_drawn_with_jobs_and_log_events(run):
    _, res = run
    assert (res.path / "overview.png").stat().st_size > 10_000


def test_slurm_node_troubles_become_timeline_spans():
    from ibsim.run.jobs import node_spans

    def ns(t, node, state, prev, reason=""):
        return {"kind": "node_state", "time_s": t,
                "details": {"node": node, "state": state, "previous": prev, "reason": reason}}
    events = [ns(55, "node010", "allocated+not_responding", "allocated"),
              ns(69, "node004", "allocated+drain", "allocated", "ibsim-nhc: mlx5_0 port 1 is 1: DOWN"),
              ns(69.4, "node010", "down+not_responding", "allocated+not_responding", "Not responding"),
              ns(99, "node004", "allocated", "allocated+drain"),
              ns(101, "node010", "idle+drain", "down+not_responding", "ibsim-nhc: port"),
              ns(107, "node010", "idle", "idle+drain"),
              ns(150, "node002", "down", "idle", "Not responding")]
    spans = node_spans(events, t_end=170)
    assert [(s["node"], s["start"], s["end"], s["state"]) for s in spans] == [
        ("node010", 55, 107, "down"), ("node004", 69, 99, "drain"), ("node002", 150, None, "down")]
    assert spans[1]["reason"].startswith("ibsim-nhc:") and spans[0]["reason"] == "Not responding"
    items = _timeline_items({}, events, 170, 1.0, {}, set(), jobs=[])
    labels = [it["label"] for it in items if it["kind"] == "node"]
    assert labels == ["node010 down", "node004 drain: ibsim-nhc: mlx5_0 port 1 is 1: DOWN", "node002 down"]


def test_a_requeued_run_says_so():
    row = {"key": "2", "name": "slurm-2.1", "job_name": "io"}
    assert job_label(row) == "2 io requeued"
    assert job_label({**row, "name": "slurm-2"}) == "2 io"
    assert job_label({"key": "bg", "name": "bg", "job_name": ""}) == "bg"
