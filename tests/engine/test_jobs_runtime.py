"""Jobs started and ended at run time from another thread, job accounting, external events."""

import threading

import numpy as np
import pytest

from ibsim import compile_fabric
from ibsim.engine import JobStat, Simulation
from ibsim.errors import ScenarioError
from ibsim.fabric import COUNTER_ROW
from ibsim.topology import single_switch
from ibsim.traffic import Job

R = COUNTER_ROW
HOSTS = ["node001 HCA-1", "node002 HCA-1"]
OTHERS = ["node003 HCA-1", "node004 HCA-1"]


def make(**kw):
    return Simulation(compile_fabric(single_switch(8)), seed=5, tick=0.1, **kw)


def ca_ports(sim, names):
    """The CA port of each host (port 1 of each single-port HCA)."""
    f = sim.fabric
    return np.array([f.port_index(int(f.node_guid[f.find_node(n)]), 1) for n in names])


def totals(sim, ports, row):
    return sim.counted_totals()[R[row], ports].astype(np.int64)


def from_thread(fn, *args, **kw):
    """Call ``fn(*args, **kw)`` in another thread; return what it raised (or None)."""
    out = []

    def run():
        try:
            fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            out.append(exc)
    th = threading.Thread(target=run)
    th.start()
    th.join()
    return out[0] if out else None


def test_job_labels_key_and_announce_defaults():
    j = Job("cfd", "shift", load=0.5)
    assert j.labels == {} and j.announce is True and j.key == "cfd"
    k = Job("cfd", "shift", load=0.5, labels={"job_id": 12, "user": "alice"})
    assert k.labels == {"job_id": "12", "user": "alice"} and k.key == "12"
    with pytest.raises(ScenarioError, match="labels"):
        Job("cfd", "shift", load=0.5, labels=["job_id"])


def test_started_job_counts_from_the_next_tick_on_its_hosts_only():
    sim = make()
    sim.run(until=0.3)
    mine, others = ca_ports(sim, HOSTS), ca_ports(sim, OTHERS)
    assert from_thread(sim.start_job, Job("cfd", "shift", hosts=HOSTS, load=0.5,
                                          labels={"job_id": "12", "job_name": "cfd"})) is None
    assert sim.jobs == [] and sim.job_stats() == []            # posted, not yet in force
    before = totals(sim, mine, "port_xmit_data")
    before_rcv = totals(sim, mine, "port_rcv_data")
    sim.step()
    assert sim.jobs[0].start_s == pytest.approx(0.3)
    assert (totals(sim, mine, "port_xmit_data") > before).all()
    sim.run(until=1.0)
    assert (totals(sim, others, "port_xmit_data") == 0).all()
    st, = sim.job_stats()
    assert isinstance(st, JobStat)
    assert (st.name, st.key, st.pattern, st.hosts, st.running, st.end_s) == \
        ("cfd", "12", "shift", tuple(HOSTS), True, None)
    assert st.start_s == pytest.approx(0.3)
    assert st.xmit_bytes == 4 * int((totals(sim, mine, "port_xmit_data") - before).sum())
    assert st.rcv_bytes == 4 * int((totals(sim, mine, "port_rcv_data") - before_rcv).sum()) > 0
    assert st.share == pytest.approx(1.0)
    assert sim.snapshot().jobs == (st,)


def test_end_job_stops_growth_and_freezes_the_stats():
    sim = make()
    sim.add_job(Job("bg", "shift", hosts=OTHERS, load=0.5))
    sim.run(until=0.2)
    mine = ca_ports(sim, HOSTS)
    sim.start_job(Job("cfd", "shift", hosts=HOSTS, load=1.0, announce=False))
    sim.run(until=1.0)
    assert from_thread(sim.end_job, "cfd") is None
    sim.step()
    frozen = totals(sim, mine, "port_xmit_data")
    sim.run(until=2.0)
    assert (totals(sim, mine, "port_xmit_data") == frozen).all()
    bg, cfd = sim.job_stats()
    assert not cfd.running and cfd.end_s == pytest.approx(1.0) and sim.jobs[1].stop_s == pytest.approx(1.0)
    assert cfd.xmit_bytes == 4 * int(frozen.sum())
    assert bg.running and bg.xmit_bytes > 0
    # both ran between 0.2 and 1.0 s, cfd at twice bg's load: two thirds of the CA traffic
    assert cfd.share == pytest.approx(2 / 3, rel=1e-3)
    # announce=False: the workload says nothing of cfd; bg is announced as before
    assert [e.details["job"] for e in sim.events if e.kind in ("job_start", "job_stop")] == ["bg"]
    sim.end_job("cfd")                       # already ended: nothing happens
    sim.end_job("nosuchjob")
    sim.step()
    assert sim.job_stats()[1] == cfd


