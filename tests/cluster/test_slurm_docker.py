"""Slurm on a 4-host cluster on the real Docker engine: jobs drive traffic, failures, health check, events.

One cluster for the module (slurmctld in ``<name>-ctl``, slurmd in node001-004),
its events exported to a real rsyslog (the Logstash stand-in) and a real
graphite-web. The tests run in file order and each leaves every node idle.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from ibsim.hosts import cluster_objects
from tests.cluster.conftest import running_cluster
from tests.exporters.conftest import Rsyslog, start_graphite_web

NAME = "ibsimtest-slurm"
HOSTS = ["node001", "node002", "node003", "node004"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    d = tmp_path_factory.mktemp("servers")
    rs = Rsyslog(d / "rsyslog")
    rs.start()
    gw = None
    try:
        gw = start_graphite_web(d / "graphite-web")
        yield rs, gw
    finally:
        if gw is not None:
            gw.stop()
        rs.stop()


@pytest.fixture(scope="module")
def cluster(docker_client, host_image, servers, tmp_path_factory):
    rs, gw = servers
    d = tmp_path_factory.mktemp("slurm")
    (d / "c.yml").write_text(f"""
name: slurmtest
seed: 2
clock: {{tick: 100ms}}
topology: {{generate: fat-tree, radix: 4, levels: 2}}
routing: {{engine: minhop, sweep_delay: 1s}}
exporters:
  - logstash: {{host: 127.0.0.1, port: {rs.tcp}}}
  - graphite_events: {{url: "http://127.0.0.1:{gw.ports['http']}/events/"}}
cluster:
  name: {NAME}
  hosts: 4
  node_exporter: false
  mad_port: 47500
  slurm: {{poll: 1s, health_check: 2s, slurmd_timeout: 10s}}
