"""PortInfo advertises the device's capabilities: degraded links say "Could be", MTUs follow the device.

Run with the unmodified infiniband-diags tools (``iblinkinfo``, ``smpquery``)
against our server, as an operator would look at a degraded cable.
"""

from __future__ import annotations

from pathlib import Path

from ibsim.fabric import SPEED_NAMES
from ibsim.topology import fat_tree, read_topology
from tests.fabric.test_devices import ddr_isl_topology
from tests.mad.conftest import field, make_sim, needs_tools, serving, tool

pytestmark = needs_tools
DATA = Path(__file__).resolve().parents[1] / "data"
COULD_BE_EDR = "Could be 25.78125 Gbps"


def _lines_with(text: str, needle: str) -> list[str]:
    return [ln for ln in text.splitlines() if needle in ln]


def test_iblinkinfo_says_could_be_edr_for_a_ddr_cable_between_edr_switches(tmp_path):
    sim = make_sim(ddr_isl_topology())
    f = sim.fabric
    with serving(sim) as (srv, sock):
        out = tool(sock, "iblinkinfo", cwd=tmp_path).stdout
        slow = _lines_with(out, "5.0 Gbps")
        assert len(slow) == 2, out                                   # the DDR cable, both ends
        assert all(COULD_BE_EDR in ln for ln in slow), slow
        assert out.count("Could be") == 2, out                      # nothing else is degraded
        p = [p for p in range(f.n_ports) if f.peer_of_port[p] >= 0 and f.cable_speed[p] == SPEED_NAMES.index("DDR")][0]
        n = f.node_of_port[p]
        lid = int(sim.state.lid[f.first_port[n]])
        pi = tool(sock, "smpquery", "portinfo", str(lid), str(int(f.port_num[p])), cwd=tmp_path).stdout
    assert field(pi, "LinkSpeedActive") == "5.0 Gbps"
    assert field(pi, "LinkSpeedExtActive") == "No Extended Speed"
    assert field(pi, "LinkSpeedExtSupported") == "14.0625 Gbps or 25.78125 Gbps"
    assert field(pi, "LinkSpeedSupported") == "2.5 Gbps or 5.0 Gbps or 10.0 Gbps"
    assert field(pi, "LinkWidthSupported") == "1X or 4X" and field(pi, "LinkWidthActive") == "4X"
    assert field(pi, "MtuCap") == "4096"


def test_realistic_dump_ddr_host_link_could_be_edr(tmp_path):
    # (the C ibsim says "Could be 12X Could be 53.125 Gbps" on every link of this dump and
    # "Could be 10.0 Gbps" on the DDR one: it advertises 12X/HDR support everywhere)
    path = DATA / "realistic-dump.topo"
    with serving(make_sim(read_topology(path))) as (srv, sock):
        ours = tool(sock, "iblinkinfo", cwd=tmp_path).stdout
    ddr = _lines_with(ours, "5.0 Gbps")
    assert len(ddr) == 2 and all(COULD_BE_EDR in ln for ln in ddr), ours
    assert ours.count("Could be") == 2                               # the FDR ConnectX-3 is not degraded


def test_mtucap_follows_the_device_generation(tmp_path):
    for speed, mtu in (("EDR", "4096"), ("HDR", "4096"), ("QDR", "4096"), ("DDR", "2048")):
        sim = make_sim(fat_tree(4, 2, speed=speed))
        f = sim.fabric
        ca = f.find_port("node001 HCA-1:1")
        leaf = f.node_of_port[f.peer_of_port[ca]]
        with serving(sim) as (srv, sock):
            pi_ca = tool(sock, "smpquery", "portinfo", str(int(sim.state.lid[ca])), cwd=tmp_path).stdout
            pi_sw = tool(sock, "smpquery", "portinfo", str(int(sim.state.lid[f.first_port[leaf]])),
                         str(int(f.port_num[f.peer_of_port[ca]])), cwd=tmp_path).stdout
        for pi in (pi_ca, pi_sw):
            assert field(pi, "MtuCap") == mtu and field(pi, "NeighborMTU") == mtu, (speed, pi)
        assert "Could be" not in pi_ca


def test_device_without_a_known_id_keeps_the_2048_default(tmp_path):
    # the C ibsim's net files carry devid 0 unless told: MTUCap 2048 as the C ibsim advertises
    t = fat_tree(4, 2)
    for g in t.nodes():
        t.graph.nodes[g]["devid"] = 0
    sim = make_sim(t)
    ca = sim.fabric.find_port("node001 HCA-1:1")
    with serving(sim) as (srv, sock):
        pi = tool(sock, "smpquery", "portinfo", str(int(sim.state.lid[ca])), cwd=tmp_path).stdout
    assert field(pi, "MtuCap") == "2048" and field(pi, "LinkSpeedExtSupported").endswith("25.78125 Gbps")
