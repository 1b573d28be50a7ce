"""Engine invariants: conservation, saturation, capacity, determinism, faults and reroutes."""

import numpy as np
import pytest

from ibsim import compile_fabric, fat_tree
from ibsim.engine import Simulation
from ibsim.engine.simulation import xmit_wait_rate
from ibsim.errors import ScenarioError
from ibsim.fabric import ACTIVE, COUNTER_ROW, DISABLED, DOWN, INIT, POLLING, legacy_view
from ibsim.fabric.index import SPEED_NAMES
from ibsim.faults import Fault
from ibsim.topology import single_switch
from ibsim.traffic import Job

R = COUNTER_ROW


def make(radix=8, levels=2, routing="ftree", **kw):
    f = compile_fabric(fat_tree(radix, levels))
    return Simulation(f, seed=kw.pop("seed", 3), routing=routing, sweep_delay=kw.pop("sweep_delay", 2.0), **kw)


def test_what_one_end_sends_the_other_receives_every_tick():
    sim = make()
    sim.add_job(Job("a2a", "all_to_all", load=0.7))
    sim.add_job(Job("perm", "permutation", hosts=12, load=0.9, start_s=0.5, stop_s=1.5))
    sim.schedule(Fault("flap", "leaf1:5", 0.3, {"period_s": 0.4, "count": 2}))
    f = sim.fabric
    cab = np.flatnonzero(f.peer_of_port >= 0)
    peer = f.peer_of_port[cab]
    prev = sim.state.counters.copy()
    checks = 0

    def check(snap):
        nonlocal prev, checks
        c = snap.counters
        for tx, rx in (("port_xmit_data", "port_rcv_data"), ("port_xmit_packets", "port_rcv_packets")):
            d_tx = c[R[tx]] - prev[R[tx]]
            d_rx = c[R[rx]] - prev[R[rx]]
            assert np.array_equal(d_tx[cab], d_rx[peer])
        assert (c >= prev).all()                         # counters never decrease
        assert (snap.xmit_rate <= sim.state.capacity * (1 + 1e-9) + 1e-6).all()   # no link above capacity
        prev = c.copy()
        checks += 1

    sim.observe(sim.tick_s, check)
    sim.run(until="3s")
    assert checks >= 30
    assert prev[R["port_xmit_data"]].sum() > 0


def test_legacy_counters_saturate_and_extended_keep_counting():
    sim = make(radix=4)
    sim.add_job(Job("perm", "shift", load=1.0, params={"k": 2}))
    sim.run(until="3s")             # 4x EDR at full rate fills 32-bit PortXmitData in ~1.4 s
    c = sim.state.counters
    busy = np.argmax(c[R["port_xmit_data"]])
    assert c[R["port_xmit_data"], busy] > 2**32
    assert legacy_view(c)[R["port_xmit_data"], busy] == 2**32 - 1


def test_same_seed_same_counters():
    def once():
        sim = make(seed=11)
        sim.add_job(Job("u", "uniform", hosts=20, load=0.5, params={"interval": 0.5}))
        sim.add_job(Job("p", "permutation", hosts=10, load=0.8))
        sim.schedule(Fault("ber", "leaf2:5", 0.2, {"rate": 1e-9}))
        sim.run(until="2s")
        return sim.state.counters.copy()
    assert np.array_equal(once(), once())


def test_incast_gets_max_min_share_and_xmit_wait():
    sim = make(radix=8)
    sim.add_job(Job("inc", "incast", hosts=9, load=1.0, params={"targets": 1}))
    sim.run(until="1s")
    f = sim.fabric
    port = sim.job_ports(0)[-1]          # the target CA port
    sw_port = f.peer_of_port[port]
    cap = sim.state.capacity[port]
    assert sim.xmit_rate[sw_port] == pytest.approx(cap, rel=1e-9)     # the target link is full
    src = sim.job_ports(0)[:-1]
    np.testing.assert_allclose(sim.xmit_rate[src], cap / 8, rtol=1e-9)  # 8 sources share it
    assert (sim.state.counters[R["port_xmit_wait"], src] > 0).all()


