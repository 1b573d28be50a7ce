"""Device capabilities: a port supports what its device does, whatever its cable trained at."""

from pathlib import Path

import numpy as np

from ibsim.fabric import SPEED_NAMES, compile_fabric
from ibsim.fabric.devices import degraded_ports, link_caps
from ibsim.topology import Topology, fat_tree, read_topology
from ibsim.topology.devices import DEFAULT_MTU, DEVICES, GENERATED

DATA = Path(__file__).resolve().parents[1] / "data"
EDR = SPEED_NAMES.index("EDR")


def ddr_isl_topology() -> Topology:
    """fat_tree(4, 2) at 4xEDR (Switch-IB, ConnectX-7) with one leaf-spine cable at 4xDDR."""
    t = fat_tree(4, 2)
    link = next(lk for lk in t.links() if t.node(lk.a[0])["kind"] == t.node(lk.b[0])["kind"] == "switch")
    t.remove_link(*link.a)
    t.add_link(*link.a, *link.b, "4x", "DDR")
    return t


def degraded_labels(f) -> list[str]:
    return sorted(f.port_label(p) for p in np.flatnonzero(degraded_ports(f, f.cable_width, f.cable_speed)))


def test_a_ddr_cable_between_edr_switches_is_degraded_and_keeps_edr_support():
    t = ddr_isl_topology()
    f = compile_fabric(t)
    bad = np.flatnonzero(degraded_ports(f, f.cable_width, f.cable_speed))
    assert len(bad) == 2 and f.peer_of_port[bad[0]] == bad[1]
    assert (f.cable_speed[bad] == SPEED_NAMES.index("DDR")).all()
    assert (f.node_speed_cap[f.node_of_port[bad]] == EDR).all()      # Switch-IB: EDR
    width, speed = link_caps(f)
    assert (speed[bad] == EDR).all() and (width[bad] == 4).all()


def test_realistic_dump_devices_by_device_id():
    f = compile_fabric(read_topology(DATA / "realistic-dump.topo"))
    # the 4xDDR cable from a Switch-IB to a ConnectX-5: degraded at both ends, nothing else
    assert degraded_labels(f) == ["MF0;switch-ib:SB7800/U1:2", "cn002 mlx5_0:1"]
    cap = {f.node_desc[n]: (SPEED_NAMES[f.node_speed_cap[n]], int(f.node_mtu_cap[n])) for n in range(f.n_nodes)}
    assert cap["cn003 mlx4_0"] == ("FDR", 4096)                      # ConnectX-3 at FDR: not degraded
    assert cap["cn002 mlx5_0"] == ("EDR", 4096)
    assert cap["ib-router01"] == ("EDR", DEFAULT_MTU)                # 0xcf09 is not listed: its cable


def test_unknown_device_supports_its_fastest_cable():
    t = Topology("t")
    t.add_switch(0x10, 4, "sw", devid=0)
    t.add_ca(0x20, 1, "fast", devid=0)
    t.add_ca(0x30, 1, "slow", devid=0)
    t.add_link(0x10, 1, 0x20, 1, "4x", "EDR")
    t.add_link(0x10, 2, 0x30, 1, "4x", "QDR")
    f = compile_fabric(t)
    # the switch's other port says EDR; the slow HCA has nothing faster than QDR: not degraded
    assert degraded_labels(f) == []
    assert SPEED_NAMES[f.node_speed_cap[f.find_node("sw")]] == "EDR"
    assert SPEED_NAMES[f.node_speed_cap[f.find_node("slow")]] == "QDR"
    assert (f.node_mtu_cap == DEFAULT_MTU).all()


def test_generated_fabrics_use_devices_of_their_generation():
    for speed in ("SDR", "DDR", "QDR", "FDR", "EDR", "HDR", "NDR", "XDR"):
        f = compile_fabric(fat_tree(4, 2, speed=speed))
        assert degraded_labels(f) == [], speed
        sw, ca = GENERATED[speed]
        assert DEVICES[sw].speed == speed
        assert SPEED_NAMES.index(DEVICES[ca].speed) >= SPEED_NAMES.index(speed)
        assert set(f.node_devid.tolist()) == {sw, ca}
    assert (compile_fabric(fat_tree(4, 2, speed="DDR")).node_mtu_cap == 2048).all()
    assert (compile_fabric(fat_tree(4, 2, speed="EDR")).node_mtu_cap == 4096).all()


def test_a_degrade_fault_is_a_degraded_link():
    f = compile_fabric(fat_tree(4, 2))
    width = f.cable_width.copy()
    p = f.find_port("leaf2:3")
    width[[p, f.peer_of_port[p]]] = 1
    assert degraded_labels(f) == []
    bad = np.flatnonzero(degraded_ports(f, width, f.cable_speed))
    assert sorted(bad.tolist()) == sorted([p, int(f.peer_of_port[p])])
