"""``python -m ibsim topo generate|info|convert`` and ``routes``: topologies and their routes."""

from __future__ import annotations

import argparse
import inspect
import json
import typing

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    """Attach ``topo`` (generate, info, convert) and ``routes``."""
    from ..topology import GENERATORS
    topo = sub.add_parser("topo", help="generate, inspect and convert topologies")
    tsub = topo.add_subparsers(dest="topo_command", metavar="ACTION")
    tsub.required = True
    gen = tsub.add_parser("generate", help="write a generated topology")
    gsub = gen.add_subparsers(dest="generator", metavar="GENERATOR")
    gsub.required = True
    for name, func in GENERATORS.items():
        _add_generator_parser(gsub, name, func)
    info = tsub.add_parser("info", help="summarise a topology file")
    info.add_argument("file")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_cmd_topo_info)
    conv = tsub.add_parser("convert", help="convert between topology formats (by suffix)")
    conv.add_argument("input")
    conv.add_argument("output")
    conv.set_defaults(func=_cmd_topo_convert)

    routes = sub.add_parser("routes", help="route a topology and report route quality")
    routes.add_argument("file", help="topology file")
    routes.add_argument("--engine", default="minhop", help="minhop, updn or ftree (default minhop)")
    routes.add_argument("--roots", help="updn roots: comma-separated GUIDs or descriptions")
    routes.add_argument("--json", action="store_true", help="print one JSON object")
    routes.add_argument("--dump-lfts", metavar="OUT", help="write the LFTs as opensm-lfts.dump")
    routes.set_defaults(func=_cmd_routes)


# ------------------------------------------------------------ helpers
def _parse_list(text: str) -> tuple:
    """``"4,4,4"`` -> ``(4, 4, 4)`` (ints where possible)."""
    out = []
    for part in str(text).replace("x", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            out.append(part)
    return tuple(out)


def _option_type(param: inspect.Parameter):
    """argparse type for a generator parameter, from its annotation or default."""
    ann = param.annotation
    text = str(ann)
    default = param.default
    if isinstance(default, (tuple, list)) or any(k in text for k in ("tuple", "list", "Sequence")):
        return _parse_list
    if isinstance(default, bool) or ann is bool or text == "bool":
        return "bool"
    if isinstance(default, int) or ann is int or text in ("int", "int | None"):
        return int
    if isinstance(default, float) or ann is float or text in ("float", "float | None"):
        return float
    return str


def _add_generator_parser(sub, name: str, func) -> None:
    doc = (inspect.getdoc(func) or "").split("\n\n")[0]
    p = sub.add_parser(name, help=doc.splitlines()[0] if doc else name, description=doc)
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # annotations that cannot be evaluated: fall back to raw text
        hints = {}
    for pname, param in inspect.signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        param = param.replace(annotation=hints.get(pname, param.annotation))
        flag = "--" + pname.replace("_", "-")
        typ = _option_type(param)
        required = param.default is inspect.Parameter.empty
        if typ == "bool":
            p.add_argument(flag, dest=pname, action=argparse.BooleanOptionalAction,
                           default=param.default if not required else None)
        else:
            p.add_argument(flag, dest=pname, type=typ, required=required,
                           default=None if required else param.default,
                           help=f"default: {param.default!r}" if not required else "required")
    p.add_argument("-o", "--output", required=True, help="output file (.topo/.net/.ibnd or .yml/.yaml)")
    p.set_defaults(generator=name, func=_cmd_topo_generate, gen_params=[
        n for n, q in inspect.signature(func).parameters.items()
        if q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)])


def _load_topology(path: str):
    from ..topology.readwrite import read_topology
    return read_topology(path)


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=None, sort_keys=False))


# ----------------------------------------------------------- commands
def _cmd_topo_generate(args) -> int:
    from ..errors import lookup
    from ..topology import GENERATORS
    from ..topology.readwrite import write_topology
    func = lookup(GENERATORS, args.generator, "topology generator")
    kwargs = {n: getattr(args, n) for n in args.gen_params if getattr(args, n) is not None}
    topo = func(**kwargs)
    write_topology(topo, args.output)
    s = topo.summary()
    if not args.quiet:
        print(f"wrote {args.output}: {s['switches']} switches, {s['cas']} CAs, {s['links']} links")
    return 0


def _cmd_topo_info(args) -> int:
    topo = _load_topology(args.file)
    s = topo.summary()
    s["file"] = args.file
    if args.json:
        _print_json(s)
        return 0
    print(f"{args.file}: {topo.name}")
    print(f"  switches         {s['switches']}")
    print(f"  CAs              {s['cas']}" + (f" ({s['routers']} routers)" if s["routers"] else ""))
    print(f"  links (cables)   {s['links']}")
    print(f"  connected ports  {s['connected_ports']}")
    print("  link rates       " + ", ".join(f"{k}: {v}" for k, v in s["speeds"].items()))
    return 0


def _cmd_topo_convert(args) -> int:
    from ..topology.readwrite import write_topology
    topo = _load_topology(args.input)
    write_topology(topo, args.output)
    if not args.quiet:
        print(f"wrote {args.output}")
    return 0


def _cmd_routes(args) -> int:
    from ..fabric import compile_fabric
    from ..routing import compute_lfts, route_metrics, write_lft_dump
    topo = _load_topology(args.file)
    fabric = compile_fabric(topo)
    roots = None
    if args.roots:
        roots = [topo.find(r) for r in args.roots.split(",") if r.strip()]
    lft = compute_lfts(fabric, args.engine, roots=roots)
    metrics = route_metrics(fabric, lft)
    metrics = {"file": args.file, "engine": args.engine, **metrics}
    if args.dump_lfts:
        with open(args.dump_lfts, "w") as fh:
            write_lft_dump(fabric, lft, fh)
    if args.json:
        _print_json(metrics)
    else:
        for k, v in metrics.items():
            print(f"{k:12s} {v}")
    return 0
