"""The notebook API: ibsim.Simulation.from_scenario, run, counters, events, inject, load_run."""

from __future__ import annotations

from pathlib import Path

import pytest

import ibsim

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "topologies" / "small.yml"


def test_from_scenario_run_and_inspect():
    sim = ibsim.Simulation.from_scenario(SMALL)
    assert isinstance(sim, ibsim.Simulation)
    assert sim.scenario.name == "small" and sim.seed == 1
    assert sim.fabric.n_links == sim.topology.summary()["links"] == 16
    sim.run(until="3s")
    assert sim.time_s == pytest.approx(3.0)
    assert [e.kind for e in sim.events][:1] == ["job_start"]
    pd = pytest.importorskip("pandas")
    df = sim.counters()
    assert isinstance(df, pd.DataFrame) and len(df) == 32
    assert df["port_xmit_data"].sum() > 0


def test_inject_and_continue():
    sim = ibsim.Simulation.from_scenario(SMALL, seed=4)
    sim.run(until="2s")
    sim.inject("link_down", "leaf3:4", for_="1s")
    sim.run(until="4s")
    downs = [e for e in sim.events if e.kind == "link_down" and e.details.get("reason") == "link_down"]
    assert downs and downs[0].time_s == pytest.approx(2.0)
    ups = [e for e in sim.events if e.kind == "link_up" and e.details.get("reason") == "link_down"]
    assert ups and ups[0].time_s == pytest.approx(3.0)
    with pytest.raises(ibsim.ScenarioError):
        sim.inject("link_down", "leaf9:4")


def test_run_defaults_to_the_scenario_duration():
    sim = ibsim.Simulation.from_scenario(SMALL, until="2s")
    sim.run()
    assert sim.time_s == pytest.approx(2.0)


def test_record_and_load_run(tmp_path):
    sim = ibsim.Simulation.from_scenario(SMALL)
    rec = ibsim.Recorder(sim, every="1s")
    sim.run(until="5s")
    rec.write(tmp_path / "run")
    run = ibsim.load_run(tmp_path / "run")
    assert run.metadata["simulated_s"] == pytest.approx(5.0)
    assert [e["kind"] for e in run.events] == [e.kind for e in sim.events]
    assert run.series is not None and run.counters is not None
    assert repr(run) == f"<RunResult {str(tmp_path / 'run')!r}: complete, 5.0 s simulated, {len(run.events)} events>"


def test_bad_scenario_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(SMALL.read_text().replace("radix: 4", "radx: 4"))
    with pytest.raises(ibsim.ScenarioError) as info:
        ibsim.Simulation.from_scenario(bad)
    assert info.value.source == str(bad) and info.value.path == "topology.radx"