output: {d}/runs
""")
    with running_cluster(docker_client, d / "c.yml", NAME) as c:
        yield c


# ---------------------------------------------------------------------- helpers
def submit(c, *args) -> int:
    code, out = c.exec("ctl", "sbatch", "--parsable", *args)
    assert code == 0, out
    return int(out.strip().split(";")[0])


def job_state(c, jid: int) -> str:
    code, out = c.exec("ctl", "squeue", "-h", "-t", "all", "-j", str(jid), "-o", "%T")
    return out.strip() if code == 0 else ""


def wait_for(pred, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def node_state(c, node: str) -> str:
    code, out = c.exec("ctl", "sinfo", "-h", "-N", "-n", node, "-o", "%T")
    return out.strip()


def xmit(c) -> dict:
    snap = c.sim.snapshot()
    col = snap.counter("port_xmit_data")
    return {h: int(col[int(c.sim.fabric.ports_of_node(c.host(h).node)[0])]) for h in HOSTS}


def grew(a: dict, b: dict) -> set:
    return {h for h in HOSTS if b[h] > a[h]}


def events(c, kind: str, **match) -> list:
    return [e for e in list(c.sim.events)
            if e.kind == kind and all(e.details.get(k) == v for k, v in match.items())]


def all_idle(c):
    return all(node_state(c, h) == "idle" for h in HOSTS)


# ---------------------------------------------------------------------- tests
def test_slurm_is_up_with_the_hosts_as_nodes(cluster):
    code, out = cluster.exec("ctl", "sinfo", "-h", "-N", "-o", "%N %T")
    assert code == 0, out
    assert sorted(line.split()[0] for line in out.splitlines()) == HOSTS
    assert cluster.status()["slurm"]["controller"] == f"{NAME}-ctl"
    assert cluster.slurm_up_s is not None


def test_a_job_with_a_comment_sends_on_exactly_its_nodes(cluster):
    wait_for(lambda: all_idle(cluster), 30, "all nodes idle")
    jid = submit(cluster, "-N", "2", "-w", "node001,node002", "-J", "cfd",
                 "--comment", "ibsim: pattern=all_to_all load=0.5", "--wrap", "sleep 5")
    wait_for(lambda: job_state(cluster, jid) == "RUNNING", 20, f"job {jid} RUNNING", interval=0.05)
    a = xmit(cluster)
    time.sleep(1.0)                                  # within 1 s of RUNNING its hosts send
    b = xmit(cluster)
    assert grew(a, b) == {"node001", "node002"}
    st = [s for s in cluster.sim.job_stats() if s.key == str(jid)]
    assert len(st) == 1 and st[0].running and st[0].labels["job_name"] == "cfd"
    assert st[0].hosts == ("node001 HCA-1", "node002 HCA-1")
    wait_for(lambda: job_state(cluster, jid) == "COMPLETED", 30, f"job {jid} COMPLETED")
    wait_for(lambda: events(cluster, "job_end", job_id=jid), 10, "the job_end event")
    time.sleep(0.3)
    c1 = xmit(cluster)
    time.sleep(1.0)
    assert grew(c1, xmit(cluster)) == set()          # its end stopped the traffic
    (start,) = events(cluster, "job_start", job_id=jid)
    assert start.details["pattern"] == "all_to_all" and start.details["load"] == 0.5
    assert start.details["nodes"] == "node[001-002]" and start.details["user"] == "root"
    (end,) = events(cluster, "job_end", job_id=jid)
    assert end.details["state"] == "COMPLETED"
    st = [s for s in cluster.sim.job_stats() if s.key == str(jid)][0]
    assert not st.running and st.xmit_bytes > 0 and st.share == pytest.approx(1.0, abs=0.01)


def test_default_traffic_and_one_node_jobs(cluster):
    # no comment and no default_traffic: the job runs, sends nothing, and says why
    jid = submit(cluster, "-N", "2", "--wrap", "sleep 1")
    ev = wait_for(lambda: events(cluster, "job_start", job_id=jid), 20, "job_start")
    assert ev[0].details["traffic"] == "none" and "default_traffic" in ev[0].details["why"]
    wait_for(lambda: events(cluster, "job_end", job_id=jid), 30, "job_end")


def test_a_bad_comment_is_a_job_error_and_no_traffic(cluster):
    wait_for(lambda: all_idle(cluster), 30, "all nodes idle")
    a = xmit(cluster)
    jid = submit(cluster, "-N", "2", "--comment", "ibsim: pattern=all_to_all load=3", "--wrap", "sleep 2")
    err = wait_for(lambda: events(cluster, "job_error", job_id=jid), 20, "the job_error event")
    assert "load" in err[0].details["error"] and "<= 1" in err[0].details["error"]
    wait_for(lambda: events(cluster, "job_end", job_id=jid), 30, "job_end")
    assert grew(a, xmit(cluster)) == set()
    assert not [s for s in cluster.sim.job_stats() if s.key == str(jid)]


def test_an_ib_unplug_drains_the_node_through_the_health_check(cluster):
    wait_for(lambda: all_idle(cluster), 30, "all nodes idle")
    cluster.sim.inject("unplug", "node004 HCA-1")
    wait_for(lambda: "drain" in node_state(cluster, "node004"), 20, "node004 drained", interval=0.5)
    code, out = cluster.exec("ctl", "sinfo", "-h", "-R", "-n", "node004", "-o", "%E")
    assert out.strip().startswith("ibsim-nhc: mlx5_0 port 1 is 1: DOWN"), out
    ev = wait_for(lambda: [e for e in events(cluster, "node_state", node="node004") if "drain" in e.details["state"]],
                  10, "a node_state event with drain")
    assert ev[-1].node_desc == "node004 HCA-1" and ev[-1].details["reason"].startswith("ibsim-nhc:")
    cluster.sim.inject("replug", "node004 HCA-1")
    wait_for(lambda: node_state(cluster, "node004") == "idle", 30, "node004 resumed", interval=0.5)


def test_a_stopped_node_fails_the_job_which_is_requeued_and_its_traffic_follows(cluster, docker_client):
    wait_for(lambda: all_idle(cluster), 30, "all nodes idle")
    jid = submit(cluster, "-N", "2", "-J", "moving", "--comment", "ibsim: pattern=shift k=1 load=0.4",
                 "--wrap", "sleep 300")
    wait_for(lambda: job_state(cluster, jid) == "RUNNING", 20, "RUNNING")
    (first,) = wait_for(lambda: events(cluster, "job_start", job_id=jid), 5, "job_start")
    nodes0 = first.details["nodes"]
    from ibsim.hosts.slurmconf import expand_hostlist
    victim = expand_hostlist(nodes0)[1]
    cluster.container(victim).stop(timeout=1)
    try:
        # Slurm: not responding after SlurmdTimeout, DOWN, the job requeued, started again elsewhere
        again = wait_for(lambda: [e for e in events(cluster, "job_start", job_id=jid) if e.details["run"] == 1],
                         120, "the requeued job's second start", interval=0.5)
        nodes1 = expand_hostlist(again[0].details["nodes"])
        assert victim not in nodes1 and len(nodes1) == 2
        a = xmit(cluster)
        time.sleep(1.0)
        assert grew(a, xmit(cluster)) == set(nodes1)      # the traffic follows the job
        evs = [e for e in list(cluster.sim.events) if e.kind in ("link_down", "node_state", "job_requeue",
                                                                  "job_start")]
        order = []
        for e in evs:
            if e.kind == "link_down" and cluster.host(victim).node_desc in (e.node_desc, e.peer_desc) \
                    and "link_down" not in order:
                order.append("link_down")
            elif e.kind == "node_state" and e.details["node"] == victim and "down" in e.details["state"] \
                    and "node_down" not in order:
                order.append("node_down")
            elif e.kind == "job_requeue" and e.details["job_id"] == jid:
                order.append("job_requeue")
            elif e.kind == "job_start" and e.details["job_id"] == jid:
                order.append(f"job_start{e.details['run']}")
        assert order == ["job_start0", "link_down", "node_down", "job_requeue", "job_start1"], order
        runs = [s for s in cluster.sim.job_stats() if s.key == str(jid)]
        assert [s.running for s in runs] == [False, True]
    finally:
        cluster.container(victim).start()
        cluster.exec("ctl", "scancel", str(jid))
    wait_for(lambda: node_state(cluster, victim) == "idle", 60, f"{victim} back to idle", interval=0.5)
    wait_for(lambda: events(cluster, "job_end", job_id=jid), 20, "job_end after scancel")
    assert events(cluster, "job_end", job_id=jid)[-1].details["state"] == "CANCELLED"


def test_job_events_and_slurm_logs_reach_rsyslog_and_graphite_web(cluster, servers):
    rs, gw = servers
    jid = submit(cluster, "-N", "2", "-J", "logged", "--comment", "ibsim: pattern=permutation rate=10Gbps",
                 "--wrap", "sleep 1")
    wait_for(lambda: events(cluster, "job_end", job_id=jid), 30, "job_end")

    def docs():
        return [d for d in rs.documents() if "ib" in d or "log" in d]

    def job_docs():
        return [d for d in docs() if d.get("ib", {}).get("kind") in ("job_start", "job_end")
                and (d["ib"].get("details") or {}).get("job_id") == jid]

    got = wait_for(lambda: len(job_docs()) >= 2 and job_docs(), 20, "job documents in rsyslog")
    assert [d["ib"]["kind"] for d in got] == ["job_start", "job_end"]
    logs = wait_for(lambda: [d for d in docs() if "program" in (d.get("log") or {})], 20, "log documents")
    by = {(d["host"]["name"], d["log"]["program"]) for d in logs}
    assert all(d["message"] for d in logs)
    assert ("ctl", "slurmctld") in by
    assert any(h in HOSTS and p == "slurmd" for h, p in by)
    base = f"http://127.0.0.1:{gw.ports['http']}"

    def gw_events():
        with urllib.request.urlopen(base + "/events/get_data?from=-1d&until=now&tags=job_start",
                                    timeout=10) as r:
            return json.loads(r.read())

    posted = wait_for(gw_events, 20, "job_start events in graphite-web")
    assert any(f"job_id={jid}" in e["data"] for e in posted)
    with urllib.request.urlopen(base + "/events/get_data?from=-1d&until=now&tags=log", timeout=10) as r:
        assert json.loads(r.read()) == []            # log lines are not posted as Graphite events


def test_cli_exec_status_and_the_submit_hint(cluster, capsys):
    import subprocess
    import sys
    run = lambda *a: subprocess.run([sys.executable, "-m", "ibsim", "cluster", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    r = run("exec", NAME, "ctl", "sinfo", "-h", "-o", "%D %P")
    assert r.returncode == 0 and r.stdout.split() == ["4", "compute*"], r.stderr
    r = run("exec", NAME, "node001", "sh", "-c", "exit 3")
    assert r.returncode == 3
    r = run("exec", NAME, "node999", "true")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and f"no container {NAME}-node999" in r.stderr
    r = run("status", NAME)
    assert f"{NAME}-ctl" in r.stdout and "controller" in r.stdout
    from ibsim.cli.cluster import _print_status
    _print_status(cluster.status())
    out = capsys.readouterr().out
    assert f"submit: docker exec {NAME}-ctl sbatch -N 4 --comment 'ibsim: pattern=all_to_all load=0.6'" in out
    assert f"cluster exec {NAME} ctl squeue" in out


def test_down_leaves_nothing_labelled(cluster, docker_client, tmp_path):
    res = cluster.down(tmp_path / "run")
    assert (tmp_path / "run" / "jobs.csv").is_file()
    assert "slurm" in json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert res is not None
    objs = cluster_objects(docker_client, NAME)
    assert objs["containers"] == [] and objs["networks"] == []