def _wait_fraction(sim, seconds):
    """PortXmitWait over the next ``seconds``, as a fraction of that time, per port."""
    w0 = sim.state.counters[R["port_xmit_wait"]].astype(float)
    sim.run(until=sim.time_s + seconds)
    w = sim.state.counters[R["port_xmit_wait"]] - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sim.state.capacity > 0, w / (sim.state.capacity / 4 * seconds), 0.0)


def _path(sim, dst_port):
    """Transmitting ports of the aggregate to ``dst_port``, source switch first."""
    a = int(np.flatnonzero(sim.rates.flows.dst_port == dst_port)[0])
    return [int(p) for p in sim.rates.paths[:, a] if p < sim.fabric.n_ports]


def test_incast_waits_upstream_of_the_hot_destination_not_at_it():
    """31 hosts send to one at line rate: the leaf port feeding the destination is the
    bottleneck, sends at line rate to an HCA that drains it, and counts no wait; the ports
    before it (spine downlink, source leaf uplinks) and the senders wait while they are not
    sending."""
    sim = make(radix=8)
    sim.add_job(Job("inc", "incast", load=1.0, params={"targets": 1}))
    sim.run(until="0.2s")
    frac = _wait_fraction(sim, 1.0)
    f, cap, x = sim.fabric, sim.state.capacity, sim.xmit_rate
    hosts = sim.job_ports(0)
    dst, src = hosts[-1], hosts[:-1]
    hot = f.peer_of_port[dst]                              # leaf port facing the destination
    assert x[hot] == pytest.approx(cap[hot], rel=1e-9)
    assert frac[dst] == 0 and frac[hot] == 0
    # each sender sends 1/31 of its link and waits the rest of the time
    np.testing.assert_allclose(frac[src], 1 - 1 / 31, rtol=1e-6)
    aggs = np.flatnonzero(sim.rates.flows.dst_port == dst)
    hops = sim.rates.paths[:, aggs]
    upstream = set(hops[hops < f.n_ports].tolist()) - {hot}
    assert len(upstream) > 7                               # spine downlink, source leaf uplinks
    for p in upstream:
        assert 0 < x[p] < cap[p]
        assert frac[p] == pytest.approx(1 - x[p] / cap[p], rel=1e-6), f.port_label(p)
    assert frac[list(upstream)].min() > 0.05
    # ports carrying no incast traffic wait not at all
    idle = np.setdiff1d(np.flatnonzero(f.is_switch & (f.peer_of_port >= 0)), list(upstream) + [hot])
    assert not frac[idle].any()


def test_bottleneck_mid_path_waits_upstream_only():
    """A core link trained at 1x SDR in the middle of a 5-hop path: the ports before it and the
    source wait, the degraded port (at line rate) and the ports after it do not; a flow on a
    healthy path waits nowhere."""
    sim = make(radix=4, levels=3, sweep_delay=0.5)
    h = ["node001 HCA-1", "node016 HCA-1", "node002 HCA-1", "node015 HCA-1"]
    sim.add_job(Job("p", "pairs", hosts=h, load=1.0, params={"pairs": [[h[0], h[1]], [h[2], h[3]]]}))
    sim.run(until="0.2s")
    f = sim.fabric
    a_src, a_dst, b_src, b_dst = (f.find_port(n + ":1") for n in h)
    path = _path(sim, a_dst)
    assert len(path) == 5
    mid = path[2]
    assert mid not in _path(sim, b_dst)
    sim.inject("degrade", f.port_label(mid), width="1x", speed="SDR")
    sim.run(until="1.5s")                                  # retrained and swept: Active again
    assert sim.state.port_state[mid] == ACTIVE and _path(sim, a_dst) == path
    frac = _wait_fraction(sim, 1.0)
    cap, x = sim.state.capacity, sim.xmit_rate
    r = x[a_src]
    assert r == pytest.approx(cap[mid], rel=1e-9) and r < cap[a_src] / 10
    for p in [a_src] + path[:2]:                           # upstream: waiting while not sending
        assert frac[p] == pytest.approx(1 - r / cap[p], rel=1e-6), f.port_label(p)
    for p in path[2:]:                                     # the bottleneck and downstream
        assert frac[p] == 0, f.port_label(p)
    for p in [b_src] + _path(sim, b_dst):                  # the other flow runs at line rate
        assert x[p] == pytest.approx(cap[p], rel=1e-9) and frac[p] == 0


