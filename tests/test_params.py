"""ibsim.params: one Param declaration and one checker for patterns, faults, generators,
exporter options and YAML topologies."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from ibsim import faults, traffic
from ibsim.errors import FileFormatError, ScenarioError
from ibsim.export import build_exporter
from ibsim.params import Param, check, integer
from ibsim.scenario import Scenario
from ibsim.topology import generators
from ibsim.topology.yamlio import parse_yaml_topology
from ibsim.yamldoc import load_yaml

BASE = """\
clock: {tick: 100ms, duration: 2s}
topology: {generate: fat-tree, radix: 4, levels: 2}
traffic:
  - {name: j, pattern: shift, k: 2, load: 0.5}
"""

TOPO = """\
nodes:
  - {guid: "0x10", kind: switch, nports: 4, desc: sw}
  - {guid: "0x20", kind: ca, nports: 1, desc: host}
links:
  - ["0x10:1", "0x20:1"]
"""


def scenario_error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_text(text, source="s.yml")
    return info.value


# ------------------------------------------------------------ the checker
def test_check_converts_fills_defaults_and_renames():
    spec = {"for": Param(None, integer(lo=1), key="for_s"), "count": Param(3, integer())}
    assert check("x", {"for": 2}, spec) == {"for_s": 2, "count": 3}
    assert check("x", {"for": 2}, spec, fill=False) == {"for_s": 2}


def test_check_errors_have_one_format_with_file_line_and_path():
    spec = {"interval": Param(1.0, integer())}
    with pytest.raises(ScenarioError) as info:
        check("pattern 'x'", {"intervall": 2}, spec, path=("traffic", 1))
    e = info.value
    assert e.path == "traffic[1].intervall" and e.source is None
    assert "did you mean 'interval'?" in e.message and "pattern 'x' takes: interval" in e.message
    doc = load_yaml("traffic:\n  - {a: 1}\n  - {interval: '2'}\n", "f.yml")
    with pytest.raises(ScenarioError) as info:
        check("pattern 'x'", doc.data["traffic"][1], spec, path=("traffic", 1), doc=doc)
    assert str(info.value) == "f.yml:3: traffic[1].interval: expected an integer, got the string '2'"


# ------------------------------------------------------- the integer rule
@pytest.mark.parametrize("value, yaml, ok", [(5, "5", True), (np.int64(5), None, True), ("5", '"5"', False),
                                             (5.0, "5.0", False), (True, "true", False)])
def test_one_integer_rule_in_scenario_exporters_and_yaml_topology(value, yaml, ok):
    readers = [
        lambda: traffic.job_params("shift", {"pattern": "shift", "load": 0.5, "k": value})[1]["k"],
        lambda: build_exporter("graphite", {"batch": value}).options.batch,
        lambda: faults.fault_params("flap", {"count": value})["count"],
    ]
    if yaml is not None:
        readers.append(lambda: parse_yaml_topology(TOPO.replace("nports: 4", f"nports: {yaml}"))
                       .node(0x10)["nports"])
    for read in readers:
        if ok:
            assert read() == 5
        else:
            with pytest.raises((ScenarioError, FileFormatError), match="expected an integer"):
                read()


def test_integer_rule_in_the_scenario_file_and_the_yaml_topology_file():
    e = scenario_error(BASE.replace("k: 2", 'k: "2"'))
    assert (e.path, e.line) == ("traffic[0].k", 4) and "expected an integer" in e.message
    with pytest.raises(FileFormatError, match=r"fab.yml:2: nodes\[0\]\.nports: expected an integer"):
        parse_yaml_topology(TOPO.replace("nports: 4", 'nports: "4"'), "fab.yml")
    # hex text only where a Param allows it: identifiers (GUIDs, vendor and device IDs)
    t = parse_yaml_topology(TOPO.replace("desc: sw}", 'desc: sw, vendid: "0x2c9"}'))
    assert t.node(0x10)["vendid"] == 0x2C9


# ------------------------------------------------------------------ traffic
def test_unknown_pattern_parameter_names_the_closest():
    e = scenario_error(BASE.replace("pattern: shift, k: 2", "pattern: uniform, intervall: 2s"))
    assert e.path == "traffic[0].intervall" and e.line == 4
    assert "did you mean 'interval'?" in e.message


def test_a_pattern_declared_in_one_place_is_validated_and_redrawn(monkeypatch):
    def hop(n, rng, stride=1, **_):
        return traffic.pattern_shift(n, rng, stride)
    monkeypatch.setitem(traffic.PATTERNS, "hop", traffic.Pattern(hop, {
        "stride": Param(1, integer(lo=1), "hosts to skip"),
        "every": Param(0.5, traffic.duration(positive=True), "redraw", unit="s")}, redraw="every"))
    s = Scenario.from_text(BASE.replace("pattern: shift, k: 2", "pattern: hop, stride: 3, every: 250ms"),
                           source="s.yml")
    job = s.traffic[0]
    assert job.params == {"stride": 3, "every": 0.25}
    assert traffic.redraw_interval(job) == 0.25
    e = scenario_error(BASE.replace("pattern: shift, k: 2", "pattern: hop, stride: 0"))
    assert e.path == "traffic[0].stride" and "must be >= 1" in e.message
    e = scenario_error(BASE.replace("pattern: shift, k: 2", "pattern: hop, strid: 2"))
    assert "did you mean 'stride'?" in e.message
    # the redraw parameter is not passed to the function; the engine runs it
    pairs = traffic.resolve_pattern(job, 4, np.random.default_rng(1))
    assert pairs.dst.tolist() == [3, 0, 1, 2]
    sim = s.build()
    sim.run(until=1.0)


def test_redraw_interval_is_declared_by_the_pattern():
    assert traffic.redraw_interval(traffic.Job("u", "uniform", load=0.5)) == 1.0
    assert traffic.redraw_interval(traffic.Job("u", "uniform", load=0.5, params={"interval": "200ms"})) == 0.2
    assert traffic.redraw_interval(traffic.Job("s", "shift", load=0.5)) is None


# ------------------------------------------------------------------- faults
def test_fault_params_one_map_for_scenario_and_inject():
    assert faults.fault_params("flap", {"period": "1s", "count": 2}) == {"period_s": 1.0, "count": 2}
    assert faults.fault_params("link_down", {"for_": "3s"}, keywords=True) == {"for_s": 3.0}
    assert faults.fault_params("link_down", {"for_s": 3}, keywords=True) == {"for_s": 3.0}
    with pytest.raises(ScenarioError, match="expected an integer"):
        faults.fault_params("flap", {"count": 1.5})
    from ibsim.engine import Simulation
    from ibsim.fabric import compile_fabric
    from ibsim.topology import fat_tree
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    with pytest.raises(ScenarioError, match=r"count: expected an integer"):
        sim.inject("flap", "leaf1:3", count=1.5)
    with pytest.raises(ScenarioError, match=r"perod.*did you mean 'period'"):
        sim.inject("flap", "leaf1:3", perod="1s")


def test_a_fault_parameter_declared_in_one_place_is_validated(monkeypatch):
    spec = dict(faults.FAULTS["link_down"])
    spec["params"] = {**spec["params"], "retries": Param(None, integer(lo=0), "retrains", key="retries")}
    monkeypatch.setitem(faults.FAULTS, "link_down", spec)
    text = BASE + 'faults:\n  - {at: 1s, link_down: {link: "leaf1:3", retries: 2}}\n'
    s = Scenario.from_text(text, source="s.yml")
    assert s.faults[0].fault.params == {"retries": 2}
    e = scenario_error(text.replace("retries: 2", "retries: -1"))
    assert e.path == "faults[0].link_down.retries" and e.line == 6


# --------------------------------------------------------------- generators
def test_generator_params_and_cli_flags_come_from_the_declaration(monkeypatch):
    from ibsim.cli.topo import add_parsers

    def ring(n: int = 4, *, width: str = "4x", speed: str = "EDR"):
        return generators.torus((n, 1), 1, width=width, speed=speed)
    monkeypatch.setitem(generators.GENERATORS, "ring", generators.Generator(ring, {
        "n": Param(4, integer(lo=2), "switches"), **generators._RATE}))
    top = argparse.ArgumentParser()
    add_parsers(top.add_subparsers())
    args = top.parse_args(["topo", "generate", "ring", "--n", "6", "-o", "x.topo"])
    assert args.n == 6 and args.gen_params == ["n", "width", "speed"]
    e = scenario_error(BASE.replace("generate: fat-tree, radix: 4, levels: 2", "generate: ring, n: 1"))
    assert e.path == "topology.n" and "must be >= 2" in e.message
    e = scenario_error(BASE.replace("radix: 4", "radix: '4'"))
    assert e.path == "topology.radix" and "expected an integer" in e.message