def test_a_requeued_name_ends_the_running_run():
    sim = make()
    job = Job("cfd", "shift", hosts=HOSTS, load=0.5, labels={"job_id": "7"})
    sim.start_job(job)
    sim.run(until=0.5)
    sim.end_job("cfd")
    sim.step()
    sim.start_job(job)
    sim.run(until=1.0)
    sim.end_job("cfd")
    sim.step()
    first, second = sim.job_stats()
    assert (first.end_s, second.start_s, second.end_s) == pytest.approx((0.5, 0.6, 1.0))
    assert not second.running and second.key == "7"
    assert first.xmit_bytes > 0 and second.xmit_bytes > 0


def test_counter_resets_do_not_change_job_stats():
    sim = make()
    sim.start_job(Job("cfd", "shift", hosts=HOSTS, load=0.5))
    sim.run(until=1.0)
    st = sim.job_stats()[0]
    with sim.lock:
        sim.reset_counters(np.arange(sim.fabric.n_ports), [R["port_xmit_data"], R["port_rcv_data"],
                                                          R["port_xmit_wait"]])
    assert sim.state.counters[R["port_xmit_data"]].sum() == 0
    assert sim.job_stats()[0] == st


def test_xmit_wait_is_counted_on_the_jobs_ports_since_start():
    sim = make()
    # incast: three hosts send to one at full rate; the senders wait
    names = HOSTS + OTHERS
    sim.start_job(Job("hot", "incast", hosts=names, load=1.0))
    sim.run(until=1.0)
    ports = ca_ports(sim, names)
    st = sim.job_stats()[0]
    assert st.xmit_wait > 0 and st.xmit_wait == int(totals(sim, ports, "port_xmit_wait").sum())


@pytest.mark.parametrize("hosts, match", [(["node001 HCA-1"], "at least 2 hosts"),
                                          (["node001 HCA-1", "nosuch"], "nosuch"),
                                          (["node001 HCA-1", "switch01"], "not a cabled CA"),
                                          (99, "hosts=99")])
def test_start_job_with_bad_hosts_raises_in_the_calling_thread(hosts, match):
    sim = make()
    exc = from_thread(sim.start_job, Job("bad", "shift", hosts=hosts, load=0.5))
    assert isinstance(exc, ScenarioError) and exc.args and match in str(exc)
    sim.step()
    assert sim.jobs == []


def test_start_job_with_a_pattern_that_does_not_fit_raises():
    sim = make()
    with pytest.raises(ScenarioError, match="targets"):
        sim.start_job(Job("bad", "incast", hosts=HOSTS, load=0.5, params={"targets": 2}))


def test_notes_reach_listeners_observers_and_the_events_in_order():
    sim = make()
    seen, snaps = [], []
    sim.add_listener(lambda ev, port: seen.append((ev.kind, port)))
    sim.observe(0.1, snaps.append)
    sim.step()
    from_thread(sim.note, "job_start", {"job_id": "12", "nodes": "node[001-002]"})
    from_thread(sim.note, "log", {"host": "node001", "program": "slurmd", "message": "launched"},
                node_desc="node001 HCA-1", wall_time=1_700_000_000.5)
    sim.step()
    assert seen == [("job_start", None), ("log", None)]
    evs = snaps[-1].events
    assert [e.kind for e in evs] == ["job_start", "log"]
    assert evs[0].details == {"job_id": "12", "nodes": "node[001-002]"}
    assert evs[0].time_s == pytest.approx(0.1) and not evs[0].own_wall_time
    assert evs[1].node_desc == "node001 HCA-1"
    assert evs[1].wall_time == 1_700_000_000.5 and evs[1].own_wall_time