def test_shift_on_ftree_fat_tree_is_contention_free():
    sim = make(radix=8, routing="ftree")
    sim.add_job(Job("shift", "shift", load=1.0, params={"k": 4}))
    sim.run(until="0.5s")
    hosts = sim.job_ports(0)
    np.testing.assert_allclose(sim.xmit_rate[hosts], sim.state.capacity[hosts], rtol=1e-9)
    assert sim.state.counters[R["port_xmit_wait"]].sum() == 0


def test_link_down_carries_nothing_then_reroute_restores_delivery():
    sim = make(radix=8, sweep_delay=1.0)
    sim.add_job(Job("a2a", "all_to_all", load=0.5))
    sim.run(until="0.5s")
    total_before = sim.xmit_rate[~sim.fabric.is_switch].sum()
    p = sim.fabric.find_port("leaf1:5")
    q = int(sim.fabric.peer_of_port[p])
    sim.inject("link_down", "leaf1:5", for_="5s")
    sim.run(until="0.7s")
    st = sim.state
    assert st.port_state[p] == DOWN and st.phys_state[p] == POLLING and st.port_state[q] == DOWN
    assert sim.xmit_rate[p] == 0 and sim.xmit_rate[q] == 0
    assert st.counters[R["link_downed"], p] == 1 and st.counters[R["link_downed"], q] == 1
    frozen = st.counters[:, [p, q]].copy()
    assert sim.xmit_rate[~sim.fabric.is_switch].sum() < total_before      # some flows blocked
    sim.run(until="2s")                                                     # sweep at 1.5 s reroutes
    assert np.array_equal(st.counters[R["port_xmit_data"], [p, q]], frozen[R["port_xmit_data"]])
    assert sim.xmit_rate[~sim.fabric.is_switch].sum() == pytest.approx(total_before, rel=1e-9)
    kinds = [e.kind for e in sim.events]
    assert "link_down" in kinds and "reroute" in kinds
    down = next(e for e in sim.events if e.kind == "link_down")
    assert down.trap == 128 and down.node_desc == "leaf1" and down.port == 5 and down.peer_port == 1
    sim.run(until="7s")                    # link back at 5.5 s: Init, Active after the next sweep
    assert st.port_state[p] == ACTIVE
    ev = [e.kind for e in sim.events]
    assert ev.index("link_up") < ev.index("port_state_change")


def test_link_comes_back_in_init_until_the_sweep():
    sim = make(radix=4, sweep_delay=1.0)
    sim.inject("link_down", "leaf1:3", for_="0.3s")
    sim.run(until="0.5s")
    p = sim.fabric.find_port("leaf1:3")
    assert sim.state.port_state[p] == INIT
    sim.run(until="1.6s")
    assert sim.state.port_state[p] == ACTIVE


def test_unplug_takes_all_links_of_a_node_and_replug_restores():
    sim = make(radix=4, sweep_delay=0.5)
    sim.add_job(Job("a2a", "all_to_all", load=0.5))
    sim.schedule(Fault("unplug", "node003 HCA-1", 0.2, {"for_s": 1.0}))
    sim.run(until="0.5s")
    f = sim.fabric
    hp = f.port_index(int(f.node_guid[f.find_node("node003 HCA-1")]), 1)
    assert sim.state.port_state[hp] == DOWN
    assert sim.xmit_rate[hp] == 0 and sim.rcv_rate[hp] == 0
    sim.run(until="2s")
    assert sim.state.port_state[hp] == ACTIVE and sim.xmit_rate[hp] > 0


def test_port_disable_shows_disabled():
    sim = make(radix=4)
    sim.inject("port_disable", "leaf1:3")
    sim.step()
    p = sim.fabric.find_port("leaf1:3")
    assert sim.state.phys_state[p] == DISABLED
    assert sim.state.phys_state[sim.fabric.peer_of_port[p]] == POLLING


