"""Scenario files: validation (file, line, key path, suggestions) and build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ibsim.errors import ScenarioError
from ibsim.faults import Fault
from ibsim.scenario import Scenario, ScenarioSimulation
from ibsim.topology import fat_tree
from ibsim.topology.readwrite import write_topology
from ibsim.yamldoc import format_path, load_yaml

ROOT = Path(__file__).resolve().parents[1]

SMALL = """\
seed: 3
clock: {tick: 100ms, duration: 5s}
topology: {generate: fat-tree, radix: 4, levels: 2}
routing: {engine: ftree, sweep_delay: 1s}
traffic:
  - {name: a2a, pattern: all_to_all, hosts: 6, load: 0.6, start: 0s, stop: 4s}
  - {name: io, pattern: incast, targets: 1, hosts: [node001 HCA-1, node002 HCA-1, node008 HCA-1],
     rate: 40Gbps, start: 1s}
faults:
  - {at: 1s, unplug: "node002 HCA-1", for: 2s}
  - {at: 2s, flap: {link: "leaf1:3", period: 1s, count: 2}}
  - {at: 3s, ber: {link: "leaf2:4", rate: 1e-9}}
"""


def scenario(text: str = SMALL, **kw) -> Scenario:
    return Scenario.from_text(text, source="s.yml", **kw)


def error(text: str, build: bool = False) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        s = scenario(text)
        if build:
            s.build()
    return info.value


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


# ------------------------------------------------------------------ valid
def test_valid_scenario_parses_to_frozen_specs():
    s = scenario()
    assert s.seed == 3
    assert s.clock.tick_s == pytest.approx(0.1) and s.clock.duration_s == 5.0
    assert s.clock.realtime is None
    assert s.topology.generate == "fat-tree" and s.topology.params == {"radix": 4, "levels": 2}
    assert s.routing.engine == "ftree" and s.routing.sweep_delay_s == 1.0
    a2a, io = s.traffic
    assert (a2a.load, a2a.hosts, a2a.stop_s) == (0.6, 6, 4.0)
    assert io.rate == pytest.approx(5e9) and io.params == {"targets": 1}
    assert io.hosts == ("node001 HCA-1", "node002 HCA-1", "node008 HCA-1")
    faults = [f.fault for f in s.faults]
    assert faults[0] == Fault("unplug", "node002 HCA-1", 1.0, {"for_s": 2.0})
    assert faults[1] == Fault("flap", "leaf1:3", 2.0, {"period_s": 1.0, "count": 2})
    assert faults[2] == Fault("ber", "leaf2:4", 3.0, {"rate": 1e-9})   # YAML reads 1e-9 as a string
    with pytest.raises(AttributeError):
        s.seed = 4          # frozen


def test_build_returns_a_ready_simulation():
    sim = scenario().build()
    assert isinstance(sim, ScenarioSimulation)
    assert sim.seed == 3 and sim.routing == "ftree" and len(sim.jobs) == 2
    sim.run()                                   # defaults to clock.duration
    assert sim.time_s == pytest.approx(5.0)
    kinds = {e.kind for e in sim.events}
    assert {"link_down", "link_up", "job_start", "symbol_errors"} <= kinds


def test_run_without_duration_needs_until():
    sim = scenario(SMALL.replace(", duration: 5s", "")).build()
    with pytest.raises(ScenarioError, match="until"):
        sim.run()
    sim.run(until="1s")
    assert sim.time_s == pytest.approx(1.0)


def test_realtime_forms():
    assert scenario(SMALL.replace("duration: 5s", "duration: 5s, realtime: 2")).clock.realtime == 2.0
    assert scenario(SMALL.replace("duration: 5s", "duration: 5s, realtime: true")).clock.realtime == 1.0
    e = error(SMALL.replace("duration: 5s", "duration: 5s, realtime: -1"))
    assert e.path == "clock.realtime"


def test_overrides():
    s = scenario().with_overrides(seed=9, until="2s", realtime=None)
    assert (s.seed, s.clock.duration_s, s.clock.realtime) == (9, 2.0, None)
    assert scenario().with_overrides().clock == scenario().clock


def test_topology_file_is_relative_to_the_scenario(tmp_path):
    sub = tmp_path / "scn"
    sub.mkdir()
    write_topology(fat_tree(4, 2), sub / "ft.topo")
    text = SMALL.replace("{generate: fat-tree, radix: 4, levels: 2}", "{file: ft.topo}")
    (sub / "x.yml").write_text(text)
    s = Scenario.from_file(sub / "x.yml")
    assert s.topology.file == str(sub / "ft.topo") and s.name == "x"
    sim = s.build()
    assert sim.topology.summary()["cas"] == 8


def test_topology_override_replaces_the_generator(tmp_path):
    write_topology(fat_tree(4, 2), tmp_path / "ft.topo")
    s = scenario().with_overrides(topology_file=tmp_path / "ft.topo")
    assert s.topology.generate is None and s.build().topology.summary()["cas"] == 8
    with pytest.raises(ScenarioError, match="does not exist"):
        scenario().with_overrides(topology_file=tmp_path / "nope.topo")


def test_every_shipped_scenario_validates():
    # sweep-*.yml are sweep files (tests/test_topologies_dir.py checks them)
    files = sorted(f for f in (ROOT / "topologies").glob("*.yml") if not f.name.startswith("sweep-"))
    assert {f.name for f in files} >= {"fat-tree.yml", "small.yml", "leaf-spine.yml",
                                       "dragonfly.yml", "torus.yml", "cluster.yml"}
    for f in files:
        s = Scenario.from_file(f)
        assert s.clock.duration_s and s.traffic and s.faults, f.name


def test_readme_example_validates():
    text = (ROOT / "topologies" / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    s = Scenario.from_text(block, source="README.md")
    assert s.name == "demo" and len(s.faults) == 3


# ----------------------------------------------------------------- errors
def test_unknown_key_suggests_the_nearest():
    text = SMALL.replace("load: 0.6", "laod: 0.6")
    e = error(text)
    assert e.source == "s.yml" and e.line == line_of(text, "laod")
    assert e.path == "traffic[0].laod"
    assert "did you mean 'load'?" in str(e)
    assert str(e).startswith(f"s.yml:{e.line}: traffic[0].laod: unknown key 'laod'")


@pytest.mark.parametrize("old,new,path,hint", [
    ("seed: 3", "sed: 3", "sed", "seed"),
    ("tick: 100ms", "tik: 100ms", "clock.tik", "tick"),
    ("engine: ftree", "engnie: ftree", "routing.engnie", "engine"),
    ("unplug:", "unplgu:", "faults[0].unplgu", "unplug"),
    ("period: 1s", "perod: 1s", "faults[1].flap.perod", "period"),
])
def test_unknown_keys_everywhere(old, new, path, hint):
    e = error(SMALL.replace(old, new))
    assert e.path == path and f"did you mean {hint!r}" in e.message
    assert e.line == line_of(SMALL.replace(old, new), new.split(":")[0])


def test_bad_unit_names_the_key_and_line():
    text = SMALL.replace("duration: 5s", "duration: 5parsecs")
    e = error(text)
    assert (e.path, e.line) == ("clock.duration", 2)
    assert "unknown duration unit 'parsecs'" in e.message
    e = error(SMALL.replace("rate: 40Gbps", "rate: 40 furlongs"))
    assert e.path == "traffic[1].rate"


@pytest.mark.parametrize("old,new,path,what", [
    ("load: 0.6", "load: [0.6]", "traffic[0].load", "expected a number, got a list"),
    ("load: 0.6", "load: 1.5", "traffic[0].load", "must be <= 1"),
    ("seed: 3", "seed: three", "seed", "expected an integer"),
    ("hosts: 6", "hosts: true", "traffic[0].hosts", "expected 'all', a count or a list"),
    ("count: 2", "count: 1.5", "faults[1].flap.count", "expected an integer"),
    ("rate: 1e-9", "rate: lots", "faults[2].ber.rate", "expected a number"),
    ("clock: {tick: 100ms, duration: 5s}", "clock: 5s", "clock", "expected a mapping"),
])
def test_bad_types(old, new, path, what):
    e = error(SMALL.replace(old, new))
    assert e.path == path and what in e.message and e.line is not None


def test_malformed_yaml_names_the_line():
    text = SMALL.replace("seed: 3", "seed: [3")
    e = error(text)
    # the parser notices at line 2 and says where the unclosed list started
    assert e.source == "s.yml" and e.line == 2
    assert "malformed YAML" in e.message and "starts on line 1" in e.message
    assert str(e).startswith("s.yml:2: malformed YAML")
    text = SMALL + "  - {at: 4s, link_down: leaf1:3\n"
    e = error(text)
    assert e.line >= len(SMALL.splitlines()) and "malformed YAML" in e.message


def test_duplicate_key_is_an_error():
    e = error(SMALL.replace("seed: 3", "seed: 3\nseed: 4"))
    assert e.line == 2 and "duplicate key 'seed'" in e.message


def test_unknown_fault_target_names_file_line_and_path():
    text = SMALL.replace('unplug: "node002 HCA-1"', 'unplug: "node099 HCA-1"')
    e = error(text, build=True)
    assert e.source == "s.yml" and e.path == "faults[0].unplug"
    assert e.line == line_of(text, "node099") and "node099 HCA-1" in e.message
    text = SMALL.replace('link: "leaf1:3"', 'link: "leaf1:9"')
    e = error(text, build=True)
    assert e.path == "faults[1].flap.link" and e.line == line_of(text, "leaf1:9")


def test_fault_shape_errors():
    e = error(SMALL.replace('unplug: "node002 HCA-1"', 'unplug: "node002 HCA-1", replug: x'))
    assert e.path == "faults[0]" and "exactly one fault kind" in e.message
    e = error(SMALL.replace("{at: 1s, unplug", "{unplug"))
    assert "missing required key 'at'" in e.message
    e = error(SMALL.replace("count: 2}}", "count: 2}, for: 3s}"))
    assert e.path == "faults[1].for" and "takes no 'for'" in e.message
    e = error(SMALL.replace('{link: "leaf1:3"', '{node: "leaf1:3"'))
    assert e.path == "faults[1].flap.node"


def test_bad_generator_parameter():
    e = error(SMALL.replace("radix: 4", "radx: 4"))
    assert e.path == "topology.radx" and "did you mean 'radix'?" in e.message and e.line == 3
    e = error(SMALL.replace("radix: 4", "radix: four"))
    assert e.path == "topology.radix" and "expected an integer" in e.message
    e = error(SMALL.replace("fat-tree", "fat-tee"))
    assert e.path == "topology.generate" and "did you mean 'fat-tree'?" in e.message
    e = error(SMALL.replace("radix: 4", "radix: 5"), build=True)    # the generator's own check
    assert e.path == "topology" and "radix" in e.message and e.line == 3


def test_pattern_parameters_are_checked():
    e = error(SMALL.replace("targets: 1", "k: 1"))
    assert e.path == "traffic[1].k" and "belongs to shift" in e.message
    e = error(SMALL.replace("pattern: incast", "pattern: incats"))
    assert e.path == "traffic[1].pattern" and "did you mean 'incast'?" in e.message


def test_routing_and_hosts_checked_at_build():
    e = error(SMALL.replace("engine: ftree", "engine: updm"))
    assert e.path == "routing.engine" and "did you mean 'updn'?" in e.message
    torus = SMALL.replace("generate: fat-tree, radix: 4, levels: 2", "generate: torus, dims: [3, 3]")
    torus = torus.replace("leaf1:3", "sw-0-0:2").replace("leaf2:4", "sw-0-1:2")
    e = error(torus, build=True)
    assert e.path == "routing.engine" and e.line == 4
    e = error(SMALL.replace("hosts: 6", "hosts: 60"), build=True)
    assert e.path == "traffic[0].hosts" and "8 cabled CAs" in e.message


def test_other_top_level_errors():
    assert "empty" in error("").message
    assert "missing required key 'topology'" in error("seed: 1\n").message
    assert error("- a\n").message.startswith("expected a mapping")
    e = error(SMALL + "mtu: 3000\n")
    assert e.path == "mtu" and "4096" in e.message
    assert scenario(SMALL + "mtu: 2KiB\n").mtu == 2048
    e = error(SMALL.replace("name: io", "name: a2a"))
    assert e.path == "traffic[1].name" and "already used" in e.message


def test_missing_scenario_file(tmp_path):
    with pytest.raises(ScenarioError, match="does not exist"):
        Scenario.from_file(tmp_path / "nope.yml")


# ---------------------------------------------------------------- yamldoc
def test_yamldoc_lines_and_paths():
    doc = load_yaml(SMALL, "s.yml")
    assert doc.line(("traffic", 1, "rate")) == 8
    assert doc.line(("faults", 1, "flap", "link")) == 11
    assert doc.line(("traffic", 0, "no-such-key")) == 6          # nearest ancestor
    assert format_path(("faults", 1, "flap", "link")) == "faults[1].flap.link"
    assert format_path(()) == ""


@pytest.mark.requires_entry_points
def test_exporters_section_builds_specs_and_names_the_line_of_a_typo():
    text = SMALL + "exporters:\n  - {graphite: {host: 127.0.0.1, port: 2003, every: 10s}}\n" \
                   "  - {logstash: {host: 127.0.0.1, port: 5000, protocol: udp}}\n"
    scn = scenario(text)
    assert [s.name for s in scn.exporters] == ["graphite", "logstash"]
    assert scn.exporters[0].every == 10.0
    bad = SMALL + "exporters:\n  - {graphite: {hots: 127.0.0.1}}\n"
    err = error(bad)
    assert err.line == line_of(bad, "hots")
    assert "did you mean 'host'" in str(err) and "exporters[0]" in str(err)


def test_routing_sm_settle_reaches_the_simulation():
    text = SMALL.replace("routing: {engine: ftree, sweep_delay: 1s}", "routing: {engine: opensm, sm_settle: 2s}")
    s = scenario(text)
    assert s.routing.engine == "opensm" and s.routing.sm_settle_s == 2.0
    assert s.build().sm.sm_settle_s == 2.0
    assert scenario().build().sm.sm_settle_s == 0.5
    err = error(text.replace("sm_settle: 2s", "sm_settle: soon"))
    assert err.line == line_of(text, "sm_settle") and "sm_settle" in str(err)


def test_routing_sweep_delay_and_sweep_interval_reach_the_embedded_sm():
    from ibsim.engine.sm import reaction_delay
    base = "routing: {engine: ftree, sweep_delay: 1s}"
    sim = scenario(SMALL.replace(base, "routing: {engine: ftree}")).build()
    assert sim.sm.sweep_delay_s == pytest.approx(reaction_delay(sim.fabric.n_ports))   # auto
    assert sim.sm.sweep_interval_s == 10.0
    text = SMALL.replace(base, "routing: {engine: ftree, sweep_delay: off, sweep_interval: 4s}")
    s = scenario(text)
    assert s.routing.sweep_delay_s == "off" and s.routing.sweep_interval_s == 4.0
    sim = s.build()
    assert sim.sm.sweep_delay_s is None and sim.sm.sweep_interval_s == 4.0
    both = text.replace("sweep_interval: 4s", "sweep_interval: off")
    err = error(both)
    assert err.line == line_of(both, "sweep_interval") and "both off" in str(err)
    err = error(text.replace("sweep_delay: off", "sweep_delay: soon"))
    assert "sweep_delay" in str(err) and "auto" in str(err)


def test_degrade_fault_parses_width_and_speed():
    text = SMALL + '  - {at: 2s, degrade: {link: "leaf1:4", width: 1, speed: sdr}, for: 1s}\n'
    f = scenario(text).faults[-1].fault
    assert f == Fault("degrade", "leaf1:4", 2.0, {"width": "1x", "speed": "SDR", "for_s": 1.0})
    err = error(text.replace("speed: sdr", "speed: warp"))
    assert err.line == line_of(text, "degrade") and "warp" in str(err) and "SDR" in str(err)
    err = error(SMALL + '  - {at: 2s, degrade: "leaf1:4"}\n')
    assert "width" in str(err)
