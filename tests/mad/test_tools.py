"""The unmodified infiniband-diags tools against our server (through libumad2sim).

Topologies are discovered with the real ``ibnetdiscover`` and read back with
our parser; the same net file served by linux-rdma's C ``ibsim`` must give
the same output (LIDs aside: our embedded SM has assigned them, the C ibsim
has none before an SM runs).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibsim.fabric.counters import COUNTER_ROW, COUNTERS
from ibsim.engine.simulation import MAD_WORDS
from ibsim.bench.ofed import tool_env
from ibsim.topology import fat_tree, parse_ibnetdiscover, write_ibnetdiscover
from ibsim.traffic import Job
from tests.mad.conftest import field, make_sim, needs_tools, serving, ticking, tool
from tests.topology.test_ibsim_c import ALL_ATTRS, c_compatible_rich_topology, c_ibsim
from tests.topology.test_ibsim_c import ibnetdiscover as c_ibnetdiscover

pytestmark = needs_tools
PROBE = Path("/work/shared/tools/ibsim_probe_client.py")
NO_LIDS = tuple(a for a in ALL_ATTRS if a not in ("lids", "lmc"))
_LID = re.compile(r"\blid \d+")


def _discover(sock, tmp_path, sim_host=None, udp=None):
    out = tool(sock, "ibnetdiscover", sim_host=sim_host, cwd=tmp_path, udp=udp).stdout
    return out, parse_ibnetdiscover(out, "<ours>")


def _mask(text: str) -> str:
    return "\n".join(_LID.sub("lid N", line) for line in text.splitlines() if "generated on" not in line)


def _lids_match_fabric(back, fabric):
    lids = fabric.default_lid
    for g in back.switches():
        assert back.node(g)["lids"] == {0: int(lids[fabric.port_index(g, 0)])}
    for g in back.cas():
        for p, lid in back.node(g)["lids"].items():
            assert lid == int(lids[fabric.port_index(g, p)])


@pytest.mark.parametrize("which", ["fat_tree_8_2", "tiny", "rich"])
def test_ibnetdiscover_reads_back_the_served_topology(which, tiny_topology, tmp_path):
    topo = {"fat_tree_8_2": lambda: fat_tree(8, 2), "tiny": lambda: tiny_topology,
            "rich": c_compatible_rich_topology}[which]()
    sim = make_sim(topo)
    with serving(sim) as (srv, sock):
        text, back = _discover(sock, tmp_path)
    assert back == topo
    assert back.canonical(attrs=NO_LIDS) == topo.canonical(attrs=NO_LIDS)
    assert back.summary()["speeds"] == topo.summary()["speeds"]
    _lids_match_fabric(back, sim.fabric)


@pytest.mark.parametrize("sim_host", [None, "node003 HCA-1"])
def test_ibnetdiscover_output_equals_the_c_ibsim_s(sim_host, tmp_path):
    topo = fat_tree(4, 2)
    net = tmp_path / "fabric.topo"
    write_ibnetdiscover(topo, net)
    with c_ibsim(net, tmp_path) as (proc, csock, log):
        c_text = c_ibnetdiscover(proc, csock, log, tmp_path, sim_host)
    with serving(make_sim(topo)) as (srv, sock):
        ours, back = _discover(sock, tmp_path, sim_host=sim_host)
    assert _mask(ours) == _mask(c_text)
    c_back = parse_ibnetdiscover(c_text, "<c>")
    assert back.canonical(attrs=NO_LIDS) == c_back.canonical(attrs=NO_LIDS) == topo.canonical(attrs=NO_LIDS)


def test_rich_topology_equivalent_to_the_c_ibsim(tmp_path):
    topo = c_compatible_rich_topology()
    net = tmp_path / "rich.topo"
    write_ibnetdiscover(topo, net)
    with c_ibsim(net, tmp_path) as (proc, csock, log):
        c_back = parse_ibnetdiscover(c_ibnetdiscover(proc, csock, log, tmp_path), "<c>")
    with serving(make_sim(topo)) as (srv, sock):
        _, back = _discover(sock, tmp_path)
    assert back.canonical(attrs=NO_LIDS) == c_back.canonical(attrs=NO_LIDS)
    assert back.node(0x248A0703005ABB10)["lids"] == c_back.node(0x248A0703005ABB10)["lids"] == {1: 9}
    assert back.node(0x248A0703005ABB10)["lmc"] == 2


def test_udp_mode(tmp_path):
    import random
    topo = fat_tree(4, 2)
    for _ in range(5):
        port = random.randrange(20000, 60000, 512)
        try:
            srv_cm = serving(make_sim(topo), udp=port)
            srv, sock = srv_cm.__enter__()
        except OSError:
            continue
        try:
            _, back = _discover(None, tmp_path, udp=("127.0.0.1", port))
            assert back == topo
            r = tool(None, "perfquery", "-x", udp=("127.0.0.1", port), sim_host="node002 HCA-1", cwd=tmp_path)
            assert field(r.stdout, "PortSelect") == "1"
            assert srv._ctl.getsockname()[0] == "127.0.0.1"
        finally:
            srv_cm.__exit__(None, None, None)
        return
    pytest.skip("no free UDP port range found")


def test_smpquery_nodeinfo_portinfo_switchinfo(tmp_path):
    sim = make_sim(fat_tree(4, 2))
    f = sim.fabric
    spine = f.find_node("spine2")
    lid = int(sim.state.lid[f.first_port[spine]])
    with serving(sim) as (srv, sock):
        ni = tool(sock, "smpquery", "nodeinfo", str(lid), cwd=tmp_path).stdout
        assert field(ni, "NodeType") == "Switch" and int(field(ni, "Guid"), 16) == int(f.node_guid[spine])
        assert field(ni, "LocalPort") == "0" and field(ni, "NumPorts") == "4"
        pi = tool(sock, "smpquery", "portinfo", str(lid), "3", cwd=tmp_path).stdout
        assert field(pi, "LinkState") == "Active" and field(pi, "PhysLinkState") == "LinkUp"
        assert field(pi, "LinkWidthActive") == "4X" and field(pi, "LinkSpeedExtActive") == "25.78125 Gbps"
        si = tool(sock, "smpquery", "switchinfo", str(lid), cwd=tmp_path).stdout
        assert int(field(si, "LinearFdbTop")) == sim.state.max_lid and field(si, "LinearFdbCap") == "49152"
        ca = f.find_node("node004 HCA-1")
        calid = int(sim.state.lid[f.first_port[ca]])
        pi = tool(sock, "smpquery", "portinfo", str(calid), cwd=tmp_path).stdout
        assert field(pi, "Lid") == str(calid) and field(pi, "LocalPort") == "1"
        nd = tool(sock, "smpquery", "-D", "nodedesc", "0,3", cwd=tmp_path).stdout
        assert "spine1" in nd
        for what in ("pkeys", "sl2vl", "vlarb", "GI"):
            tool(sock, "smpquery", what, str(calid), cwd=tmp_path)
        bad = tool(sock, "smpquery", "nodeinfo", "999", cwd=tmp_path, check=False)
        assert bad.returncode != 0


def test_ibroute_shows_the_fabric_lft(tmp_path):
    sim = make_sim(fat_tree(4, 2))
    f = sim.fabric
    leaf = f.find_node("leaf3")
    row = f.switch_of_node[leaf]
    lid = int(sim.state.lid[f.first_port[leaf]])
    with serving(sim) as (srv, sock):
        out = tool(sock, "ibroute", str(lid), cwd=tmp_path).stdout
    entries = {int(m.group(1), 16): int(m.group(2)) for m in re.finditer(r"^(0x[0-9a-f]+) (\d+) :", out, re.MULTILINE)}
    assert entries and all(entries[k] == sim.state.lft[row, k] for k in entries)
    assert len(entries) == f.n_nodes


def test_probe_client_runs_clean(tmp_path):
    if not PROBE.exists():
        pytest.skip("the probe client is not available")
    with serving(make_sim(fat_tree(4, 2))) as (srv, sock):
        for host in ("", "node003 HCA-1"):
            env = tool_env(sock, sim_host=host or None)
            env.pop("LD_PRELOAD")
            r = subprocess.run([sys.executable, str(PROBE), "2000"], env=env, capture_output=True,
                               text=True, timeout=60, cwd=tmp_path)
            assert r.returncode == 0, r.stdout + r.stderr
            assert "bad path: sim status=110 R=0" in r.stdout
            assert "DR NodeInfo hop1: status=0 D/st=8000" in r.stdout


# ------------------------------------------------------------------ PerfMgt
def test_perfquery_counters_grow_with_traffic(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    sim.add_job(Job("a2a", "all_to_all", load=0.5))
    f = sim.fabric
    lid = int(sim.state.lid[f.first_port[f.find_node("node001 HCA-1")]])
    with serving(sim) as (srv, sock), ticking(sim):
        time.sleep(0.3)
        a = int(field(tool(sock, "perfquery", "-x", str(lid), "1", cwd=tmp_path).stdout, "PortXmitData"))
        time.sleep(0.4)
        out = tool(sock, "perfquery", "-x", str(lid), "1", cwd=tmp_path).stdout
        b = int(field(out, "PortXmitData"))
        with sim.lock:
            now = int(sim.state.counters[COUNTER_ROW["port_xmit_data"], f.first_port[f.find_node("node001 HCA-1")]])
        assert 0 < a < b <= now
        assert int(field(out, "PortUnicastXmitPkts")) > 0
        legacy = tool(sock, "perfquery", str(lid), "1", cwd=tmp_path).stdout
        assert int(field(legacy, "PortXmitPkts")) > 0 and "CapMask: 0x1200" in legacy


def test_perfquery_all_ports_on_a_switch_and_resets(tmp_path):
    sim = make_sim(fat_tree(4, 2))
    f = sim.fabric
    st = sim.state
    leaf = f.find_node("leaf2")
    ports = f.ports_of_node(leaf)
    st.counters[COUNTER_ROW["port_rcv_errors"], ports] = 3
    st.counters[COUNTER_ROW["port_xmit_data"], ports] = 1000
    ca_p = int(f.first_port[f.find_node("node005 HCA-1")])
    st.counters[:, ca_p] = 11
    swlid = int(st.lid[f.first_port[leaf]])
    calid = int(st.lid[ca_p])
    with serving(sim) as (srv, sock):
        out = tool(sock, "perfquery", "-a", str(swlid), cwd=tmp_path).stdout
        assert "port 255" in out and "CapMask: 0x1300" in out
        assert int(field(out, "PortRcvErrors")) == 3 * len(ports)
        # + what perfquery's own MADs added: 72 words per packet that left leaf2
        assert int(field(out, "PortXmitData")) == 1000 * len(ports) + MAD_WORDS * int(field(out, "PortXmitPkts"))
        tool(sock, "perfquery", "-R", str(swlid), "2", cwd=tmp_path)                    # reset only
        assert st.counters[COUNTER_ROW["port_rcv_errors"], ports[2]] == 0
        assert st.counters[COUNTER_ROW["port_rcv_errors"], ports[1]] == 3
        tool(sock, "perfquery", "-r", str(calid), "1", cwd=tmp_path)
        legacy = [i for i, c in enumerate(COUNTERS) if c.bits is not None]
        assert (st.counters[legacy, ca_p] == 0).all()
        with sim.lock:                                      # extended only: kept (+ replies sent)
            assert st.counters[COUNTER_ROW["unicast_xmit_packets"], ca_p] >= 11
        tool(sock, "perfquery", "-x", "-r", str(calid), "1", cwd=tmp_path)
        assert (st.counters[:, ca_p] == 0).all()
        tool(sock, "perfquery", "-x", "-r", str(swlid), "1", cwd=tmp_path)
        assert st.counters[COUNTER_ROW["port_xmit_data"], ports[1]] == 0
        assert st.counters[COUNTER_ROW["port_xmit_data"], ports[3]] >= 1000     # kept (+ MADs)


def test_ibqueryerrors_reports_a_cable_with_bit_errors(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05)
    sim.add_job(Job("a2a", "all_to_all", load=0.8))
    with serving(sim) as (srv, sock), ticking(sim):
        clean = tool(sock, "ibqueryerrors", "--skip-sl", cwd=tmp_path).stdout
        assert "0 ports have errors beyond threshold" in clean
        sim.inject("ber", "leaf2:3", rate=1e-9, down_above=1e-3)
        deadline = time.monotonic() + 20
        while True:
            r = tool(sock, "ibqueryerrors", "--skip-sl", cwd=tmp_path, check=False)
            out = r.stdout
            if "SymbolErrorCounter" in out or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert r.returncode == 1                               # errors found
    assert re.search(r'"leaf2"', out) and "SymbolErrorCounter" in out, out
    assert re.search(r"port 3: \[SymbolErrorCounter == \d+\]", out)


def test_iblinkinfo_shows_a_fault_and_its_healing(tmp_path):
    sim = make_sim(fat_tree(4, 2), tick=0.05, sweep_delay=0.2)
    with serving(sim) as (srv, sock), ticking(sim):
        sim.inject("link_down", "leaf1:3", for_="1s")
        time.sleep(0.2)
        down = tool(sock, "iblinkinfo", cwd=tmp_path).stdout
        up_deadline = time.monotonic() + 15
        while True:
            time.sleep(0.3)
            up = tool(sock, "iblinkinfo", cwd=tmp_path).stdout
            if "Down" not in up and "Init" not in up or time.monotonic() > up_deadline:
                break
    leaf1 = down[down.index("leaf1:"):]
    assert re.search(r"\s3\[  \] ==\(\s+Down/ Polling\)==>", leaf1), down
    assert "Down" not in up and "Initialize" not in up, up
    assert up.count("Active/  LinkUp") == 2 * 16


def test_iblinkinfo_and_perfquery_show_a_degraded_link(tmp_path):
    sim = make_sim(fat_tree(4, 2), sweep_delay=0.2)
    f = sim.fabric
    with serving(sim) as (srv, sock):
        before = tool(sock, "iblinkinfo", cwd=tmp_path).stdout
        with sim.lock:
            sim.inject("degrade", "leaf2:3", width=1, speed="SDR")
            for _ in range(10):                                  # retrain, then the sweep
                sim.step()
        out = tool(sock, "iblinkinfo", cwd=tmp_path).stdout
        leaf2 = out[out.index("leaf2:"):]
        leaf2 = leaf2[:leaf2.index("\n\n")] if "\n\n" in leaf2 else leaf2
        assert re.search(r"\s3\[  \] ==\(\s*1X\s+2\.5 Gbps\s+Active/  LinkUp\)==>", leaf2), leaf2
        assert out.count("1X") == 2 and before.count("1X") == 0           # both ends, nothing else
        lid = int(sim.state.lid[f.first_port[f.find_node("leaf2")]])
        pi = tool(sock, "smpquery", "portinfo", str(lid), "3", cwd=tmp_path).stdout
        assert re.search(r"LinkWidthActive:\.+1X", pi) and re.search(r"LinkSpeedActive:\.+2\.5 Gbps", pi), pi
        assert int(field(tool(sock, "perfquery", str(lid), "3", cwd=tmp_path).stdout, "LinkDownedCounter")) == 1


@pytest.mark.parametrize("sim_host", [None, "mgmt01 mlx5_0"])
def test_shipped_cluster_dump_is_discovered_exactly_as_from_the_c_ibsim(sim_host, tmp_path):
    """Preset LIDs, enhanced port 0, mixed rates, a first node that is not the lowest GUID."""
    path = Path(__file__).resolve().parents[2] / "topologies" / "cluster-dump.topo"
    with c_ibsim(path, tmp_path) as (proc, csock, log):
        c_text = c_ibnetdiscover(proc, csock, log, tmp_path, sim_host)
    from ibsim.topology import read_topology
    with serving(make_sim(read_topology(path))) as (srv, sock):
        ours, _ = _discover(sock, tmp_path, sim_host=sim_host)
    strip = lambda t: [x for x in t.splitlines() if "generated on" not in x]  # noqa: E731
    assert strip(ours) == strip(c_text)


def test_management_traffic_shows_in_perfquery_on_an_idle_fabric(tmp_path):
    sim = make_sim(fat_tree(4, 2))                     # no jobs: only MADs move
    f = sim.fabric
    leaf = f.find_node("leaf3")
    swlid = int(sim.state.lid[f.first_port[leaf]])
    with serving(sim) as (srv, sock):
        tool(sock, "ibnetdiscover", cwd=tmp_path)
        out = tool(sock, "perfquery", "-x", "-a", str(swlid), cwd=tmp_path).stdout
    pkts, words = int(field(out, "PortXmitPkts")), int(field(out, "PortXmitData"))
    assert pkts > 0 and words == MAD_WORDS * pkts        # every word is a MAD's
    assert int(field(out, "PortRcvData")) == MAD_WORDS * int(field(out, "PortRcvPkts")) > 0


def test_ibportstate_retrains_a_link_at_the_width_and_speed_it_enables(tmp_path):
    sim = make_sim(fat_tree(4, 2), sweep_delay=0.1)
    f = sim.fabric
    lid = int(sim.state.lid[f.first_port[f.find_node("leaf2")]])
    with serving(sim) as (srv, sock):
        q = tool(sock, "ibportstate", str(lid), "4", cwd=tmp_path).stdout     # the peer: LID + DR path
        assert "Peer PortInfo" in q and "DR path slid" in q, q
        for op in (["width", "1"], ["speed", "1"], ["espeed", "30"], ["reset"]):
            tool(sock, "ibportstate", str(lid), "4", *op, cwd=tmp_path)
        with sim.lock:
            for _ in range(5):
                sim.step()                                          # the sweep activates it again
        out = tool(sock, "iblinkinfo", cwd=tmp_path).stdout
    slow = [ln for ln in out.splitlines() if "1X" in ln]
    assert len(slow) == 2, out                                      # both ends of leaf2:4, nothing else
    for ln in slow:
        assert re.search(r"1X\s+2\.5 Gbps\s+Active/  LinkUp", ln) and "Could be 4X Could be 25.78125 Gbps" in ln
    p = f.find_port("leaf2:4")
    assert sim.state.width[p] == 1 and sim.state.capacity[p] == pytest.approx(2e9 / 8)
    assert sim.state.counters[COUNTER_ROW["link_downed"], p] == 1


def test_server_counts_perfmgt_mads_and_resets_keep_the_cleared_totals(tmp_path):
    sim = make_sim(fat_tree(4, 2))
    f = sim.fabric
    ca_p = int(f.first_port[f.find_node("node005 HCA-1")])
    sim.state.counters[COUNTER_ROW["port_rcv_errors"], ca_p] = 9
    calid = int(sim.state.lid[ca_p])
    with serving(sim) as (srv, sock):
        before = srv.dispatcher.by_class.get(0x04, 0)
        tool(sock, "perfquery", "-x", str(calid), "1", cwd=tmp_path)
        tool(sock, "perfquery", "-r", str(calid), "1", cwd=tmp_path)
        # a Get each, the reset's Get + Set; requests and responses both cross the server
        assert srv.dispatcher.by_class.get(0x04, 0) - before >= 3
        assert sim.state.counters[COUNTER_ROW["port_rcv_errors"], ca_p] == 0
        assert sim.counted_totals()[COUNTER_ROW["port_rcv_errors"], ca_p] == 9
