"""Slow, obviously-correct references that tests and benchmarks check the vectorised kernels against."""

from __future__ import annotations

import numpy as np

__all__ = ["max_min_reference"]


def max_min_reference(paths, weight, demand, capacity) -> np.ndarray:
    """Textbook weighted progressive filling, one bottleneck level at a time.

    A slow pure-Python reference (loops over flows and links) to check
    :func:`max_min_allocate` against; ``paths`` is aggregate-major (A, H),
    padded with -1. Returns the rate of each aggregate in bytes/s.
    """
    A = len(paths)
    rate = np.zeros(A)
    frozen = np.zeros(A, dtype=bool)
    remaining = capacity.astype(float).copy()
    level = 0.0
    while not frozen.all():
        W = np.zeros(len(capacity))
        for a in range(A):
            if not frozen[a]:
                for link in paths[a]:
                    if link >= 0:
                        W[link] += weight[a]
        # next level at which a link saturates or a flow reaches its demand
        cand = [remaining[l] / W[l] + level for l in range(len(capacity)) if W[l] > 0]
        cand += [demand[a] / weight[a] for a in range(A) if not frozen[a]]
        nxt = min(cand)
        inc = nxt - level
        for l in range(len(capacity)):
            remaining[l] -= W[l] * inc
        level = nxt
        for a in range(A):
            if frozen[a]:
                continue
            rate[a] = weight[a] * level
            sat = any(link >= 0 and remaining[link] <= 1e-9 * capacity[link] for link in paths[a])
            if sat or demand[a] / weight[a] <= level + 1e-12:
                frozen[a] = True
    return rate
