"""The compiled port index and the state it starts with."""

import numpy as np
import pytest

from ibsim.errors import TopologyError
from ibsim.fabric import ACTIVE, DOWN, LINKUP, POLLING, FabricState, compile_fabric
from ibsim.topology import Topology, fat_tree


def test_port_index_shape(tiny_topology):
    f = compile_fabric(tiny_topology)
    # 2 switches x (8+1) ports + CAs 1+1+2+1
    assert f.n_ports == 18 + 5
    assert f.n_switches == 2 and f.n_nodes == 6
    # switches first, by GUID
    assert list(f.node_guid[:2]) == [0x100, 0x200]
    p = f.port_index(0x100, 0)
    assert f.port_num[p] == 0 and f.is_switch[p]
    with pytest.raises(TopologyError, match="has ports 1..2"):
        f.port_index(0x1020, 3)


def test_peers_are_symmetric(fabric):
    peer = fabric.peer_of_port
    cabled = np.flatnonzero(peer >= 0)
    assert np.array_equal(peer[peer[cabled]], cabled)
    assert np.all(fabric.node_of_port[cabled] != fabric.node_of_port[peer[cabled]])


def test_index_is_frozen(fabric):
    with pytest.raises(ValueError):
        fabric.peer_of_port[0] = 3
    with pytest.raises(ValueError):
        fabric.default_lid[1] = 3
    with pytest.raises(AttributeError, match="frozen"):
        fabric.state = None                   # live state belongs to a simulation, not the index
    with pytest.raises(AttributeError, match="frozen"):
        fabric.node_names_cache = {}


def test_state_keeps_no_reference_to_the_index(fabric):
    st = FabricState(fabric)
    assert not any(v is fabric for v in vars(st).values())
    assert not hasattr(fabric, "state")
    # two simulations of one index own separate states
    from ibsim.engine import Simulation
    a, b = Simulation(fabric, seed=1), Simulation(fabric, seed=1)
    a.state.counters[0, 0] = 5
    assert b.state.counters[0, 0] == 0 and a.fabric is b.fabric


def test_states_rates_and_lids(tiny_topology):
    f = compile_fabric(tiny_topology)
    st = FabricState(f)
    up = f.port_index(0x100, 1)
    ddr = f.port_index(0x1030, 1)
    loose = f.port_index(0x1020, 2)
    assert st.port_state[up] == ACTIVE and st.phys_state[up] == LINKUP
    assert st.port_state[loose] == DOWN and st.phys_state[loose] == POLLING
    assert st.capacity[up] == pytest.approx(100e9 / 8)      # 4x EDR: 100 Gb/s of data
    assert st.capacity[ddr] == pytest.approx(16e9 / 8)      # 4x DDR: 16 Gb/s (8b/10b)
    assert st.lid[loose] == 0
    # every switch port carries its port-0 LID; LIDs of targets unique
    assert len(set(st.lid[f.port_index(0x100, p)] for p in range(9))) == 1
    l2p = st.lid_to_port(f)
    assert np.array_equal(l2p, f.lid_to_port()) and np.array_equal(st.lid, f.default_lid)
    lids = st.lid[l2p[l2p >= 0]]
    assert len(np.unique(lids)) == np.count_nonzero(l2p >= 0) == 2 + 4


def test_preset_lids_are_kept():
    t = Topology()
    t.add_switch(0x1, 4, "sw", lid=7)
    t.add_ca(0x10, 1, "h1", lids={1: 9})
    t.add_ca(0x20, 1, "h2", lids={1: 9})        # duplicate: reassigned
    t.add_link(0x1, 1, 0x10, 1)
    t.add_link(0x1, 2, 0x20, 1)
    f = compile_fabric(t)
    assert f.default_lid[f.port_index(0x1, 0)] == 7
    assert f.default_lid[f.port_index(0x10, 1)] == 9
    assert f.default_lid[f.port_index(0x20, 1)] == 1
    assert f.preset_lid[f.port_index(0x20, 1)] == 9 and FabricState(f).lid[f.port_index(0x20, 1)] == 1


def test_find_port_by_description(fabric):
    p = fabric.find_port("leaf1:3")
    assert fabric.port_label(p) == "leaf1:3"
    with pytest.raises(TopologyError, match="not a port number"):
        fabric.find_port("leaf1:x")


def test_link_down_mask(fabric):
    p = fabric.find_port("leaf1:3")
    q = int(fabric.peer_of_port[p])
    st = FabricState(fabric)
    assert st.link_up_mask(fabric)[[p, q]].all()
    st.set_ports_down([p])
    m = st.link_up_mask(fabric)
    assert not m[p] and not m[q]       # a link is up only when both ends are Active


def test_bytes_per_port_budget():
    f = compile_fabric(fat_tree(8, 3))
    assert (f.nbytes() + FabricState(f).nbytes(include_lft=False)) / f.n_ports <= 300
