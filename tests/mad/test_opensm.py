"""OpenSM takes over the live fabric: LIDs, port states and LFTs come from its Sets.

Each OpenSM runs with private log, cache and dump directories under
``tmp_path`` and is stopped by its PID; waits are bounded.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from ibsim.fabric.state import ACTIVE, DOWN
from ibsim.bench.ofed import OpenSM, have_tools
from ibsim.routing import read_lft_dump
from ibsim.topology import fat_tree
from ibsim.traffic import Job
from tests.mad.conftest import field, make_sim, serving, ticking, tool

pytestmark = [pytest.mark.requires_opensm,
              pytest.mark.skipif(not have_tools("opensm", "ibnetdiscover", "sminfo", "ibroute"),
                                 reason="needs opensm, infiniband-diags and libumad2sim")]
UP_TIMEOUT = 120.0


def _guid2lid(path) -> dict[int, int]:
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("0x"):
            out[int(parts[0], 16)] = int(parts[1], 0)
    return out


def _check_programmed(sim, osm):
    """The fabric holds the LIDs and LFTs OpenSM assigned and dumped; every cabled port Active."""
    f = sim.fabric
    st = sim.state
    with sim.lock:
        lid = st.lid.copy()
        lft = st.lft.copy()
        ps = st.port_state.copy()
    g2l = _guid2lid(osm.dump_dir / "guid2lid")
    assert g2l
    for p in np.flatnonzero((f.is_switch & (f.port_num == 0)) | (~f.is_switch & (f.peer_of_port >= 0))):
        assert lid[p] == g2l[int(f.port_guid[p])]
    dump = read_lft_dump((osm.dump_dir / "opensm-lfts.dump").read_text())
    assert len(dump) == f.n_switches
    n = 0
    for g, entries in dump.items():
        row = f.switch_of_node[f.node_index[g]]
        for dlid, port in entries.items():
            assert lft[row, dlid] == port
            n += 1
    assert n >= f.n_switches * f.n_nodes
    cabled = f.peer_of_port >= 0
    assert (ps[cabled] == ACTIVE).all()


def test_opensm_brings_up_a_cold_fabric(tmp_path):
    sim = make_sim(fat_tree(8, 2), routing="opensm", tick=0.05)
    f = sim.fabric
    assert (sim.state.lid == 0).all() and (sim.state.lft == 255).all()
    host = "node001 HCA-1"
    with serving(sim) as (srv, sock), ticking(sim):
        with OpenSM(tmp_path / "osm", sockname=sock, sim_host=host) as osm:
            osm.wait_up(UP_TIMEOUT)
            assert osm.up_span_s() is not None
            _check_programmed(sim, osm)
            sm_lid = int(sim.state.lid[f.first_port[f.find_node(host)]])
            out = tool(sock, "sminfo", sim_host="node020 HCA-1", cwd=tmp_path).stdout
            assert re.search(rf"sm lid {sm_lid} .*SMINFO_MASTER", out), out
            leaf = f.find_node("leaf3")
            row = f.switch_of_node[leaf]
            swlid = int(sim.state.lid[f.first_port[leaf]])
            routes = tool(sock, "ibroute", str(swlid), sim_host="node020 HCA-1", cwd=tmp_path).stdout
            got = {int(m.group(1), 16): int(m.group(2))
                   for m in re.finditer(r"^(0x[0-9a-f]+) (\d+) :", routes, re.MULTILINE)}
            assert got and all(sim.state.lft[row, k] == v for k, v in got.items())
            sa = tool(sock, "saquery", "-s", sim_host="node020 HCA-1", cwd=tmp_path).stdout
            assert f"base_lid................{sm_lid}" in sa
            pi = tool(sock, "smpquery", "portinfo", str(swlid), "1", sim_host="node020 HCA-1",
                      cwd=tmp_path).stdout
            assert field(pi, "LinkState") == "Active"
    # the data plane routes by what OpenSM programmed
    sim.add_job(Job("a2a", "all_to_all", load=0.5))
    sim.step()
    assert sim.rates.path_ok.all() and sim.xmit_rate.sum() > 0


def test_opensm_takes_over_from_the_embedded_sm(tmp_path):
    sim = make_sim(fat_tree(4, 2), routing="updn", tick=0.05)
    with serving(sim) as (srv, sock), ticking(sim):
        with OpenSM(tmp_path / "osm", sockname=sock, sim_host="node002 HCA-1", routing="minhop") as osm:
            osm.wait_up(UP_TIMEOUT)
            assert sim.routing == "opensm"
            time.sleep(0.2)
            _check_programmed(sim, osm)


def test_trap_128_makes_opensm_resweep_and_reprogram(tmp_path):
    sim = make_sim(fat_tree(8, 2), routing="opensm", tick=0.05)
    f = sim.fabric
    with serving(sim) as (srv, sock), ticking(sim):
        with OpenSM(tmp_path / "osm", sockname=sock, sim_host="node001 HCA-1",
                    extra=["-s", "0"]) as osm:               # no periodic sweeps: only traps wake it
            osm.wait_up(UP_TIMEOUT)
            uplink = f.find_port("leaf5:5")
            leaf5 = f.switch_of_node[f.find_node("leaf5")]
            with sim.lock:
                assert (sim.state.lft[leaf5] == 5).any()
            ups = osm.count("SUBNET UP")
            sim.inject("link_down", "leaf5:5")
            osm.wait_for("Received Generic Notice type:1 num:128", timeout=30)
            osm.wait_up(UP_TIMEOUT, count=ups + 1)
            time.sleep(0.2)
            with sim.lock:
                assert sim.state.port_state[uplink] == DOWN
                assert not (sim.state.lft[leaf5] == 5).any()        # routed around the dead uplink
                traps = srv.dispatcher.stats["traps"]
            assert traps >= 1
            ups = osm.count("SUBNET UP")
            sim.inject("link_up", "leaf5:5")
            osm.wait_up(UP_TIMEOUT, count=ups + 1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with sim.lock:
                    if sim.state.port_state[uplink] == ACTIVE and (sim.state.lft[leaf5] == 5).any():
                        break
                time.sleep(0.1)
            with sim.lock:
                assert sim.state.port_state[uplink] == ACTIVE       # OpenSM armed and activated it
                assert (sim.state.lft[leaf5] == 5).any()


@pytest.mark.parametrize("speed, mtu", [("EDR", 4096), ("DDR", 2048)])
def test_opensm_configures_the_mtu_the_devices_support(speed, mtu, tmp_path):
    # EDR: Switch-IB and ConnectX-7 (MTUCap 4096); DDR: InfiniScale III and InfiniHost III (2048)
    sim = make_sim(fat_tree(4, 2, speed=speed), routing="opensm", tick=0.05)
    f = sim.fabric
    code = {2048: 4, 4096: 5}[mtu]
    with serving(sim) as (srv, sock), ticking(sim):
        with OpenSM(tmp_path / "osm", sockname=sock, sim_host="node001 HCA-1") as osm:
            osm.wait_up(UP_TIMEOUT)
            src, dst = (int(sim.state.lid[f.find_port(f"node00{i} HCA-1:1")]) for i in (1, 7))
            pr = tool(sock, "saquery", "PR", "--src-to-dst", f"{src}:{dst}", sim_host="node002 HCA-1",
                      cwd=tmp_path).stdout
            pi = tool(sock, "smpquery", "portinfo", str(dst), sim_host="node002 HCA-1", cwd=tmp_path).stdout
    assert re.search(rf"mtu\.+0x{0x80 | code:x}\b", pr), pr            # selector "exactly" | MTU code
    assert field(pi, "MtuCap") == str(mtu) and field(pi, "NeighborMTU") == str(mtu)


@pytest.mark.slow
def test_opensm_on_648_cas(tmp_path):
    sim = make_sim(fat_tree(36, 2), routing="opensm", tick=0.1)
    assert sim.fabric.n_nodes - sim.fabric.n_switches == 648
    with serving(sim) as (srv, sock), ticking(sim):
        with OpenSM(tmp_path / "osm", sockname=sock, sim_host="node001 HCA-1") as osm:
            osm.wait_up(UP_TIMEOUT)
            _check_programmed(sim, osm)


def test_perfmgr_sweeps_read_the_live_counters(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    sim.add_job(Job("a2a", "all_to_all", load=0.8))
    with serving(sim) as (srv, sock), ticking(sim):
        with OpenSM(tmp_path / "osm", sockname=sock, sim_host="node001 HCA-1",
                    extra=["--perfmgr", "--perfmgr_sweep_time_s", "1"]) as osm:
            osm.wait_up(UP_TIMEOUT)
            before = srv.dispatcher.stats["answered"]
            sim.inject("ber", "leaf2:1", rate=1e-7)        # ~8,000 symbol errors/s at node003
            osm.wait_for('SymbolErrorCounter', timeout=30)
            deadline = time.monotonic() + 30
            while osm.count('SymbolErrorCounter') < 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            log = osm.log_text()
    # PerfMgr reported the error counters of exactly that cable, from successive sweeps
    hits = [ln for ln in log.splitlines() if "perfmgr_log_errors" in ln and "SymbolErrorCounter" in ln]
    assert len(hits) >= 4
    assert all('"node003 HCA-1"' in ln or '"leaf2"' in ln for ln in hits)
    deltas = [int(re.search(r"SymbolErrorCounter : (\d+)", ln).group(1)) for ln in hits]
    assert all(d > 0 for d in deltas)                 # the counters moved between sweeps
    assert srv.dispatcher.stats["answered"] > before   # PerfMgt queries were answered live