def test_ber_symbol_errors_grow_with_traffic_only():
    sim = make(radix=4)
    sim.schedule(Fault("ber", "leaf1:1", 0.0, {"rate": 1e-8}))
    sim.run(until="1s")
    p = sim.fabric.find_port("leaf1:1")
    q = sim.fabric.peer_of_port[p]
    assert sim.state.counters[R["symbol_error"], [p, q]].sum() == 0        # no traffic, no errors
    sim.add_job(Job("pair", "pairs", hosts=["node001 HCA-1", "node003 HCA-1"], load=1.0,
                    params={"pairs": [["node003 HCA-1", "node001 HCA-1"]]}))
    sim.run(until="2s")
    # 12.5 GB/s * 8 bit * 1e-8 = 1000 errors/s at the receiving end (node001)
    assert 600 < sim.state.counters[R["symbol_error"], q] < 1400
    assert any(e.kind == "symbol_errors" and e.trap == 129 for e in sim.events)


def test_ber_above_threshold_takes_the_link_down():
    sim = make(radix=4)
    sim.schedule(Fault("ber", "leaf1:3", 0.0, {"rate": 1e-4, "down_above": 1e-6}))
    sim.run(until="0.2s")
    p = sim.fabric.find_port("leaf1:3")
    assert sim.state.port_state[p] == DOWN


def test_unknown_target_and_kind_are_clear():
    sim = make(radix=4)
    with pytest.raises(ScenarioError, match="no node"):
        sim.inject("unplug", "node999")
    with pytest.raises(ScenarioError, match="did you mean 'unplug'"):
        sim.inject("unplgu", "node001 HCA-1")
    with pytest.raises(ScenarioError, match="not cabled"):
        Simulation(compile_fabric(single_switch(8, hosts=4)), seed=1).inject("link_down", "switch01:8")


def test_job_host_count_uses_the_seed():
    a = make(seed=5)
    a.add_job(Job("j", "permutation", hosts=5, load=0.5))
    b = make(seed=5)
    b.add_job(Job("j", "permutation", hosts=5, load=0.5))
    assert np.array_equal(a.job_ports(0), b.job_ports(0))


def test_overlapping_jobs_cap_the_host_link():
    sim = make(radix=4)
    sim.add_job(Job("a", "shift", load=0.8, params={"k": 2}))
    sim.add_job(Job("b", "shift", load=0.8, params={"k": 2}))
    sim.run(until="0.2s")
    hosts = sim.job_ports(0)
    np.testing.assert_allclose(sim.xmit_rate[hosts], sim.state.capacity[hosts], rtol=1e-9)


def test_xmit_wait_formula():
    # unsent demand as a share of capacity, within the time the port is not sending
    cap = np.array([100.0, 100.0, 100.0, 100.0, 0.0])
    unsent = np.array([50.0, 50.0, 300.0, 0.0, 5.0])
    carried = np.array([100.0, 20.0, 10.0, 10.0, 0.0])
    np.testing.assert_allclose(xmit_wait_rate(cap, unsent, carried), [0.0, 12.5, 22.5, 0.0, 0.0])


def test_link_up_may_name_the_other_end():
    sim = make(radix=4, sweep_delay=0.2)
    sim.inject("link_down", "leaf1:3")
    sim.step()
    p = sim.fabric.find_port("leaf1:3")
    q = sim.fabric.peer_of_port[p]
    sim.inject("link_up", sim.fabric.port_label(q))
    sim.run(until="1s")
    assert sim.state.port_state[p] == ACTIVE and sim.state.port_state[q] == ACTIVE


def test_management_packets_are_counted_per_link_by_the_simulation():
    from ibsim.engine.simulation import MAD_WORDS
    f = compile_fabric(fat_tree(4, 2))
    sim = Simulation(f, seed=1)
    cabled = np.flatnonzero(f.peer_of_port >= 0)
    rng = np.random.default_rng(3)
    few = [int(cabled[0]), int(cabled[0]), int(cabled[5])]
    many = rng.choice(cabled, size=8 * f.n_ports).tolist()       # the bincount path
    for egress in (few, many):
        before = sim.snapshot().counters.astype(np.int64)
        sim.count_mgmt(egress)
        assert (sim.state.counters.astype(np.int64) == before).all()   # noted, not yet applied
        sim.step()                                                       # a tick applies them
        d = sim.state.counters.astype(np.int64) - before
        n = np.bincount(egress, minlength=f.n_ports)
        m = np.bincount(f.peer_of_port[egress], minlength=f.n_ports)
        assert (d[COUNTER_ROW["port_xmit_packets"]] == n).all()
        assert (d[COUNTER_ROW["unicast_xmit_packets"]] == n).all()
        assert (d[COUNTER_ROW["port_xmit_data"]] == MAD_WORDS * n).all()
        assert (d[COUNTER_ROW["port_rcv_packets"]] == m).all()
        assert (d[COUNTER_ROW["port_rcv_data"]] == MAD_WORDS * m).all()
        assert (d[COUNTER_ROW["unicast_rcv_packets"]] == m).all()


