"""Sweep files: a base scenario plus axes -> the validated points of a parameter study.

::

    name: routing-study
    base: fat-tree.yml            # a scenario file (relative to this file), or the scenario inline
    grid:                         # every combination of these axes
      routing.engine: [minhop, updn, ftree]
      traffic[0].load: [0.3, 0.6, 0.9]
      faults:                     # a mapping gives each value a label (its column value)
        none: []
        spine: [{at: 10s, switch_down: spine01}]
      seed: [1, 2, 3]
    points:                       # and/or explicit points (overrides applied to the base)
      - {routing.engine: minhop, traffic[0].load: 1.0, seed: 1}
    keep_runs: false              # also write each point's run directory (runs/<point id>/)
    recovery: 0.95                # throughput back within this fraction of the pre-fault level

Points are the grid's product (the last axis varies fastest) followed by the
explicit points. An override names any scenario key by its path
(``routing.engine``, ``traffic[0].load``, ``topology.radix``, ``faults``,
``seed``); missing mappings on its way are created, list items must exist.
Sweep-file errors (a malformed path, an index past a list's end, an axis
with no values) name the file, the line and the key path and stop the sweep;
a value the scenario checker rejects makes that point an error row.

A point's id is a hash of the scenario it describes (base plus overrides,
canonical JSON), so ``--resume`` recognises finished points. A point without
a seed gets one derived from its id: every point is deterministic.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ScenarioError, format_path, suggest
from ..scenario import Scenario, TOP_KEYS
from ..yamldoc import YamlDoc, load_yaml, read_file

__all__ = ["SweepSpec", "Point", "SWEEP_KEYS", "load_sweep_file", "parse_sweep", "parse_key_path",
           "apply_override", "point_id", "blame"]

#: valid top-level keys of a sweep file
SWEEP_KEYS = ("name", "description", "base", "grid", "points", "keep_runs", "recovery")

_PATH_RE = re.compile(r"^[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*$")
_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


@dataclass(frozen=True)
class Point:
    """One point of a sweep.

    Attributes
    ----------
    index : int
        Position in the sweep (grid points first).
    id : str
        16 hex digits: hash of the scenario the point describes.
    overrides : dict
        Key path (``traffic[0].load``) -> value, as written.
    labels : dict
        Key path -> the value shown in results (a scalar, or the axis label).
    data : dict
        The whole scenario (base with the overrides applied, seed filled in).
    lines : dict
        Key path tuple -> line in the sweep file (for error messages).
    override_lines : dict
        Key path text -> line of the override in the sweep file.
    error : str or None
        Why the scenario checker rejected this point (it then is not run).
    """

    index: int
    id: str
    overrides: dict
    labels: dict
    data: dict = field(repr=False)
    lines: dict = field(default_factory=dict, repr=False)
    override_lines: dict = field(default_factory=dict, repr=False)
    error: str | None = None


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file.

    Attributes
    ----------
    name : str
    description : str
    source : str
        The sweep file (or ``<string>``).
    base_dir : str
        Directory relative topology files of the base are read from.
    axes : tuple of str
        Key paths of the grid axes and of the explicit points' keys, in order.
    points : tuple of Point
    keep_runs : bool
        Write each point's run directory too.
    recovery : float
        Fraction of the pre-fault throughput that counts as recovered (0..1].
    """

    name: str
    source: str
    base_dir: str
    axes: tuple
    points: tuple
    keep_runs: bool = False
    recovery: float = 0.95
    description: str = ""

    def scenario(self, point: Point) -> Scenario:
        """The validated :class:`~ibsim.scenario.Scenario` of ``point``."""
        return scenario_of(point, self.source, self.base_dir, self.name)


def scenario_of(point: Point, source: str, base_dir: str, name: str) -> Scenario:
    """Validate a point's scenario; errors name the sweep file, the override's line and key path."""
    doc = YamlDoc(point.data, source, dict(point.lines))
    return Scenario.from_doc(doc, name=f"{name}-{point.id}", base=base_dir)


