"""Benchmark: how exact the vectorised max-min sharing is, and what bounding its rounds costs.

    python benchmarks/allocation.py --json

On random cases (aggregates over random paths, random weights, demands and
capacities) it compares :func:`ibsim.engine.allocation.max_min_allocate` with
the textbook progressive-filling reference for several ``max_iter`` bounds and
prints, per bound: cases converged, rounds used (mean, max), the largest and
median per-aggregate relative error, and the mean and worst shortfall of total
throughput. A benchmark of accuracy, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def random_case(rng, n_links=20, n_aggs=60, hops=4):
    paths = np.full((n_aggs, hops), -1)
    for a in range(n_aggs):
        k = rng.integers(1, hops + 1)
        paths[a, :k] = rng.choice(n_links, size=k, replace=False)
    weight = rng.integers(1, 5, size=n_aggs).astype(float)
    demand = rng.uniform(0.1, 30, size=n_aggs)
    capacity = rng.uniform(5, 40, size=n_links)
    return paths, weight, demand, capacity


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--bounds", default="1,2,4,8,32")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from ibsim.engine.allocation import max_min_allocate
    from ibsim.testing.oracles import max_min_reference

    cases = [random_case(np.random.default_rng(s)) for s in range(args.cases)]
    exact = [max_min_reference(*c) for c in cases]
    out = {"cases": args.cases, "links": 20, "aggregates": 60, "by_max_iter": {}}
    for bound in (int(b) for b in args.bounds.split(",")):
        errs, short, iters, conv = [], [], [], 0
        for (p, w, d, c), want in zip(cases, exact):
            got = max_min_allocate(p.T, w, d, c, max_iter=bound)
            errs.append(float(np.max(np.abs(got.rate - want) / np.maximum(want, 1e-12))))
            short.append(float(1 - got.rate.sum() / want.sum()))
            iters.append(got.iterations)
            conv += got.converged
        out["by_max_iter"][str(bound)] = {
            "converged": conv, "rounds_mean": round(float(np.mean(iters)), 2), "rounds_max": int(max(iters)),
            "rel_error_max": round(max(errs), 6), "rel_error_median": round(float(np.median(errs)), 6),
            "throughput_shortfall_mean": round(float(np.mean(short)), 6),
            "throughput_shortfall_max": round(max(short), 6)}
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
