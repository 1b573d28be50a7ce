"""The per-host sysfs trees: kernel layout and formats, values equal to the engine's, atomic refresh."""

from __future__ import annotations

import os

import numpy as np

from ibsim.engine import Simulation
from ibsim.fabric import COUNTERS, compile_fabric
from ibsim.hosts.sysfs import DEVICE, SysfsTrees, guid_text, rate_text
from ibsim.topology import fat_tree
from ibsim.traffic import Job


def _sim():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=3, routing="ftree", sweep_delay=0.5)
    sim.add_job(Job("a2a", "all_to_all", load=0.5))
    return sim


def _hosts(f, n=3):
    cas = [i for i in range(f.n_nodes) if f.node_type[i] == 1][:n]
    return [(i, f.node_desc[i].split()[0]) for i in cas]


def test_kernel_formats():
    assert rate_text(4, 6) == "100 Gb/sec (4X EDR)"
    assert rate_text(1, 1) == "2.5 Gb/sec (1X SDR)"
    assert rate_text(4, 5) == "56 Gb/sec (4X FDR)"
    assert rate_text(2, 7) == "100 Gb/sec (2X HDR)"
    assert rate_text(4, 4) == "40 Gb/sec (4X FDR10)"
    assert rate_text(0, 0) == "10 Gb/sec (4X SDR)"          # a Down port
    assert guid_text(0x0c42a10300035a8e) == "0c42:a103:0003:5a8e"


def test_tree_layout_and_static_files(tmp_path):
    sim = _sim()
    f = sim.fabric
    hosts = _hosts(f)
    trees = SysfsTrees(f, hosts, tmp_path)
    trees.refresh(sim.snapshot())
    node, name = hosts[0]
    dev = trees.host_dir(name) / DEVICE
    read = lambda rel: (dev / rel).read_text()             # noqa: E731
    assert read("node_type") == "1: CA\n"
    assert read("node_guid") == guid_text(f.node_guid[node]) + "\n"
    assert read("node_desc") == f.node_desc[node] + "\n"
    for rel in ("fw_ver", "board_id", "hca_type", "sys_image_guid", "hw_rev"):
        assert read(rel).strip()
    p = int(f.ports_of_node(node)[0])
    port = dev / "ports" / "1"
    assert (port / "state").read_text() == "4: ACTIVE\n"
    assert (port / "phys_state").read_text() == "5: LinkUp\n"
    assert (port / "rate").read_text() == "100 Gb/sec (4X EDR)\n"
    assert (port / "lid").read_text() == f"0x{int(sim.state.lid[p]):x}\n"
    assert (port / "link_layer").read_text() == "InfiniBand\n"
    assert (port / "pkeys" / "0").read_text() == "0xffff\n"
    assert (port / "gids" / "0").read_text() == "fe80:0000:0000:0000:" + guid_text(f.port_guid[p]) + "\n"
    assert (port / "cap_mask").read_text().startswith("0x")
    assert sorted(os.listdir(port / "counters")) == sorted(c.name for c in COUNTERS)
    assert not list(trees.host_dir(name).glob("**/.*"))     # no temporary files in the tree


def test_counters_equal_engine_and_only_changes_rewritten(tmp_path):
    sim = _sim()
    f = sim.fabric
    hosts = _hosts(f)
    trees = SysfsTrees(f, hosts, tmp_path)
    trees.refresh(sim.snapshot())
    sim.run(until="2s")
    snap = sim.snapshot()
    n = trees.refresh(snap)
    assert n > 0
    for node, name in hosts:
        p = int(f.ports_of_node(node)[0])
        for c in COUNTERS:
            text = (trees.host_dir(name) / DEVICE / "ports/1/counters" / c.name).read_text()
            want = int(snap.counters[COUNTERS.index(c), p])
            if c.ext_select_bit is None:                        # PortCounters width: saturates
                want = min(want, 2**c.bits - 1)
            assert int(text) == want, c.name
        assert int((trees.host_dir(name) / DEVICE / "ports/1/counters/port_xmit_data").read_text()) > 0
    ino = os.stat(trees.host_dir(hosts[0][1]) / DEVICE / "ports/1/counters").st_ino
    assert trees.refresh(snap) == 0                             # nothing changed, nothing written
    assert os.stat(trees.host_dir(hosts[0][1]) / DEVICE / "ports/1/counters").st_ino == ino


def test_unplug_shows_down_and_replug_active(tmp_path):
    sim = _sim()
    f = sim.fabric
    hosts = _hosts(f, 2)
    trees = SysfsTrees(f, hosts, tmp_path)
    node, name = hosts[1]
    port = trees.host_dir(name) / DEVICE / "ports/1"
    sim.run(until="0.5s")
    sim.inject("unplug", f.node_desc[node], for_="1s")
    sim.run(until="0.7s")
    trees.refresh(sim.snapshot())
    assert (port / "state").read_text() == "1: DOWN\n"
    assert (port / "phys_state").read_text().split(":")[0] in ("2", "3")
    assert (port / "rate").read_text() == "10 Gb/sec (4X SDR)\n"
    assert int((port / "counters/link_downed").read_text()) == 1
    sim.run(until="4s")
    trees.refresh(sim.snapshot())
    assert (port / "state").read_text() == "4: ACTIVE\n"


def test_degrade_changes_rate(tmp_path):
    sim = _sim()
    f = sim.fabric
    node, name = _hosts(f, 1)[0]
    trees = SysfsTrees(f, [(node, name)], tmp_path)
    sim.inject("degrade", f"{f.node_desc[node]}:1", width="1x", speed="SDR")
    sim.run(until="2s")
    trees.refresh(sim.snapshot())
    assert (trees.host_dir(name) / DEVICE / "ports/1/rate").read_text() == "2.5 Gb/sec (1X SDR)\n"


def test_values_is_one_array_per_refresh(tmp_path):
    sim = _sim()
    trees = SysfsTrees(sim.fabric, _hosts(sim.fabric, 4), tmp_path)
    v = trees.values(sim.snapshot())
    assert v.dtype == np.uint64 and v.shape == (len(COUNTERS) + 5, 4)
    trees.remove()
    assert not tmp_path.exists()


def test_a_degraded_host_link_shows_its_trained_rate(tmp_path):
    # cn002's ConnectX-5 is cabled at 4xDDR to a Switch-IB: sysfs shows the active (trained) rate
    from pathlib import Path
    from ibsim.topology import read_topology
    data = Path(__file__).resolve().parents[1] / "data" / "realistic-dump.topo"
    sim = Simulation(compile_fabric(read_topology(data)), seed=1)
    f = sim.fabric
    hosts = [(f.find_node("cn002 mlx5_0"), "cn002"), (f.find_node("cn001 mlx5_0"), "cn001")]
    trees = SysfsTrees(f, hosts, tmp_path)
    trees.refresh(sim.snapshot())
    rate = lambda h: (trees.host_dir(h) / DEVICE / "ports" / "1" / "rate").read_text()   # noqa: E731
    assert rate("cn002") == "20 Gb/sec (4X DDR)\n" and rate("cn001") == "100 Gb/sec (4X EDR)\n"