def _programming_sim(settle):
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1, tick=0.1, sm_settle=settle)
    sim.add_job(Job("a2a", "all_to_all", load=0.5))
    sim.step()
    sim.set_external_sm(True)                          # an SM takes over, keeping the tables
    return sim


def test_the_data_plane_reroutes_once_the_sm_stops_programming():
    sim = _programming_sim(0.5)
    base = sim.stats["reallocations"]
    block = bytes(sim.state.lft[0, :64])
    for _ in range(20):                                # 2 s of an SM writing LFT blocks
        sim.sm_set_lft_block(0, 0, block)
        sim.step()
    assert sim.stats["reallocations"] == base          # no re-walk while it programs
    for _ in range(4):
        sim.step()                                     # 0.4 s quiet: not yet
    assert sim.stats["reallocations"] == base
    sim.step()
    sim.step()                                         # 0.5 s quiet: once
    assert sim.stats["reallocations"] == base + 1
    for _ in range(10):
        sim.step()
    assert sim.stats["reallocations"] == base + 1


def test_sm_settle_zero_reroutes_at_the_next_tick_and_faults_never_wait():
    sim = _programming_sim(0.0)
    base = sim.stats["reallocations"]
    sim.sm_set_lft_block(0, 0, bytes(sim.state.lft[0, :64]))
    sim.step()
    assert sim.stats["reallocations"] == base + 1
    sim = _programming_sim(5.0)
    p = sim.fabric.find_port("leaf1:3")
    assert sim.xmit_rate[p] > 0
    sim.sm_set_lft_block(0, 0, bytes(sim.state.lft[0, :64]))
    sim.inject("link_down", "leaf1:3")                 # while the SM programs: applied at once
    sim.step()
    assert sim.xmit_rate[p] == 0


def test_negative_sm_settle_is_refused():
    with pytest.raises(ScenarioError, match="sm_settle"):
        Simulation(compile_fabric(fat_tree(4, 2)), sm_settle=-1)


def test_a_reallocation_computed_from_older_inputs_is_dropped():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    sim.add_job(Job("a2a", "all_to_all", load=0.5))
    sim.step()
    with sim.lock:
        sim.rates.invalidate(alloc=True)
        old = sim.rates.compute(sim.rates.inputs(sim.workload.demands, None))  # computed outside the lock ...
        sim.inject("link_down", "leaf1:3")
        sim.step()                                            # ... while a newer one is installed
        n = sim.stats["reallocations"]
        rate = sim.xmit_rate.copy()
        assert not sim.rates.due
        sim.rates.install(old)
    assert sim.stats["reallocations"] == n and np.array_equal(sim.xmit_rate, rate)
    assert sim.rates.due                                      # the next tick recomputes


