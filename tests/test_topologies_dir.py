"""Every topologies/*.yml loads, builds (fault targets exist) and runs a few simulated seconds;
every sweep file (sweep-*.yml) loads and its points are valid scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ibsim.run.recorder import Recorder
from ibsim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "topologies").glob("sweep-*.yml"))
FILES = sorted(set((ROOT / "topologies").glob("*.yml")) - set(SWEEPS))


def test_the_directory_has_the_documented_files():
    names = {f.name for f in FILES + SWEEPS}
    assert names >= {"fat-tree.yml", "leaf-spine.yml", "dragonfly.yml", "torus.yml", "small.yml",
                     "cluster.yml", "sweep-routing.yml"}
    readme = (ROOT / "topologies" / "README.md").read_text()
    for name in names:
        assert f"`{name}`" in readme, f"{name} is not described in topologies/README.md"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_scenario_runs_a_few_seconds(path, tmp_path):
    scn = Scenario.from_file(path)
    sim = scn.build()                       # checks hosts and every fault target
    rec = Recorder(sim, every="1s", duration=3)
    sim.run(until="3s", realtime=None)
    assert sim.time_s == pytest.approx(3.0)
    assert any(e.kind == "job_start" for e in sim.events)
    assert sim.xmit_rate.sum() > 0          # traffic flows
    res = rec.write(tmp_path / "run", plot=False)
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["ticks"] == round(3.0 / scn.clock.tick_s)
    assert meta["totals"]["port_xmit_data"] > 0 and "Top talkers" in res.summary


@pytest.mark.parametrize("path", SWEEPS, ids=[f.stem for f in SWEEPS])
def test_sweep_file_points_are_valid_and_one_runs(path):
    from ibsim.sweeps import PointTask, load_sweep_file, run_point
    spec = load_sweep_file(path)
    assert spec.points and all(p.error is None for p in spec.points)
    p = spec.points[-1]
    row = run_point(PointTask(p, spec.source, spec.base_dir, spec.name, spec.recovery))
    assert row["status"] == "ok", row.get("error")
    assert row["throughput_gbps"] > 0


def test_sweep_routing_is_what_its_header_says():
    from ibsim.sweeps import load_sweep_file
    spec = load_sweep_file(ROOT / "topologies" / "sweep-routing.yml")
    assert len(spec.points) == 54 and spec.axes == ("routing.engine", "traffic[0].load", "faults", "seed")
    scn = spec.scenario(spec.points[0])
    assert scn.topology.params == {"radix": 8, "levels": 3}
    assert {spec.scenario(p).routing.engine for p in spec.points} == {"minhop", "updn", "ftree"}
    assert {p.labels["faults"] for p in spec.points} == {"none", "spine-down"}


def test_fat_tree_demo_is_what_the_readme_says():
    scn = Scenario.from_file(ROOT / "topologies" / "fat-tree.yml")
    assert scn.topology.params == {"radix": 36, "levels": 2} and scn.routing.engine == "ftree"
    assert scn.clock.duration_s == 120 and scn.clock.tick_s == pytest.approx(0.1)
    assert {j.pattern for j in scn.traffic} >= {"all_to_all"} and len(scn.traffic) >= 2
    a, b = scn.traffic[:2]
    assert max(a.start_s, b.start_s) < min(a.stop_s or 1e9, b.stop_s or 1e9)   # they overlap
    kinds = {f.fault.kind for f in scn.faults}
    assert kinds >= {"unplug", "flap", "ber", "degrade"}
    unplug = next(f.fault for f in scn.faults if f.fault.kind == "unplug")
    assert unplug.params.get("for_s") == 10
