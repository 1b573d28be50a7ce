"""``python -m ibsim topo generate|info|convert`` and ``routes``: topologies and their routes."""

from __future__ import annotations

import argparse
import inspect
import json

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
    for name, gen in GENERATORS.items():
        _add_generator_parser(gsub, name, gen)
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
def _add_generator_parser(sub, name: str, gen) -> None:
    """One ``topo generate NAME`` parser, a ``--flag`` per declared Param of the generator."""
    doc = (inspect.getdoc(gen.func) or "").split("\n\n")[0]
    p = sub.add_parser(name, help=doc.splitlines()[0] if doc else name, description=doc)
    for pname, param in gen.params.items():
        flag = "--" + pname.replace("_", "-")
        cli = getattr(param.convert, "cli", str)
        unit = f" ({param.unit})" if param.unit else ""
        if param.required:
            p.add_argument(flag, dest=pname, type=cli, required=True, help=f"{param.help}{unit}; required")
        elif cli == "bool":
            p.add_argument(flag, dest=pname, action=argparse.BooleanOptionalAction, default=param.default,
                           help=f"{param.help}{unit}")
        else:
            shown = f"; default: {param.default!r}" if param.default is not None else ""
            p.add_argument(flag, dest=pname, type=cli, default=param.default,
                           help=f"{param.help}{unit}{shown}")
    p.add_argument("-o", "--output", required=True, help="output file (.topo/.net/.ibnd or .yml/.yaml)")
    p.set_defaults(generator=name, func=_cmd_topo_generate, gen_params=list(gen.params))


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
