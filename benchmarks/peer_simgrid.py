"""Benchmark: ibsim's max-min sharing side by side with SimGrid, the reference flow-level simulator.

    python benchmarks/peer_simgrid.py --json                          # 1k, 10k and 100k flows
    python benchmarks/peer_simgrid.py --sizes 300:8:2 --json          # a quick run

For each size it builds one fat tree (``fat_tree(radix, levels)``, a seeded
``--slow-frac`` of its switch-to-switch cables trained at 4xDDR instead of
4xEDR, so that there are several bottleneck levels), routes it with ibsim's
embedded SM (``--routing``, ftree by default), draws ``flows`` random host
pairs (seeded; a pair may carry several flows) and computes the rate of every
flow twice:

* **ibsim**: the flows aggregated per (source CA port, destination CA port)
  (``weight`` = flows of the pair), their paths walked on the LFTs
  (:func:`ibsim.engine.flows.walk_paths`) with the source CA's own port as
  first hop, and :func:`ibsim.engine.allocation.max_min_allocate` with
  unbounded demands: plain max-min over every directed link, the host links
  included. (The engine itself caps a host's offered load at its link rate
  before allocating and leaves the injection link out of the paths; this
  benchmark compares the kernel, which the engine calls.)
* **SimGrid** (Debian ``python3-simgrid`` 3.32, or PyPI ``simgrid`` where
  built): one full netzone whose hosts are the CAs in use, one split-duplex
  link per cable in use (direction UP = from the end with the lower ibsim
  port index, bandwidth = the cable's data rate in bytes/s, latency 0) and,
  per host pair, the route of the LFT walk above (``add_route``, not
  symmetrical), so both route alike. Every flow is a ``Comm.sendto_async`` of
  10^15 bytes started at t=0 by one actor, which sleeps 1 s of simulated time
  and reads each comm's ``remaining``; rate = (size - remaining) / clock.

SimGrid settings that make its model plain max-min (documented in its
``network_cm02.cpp``): ``network/model:CM02`` (bandwidth and latency factors
1, weight-S 0), ``network/crosstraffic:0`` (no 5 % reverse flow on the back
route), ``network/TCP-gamma:0`` (no window bound; with latency 0 it would
not apply either), latency 0 on every link (so every comm's sharing penalty
is 1: equal weights), ``network/solver:maxmin``, ``network/optim:Lazy`` (the
default) and ``maxmin/precision:1e-9`` (the default 1e-5 is absolute, in
bytes/s, harmless at 10^9 bytes/s). A comm's only bound is the smallest
bandwidth on its route, which max-min never exceeds.

SimGrid runs in a child process (``--simgrid-child``, standard library and
``simgrid`` only, so that Debian's ``/usr/bin/python3`` can run it) with a
timeout (``--simgrid-timeout``, 600 s): a size it does not finish in time is
reported (``simgrid: "timeout"``), not a crash, and the child is stopped.

Timed, per size, in the same run (the machine is shared: ratios, not
absolutes): ``ours_s`` is aggregation + path walk + allocation + per-flow
rates (best of ``--repeat``); ``simgrid_s`` is starting the comms + the
solve + reading every rate (``simgrid_start_s`` + ``simgrid_solve_s`` +
``simgrid_read_s``, best of ``--repeat`` child runs);
building the platform (``simgrid_platform_s``) and ibsim's compile and
routing (``ours_setup_s``) are reported apart and not in the ratio.
``speedup`` = simgrid_s / ours_s. Goals: ``rates_max_rel_err`` <= 1e-6;
speedup >= 100 at the largest size both finish.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

#: where Debian's python3-simgrid puts the module (for /usr/bin/python3)
DEBIAN_PYTHON = "/usr/bin/python3"
#: bytes per comm: none finishes before the rates are read
COMM_BYTES = 10**15
#: simulated seconds after which the rates are read
READ_AT_S = 1.0
SIMGRID_CFG = [
    "--cfg=network/model:CM02",
    "--cfg=network/crosstraffic:0",
    "--cfg=network/TCP-gamma:0",
    "--cfg=network/weight-S:0",
    "--cfg=network/bandwidth-factor:1",
    "--cfg=network/latency-factor:1",
    "--cfg=network/solver:maxmin",
    "--cfg=network/optim:Lazy",
    "--cfg=maxmin/precision:1e-9",
    "--log=root.thresh:warning",
]
#: bound on max_min_allocate's freezing rounds: high enough to be exact (the engine uses 32)
MAX_ROUNDS = 100_000
#: the default sizes: flows:radix:levels
DEFAULT_SIZES = "1000:16:2,10000:16:3,100000:24:3"


# ----------------------------------------------------------------- the case (numpy, ibsim)

def build_case(radix: int, levels: int, flows: int, seed: int, routing: str, slow_frac: float):
    """Fabric, LFTs, capacities and random flows of one size.

    Returns
    -------
    dict
        ``fabric``, ``lft``, ``lid``, ``capacity`` (bytes/s per port),
        ``src``, ``dst`` (CA port of each flow), ``setup_s``.
    """
    import numpy as np

    from ibsim import compile_fabric, fat_tree
    from ibsim.engine import Simulation

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    topo = fat_tree(radix, levels)
    sw = set(topo.switches())
    inter = [ln for ln in topo.links() if ln.a[0] in sw and ln.b[0] in sw]
    for i in rng.choice(len(inter), int(round(slow_frac * len(inter))), replace=False):
        ln = inter[int(i)]
        topo.remove_link(*ln.a)
        topo.add_link(*ln.a, *ln.b, width=ln.width, speed="DDR")
    fabric = compile_fabric(topo)
    sim = Simulation(fabric, seed=seed, routing=routing)
    setup_s = time.perf_counter() - t0
    hosts = np.flatnonzero(~fabric.is_switch & (fabric.peer_of_port >= 0))
    src = rng.integers(0, hosts.size, size=flows)
    dst = (src + rng.integers(1, hosts.size, size=flows)) % hosts.size      # never to itself
    return {"fabric": fabric, "lft": sim.state.lft.copy(), "lid": sim.state.lid.copy(),
            "capacity": sim.state.capacity.copy(), "src": hosts[src], "dst": hosts[dst],
            "setup_s": setup_s}


def ours(case: dict):
    """Per-flow max-min rates through ibsim's kernel.

    Returns
    -------
    rate : ndarray of float64, (flows,)
        Bytes/s of each flow.
    pairs : ndarray of int64, (P, 2)
        Source and destination CA port of each distinct pair.
    paths : ndarray of int32, (H + 1, P)
        Transmitting ports of each pair, the source CA port first, padded
        with ``n_ports``.
    pair_of_flow : ndarray of int64, (flows,)
    rounds : int
        Freezing rounds the allocation used.
    alloc_s : float
        Seconds in :func:`~ibsim.engine.allocation.max_min_allocate` alone.
    """
    import numpy as np

    from ibsim.engine.allocation import max_min_allocate
    from ibsim.engine.flows import walk_paths

    f = case["fabric"]
    n = f.n_ports
    key = case["src"] * n + case["dst"]
    uniq, inv = np.unique(key, return_inverse=True)
    s_port, d_port = uniq // n, uniq % n
    weight = np.bincount(inv, minlength=uniq.size).astype(np.float64)
    src_switch = f.switch_of_node[f.node_of_port[f.peer_of_port[s_port]]].astype(np.int32)
    walked, ok = walk_paths(f, case["lft"], case["lid"], src_switch, d_port)
    if not ok.all():
        raise RuntimeError(f"{int((~ok).sum())} pairs have no path on the LFTs")
    paths = np.vstack([s_port[None, :].astype(np.int32), walked])
    t = time.perf_counter()
    alloc = max_min_allocate(paths, weight, np.full(uniq.size, np.inf), case["capacity"],
                             max_iter=MAX_ROUNDS)
    if not alloc.converged:
        raise RuntimeError(f"max_min_allocate did not converge in {MAX_ROUNDS} rounds")
    alloc_s = time.perf_counter() - t
    rate = (alloc.rate / weight)[inv]
    return rate, np.stack([s_port, d_port], axis=1), paths, inv, alloc.iterations, alloc_s


def platform_spec(case: dict, pairs, paths, pair_of_flow, cfg: list[str]) -> dict:
    """What the SimGrid child builds: settings, hosts, split-duplex cables, routes and flows (plain lists)."""
    import numpy as np

    f = case["fabric"]
    n = f.n_ports
    cap = case["capacity"]
    hops = paths[paths < n]
    peer = f.peer_of_port[hops]
    lo = np.minimum(hops, peer)
    cables, cable_of = np.unique(lo, return_inverse=True)
    hi = f.peer_of_port[cables]
    if not np.array_equal(cap[cables], cap[hi]):
        raise RuntimeError("a cable's two directions differ in capacity")
    # per hop: cable index and direction (0 = UP: sent by the lower port)
    cab = np.full(paths.shape, -1, dtype=np.int64)
    direction = np.zeros(paths.shape, dtype=np.int64)
    cab[paths < n] = cable_of
    direction[paths < n] = (hops != lo).astype(np.int64)
    hosts, host_of = np.unique(pairs, return_inverse=True)
    host_of = host_of.reshape(pairs.shape)
    routes = []
    for p in range(pairs.shape[0]):
        c = cab[:, p]
        keep = c >= 0
        routes.append([int(host_of[p, 0]), int(host_of[p, 1]),
                       [[int(x), int(d)] for x, d in zip(c[keep], direction[keep, p])]])
    return {"cfg": cfg, "hosts": [f.port_label(int(h)) for h in hosts],
            "cables": [[f.port_label(int(c)), float(cap[c])] for c in cables],
            "routes": routes, "flows": pair_of_flow.astype(int).tolist(),
            "comm_bytes": COMM_BYTES, "read_at_s": READ_AT_S}


# ----------------------------------------------------------------- SimGrid (child process)

def import_simgrid():
    """The ``simgrid`` module, or None."""
    try:
        import simgrid
    except ImportError:
        return None
    return simgrid


def simgrid_python() -> str | None:
    """An interpreter that imports ``simgrid``: this one, else Debian's; None if neither."""
    for exe in dict.fromkeys([sys.executable, DEBIAN_PYTHON]):
        if os.path.exists(exe) and subprocess.run([exe, "-c", "import simgrid"], capture_output=True,
                                                  timeout=60).returncode == 0:
            return exe
    return None


