"""Logstash exporter: the documents, then the real rsyslog (imtcp/imudp + mmjsonparse)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from exporters.logstash import encode, event_document, sample_documents
from ibsim.engine import Event
from ibsim.export import COUNTER_NAMES, ExporterSpec, attach, iso_utc, selected_ports
from ibsim.fabric import compile_fabric

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_event_document_fields_and_types():
    ev = Event(2.5, "link_down", 0x100, "leaf1", 3, 0x200, "spine1", 1, 128,
               {"reason": "flap", "discarded_packets": 12}, 1_700_000_002.5)
    d = event_document(ev, tags=("ibsim", "run1"), host_name="simhost")
    assert d == {
        "@timestamp": "2023-11-14T22:13:22.500Z", "@version": "1", "message": ev.message(),
        "type": "ibsim", "tags": ["ibsim", "run1", "link_down"], "host": {"name": "leaf1"},
        "ib": {"kind": "link_down", "time_s": 2.5, "node_guid": "0x0000000000000100", "node_desc": "leaf1",
               "port": 3, "peer_guid": "0x0000000000000200", "peer_desc": "spine1", "peer_port": 1,
               "trap": 128, "details": {"reason": "flap", "discarded_packets": 12}}}
    fabric_wide = event_document(Event(3.0, "reroute", details={"engine": "ftree"}, wall_time=0.0),
                                 host_name="simhost")
    assert fabric_wide["host"] == {"name": "simhost"}
    assert set(fabric_wide["ib"]) == {"kind", "time_s", "details"}
    assert b"\n" not in encode(d) and json.loads(encode(d)) == d


def test_sample_documents_carry_raw_counters(tiny_topology, helpers):
    f = compile_fabric(tiny_topology)
    snap = helpers.fixed_snapshot(f)
    ports = selected_ports(f, "cabled")
    docs = sample_documents(snap, COUNTER_NAMES, ports)
    assert len(docs) == ports.size
    last = docs[-1]
    assert last["ib"]["node_desc"] == "node04 HCA-1" and last["ib"]["counters"]["port_xmit_data"] == 2**64 - 1
    assert last["ib"]["peer_guid"] == "0x0000000000000200" and last["tags"] == ["ibsim", "counters"]
    assert all(d["ib"]["counters"]["symbol_error"] == 0 for d in docs)


# ---------------------------------------------------------------------- the real rsyslog
def _key(doc):
    ib = doc["ib"]
    return (ib["kind"], round(ib["time_s"], 6), ib.get("node_guid"), ib.get("port"))


def _ev_key(e):
    return (e.kind, round(e.time_s, 6), f"0x{e.node_guid:016x}" if e.node_guid is not None else None, e.port)


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_rsyslog_receives_every_event_with_its_types(rsyslog, helpers):
    sim = helpers.small_sim()
    specs = [ExporterSpec("logstash", {"port": rsyslog.tcp, "tags": ["ibsim", "tcp"]}),
             ExporterSpec("logstash", {"port": rsyslog.udp, "protocol": "udp", "tags": ["ibsim", "udp"]}),
             ExporterSpec("logstash", {"port": rsyslog.tcp, "tags": ["ibsim", "samples"], "kinds": ["none"],
                                       "samples": True, "sample_counters": ["port_xmit_data", "link_downed"]},
                          every=4.0)]
    stage = attach(sim, specs, every=0.5, until=8.0)
    sim.run(until=8.0)
    stats = stage.close()
    n = len(sim.events)
    ports = selected_ports(sim.fabric, "cabled")
    assert n > 8 and stats["logstash"]["sent"] == n == stats["logstash#2"]["unconfirmed"]
    assert stats["logstash#2"]["sent"] == 0 and stats["logstash"]["unconfirmed"] == 0   # udp confirms nothing
    assert stats["logstash#3"]["sent"] == 2 * ports.size
    helpers.wait_until(lambda: len(rsyslog.documents()) >= 2 * n + 2 * ports.size, 30,
                       "rsyslog to write every document")
    docs = rsyslog.documents()
    assert len(docs) == 2 * n + 2 * ports.size and not (rsyslog.dir / "out" / "unparsed.log").exists()
    want = sorted(_ev_key(e) for e in sim.events)
    for proto in ("tcp", "udp"):
        got = [d for d in docs if d["tags"][1] == proto]
        assert sorted(_key(d) for d in got) == want, proto
        for d in got:
            assert ISO_MS.fullmatch(d["@timestamp"]) and d["@version"] == "1" and d["type"] == "ibsim"
            assert d["tags"][-1] == d["ib"]["kind"] and isinstance(d["host"], dict)
            assert d["@timestamp"] == iso_utc(stage.timemap(d["ib"]["time_s"]))
            if "port" in d["ib"]:
                assert isinstance(d["ib"]["port"], int) and isinstance(d["ib"]["trap"], int)
                assert d["host"]["name"] == d["ib"]["node_desc"]
        downs = [d for d in got if d["ib"]["kind"] == "link_down"]
        assert downs and all(isinstance(d["ib"]["details"]["discarded_packets"], int) for d in downs)
    samples = [d for d in docs if d["tags"][1] == "samples"]
    final = {(d["ib"]["node_guid"], d["ib"]["port"]): d["ib"]["counters"] for d in samples
             if d["ib"]["time_s"] == 8.0}
    f = sim.fabric
    xmit = sim.state.counters[12]
    for p in ports:
        c = final[(f"0x{int(f.node_guid[f.node_of_port[p]]):016x}", int(f.port_num[p]))]
        assert c["port_xmit_data"] == int(xmit[p]) and isinstance(c["link_downed"], int)


def _run_with_outage(rsyslog, helpers, buffer: int):
    """Run to 3 s, stop rsyslog, run to 7 s, restart it, run to 10 s; returns (sim, stats, before)."""
    sim = helpers.small_sim()
    stage = attach(sim, [ExporterSpec("logstash", {"port": rsyslog.tcp, "buffer": buffer})],
                   every=0.5, until=10.0)
    sim.run(until=3.0)
    before = len(sim.events)
    helpers.wait_until(lambda: len(rsyslog.documents()) == before, 30, "the first events")
    rsyslog.stop()                                      # SIGTERM to its PID; waits for the exit
    sim.run(until=7.0)
    during = len(sim.events) - before
    st = stage.stats()["logstash"]
    assert st["errors"] >= 1 and st["sent"] == before
    rsyslog.start()                                     # same ports
    sim.run(until=10.0)
    stats = stage.close()["logstash"]
    return sim, stats, before, during


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_receiver_restart_loses_nothing_within_the_buffer(rsyslog, helpers):
    sim, stats, before, during = _run_with_outage(rsyslog, helpers, buffer=1000)
    n = len(sim.events)
    assert during >= 3
    helpers.wait_until(lambda: len(rsyslog.documents()) >= n, 30, "every event after the restart")
    docs = rsyslog.documents()
    assert sorted(_key(d) for d in docs) == sorted(_ev_key(e) for e in sim.events)
    assert stats["sent"] == n and stats["dropped"] == 0 and stats["reconnects"] == 1


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_buffer_overflow_during_an_outage_is_counted(rsyslog, helpers):
    sim, stats, before, during = _run_with_outage(rsyslog, helpers, buffer=2)
    lost = during - 2
    assert lost >= 1
    n = len(sim.events)
    helpers.wait_until(lambda: len(rsyslog.documents()) >= n - lost, 30, "the surviving events")
    docs = rsyslog.documents()
    kept = sim.events[:before] + sim.events[before + lost:]   # the oldest of the outage were dropped
    assert sorted(_key(d) for d in docs) == sorted(_ev_key(e) for e in kept)
    assert stats["dropped"] == lost and stats["sent"] == n - lost


@pytest.mark.requires_entry_points
def test_udp_to_nobody_is_fire_and_forget(helpers):
    sim = helpers.small_sim()
    port = helpers.free_port()
    stage = attach(sim, [ExporterSpec("logstash", {"port": port, "protocol": "udp"})], every=1.0, until=4.0)
    sim.run(until=4.0)
    st = stage.close()["logstash"]
    assert st["sent"] == 0 and st["unconfirmed"] + st["dropped"] == len(sim.events)
    assert np.isfinite(sim.time_s)


def test_log_event_document_is_the_line_from_its_host():
    ev = Event(12.1, "log", node_desc="node001 HCA-1", details={
        "host": "node001", "program": "slurmstepd", "message": "step 3 converged", "level": "info",
        "job_id": "12"}, wall_time=1_700_000_012.041, own_wall_time=True)
    d = event_document(ev, host_name="simhost")
    assert d == {"@timestamp": "2023-11-14T22:13:32.041Z", "@version": "1", "message": "step 3 converged",
                 "type": "ibsim", "tags": ["ibsim", "log"], "host": {"name": "node001"},
                 "log": {"program": "slurmstepd", "level": "info"},
                 "ib": {"kind": "log", "time_s": 12.1, "node_desc": "node001 HCA-1",
                        "details": {"job_id": "12"}}}
    bare = event_document(Event(1.0, "log", details={"message": "hello"}, wall_time=0.0), host_name="simhost")
    assert bare["host"] == {"name": "simhost"} and "log" not in bare and set(bare["ib"]) == {"kind", "time_s"}
    job = event_document(Event(2.0, "job_end", details={"job_id": "12", "state": "COMPLETED"}, wall_time=0.0),
                         host_name="simhost")
    assert job["message"].startswith("t=2.000s job_end") and job["ib"]["details"]["state"] == "COMPLETED"


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_rsyslog_receives_log_lines_and_job_events(rsyslog, helpers):
    from ibsim.engine import Simulation
    from ibsim.topology import single_switch
    sim = Simulation(compile_fabric(single_switch(4)), seed=1)
    stage = attach(sim, [ExporterSpec("logstash", {"port": rsyslog.tcp, "host_name": "simhost"})],
                   every=0.5, until=2.0)
    sim.run(until=0.5)
    sim.note("job_start", {"job_id": "12", "job_name": "cfd", "nodes": "node[001-002]"})
    sim.note("log", {"host": "node001", "program": "slurmd", "message": "launched 12.0"},
             node_desc="node001 HCA-1", wall_time=1_700_000_000.25)
    sim.note("job_end", {"job_id": "12", "state": "COMPLETED"})
    sim.run(until=2.0)
    stats = stage.close()
    assert stats["logstash"]["sent"] == 3 and stats["logstash"]["errors"] == 0
    helpers.wait_until(lambda: len(rsyslog.documents()) >= 3, 30, "rsyslog to write the documents")
    docs = rsyslog.documents()
    assert [d["ib"]["kind"] for d in docs] == ["job_start", "log", "job_end"]
    start, line, end = docs
    assert line["message"] == "launched 12.0" and line["host"] == {"name": "node001"}
    assert line["log"] == {"program": "slurmd"}
    assert line["@timestamp"] == "2023-11-14T22:13:20.250Z"        # the line's own time, not mapped
    assert start["host"] == {"name": "simhost"} and start["ib"]["details"]["nodes"] == "node[001-002]"
    assert start["@timestamp"] == iso_utc(stage.timemap(start["ib"]["time_s"]))
    assert end["ib"]["details"] == {"job_id": "12", "state": "COMPLETED"}
