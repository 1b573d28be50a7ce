"""The command line: ``python -m ibsim ...``. The only module that prints or exits.

Subcommands
-----------
``topo generate NAME [--param ...] -o FILE``   write a generated topology
``topo info FILE [--json]``                    counts and the link-rate histogram
``topo convert IN OUT``                        ibnetdiscover <-> YAML
``routes FILE --engine NAME [--json]``         route quality metrics, LFT dump
``run SCENARIO [--mad-server] [--graphite ...]`` simulate, record, export, serve MADs
``serve TOPOLOGY_OR_SCENARIO``                 serve the ibsim MAD protocol, no traffic

Exit codes: 0 ok, 2 bad input or usage (one line ``ibsim: error: ...``), 1
runtime failure.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import typing

from .errors import IbsimError

__all__ = ["main"]

log = logging.getLogger("ibsim")


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
    from .topology.readwrite import read_topology
    return read_topology(path)


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=None, sort_keys=False))


# ----------------------------------------------------------- commands
def _cmd_topo_generate(args) -> int:
    from .errors import lookup
    from .topology import GENERATORS
    from .topology.readwrite import write_topology
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
    from .topology.readwrite import write_topology
    topo = _load_topology(args.input)
    write_topology(topo, args.output)
    if not args.quiet:
        print(f"wrote {args.output}")
    return 0


def _cmd_routes(args) -> int:
    from .fabric import compile_fabric
    from .routing import compute_lfts, route_metrics, write_lft_dump
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


# -------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of ``python -m ibsim``."""
    from .topology import GENERATORS
    parser = argparse.ArgumentParser(prog="ibsim", description="InfiniBand fabric simulator")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="print less")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

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

    _add_run_parsers(sub)
    return parser


def _add_run_parsers(sub) -> None:
    """Attach the simulation subcommands: ``run`` and ``serve``."""
    from . import cli_run
    from .mad import cli as mad_cli
    cli_run.add_parsers(sub)
    mad_cli.add_parsers(sub)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ibsim``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="ibsim: %(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except IbsimError as exc:
        if args.debug:
            raise
        print(f"ibsim: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ibsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if args.debug:
            raise
        print(f"ibsim: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the one top-level handler
        if args.debug:
            raise
        print(f"ibsim: internal error: {type(exc).__name__}: {exc}; rerun with --debug for the traceback",
              file=sys.stderr)
        return 1
