"""Max-min fair bandwidth sharing over aggregated flows (vectorised).

An *aggregate* stands for ``weight`` host-to-host flows that share one path
(from one source switch to one destination port) and together ask for
``demand`` bytes/s. Weighted progressive filling gives every flow of the
fabric the same share unless it is limited by its own demand or by a more
congested link elsewhere: the max-min fair allocation.

Instead of raising the fill level one bottleneck at a time (as many
iterations as distinct fair-share levels), each iteration freezes at once

* every aggregate whose demand is below the fair share of every link on its
  path (it is demand-limited), and
* every aggregate that crosses a *bottleneck* link: a link whose current fair
  share ``remaining / active weight`` is not above the level of any active
  aggregate crossing it. Nothing crossing such a link can free capacity on
  it, so its share is final (the same argument as progressive filling).

This is exact when it converges. ``max_iter`` bounds the work: aggregates
still active then get their current fair share, which is feasible (no link
exceeds its capacity) but may leave some capacity unused; the tests measure
that error against exact progressive filling. Loops run over iterations only,
never over flows or ports.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Allocation", "max_min_allocate", "unsent_upstream"]


class Allocation(NamedTuple):
    """Result of :func:`max_min_allocate`."""

    rate: np.ndarray        #: bytes/s per aggregate
    iterations: int         #: freezing rounds used
    converged: bool         #: every aggregate was frozen by the exact rules
    #: hop (row of ``paths``) of the link each aggregate was frozen at, its bottleneck
    #: (``H``: none, its demand is met)
    bottleneck: np.ndarray


def max_min_allocate(paths: np.ndarray, weight: np.ndarray, demand: np.ndarray,
                     capacity: np.ndarray, *, max_iter: int = 32, rtol: float = 1e-9) -> Allocation:
    """Weighted max-min fair rates for aggregates over directed links.

    Parameters
    ----------
    paths : ndarray of int, shape (H, A)
        Hop-major: ``paths[h, a]`` is the directed link (transmitting port)
        of hop *h* of aggregate *a*. Padding is ``-1`` or ``len(capacity)``
        (a dummy link of infinite capacity); the engine passes the latter.
    weight : ndarray of float64, shape (A,)
        Number of flows in each aggregate.
    demand : ndarray of float64, shape (A,)
        Offered load of each aggregate, bytes/s; 0 leaves it out.
    capacity : ndarray of float64, shape (n_links,)
        Capacity of each directed link, bytes/s.
    max_iter : int
        Bound on freezing rounds.
    rtol : float
        Relative tolerance when comparing fair-share levels.

    Returns
    -------
    Allocation
        ``rate`` (bytes/s, shape (A,)), iterations used, whether it converged,
        and each aggregate's ``bottleneck``: the hop of the first link on its
        path that limits it (saturated, and no aggregate crossing it has a
        higher rate per flow), ``H`` when its demand is met. Truncated by
        ``max_iter``: the first link giving it its fair share.

    Examples
    --------
    Two flows share a 10 B/s link; one also crosses a 3 B/s link:

    >>> import numpy as np
    >>> a = max_min_allocate(np.array([[0, 0], [-1, 1]]), np.ones(2), np.array([100., 100.]),
    ...                      np.array([10., 3.]))
    >>> a.rate.tolist()
    [7.0, 3.0]
    >>> a.bottleneck.tolist()          # both at hop 0 (the 10 B/s link) and hop 1
    [0, 1]
    """
    paths = np.asarray(paths)
    H, A = paths.shape if paths.ndim == 2 else (0, 0)
    rate = np.zeros(A, dtype=np.float64)
    hop = np.full(A, H, dtype=np.int16)
    if A == 0 or H == 0:
        return Allocation(rate, 0, True, hop)
    n = capacity.shape[0]
    if paths.min() < 0:
        paths = np.where(paths < 0, n, paths)
    remaining = np.append(capacity.astype(np.float64), np.inf)
    weight = np.asarray(weight, dtype=np.float64)
    demand = np.asarray(demand, dtype=np.float64)
    dem_level = np.divide(demand, weight, out=np.zeros(A), where=weight > 0)
    active = np.flatnonzero((weight > 0) & (demand > 0))
    it = 0
    converged = True
    m = n + 1
    while active.size:
        it += 1
        Pa = paths if active.size == A else paths[:, active]      # loops below: over hops only
        wa = weight[active]
        W = np.zeros(m)
        for h in range(H):
            W += np.bincount(Pa[h], weights=wa, minlength=m)
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.where(W > 0, remaining / W, np.inf)
        lam[n] = np.inf
        path_min = lam[Pa[0]]
        for h in range(1, H):
            np.minimum(path_min, lam[Pa[h]], out=path_min)
        dl = dem_level[active]
        dem_ok = dl <= path_min * (1 + rtol)
        last = it >= max_iter
        hop_a = np.full(active.size, H, dtype=np.int16)
        if last:
            freeze = np.ones(active.size, dtype=bool)
            r = wa * np.minimum(path_min, dl)
            converged = False
            lim = np.where(dem_ok, -np.inf, path_min * (1 + rtol))
            for h in range(H - 1, -1, -1):       # backwards: the first hop at its share wins
                hop_a[lam[Pa[h]] <= lim] = h
        elif dem_ok.all():
            freeze = dem_ok
            r = demand[active]
        else:
            level = np.minimum(path_min, dl)
            n_below = np.zeros(m)
            for h in range(H):
                below = level < lam[Pa[h]] * (1 - rtol)
                n_below += np.bincount(Pa[h], weights=below, minlength=m)
            bneck = (n_below == 0) & (W > 0)
            bneck[n] = False
            lim = path_min * (1 + rtol)
            for h in range(H - 1, -1, -1):       # backwards: the first bottleneck on the path wins
                hop_a[bneck[Pa[h]] & (lam[Pa[h]] <= lim)] = h
            on_bneck = hop_a < H
            freeze = dem_ok | on_bneck
            r = np.where(dem_ok, np.minimum(demand[active], wa * path_min), wa * path_min)
        fz = active[freeze]
        rf = r[freeze]
        rate[fz] = rf
        hop[fz] = hop_a[freeze]
        active = active[~freeze]
        if last or not active.size:
            break
        Pf = paths[:, fz]
        for h in range(H):
            remaining -= np.bincount(Pf[h], weights=rf, minlength=m)
        np.maximum(remaining, 0.0, out=remaining)
        remaining[n] = np.inf
    return Allocation(rate, it, converged, hop)



def unsent_upstream(paths: np.ndarray, demand: np.ndarray, rate: np.ndarray, bottleneck: np.ndarray,
                    n_links: int, *, rtol: float = 1e-7) -> np.ndarray:
    """Demand held back on each link by bottlenecks further along the paths [bytes/s].

    With credit-based flow control an aggregate that gets less than it asks
    for is held back at its bottleneck (:attr:`Allocation.bottleneck`): its
    unsent demand ``demand - rate`` waits, for want of credits, in the ports
    at the hops before that link. The bottleneck port itself sends at line
    rate, and the hops after it carry only what it let through.

    Parameters
    ----------
    paths : ndarray of int, shape (H, A)
        Hop-major transmitting ports, padded with a dummy link (``n_links - 1``).
    demand, rate : ndarray of float64, shape (A,)
        Offered and allocated bytes/s.
    bottleneck : ndarray of int, shape (A,)
        Hop of each aggregate's bottleneck (``H``: none).
    n_links : int
        Length of the result (links, the dummy link included).
    rtol : float
        Unsent demand below ``rtol * demand`` is none.

    Returns
    -------
    ndarray of float64, shape (n_links,)
        Per link, the sum of ``demand - rate`` over the aggregates whose
        bottleneck comes later on their path.

    Examples
    --------
    Flow 0 crosses link 0 then link 1 (3 B/s, its bottleneck); flow 1 only link 0:

    >>> import numpy as np
    >>> paths, cap = np.array([[0, 0], [1, 2]]), np.array([10., 3.])
    >>> a = max_min_allocate(paths, np.ones(2), np.array([8., 2.]), cap)
    >>> a.rate.tolist(), a.bottleneck.tolist()
    ([3.0, 2.0], [1, 2])
    >>> unsent_upstream(paths, np.array([8., 2.]), a.rate, a.bottleneck, 3).tolist()
    [5.0, 0.0, 0.0]
    """
    out = np.zeros(n_links)
    unsent = demand - rate
    held = unsent > demand * rtol
    n_held = int(np.count_nonzero(held))
    if n_held == 0:
        return out
    if n_held < paths.shape[1] // 2:          # few held back: work on them only
        sel = np.flatnonzero(held)
        paths, unsent, bottleneck = paths[:, sel], unsent[sel], bottleneck[sel]
    else:
        unsent = np.where(held, unsent, 0.0)
    # loops below run over hops only, up to the last bottleneck
    for h in range(min(paths.shape[0], int(bottleneck.max()))):
        out += np.bincount(paths[h], weights=unsent * (bottleneck > h), minlength=n_links)
    return out