def parse_key_path(text, doc: YamlDoc | None = None, where: tuple = ()) -> tuple:
    """``"traffic[0].load"`` -> ``("traffic", 0, "load")``.

    Raises
    ------
    ScenarioError
        For a malformed path or an unknown top-level key (naming ``where`` in ``doc``).
    """
    def fail(msg):
        if doc is not None:
            return doc.error(where, msg)
        return ScenarioError(msg)
    if not isinstance(text, str) or not _PATH_RE.match(text):
        raise fail(f"{text!r} is not a key path (write e.g. routing.engine or traffic[0].load)")
    path = tuple(int(i) if i else k for i, k in _TOKEN.findall(text))
    if path[0] not in TOP_KEYS:
        hint = suggest(path[0], TOP_KEYS)
        raise fail(f"unknown scenario key {path[0]!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                   + f"; valid keys: {', '.join(TOP_KEYS)}")
    return path


def apply_override(data: dict, path: tuple, value) -> None:
    """Set ``data[path] = value`` in place (mappings on the way are created).

    Raises
    ------
    ScenarioError
        When the path crosses a scalar or an index past a list's end
        (message only; the caller adds file and line).
    """
    cur = data
    for i, key in enumerate(path):
        last = i == len(path) - 1
        here = format_path(path[:i]) or "the scenario"
        if isinstance(key, int):
            if not isinstance(cur, list):
                raise ScenarioError(f"{here} is not a list")
            if key >= len(cur):
                raise ScenarioError(f"{here} has {len(cur)} item(s); index {key} does not exist")
        else:
            if not isinstance(cur, dict):
                raise ScenarioError(f"{here} is not a mapping")
        if last:
            cur[key] = copy.deepcopy(value)
        else:
            if isinstance(key, str) and cur.get(key) is None:
                nxt = path[i + 1]
                cur[key] = [] if isinstance(nxt, int) else {}
            cur = cur[key]


def point_id(data: dict) -> str:
    """16 hex digits identifying a scenario's content (canonical JSON, SHA-256)."""
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _label(value):
    """The results-column value of an override: scalars as they are, others as compact JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def _sub_lines(doc: YamlDoc, src: tuple, dst: tuple) -> dict:
    """Lines of ``doc`` below ``src``, re-keyed below ``dst``."""
    n = len(src)
    return {dst + k[n:]: v for k, v in doc.lines.items() if k[:n] == src}


def blame(exc: Exception, point: Point) -> str:
    """`` (from the override K = V on line N)`` when the error's key path is near an override's
    but is not it (``topology`` for ``topology.radix``); else ``""``."""
    where = getattr(exc, "path", None) or ""
    for key, v in point.overrides.items():
        text = format_path(parse_key_path(key))
        if text == where:
            return ""
        if not where or text.startswith((where + ".", where + "[")) or where.startswith((text + ".", text + "[")):
            line = point.override_lines.get(key)
            return f" (from the override {key} = {json.dumps(v, default=str)}" \
                + (f" on line {line})" if line else ")")
    return ""


# ------------------------------------------------------------------ parsing
def load_sweep_file(path) -> SweepSpec:
    """Read and validate a sweep file (see the module docstring).

    Raises
    ------
    ScenarioError
        Naming the file, the line and the key path of the problem.
    """
    p = Path(path)
    text = read_file(p, "sweep")
    return parse_sweep(load_yaml(text, str(path)), name=p.stem, base_dir=p.resolve().parent)


def _axis_values(doc: YamlDoc, key: str, raw, where: tuple) -> list:
    """(label, value, doc path of the value) of one grid axis."""
    if isinstance(raw, dict):
        out = [(str(k), v, where + (k,)) for k, v in raw.items()]
    elif isinstance(raw, list):
        out = [(_label(v), v, where + (i,)) for i, v in enumerate(raw)]
    else:
        raise doc.error(where, f"axis {key!r} needs a list of values (or a mapping label -> value), "
                        f"got {type(raw).__name__}")
    if not out:
        raise doc.error(where, f"axis {key!r} has no values")
    return out


def parse_sweep(doc: YamlDoc, *, name: str = "sweep", base_dir=None) -> SweepSpec:
    """Validate a parsed sweep document into a :class:`SweepSpec`.

    Parameters
    ----------
    doc : YamlDoc
    name : str
        Default sweep name (the file stem).
    base_dir : path, optional
        Directory of the sweep file (``base:`` and topology files are relative to it).
    """
    data = doc.data
    base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    if not isinstance(data, dict):
        raise doc.error((), "a sweep file is a mapping with 'base' and 'grid' and/or 'points'")
    for key in data:
        if key not in SWEEP_KEYS:
            hint = suggest(str(key), SWEEP_KEYS)
            raise doc.error((key,), f"unknown key {key!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                            + f"; valid keys: {', '.join(SWEEP_KEYS)}")
    if "base" not in data:
        raise doc.error((), "missing required key 'base' (a scenario file or the scenario inline)")
    if "grid" not in data and "points" not in data:
        raise doc.error((), "give 'grid' (axes) and/or 'points' (a list of overrides)")
    sweep_name = data.get("name", name)
    if not isinstance(sweep_name, str) or not sweep_name:
        raise doc.error(("name",), f"expected a name, got {sweep_name!r}")
    keep = data.get("keep_runs", False)
    if not isinstance(keep, bool):
        raise doc.error(("keep_runs",), f"expected true or false, got {keep!r}")
    recovery = data.get("recovery", 0.95)
    if isinstance(recovery, bool) or not isinstance(recovery, (int, float)) or not 0 < recovery <= 1:
        raise doc.error(("recovery",), f"expected a fraction in (0, 1], got {recovery!r}")

    # the base: validated on its own, so its errors name its own file and lines
    raw_base = data["base"]
    if isinstance(raw_base, str):
        bp = Path(raw_base).expanduser()
        bp = bp if bp.is_absolute() else base_dir / bp
        if not bp.is_file():
            raise doc.error(("base",), f"base scenario {str(bp)!r} does not exist")
        base_scn = Scenario.from_file(bp)
        base_data, base_lines, scn_dir = base_scn.data, {}, bp.resolve().parent
    elif isinstance(raw_base, dict):
        Scenario.from_doc(YamlDoc(raw_base, doc.source, _sub_lines(doc, ("base",), ())),
                          name=sweep_name, base=base_dir)
        base_data, base_lines, scn_dir = raw_base, _sub_lines(doc, ("base",), ()), base_dir
    else:
        raise doc.error(("base",), "expected a scenario file name or the scenario as a mapping")

    # the overrides of every point: (path text, path, value, label, doc path of the value)
    combos: list[list] = [[]]
    axes: list[str] = []
    grid = data.get("grid")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise doc.error(("grid",), "expected a mapping of key path -> list of values")
        for key, raw in grid.items():
            path = parse_key_path(key, doc, ("grid", key))
            axes.append(key)
            vals = _axis_values(doc, key, raw, ("grid", key))
            combos = [c + [(key, path, v, lab, where)] for c in combos for lab, v, where in vals]
    else:
        combos = []
    points = data.get("points")
    if points is not None:
        if not isinstance(points, list) or not points:
            raise doc.error(("points",), "expected a list of mappings (key path -> value)")
        for i, pt in enumerate(points):
            if not isinstance(pt, dict) or not pt:
                raise doc.error(("points", i), "expected a mapping of key path -> value")
            c = []
            for key, v in pt.items():
                path = parse_key_path(key, doc, ("points", i, key))
                if key not in axes:
                    axes.append(key)
                c.append((key, path, v, _label(v), ("points", i, key)))
            combos.append(c)

    out = []
    for index, combo in enumerate(combos):
        pdata = copy.deepcopy(base_data)
        lines = dict(base_lines)
        for key, path, v, lab, where in combo:
            try:
                apply_override(pdata, path, v)
            except ScenarioError as exc:
                axis = where[:2] if where[0] == "grid" else where       # ("grid", key) or ("points", i, key)
                raise ScenarioError(exc.message, source=doc.source, path=format_path(axis),
                                    line=doc.line(where)) from None
            lines.update(_sub_lines(doc, where, path))
            for k in range(1, len(path)):          # ancestors the override created point here too
                lines.setdefault(path[:k], doc.line(where))
        pid = point_id(pdata)
        if pdata.get("seed") is None:
            pdata["seed"] = int(pid[:8], 16)
        point = Point(index, pid, {k: v for k, _, v, _, _ in combo}, {k: lab for k, _, _, lab, _ in combo},
                      pdata, lines, {k: doc.line(at) for k, _, _, _, at in combo})
        try:
            scenario_of(point, doc.source, str(scn_dir), sweep_name)
        except ScenarioError as exc:
            point = dataclasses.replace(point, error=str(exc) + blame(exc, point))
        out.append(point)
    seen: dict[str, int] = {}
    for pt in out:
        if pt.id in seen:
            raise doc.error(("points",) if "points" in data else ("grid",),
                            f"points {seen[pt.id]} and {pt.index} describe the same scenario")
        seen[pt.id] = pt.index
    return SweepSpec(sweep_name, doc.source, str(scn_dir), tuple(axes), tuple(out), keep, float(recovery),
                     str(data.get("description") or ""))
