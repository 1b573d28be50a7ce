"""``python -m ibsim serve TOPOLOGY_OR_SCENARIO``: serve a live fabric to the OFED tools.

Attached to the parser of :mod:`ibsim.cli` by :func:`add_parsers`. The
fabric comes from a topology file (any format :func:`read_topology` reads)
or a scenario YAML (one with a ``topology:`` key: its traffic and faults
run too). The simulation ticks in real time in the main thread while the
MAD server answers in its own; Ctrl-C stops both (exit status 0).

Clients attach with::

    LD_PRELOAD=libumad2sim.so IBSIM_SOCKNAME=<name> [SIM_HOST=<node>] ibnetdiscover

A composition root like :mod:`ibsim.cli`: may import scenario, topology,
fabric, engine, mad.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

from ..errors import ScenarioError
from ..units import parse_duration

__all__ = ["add_parsers", "build_simulation", "cmd_serve"]

log = logging.getLogger("ibsim")


def add_parsers(sub) -> None:
    """Add the ``serve`` subcommand to an argparse subparsers object."""
    p = sub.add_parser("serve", help="serve a live fabric over linux-rdma ibsim's protocol "
                       "(OpenSM and infiniband-diags via libumad2sim)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("source", metavar="TOPOLOGY_OR_SCENARIO",
                   help="topology file (.topo/.net/.ibnd/.yml) or scenario YAML")
    p.add_argument("--sockname", help="IBSIM_SOCKNAME of the clients (default: $IBSIM_SOCKNAME or 'sim')")
    p.add_argument("--udp", type=int, metavar="PORT",
                   help="serve over UDP from this base port (clients: IBSIM_SERVER_NAME/IBSIM_SERVER_PORT)")
    p.add_argument("--host", default="127.0.0.1", help="UDP bind address (default 127.0.0.1)")
    p.add_argument("--max-clients", type=int, default=256, help="client slots (default 256)")
    p.add_argument("--routing", help="routing engine of the embedded SM (minhop, updn, ftree), or "
                   "'opensm' to leave routing to an external SM (topology files; default minhop)")
    p.add_argument("--tick", default="100ms", help="simulated time per tick (topology files)")
    p.add_argument("--realtime", type=float, default=1.0,
                   help="pace factor: simulated seconds per wall second (default 1)")
    p.add_argument("--until", help="stop the clock at this simulated time (default: the scenario's "
                   "duration, else never); the fabric is served until Ctrl-C")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--exit-at-end", action="store_true", help="exit when the clock stops")
    p.set_defaults(func=cmd_serve)


def _is_scenario(path: Path) -> bool:
    if path.suffix.lower() not in (".yml", ".yaml"):
        return False
    import yaml
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and "topology" in doc


def build_simulation(source, *, routing: str | None = None, tick="100ms", seed: int | None = None):
    """A Simulation for a topology file or a scenario YAML; (sim, end time in s or None)."""
    path = Path(source)
    if _is_scenario(path):
        from ..scenario import load_scenario
        scn = load_scenario(path)
        if seed is not None:
            scn = scn.with_overrides(seed=seed)
        if routing is not None:
            raise ScenarioError("--routing applies to topology files; set routing.engine in the scenario")
        sim = scn.build()
        return sim, scn.clock.duration_s
    from ..engine.simulation import Simulation
    from ..fabric import compile_fabric
    from ..topology.readwrite import read_topology
    fabric = compile_fabric(read_topology(path))
    sim = Simulation(fabric, tick=tick, seed=seed, routing=routing or "minhop")
    return sim, None


def cmd_serve(args) -> int:
    from ..mad import start_mad_server
    sim, end = build_simulation(args.source, routing=args.routing, tick=args.tick, seed=args.seed)
    if args.until is not None:
        end = parse_duration(args.until)
    if args.realtime <= 0:
        raise ScenarioError(f"--realtime must be positive, got {args.realtime}")
    server = start_mad_server(sim, sockname=args.sockname, udp=args.udp, host=args.host,
                              max_clients=args.max_clients)
    f = sim.fabric
    if not args.quiet:
        print(f"ibsim: serving {f.n_nodes} nodes ({f.n_switches} switches, {f.n_links} links) "
              f"on {server.address}", file=sys.stderr, flush=True)
    import signal

    def _term(signum, frame):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGTERM, _term)
    try:
        sim.run(until=end if end is not None else math.inf, realtime=args.realtime)
        if not args.exit_at_end:
            if not args.quiet:
                print(f"ibsim: clock stopped at {sim.time_s:g} s; still serving (Ctrl-C to stop)",
                      file=sys.stderr, flush=True)
            import threading
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        server.close()
    return 0
