"""SlurmBridge without Docker: hook datagrams and recorded squeue/sinfo output drive a real Simulation."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from ibsim import compile_fabric, fat_tree
from ibsim.engine import Simulation
from ibsim.errors import HostError
from ibsim.hosts.slurm import SlurmBridge, parse_sinfo, parse_squeue

DATA = Path(__file__).parent / "data"
HOSTS = {f"node{i:03d}": f"node{i:03d} HCA-1" for i in range(1, 5)}


def make(default=None):
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1, sweep_delay=0)
    return sim, SlurmBridge(sim, HOSTS, listen="127.0.0.1", default_traffic=default)


def datagram(event, job_id, nodes, comment="", run=0, name="job", user="alice", **extra):
    env = {"SLURM_JOB_ID": str(job_id), "SLURM_JOB_NODELIST": nodes, "SLURM_JOB_COMMENT": comment,
           "SLURM_JOB_RESTART_COUNT": str(run), "SLURM_JOB_NAME": name, "SLURM_JOB_USER": user, **extra}
    return json.dumps({"v": 1, "event": event, "env": env}).encode()


def kinds(sim, *want):
    return [(e.kind, e.details.get("job_id")) for e in sim.events if e.kind in want]


def tx(sim, hosts):
    snap = sim.snapshot()
    col = snap.counter("port_xmit_data")
    return {h: int(col[int(sim.fabric.ports_of_node(sim.fabric.find_node(HOSTS[h]))[0])]) for h in hosts}


def test_recorded_squeue_and_sinfo_parse():
    jobs = parse_squeue((DATA / "squeue-22.05.json").read_text())
    assert {j: (v["state"], v["nodes"]) for j, v in jobs.items()} == {
        1: ("COMPLETED", ["node001", "node002"]), 2: ("RUNNING", ["node001"]), 3: ("PENDING", [])}
    assert jobs[1]["comment"] == "ibsim: pattern=all_to_all load=0.6" and jobs[1]["user"] == "root"
    assert jobs[3]["comment"].startswith("ibsim: pattern=shift")
    nodes = parse_sinfo((DATA / "sinfo-22.05.json").read_text())
    assert nodes == {"node001": {"state": "allocated", "reason": ""}, "node002": {"state": "idle", "reason": ""}}


def test_start_and_end_datagrams_drive_traffic_on_exactly_the_jobs_hosts():
    sim, br = make()
    before = tx(sim, HOSTS)
    br.on_datagram(datagram("start", 7, "node[001-002]", "ibsim: pattern=all_to_all load=0.5", name="cfd"))
    for _ in range(5):
        sim.step()
    mid = tx(sim, HOSTS)
    assert {h for h in HOSTS if mid[h] > before[h]} == {"node001", "node002"}
    (st,) = sim.job_stats()
    assert st.key == "7" and st.labels["job_name"] == "cfd" and st.labels["user"] == "alice" and st.running
    br.on_datagram(datagram("end", 7, "node[001-002]", "ibsim: pattern=all_to_all load=0.5",
                            SLURM_JOB_EXIT_CODE2="0:0"))
    sim.step()
    a = tx(sim, HOSTS)
    sim.step()
    assert tx(sim, HOSTS) == a                       # stopped
    # squeue says how it ended
    br.reconcile({7: {"state": "COMPLETED", "name": "cfd", "user": "alice", "comment": "", "nodes": ["node001",
                                                                                                  "node002"],
                      "run": 0, "exit_code": 0, "reason": "None"}}, None)
    sim.step()
    assert kinds(sim, "job_start", "job_end") == [("job_start", 7), ("job_end", 7)]
    end = [e for e in sim.events if e.kind == "job_end"][0]
    assert end.details["state"] == "COMPLETED" and end.details["exit_code"] == "0:0"
    assert not sim.job_stats()[0].running


def test_a_lost_start_datagram_heals_at_the_next_poll():
    sim, br = make()
    br.reconcile({5: {"state": "RUNNING", "name": "late", "user": "bob", "nodes": ["node003", "node004"],
                      "comment": "ibsim: pattern=shift k=1 rate=10Gbps", "run": 0, "exit_code": None,
                      "reason": ""}}, None)
    sim.step()
    assert br.stats["started_by_poll"] == 1 and br.runs[0].source == "poll"
    assert sim.job_stats()[0].hosts == ("node003 HCA-1", "node004 HCA-1")
    # the same job again (a datagram arriving late) does not start a second run
    br.on_datagram(datagram("start", 5, "node[003-004]", "ibsim: pattern=shift k=1 rate=10Gbps"))
    sim.step()
    assert len(sim.job_stats()) == 1 and len(br.runs) == 1
    # and a lost end heals too: squeue has it COMPLETED
    br.reconcile({5: {"state": "COMPLETED", "name": "late", "user": "bob", "nodes": ["node003", "node004"],
                      "comment": "", "run": 0, "exit_code": 0, "reason": ""}}, None)
    sim.step()
    assert kinds(sim, "job_end") == [("job_end", 5)] and br.stats["ended_by_poll"] == 1


def test_recorded_squeue_starts_the_running_job():
    sim, br = make(default={"pattern": "all_to_all", "load": 0.5, "rate": None, "params": {}})
    br.reconcile(parse_squeue((DATA / "squeue-22.05.json").read_text()), None)
    sim.step()
    # job 2 runs on one node: no fabric traffic, and the event says why; 1 is over, 3 pending
    (ev,) = [e for e in sim.events if e.kind == "job_start"]
    assert ev.details["job_id"] == 2 and ev.details["traffic"] == "none" and "one node" in ev.details["why"]


def test_requeue_stops_the_traffic_and_the_next_run_starts_on_its_new_nodes():
    sim, br = make()
    c = "ibsim: pattern=shift k=1 load=0.4"
    br.on_datagram(datagram("start", 9, "node[001-002]", c))
    sim.step()
    br.on_datagram(datagram("end", 9, "node[001-002]", c))
    br.reconcile({9: {"state": "PENDING", "name": "job", "user": "alice", "nodes": [], "comment": c, "run": 1,
                      "exit_code": None, "reason": "BeginTime"}}, None)
    br.on_datagram(datagram("start", 9, "node[003-004]", c, run=1))
    for _ in range(3):
        sim.step()
    assert kinds(sim, "job_start", "job_requeue") == [("job_start", 9), ("job_requeue", 9), ("job_start", 9)]
    runs = sim.job_stats()
    assert [(s.name, s.running, s.hosts[0]) for s in runs] == [("slurm-9", False, "node001 HCA-1"),
                                                              ("slurm-9.1", True, "node003 HCA-1")]


def test_bad_comment_unknown_node_and_node_state_events():
    sim, br = make()
    br.on_datagram(datagram("start", 11, "node[001-002]", "ibsim: pattern=all_to_all load=7"))
    br.on_datagram(datagram("start", 12, "node001,gpu9", "ibsim: pattern=all_to_all load=0.5"))
    br.reconcile({}, {"node001": {"state": "idle", "reason": ""}})
    br.reconcile({}, {"node001": {"state": "allocated", "reason": ""}})     # not news
    br.reconcile({}, {"node001": {"state": "down", "reason": "Not responding"}})
    sim.step()
    errs = [e.details["error"] for e in sim.events if e.kind == "job_error"]
    assert "load" in errs[0] and "gpu9" in errs[1]
    assert sim.job_stats() == []
    (ns,) = [e for e in sim.events if e.kind == "node_state"]
    assert ns.details == {"node": "node001", "state": "down", "previous": "allocated", "reason": "Not responding"}
    assert ns.node_desc == "node001 HCA-1"


def test_malformed_datagrams_are_counted_and_ignored():
    sim, br = make()
    for junk in (b"", b"{", b'{"v":1,"event":"start","env":{}}', b'{"v":1,"event":"boom","env":{"SLURM_JOB_ID":"1"}}',
                 b"\xff" * 100):
        br.on_datagram(junk)
    sim.step()
    assert br.stats["bad_datagrams"] == 5 and br.stats["datagrams"] == 0 and br.runs == []
    assert not [e for e in sim.events if e.kind.startswith("job_")]


def test_the_hook_socket_receives_datagrams_and_an_unreachable_controller_is_counted():
    sim, br = make()

    def no_controller(argv):
        raise HostError("container ibsimtest-ctl is not running")

    br.poll_s = 0.05
    port = br.bind()
    br.start(no_controller)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(datagram("start", 3, "node[001-002]", "ibsim: pattern=all_to_all load=0.2"), ("127.0.0.1", port))
        deadline = time.monotonic() + 5
        while not br.runs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert br.runs and br.runs[0].job_id == 3
        while br.stats["poll_errors"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert br.stats["poll_errors"] >= 2 and "not running" in br.last_poll_error
    finally:
        br.close()
    assert br._sock is None


def test_bind_failure_is_a_host_error():
    sim, br = make()
    br.listen = "192.0.2.1"                          # TEST-NET: not an address of this machine
    with pytest.raises(HostError, match="cannot listen"):
        br.bind()
