"""The embedded SM reacts to traps as OpenSM does, with the periodic sweep as a fallback.

All times are simulated: a link comes back, and the port turns Active one
reaction delay later (not at the next ``sweep_interval``); with the reaction
off, or on a link that raises no trap, at the next periodic sweep.
"""

import pytest

from ibsim import compile_fabric, fat_tree
from ibsim.engine import Simulation
from ibsim.engine.sm import REACTION_BASE_S, REACTION_PER_PORT_S, reaction_delay, sweep_times
from ibsim.errors import ScenarioError
from ibsim.fabric import ACTIVE, INIT
from ibsim.topology import Topology

TICK = 0.05


def _active_at(sim, port: str, until: float) -> tuple[float, float]:
    """(time the link came up, time the port turned Active) over a run to ``until``."""
    sim.run(until=until)
    p = sim.fabric.find_port(port)
    q = int(sim.fabric.peer_of_port[p])
    up = [e.time_s for e in sim.events if e.kind == "link_up"]
    active = [e.time_s for e in sim.events if e.kind == "port_state_change"
              and e.details.get("to") == "Active" and (e.port is not None)]
    assert up and active, [e.kind for e in sim.events]
    assert sim.state.port_state[p] == ACTIVE and sim.state.port_state[q] == ACTIVE
    return up[-1], active[-1]


def test_default_reaction_grows_with_the_fabric():
    small = compile_fabric(fat_tree(4, 2)).n_ports
    big = compile_fabric(fat_tree(36, 2)).n_ports
    assert reaction_delay(small) == pytest.approx(REACTION_BASE_S + REACTION_PER_PORT_S * small)
    assert 1.0 <= reaction_delay(small) < 1.01 and 1.25 < reaction_delay(big) < 1.35
    assert reaction_delay(71_604) == pytest.approx(8.88, abs=0.01)      # fat_tree(36, 3)
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    assert sim.sm.sweep_delay_s == pytest.approx(reaction_delay(small)) and sim.sm.sweep_interval_s == 10.0


def test_a_returning_link_is_active_one_reaction_delay_later_not_at_the_sweep_interval():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1, tick=TICK)
    p = sim.fabric.find_port("leaf1:3")
    sim.inject("link_down", "leaf1:3", for_="2s")
    sim.run(until=2.5)
    assert sim.state.port_state[p] == INIT                           # trained, waiting for the SM
    up, active = _active_at(sim, "leaf1:3", 4.0)
    assert up == pytest.approx(2.0)
    assert active - up == pytest.approx(sim.sm.sweep_delay_s, abs=TICK + 1e-9)
    assert active < 10.0


def test_with_the_reaction_off_the_periodic_sweep_brings_it_up():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1, tick=TICK, sweep_delay="off")
    p = sim.fabric.find_port("leaf1:3")
    sim.inject("link_down", "leaf1:3", for_="2s")
    sim.run(until=9.9)
    assert sim.state.port_state[p] == INIT
    up, active = _active_at(sim, "leaf1:3", 10.5)
    assert active == pytest.approx(10.0)                             # the next multiple of sweep_interval


def test_periodic_sweep_comes_first_when_it_is_sooner_than_the_reaction():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1, tick=TICK, sweep_delay="5s",
                     sweep_interval="4s")
    sim.inject("link_down", "leaf1:3", for_="2s")
    up, active = _active_at(sim, "leaf1:3", 6.0)
    assert up == pytest.approx(2.0) and active == pytest.approx(4.0)


def test_a_link_between_two_cas_raises_no_trap():
    t = Topology("pair")
    t.add_ca(0x10, 1, "a")
    t.add_ca(0x20, 1, "b")
    t.add_link(0x10, 1, 0x20, 1)
    sim = Simulation(compile_fabric(t), seed=1, tick=TICK, sweep_interval="3s")
    sim.inject("link_down", "a:1", for_="0.5s")
    up, active = _active_at(sim, "a:1", 3.5)
    assert up == pytest.approx(0.5) and active == pytest.approx(3.0)


def test_sweep_times_parse_and_refuse_both_off():
    assert sweep_times("2s", "off", 100) == (2.0, None)
    assert sweep_times("off", 10, 100) == (None, 10.0)
    assert sweep_times("auto", "0", 100) == (pytest.approx(reaction_delay(100)), None)
    with pytest.raises(ScenarioError, match="both off"):
        sweep_times("off", "off", 100)
    with pytest.raises(ScenarioError, match="sweep_delay"):
        sweep_times(-1, 10, 100)