def simgrid_child(spec_path: str) -> int:
    """Build the platform, start every comm at t=0, print the rates at ``read_at_s`` as JSON, exit."""
    sg = import_simgrid()
    with open(spec_path) as fh:
        spec = json.load(fh)
    t0 = time.perf_counter()
    e = sg.Engine(["peer_simgrid", *spec["cfg"]])
    zone = sg.NetZone.create_full_zone("fabric")
    hosts = [zone.create_host(name, 1e9).seal() for name in spec["hosts"]]
    links = []
    for name, bw in spec["cables"]:
        ln = zone.create_split_duplex_link(name, bw)
        ln.set_latency(0)
        links.append(ln.seal())
    up, down = sg.LinkInRoute.Direction.UP, sg.LinkInRoute.Direction.DOWN
    for s, d, hops in spec["routes"]:
        zone.add_route(hosts[s].netpoint, hosts[d].netpoint, None, None,
                       [sg.LinkInRoute(links[c], down if di else up) for c, di in hops], False)
    zone.seal()
    platform_s = time.perf_counter() - t0
    ends = [(hosts[spec["routes"][p][0]], hosts[spec["routes"][p][1]]) for p in spec["flows"]]
    size = int(spec["comm_bytes"])

    def driver():
        t1 = time.perf_counter()
        comms = [sg.Comm.sendto_async(a, b, size) for a, b in ends]
        t2 = time.perf_counter()
        sg.this_actor.sleep_for(spec["read_at_s"])
        t3 = time.perf_counter()
        now = sg.Engine.clock
        rates = [(size - c.remaining) / now for c in comms]
        t4 = time.perf_counter()
        out = {"rates": rates, "platform_s": platform_s, "start_s": t2 - t1, "solve_s": t3 - t2,
               "read_s": t4 - t3, "clock": now, "version": sg.simgrid_version}
        sys.stdout.write(json.dumps(out))
        sys.stdout.flush()
        os._exit(0)        # the comms would run on for hours of simulated time

    sg.Actor.create("driver", hosts[0], driver)
    e.run()
    return 1


