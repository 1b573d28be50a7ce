"""Benchmark: generate + compile a fabric and route it with every engine.

    python benchmarks/fabric.py --json            # fat_tree(36, 3): 11,664 CAs
    python benchmarks/fabric.py --radix 8 --json  # a quick run

Prints one JSON object: ports, compile_s (generate + compile), bytes_per_port
(index + state + counters, LFTs excluded), lft_bytes, and route_<engine>_s for
minhop, updn and ftree, plus the route metrics of each engine. Targets on the
2-core CI machine: compile <= 5 s, ftree <= 10 s, minhop <= 30 s,
<= 300 bytes/port. A benchmark, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--radix", type=int, default=36)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--engines", default="minhop,updn,ftree")
    ap.add_argument("--no-metrics", action="store_true", help="skip route_metrics")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args(argv)

    from ibsim.fabric import FabricState, compile_fabric
    from ibsim.routing import compute_lfts, route_metrics
    from ibsim.topology import fat_tree

    t0 = time.perf_counter()
    topo = fat_tree(args.radix, args.levels)
    t1 = time.perf_counter()
    fabric = compile_fabric(topo)
    t2 = time.perf_counter()
    state = FabricState(fabric)          # the live arrays a simulation of it owns
    out = {
        "topology": f"fat_tree(radix={args.radix}, levels={args.levels})",
        "cas": topo.summary()["cas"],
        "switches": fabric.n_switches,
        "ports": fabric.n_ports,
        "generate_s": round(t1 - t0, 3),
        "compile_only_s": round(t2 - t1, 3),
        "compile_s": round(t2 - t0, 3),
        "bytes_per_port": round((fabric.nbytes() + state.nbytes(include_lft=False)) / fabric.n_ports, 1),
        "lft_bytes": int(state.lft.nbytes),
    }
    for engine in [e for e in args.engines.split(",") if e]:
        t = time.perf_counter()
        lft = compute_lfts(fabric, engine)
        out[f"route_{engine}_s"] = round(time.perf_counter() - t, 3)
        if not args.no_metrics:
            t = time.perf_counter()
            m = route_metrics(fabric, lft)
            out[f"metrics_{engine}_s"] = round(time.perf_counter() - t, 3)
            out[f"metrics_{engine}"] = m
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["targets_met"] = {
        "compile_s<=5": out["compile_s"] <= 5,
        "bytes_per_port<=300": out["bytes_per_port"] <= 300,
        **({"route_ftree_s<=10": out["route_ftree_s"] <= 10} if "route_ftree_s" in out else {}),
        **({"route_minhop_s<=30": out["route_minhop_s"] <= 30} if "route_minhop_s" in out else {}),
    }
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
