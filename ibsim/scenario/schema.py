"""Validation: a YAML tree (with its line map) -> the fields of a Scenario.

Every check raises :class:`~ibsim.errors.ScenarioError` naming the file, the
line and the key path; unknown keys get the nearest valid key suggested.
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import params as P
from ..errors import ScenarioError, TopologyError, lookup, suggest
from ..faults import FAULTS, Fault, expand, fault_params
from ..topology.generators import GENERATORS, generator_params
from ..traffic import PATTERNS, Job, job_params
from ..units import parse_size
from ..yamldoc import YamlDoc
from .cluster import parse_cluster
from .specs import ClockSpec, FaultSpec, OutputSpec, RoutingSpec, TopologySpec

__all__ = ["parse_scenario", "TOP_KEYS", "MTUS"]


#: valid top-level keys
TOP_KEYS = ("name", "description", "seed", "clock", "topology", "routing", "mtu", "traffic",
            "faults", "exporters", "mad_server", "output", "cluster")
#: IB path MTUs in bytes
MTUS = (256, 512, 1024, 2048, 4096)

_CLOCK_KEYS = ("tick", "duration", "realtime")
_ROUTING_KEYS = ("engine", "roots", "sweep_delay", "sweep_interval", "sm_settle")
_OUTPUT_KEYS = ("dir", "every", "max_rows")


# ---------------------------------------------------------- validation
class _Checker:
    """Validation helpers bound to one document (file name and line map)."""

    def __init__(self, doc: YamlDoc):
        self.doc = doc

    def error(self, path: tuple, message: str) -> ScenarioError:
        return self.doc.error(path, message)

    def mapping(self, value, path: tuple, allowed, *, required=(), what: str = "") -> dict:
        """``value`` as a dict with only ``allowed`` keys and every ``required`` key."""
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping{what}, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                hint = suggest(str(key), allowed)
                msg = f"unknown key {key!r}"
                msg += f" (did you mean {hint!r}?)" if hint else ""
                msg += f"; valid keys: {', '.join(allowed)}"
                raise self.error(path + (key,), msg)
        for key in required:
            if key not in value:
                raise self.error(path, f"missing required key {key!r}")
        return value

    def wrap(self, path: tuple, fn, *args):
        """Call ``fn(*args)``; re-raise its ScenarioError with the file, line and path."""
        try:
            return fn(*args)
        except ScenarioError as exc:
            raise self.error(path, exc.message) from None
        except TopologyError as exc:
            raise self.error(path, getattr(exc, "message", str(exc))) from None

    # scalar checks: the converters of ibsim.params (one integer rule everywhere)
    def duration(self, value, path: tuple, *, positive: bool = False) -> float:
        return self.wrap(path, P.duration(positive=positive), value)

    def number(self, value, path: tuple, *, lo=None, hi=None, lo_open=False) -> float:
        return self.wrap(path, P.number(lo, hi, lo_open=lo_open), value)

    def integer(self, value, path: tuple, *, lo=None) -> int:
        return self.wrap(path, P.integer(lo), value)

    def string(self, value, path: tuple) -> str:
        return self.wrap(path, P.name, value)


_kind = P.describe


# ----------------------------------------------------------- sections
def _parse_clock(ck: _Checker, value) -> ClockSpec:
    if value is None:
        return ClockSpec()
    path = ("clock",)
    d = ck.mapping(value, path, _CLOCK_KEYS)
    tick = ck.duration(d["tick"], path + ("tick",), positive=True) if "tick" in d else 0.1
    dur = None
    if d.get("duration") is not None:
        dur = ck.duration(d["duration"], path + ("duration",), positive=True)
    if dur is not None and dur < tick:
        raise ck.error(path + ("duration",), f"duration {dur:g}s is shorter than one tick ({tick:g}s)")
    rt = d.get("realtime", False)
    if rt is False or rt is None:
        realtime = None
    elif rt is True:
        realtime = 1.0
    else:
        realtime = ck.number(rt, path + ("realtime",), lo=0, lo_open=True)
    return ClockSpec(tick, dur, realtime)


def _parse_topology(ck: _Checker, value, base: Path) -> TopologySpec:
    path = ("topology",)
    if isinstance(value, str):
        value = {"file": value}
    if not isinstance(value, dict):
        raise ck.error(path, f"expected a mapping ({{generate: fat-tree, ...}} or {{file: ...}}), "
                       f"got {_kind(value)}")
    if "file" in value:
        ck.mapping(value, path, ("file",), what=" with only 'file' (a generator takes 'generate')")
        name = ck.string(value["file"], path + ("file",))
        p = Path(name).expanduser()
        if not p.is_absolute():
            p = base / p
        if not p.is_file():
            raise ck.error(path + ("file",), f"topology file {str(p)!r} does not exist")
        return TopologySpec(file=str(p))
    if "generate" not in value:
        hint = next((k for k in value if suggest(str(k), ["generate", "file"])), None)
        raise ck.error(path, "needs 'generate: <generator>' or 'file: <topology file>'"
                       + (f" (did you mean {suggest(str(hint), ['generate', 'file'])!r} "
                          f"instead of {hint!r}?)" if hint else ""))
    gen = ck.string(value["generate"], path + ("generate",))
    params = {k: v for k, v in value.items() if k != "generate"}
    ck.wrap(path + ("generate",), lookup, GENERATORS, gen.replace("_", "-"), "topology generator")
    name, params = generator_params(gen, params, path=path, doc=ck.doc)
    return TopologySpec(generate=name, params=params)


def _parse_routing(ck: _Checker, value) -> RoutingSpec:
    if value is None:
        return RoutingSpec()
    path = ("routing",)
    if isinstance(value, str):
        value = {"engine": value}
    d = ck.mapping(value, path, _ROUTING_KEYS)
    from ..engine import simulation as _engine
    from ..routing import ENGINES
    engines = dict(ENGINES)
    external = getattr(_engine, "EXTERNAL_SM", None)     # "opensm": an external SM routes
    if external:
        engines[external] = None
    engine = ck.string(d.get("engine", "minhop"), path + ("engine",))
    ck.wrap(path + ("engine",), lookup, engines, engine, "routing engine")
    roots = None
    if d.get("roots") is not None:
        r = d["roots"]
        r = [r] if isinstance(r, (str, int)) and not isinstance(r, bool) else r
        if not isinstance(r, list) or not r:
            raise ck.error(path + ("roots",), f"expected a list of switches, got {_kind(d['roots'])}")
        roots = tuple(ck.string(x, path + ("roots", i)) for i, x in enumerate(r))
    sweep = ck.wrap(path + ("sweep_delay",), P.duration_or("auto", "off"), d["sweep_delay"]) \
        if "sweep_delay" in d else "auto"
    interval = ck.wrap(path + ("sweep_interval",), P.duration_or("off"), d["sweep_interval"]) \
        if "sweep_interval" in d else 10.0
    if sweep == "off" and interval in ("off", 0):
        raise ck.error(path + ("sweep_interval",), "sweep_delay and sweep_interval are both off: ports "
                       "that retrain would never become Active; give one of them a duration")
    settle = ck.duration(d["sm_settle"], path + ("sm_settle",)) if "sm_settle" in d else 0.5
    return RoutingSpec(engine, roots, sweep, settle, interval)


def _parse_mtu(ck: _Checker, value) -> int:
    if value is None:
        return 4096
    mtu = ck.wrap(("mtu",), parse_size, value)
    if mtu not in MTUS:
        raise ck.error(("mtu",), f"IB MTU must be one of {', '.join(map(str, MTUS))} bytes, "
                       f"got {value!r}")
    return mtu


def _parse_output(ck: _Checker, value) -> OutputSpec:
    if value is None:
        return OutputSpec()
    path = ("output",)
    if isinstance(value, str):
        return OutputSpec(dir=value)
    d = ck.mapping(value, path, _OUTPUT_KEYS, what=" (or a directory name)")
    return OutputSpec(
        dir=ck.string(d.get("dir", "runs"), path + ("dir",)),
        every_s=ck.duration(d["every"], path + ("every",), positive=True) if "every" in d else 1.0,
        max_rows=ck.integer(d["max_rows"], path + ("max_rows",), lo=1000) if "max_rows" in d else 500_000,
    )


def _parse_job(ck: _Checker, value, i: int) -> Job:
    path = ("traffic", i)
    if not isinstance(value, dict):
        raise ck.error(path, f"expected a mapping (a job), got {_kind(value)}")
    if "pattern" not in value:
        raise ck.error(path, f"missing required key 'pattern' (one of: {', '.join(PATTERNS)})")
    pattern = ck.string(value["pattern"], path + ("pattern",))
    ck.wrap(path + ("pattern",), lookup, PATTERNS, pattern, "traffic pattern")
    job, params = job_params(pattern, value, path=path, doc=ck.doc)
    load, rate = job["load"], job["rate"]
    if load is None and rate is None:
        raise ck.error(path, "give 'load' (fraction of the host link rate, e.g. 0.6) or 'rate' "
                       "(per host, e.g. 40Gbps)")
    if load is not None and rate is not None:
        raise ck.error(path + ("rate",), "give either 'load' or 'rate', not both")
    start, stop = job["start"], job["stop"]
    if stop is not None and stop <= start:
        raise ck.error(path + ("stop",), f"stop ({stop:g}s) must be after start ({start:g}s)")
    name = job["name"] if job["name"] is not None else f"job{i}"
    return ck.wrap(path, Job, name, pattern, job["hosts"], load, rate, start, stop, params)


def _parse_fault(ck: _Checker, value, i: int) -> FaultSpec:
    path = ("faults", i)
    if not isinstance(value, dict):
        raise ck.error(path, f"expected a mapping like {{at: 10s, link_down: \"leaf01:19\"}}, "
                       f"got {_kind(value)}")
    allowed = ("at", "for") + tuple(FAULTS)
    ck.mapping(value, path, allowed)
    kinds = [k for k in value if k in FAULTS]
    if len(kinds) != 1:
        raise ck.error(path, f"needs exactly one fault kind ({', '.join(FAULTS)}), got "
                       + (", ".join(map(repr, kinds)) if kinds else "none"))
    kind = kinds[0]
    if "at" not in value:
        raise ck.error(path, "missing required key 'at' (when the fault happens, e.g. 30s)")
    at = ck.duration(value["at"], path + ("at",))
    spec = FAULTS[kind]
    tkey = spec["target"]
    tkeys = (tkey, "switch") if kind.startswith("switch") else (tkey,)
    pnames = tuple(spec["params"])
    raw, kpath = value[kind], path + (kind,)
    conv: dict = {}
    if isinstance(raw, dict):
        ck.mapping(raw, kpath, tkeys + pnames)
        tk = [k for k in tkeys if k in raw]
        if len(tk) != 1:
            raise ck.error(kpath, f"{kind!r} needs its target as {tkey!r} ({_TARGET_HELP[tkey]})")
        target_path = kpath + (tk[0],)
        target = ck.string(raw[tk[0]], target_path)
        conv = fault_params(kind, {k: v for k, v in raw.items() if k not in tkeys}, path=kpath, doc=ck.doc)
    elif isinstance(raw, (str, int)) and not isinstance(raw, bool):
        target_path, target = kpath, str(raw)
    else:
        raise ck.error(kpath, f"expected a {tkey} ({_TARGET_HELP[tkey]}) or a mapping, got {_kind(raw)}")
    if "for" in value:
        if "for" not in pnames:
            raise ck.error(path + ("for",), f"fault {kind!r} takes no 'for'"
                           + (f"; it takes: {', '.join(pnames)}" if pnames else ""))
        if isinstance(raw, dict) and "for" in raw:
            raise ck.error(path + ("for",), f"'for' is given twice (here and in {kind!r})")
        conv.update(fault_params(kind, {"for": value["for"]}, path=path, doc=ck.doc))
    fault = ck.wrap(path, Fault, kind, target, at, conv)
    ck.wrap(path, expand, fault)
    return FaultSpec(fault, target_path)


_TARGET_HELP = {"node": "a node description or GUID", "link": "one end, '<node>:<port>'",
                "port": "'<node>:<port>'"}



# ------------------------------------------------------------- the whole
def parse_scenario(doc: YamlDoc, *, name: str = "scenario", base=None) -> dict:
    """Validate a whole document; return the keyword arguments of :class:`Scenario`.

    Parameters
    ----------
    doc : YamlDoc
        Parsed YAML with its line map.
    name : str
        Default scenario name (the file stem).
    base : path, optional
        Directory that relative topology files are read from (default: cwd).
    """
    ck = _Checker(doc)
    data = doc.data
    if data is None:
        raise ck.error((), "the scenario is empty; it needs at least 'topology'")
    ck.mapping(data, (), TOP_KEYS, required=("topology",), what=" at the top level")
    base = Path(base) if base is not None else Path.cwd()
    seed = data.get("seed")
    if seed is not None:
        seed = ck.integer(seed, ("seed",), lo=0)
    traffic = data.get("traffic") or []
    faults = data.get("faults") or []
    for key, val in (("traffic", traffic), ("faults", faults)):
        if not isinstance(val, list):
            raise ck.error((key,), f"expected a list, got {_kind(val)}")
    jobs = tuple(_parse_job(ck, v, i) for i, v in enumerate(traffic))
    seen: dict[str, int] = {}
    for i, j in enumerate(jobs):
        if j.name in seen:
            raise ck.error(("traffic", i, "name"), f"job name {j.name!r} is already used by "
                           f"traffic[{seen[j.name]}]")
        seen[j.name] = i
    return dict(
        name=ck.string(data.get("name", name), ("name",)),
        description=str(data.get("description") or ""),
        seed=seed,
        clock=_parse_clock(ck, data.get("clock")),
        topology=_parse_topology(ck, data["topology"], base),
        routing=_parse_routing(ck, data.get("routing")),
        mtu=_parse_mtu(ck, data.get("mtu")),
        traffic=jobs,
        faults=tuple(_parse_fault(ck, v, i) for i, v in enumerate(faults)),
        exporters=_parse_exporters(ck, data.get("exporters")),
        mad_server=_parse_mad_server(ck, data.get("mad_server")),
        output=_parse_output(ck, data.get("output")),
        cluster=parse_cluster(ck, data.get("cluster"), default_name=str(data.get("name", name))),
    )


_KEY_PATH = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


_MAD_KEYS = ("sockname", "udp", "host")


def _parse_mad_server(ck, value) -> dict | None:
    """``mad_server: {sockname: NAME, udp: PORT, host: 127.0.0.1}`` (or ``true``) -> options or None."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    path = ("mad_server",)
    d = ck.mapping(value, path, _MAD_KEYS)
    out = {}
    if "sockname" in d:
        out["sockname"] = ck.string(d["sockname"], path + ("sockname",))
    if "udp" in d:
        out["udp"] = ck.integer(d["udp"], path + ("udp",), lo=1)
        if out["udp"] > 65535 - 300:
            raise ck.error(path + ("udp",), f"UDP base port must leave room for the client slots, "
                           f"got {out['udp']}")
    if "host" in d:
        out["host"] = ck.string(d["host"], path + ("host",))
    return out


def _parse_exporters(ck, items) -> tuple:
    """``exporters:`` -> ExporterSpec tuple; errors carry this file's line and key path."""
    from ..export import specs_from_scenario
    try:
        return tuple(specs_from_scenario(items, source=None))
    except ScenarioError as exc:
        path = tuple(int(i) if i else k for i, k in _KEY_PATH.findall(exc.path or "exporters"))
        raise ck.error(path, exc.message) from None