def run_simgrid(spec: dict, python: str, timeout: float) -> dict | None:
    """Run the child on ``spec``; None when it does not finish within ``timeout`` seconds."""
    with tempfile.TemporaryDirectory(prefix="peer_simgrid_") as tmp:
        path = os.path.join(tmp, "spec.json")
        with open(path, "w") as fh:
            json.dump(spec, fh)
        try:
            p = subprocess.run([python, os.path.abspath(__file__), "--simgrid-child", path],
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:       # subprocess.run has killed the child (its PID)
            return None
    if p.returncode != 0:
        raise RuntimeError(f"SimGrid child failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(p.stdout)


# ----------------------------------------------------------------- one size, all sizes

def _total(sg: dict) -> float:
    """SimGrid's compared seconds: starting the comms, the solve, reading the rates."""
    return sg["start_s"] + sg["solve_s"] + sg["read_s"]


def compare(flows: int, radix: int, levels: int, *, seed: int, routing: str, slow_frac: float,
            repeat: int, python: str, timeout: float, cfg: list[str]) -> dict:
    """One row of the table."""
    import numpy as np

    case = build_case(radix, levels, flows, seed, routing, slow_frac)
    best = best_alloc = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        rate, pairs, paths, pair_of_flow, rounds, alloc_s = ours(case)
        best = min(best, time.perf_counter() - t)
        best_alloc = min(best_alloc, alloc_s)
    row = {"flows": flows, "topology": f"fat_tree({radix}, {levels})",
           "cas": int((~case["fabric"].is_switch & (case["fabric"].peer_of_port >= 0)).sum()),
           "pairs": int(pairs.shape[0]), "ours_s": round(best, 5), "ours_alloc_s": round(best_alloc, 5),
           "ours_setup_s": round(case["setup_s"], 3),
           "alloc_rounds": rounds, "rate_levels": int(np.unique(np.round(rate / rate.max(), 9)).size)}
    spec = platform_spec(case, pairs, paths, pair_of_flow, cfg)
    row["links"] = len(spec["cables"])
    sg = None
    for _ in range(repeat):                  # best of, as for ours; a timeout ends the size
        got = run_simgrid(spec, python, timeout)
        if got is None:
            sg = None
            break
        if sg is None or _total(got) < _total(sg):
            sg = got
    if sg is None:
        row.update({"simgrid": "timeout", "simgrid_timeout_s": timeout, "rates_max_rel_err": None,
                    "simgrid_s": None, "speedup": None, "speedup_solve": None})
        return row
    theirs = np.asarray(sg["rates"])
    rel = np.abs(rate - theirs) / np.maximum(np.abs(theirs), 1e-300)
    simgrid_s = _total(sg)
    row.update({"simgrid": "ok", "simgrid_version": sg["version"],
                "rates_max_rel_err": float(rel.max()), "simgrid_s": round(simgrid_s, 4),
                "simgrid_start_s": round(sg["start_s"], 4), "simgrid_solve_s": round(sg["solve_s"], 4),
                "simgrid_read_s": round(sg["read_s"], 4), "simgrid_platform_s": round(sg["platform_s"], 3),
                "speedup": round(simgrid_s / best, 1), "speedup_solve": round(sg["solve_s"] / best_alloc, 1)})
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated flows:radix:levels")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--routing", default="ftree")
    ap.add_argument("--slow-frac", type=float, default=0.05,
                    help="fraction of switch-to-switch cables trained at 4xDDR")
    ap.add_argument("--repeat", type=int, default=3, help="times: best of (ibsim and SimGrid)")
    ap.add_argument("--simgrid-timeout", type=float, default=600.0, help="seconds per size")
    ap.add_argument("--simgrid-cfg", action="append", default=[], metavar="KEY:VALUE",
                    help="a SimGrid setting after ours (repeatable), e.g. network/crosstraffic:1 to "
                         "measure what it changes")
    ap.add_argument("--simgrid-child", metavar="SPEC", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.simgrid_child:
        return simgrid_child(args.simgrid_child)
    python = simgrid_python()
    if python is None:
        print("peer_simgrid: no Python imports simgrid: apt-get install python3-simgrid "
              "(tests/run.sh installs it)", file=sys.stderr)
        return 2
    cfg = SIMGRID_CFG + [f"--cfg={c}" for c in args.simgrid_cfg]
    rows = []
    for item in args.sizes.split(","):
        flows, radix, levels = (int(x) for x in item.split(":"))
        rows.append(compare(flows, radix, levels, seed=args.seed, routing=args.routing,
                            slow_frac=args.slow_frac, repeat=args.repeat, python=python,
                            timeout=args.simgrid_timeout, cfg=cfg))
    both = [r for r in rows if r["simgrid"] == "ok"]
    out = {"routing": args.routing, "slow_frac": args.slow_frac, "seed": args.seed,
           "simgrid_python": python, "simgrid_cfg": cfg, "sizes": rows}
    if both:
        out["targets_met"] = {
            "rates_max_rel_err<=1e-6": all(r["rates_max_rel_err"] <= 1e-6 for r in both),
            "speedup>=100 at the largest size both finish": both[-1]["speedup"] >= 100}
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
