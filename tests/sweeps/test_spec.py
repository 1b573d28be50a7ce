"""Sweep files: expansion into points, key-path overrides, errors with file, line and key path."""

from __future__ import annotations

import pytest

from ibsim.errors import ScenarioError
from ibsim.sweeps import load_sweep_file
from ibsim.sweeps.spec import apply_override, parse_key_path

from .conftest import AFTER, BASE, GRID12, write


def test_grid_expands_in_order_with_overrides_applied(grid12):
    spec = load_sweep_file(grid12)
    assert len(spec.points) == 12
    assert spec.axes == ("routing.engine", "traffic[0].load", "seed")
    first, last = spec.points[0], spec.points[-1]
    assert first.labels == {"routing.engine": "minhop", "traffic[0].load": 0.3, "seed": 1}
    assert first.labels != spec.points[1].labels and spec.points[1].labels["seed"] == 2   # last axis fastest
    assert last.labels == {"routing.engine": "updn", "traffic[0].load": 0.9, "seed": 2}
    assert last.data["routing"]["engine"] == "updn" and last.data["traffic"][0]["load"] == 0.9
    assert last.data["traffic"][1]["load"] == 0.3            # other jobs untouched
    assert all(p.error is None for p in spec.points)
    scn = spec.scenario(last)
    assert scn.routing.engine == "updn" and scn.traffic[0].load == 0.9 and scn.seed == 2
    assert len({p.id for p in spec.points}) == 12


def test_point_ids_are_stable_and_follow_the_scenario(tmp_path, grid12):
    a = [p.id for p in load_sweep_file(grid12).points]
    assert a == [p.id for p in load_sweep_file(grid12).points]
    other = write(tmp_path, GRID12.format(base=BASE.replace("duration: 6s", "duration: 7s")), "other.yml")
    assert not set(a) & {p.id for p in load_sweep_file(other).points}


def test_points_list_labelled_axis_and_derived_seed(tmp_path):
    p = write(tmp_path, "base:\n" + BASE.replace("  seed: 3", "  name: b") + """\
grid:
  faults:
    none: []
    spine: [{at: 1s, switch_down: spine1}]
points:
  - {topology.radix: 6, routing: {engine: updn}}
""")
    spec = load_sweep_file(p)
    assert [pt.labels.get("faults") for pt in spec.points] == ["none", "spine", None]
    assert spec.points[1].data["faults"] == [{"at": "1s", "switch_down": "spine1"}]
    assert spec.points[2].data["topology"]["radix"] == 6
    assert spec.points[2].labels["routing"] == '{"engine":"updn"}'
    # no seed anywhere: each point gets one from its id (deterministic, differs between points)
    seeds = [pt.data["seed"] for pt in spec.points]
    assert seeds == [int(pt.id[:8], 16) for pt in spec.points] and len(set(seeds)) == 3


def test_base_from_a_file(tmp_path):
    (tmp_path / "base.yml").write_text("clock: {tick: 100ms, duration: 2s}\n"
                                       "topology: {generate: fat-tree, radix: 4, levels: 2}\n")
    spec = load_sweep_file(write(tmp_path, "base: base.yml\ngrid: {routing.engine: [minhop, ftree]}\n"))
    assert [spec.scenario(p).routing.engine for p in spec.points] == ["minhop", "ftree"]


def test_bad_override_value_is_a_point_error_naming_key_and_line(tmp_path):
    p = write(tmp_path, "base:\n" + BASE + """\
grid:
  traffic[0].load: [0.5, 1.5]
points:
  - {routing.engine: upnd}
""")
    spec = load_sweep_file(p)
    assert spec.points[0].error is None
    err = spec.points[1].error
    assert f"{p}:" in err and "traffic[0].load" in err
    bad = spec.points[2].error
    assert f"{p}:{AFTER + 3}: routing.engine: unknown routing engine 'upnd'" in bad and "did you mean 'updn'" in bad


@pytest.mark.parametrize("body, line, needle", [
    ("grid:\n  traffic[3].load: [0.5]\n", AFTER + 1, "traffic[3].load: traffic has 2 item(s); index 3 does not exist"),
    ("grid:\n  routng.engine: [minhop]\n", AFTER + 1, "unknown scenario key 'routng' (did you mean 'routing'?)"),
    ("grid:\n  traffic..load: [1]\n", AFTER + 1, "is not a key path"),
    ("grid:\n  seed: []\n", AFTER + 1, "axis 'seed' has no values"),
    ("grid:\n  seed: 3\n", AFTER + 1, "needs a list of values"),
    ("grd:\n  seed: [1]\n", AFTER, "unknown key 'grd' (did you mean 'grid'?)"),
    ("recovery: 2\ngrid: {seed: [1]}\n", AFTER, "recovery: expected a fraction"),
])
def test_sweep_file_errors_name_file_line_and_path(tmp_path, body, line, needle):
    p = write(tmp_path, f"base:\n{BASE}{body}")
    with pytest.raises(ScenarioError) as ei:
        load_sweep_file(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}:{line}: ") and needle in msg, msg


def test_base_errors_name_the_base(tmp_path):
    p = write(tmp_path, "base:\n  topology: {generate: fat-tree, radix: 4}\n  clock: {tik: 1s}\ngrid: {seed: [1]}\n")
    with pytest.raises(ScenarioError, match=r"sweep.yml:3: clock.tik: unknown key 'tik'"):
        load_sweep_file(p)


def test_key_paths_and_apply_override():
    assert parse_key_path("traffic[0].load") == ("traffic", 0, "load")
    assert parse_key_path("topology.radix") == ("topology", "radix")
    d = {"traffic": [{"load": 0.1}]}
    apply_override(d, ("traffic", 0, "load"), 0.7)
    apply_override(d, ("routing", "engine"), "updn")          # a missing mapping is created
    assert d == {"traffic": [{"load": 0.7}], "routing": {"engine": "updn"}}
    with pytest.raises(ScenarioError, match="is not a mapping"):
        apply_override(d, ("traffic", 0, "load", "x"), 1)