def test_degrade_retrains_a_link_slower_and_for_restores_it():
    f = compile_fabric(fat_tree(4, 2))
    sim = Simulation(f, seed=1, sweep_delay=0.5)
    sim.add_job(Job("a2a", "all_to_all", load=0.9))
    sim.step()
    p = f.find_port("leaf1:3")
    q = int(f.peer_of_port[p])
    full = sim.state.capacity[p]
    downed = sim.state.counters[COUNTER_ROW["link_downed"], [p, q]].copy()
    sim.inject("degrade", f.port_label(q), width="1x", speed="SDR", for_="5s")   # by the other end
    sim.step()
    assert (sim.state.port_state[[p, q]] == INIT).all()            # retrained: Init until the sweep
    assert (sim.state.counters[COUNTER_ROW["link_downed"], [p, q]] == downed + 1).all()
    assert (sim.state.width[[p, q]] == 1).all() and sim.state.capacity[p] == pytest.approx(2e9 / 8)
    for _ in range(10):
        sim.step()
    assert (sim.state.port_state[[p, q]] == ACTIVE).all()
    assert sim.xmit_rate[p] == pytest.approx(2e9 / 8)               # the slow link is the bottleneck
    assert full > 40 * sim.state.capacity[p]
    for _ in range(50):
        sim.step()                                                 # 'for' ran out: full rate again
    assert sim.state.capacity[p] == full and (sim.state.width[[p, q]] == 4).all()
    ups = [e for e in sim.events if e.kind == "link_up"]
    assert ups[0].details["width"] == "1x" and ups[0].details["speed"] == "SDR"
    assert "width" not in ups[-1].details


def test_degrade_of_a_down_link_applies_when_it_comes_up():
    f = compile_fabric(fat_tree(4, 2))
    sim = Simulation(f, seed=1, sweep_delay=0.5)
    p = f.find_port("leaf2:4")
    sim.inject("link_down", "leaf2:4")
    sim.step()
    sim.inject("degrade", "leaf2:4", speed="QDR")
    sim.step()
    assert sim.state.width[p] == 0                                 # still down
    sim.inject("link_up", "leaf2:4")
    sim.step()
    assert sim.state.width[p] == 4 and SPEED_NAMES[sim.state.speed[p]] == "QDR"


@pytest.mark.parametrize("params, msg", [({}, "width"), ({"width": "3x"}, "3x"), ({"speed": "FAST"}, "FAST")])
def test_degrade_needs_a_valid_width_or_speed(params, msg):
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    with pytest.raises(ScenarioError, match=msg):
        sim.inject("degrade", "leaf1:3", **params)


def test_sm_set_blocks_are_state_and_snapshots_hold_copies():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    sim.sm_set_block("pkeys", (5, 0), b"\xff\xff".ljust(64, b"\0"))
    sim.sm_set_switch_info(0, 300, 18)
    snap = sim.snapshot()
    sim.sm_set_block("pkeys", (6, 0), b"\x80\x01".ljust(64, b"\0"))
    assert snap.sma.counts()["pkeys"] == 1 and sim.state.sma.counts()["pkeys"] == 2
    assert (snap.sma.fdb_top[0], snap.sma.life_time[0]) == (300, 18)
    with pytest.raises(KeyError, match="choose one of: pkeys, sl2vl"):
        sim.sm_set_block("pkey", (5, 0), b"")


def test_every_primitive_fault_action_has_an_engine_op():
    from ibsim.engine.links import OPS
    from ibsim.faults import FAULTS, Fault, expand
    samples = {"ber": {"rate": 1e-9}, "degrade": {"width": "1x"}, "flap": {}}
    ops = {a.op for kind in FAULTS for a in expand(Fault(kind, "leaf1:3", 0.0, samples.get(kind, {})))}
    assert ops <= set(OPS)


def test_trained_rate_takes_the_best_width_and_speed_both_ends_enable():
    from ibsim.engine.links import trained_rate
    code = {n: i for i, n in enumerate(SPEED_NAMES)}
    cw = np.array([4, 4, 4, 12, 4, 4])
    cs = np.array([code["EDR"], code["EDR"], code["FDR10"], code["HDR"], code["FDR"], code["EDR"]])
    wm = np.array([0xFF, 0x01, 0xFF, 0x0A, 0x10, 0x00])     # all; 1x; all; 4x+12x; 2x only; none
    sm = np.array([0x0F, 0x01, 0x07, 0x07, 0x03, 0x00])
    em = np.array([0x1F, 0x00, 0x00, 0x02, 0x00, 0x00])
    w, s = trained_rate(cw, cs, wm, sm, em)
    assert w.tolist() == [4, 1, 4, 12, 2, 1]                # 2x runs on two lanes of a 4x cable
    assert [SPEED_NAMES[c] for c in s] == ["EDR", "SDR", "FDR10", "EDR", "DDR", "SDR"]
