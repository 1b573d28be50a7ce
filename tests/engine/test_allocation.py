"""Max-min fair sharing: feasibility, exactness against progressive filling, error bound; where
unsent demand waits (upstream of each aggregate's bottleneck)."""

import numpy as np
import pytest

from ibsim.engine.allocation import max_min_allocate, unsent_upstream
from ibsim.testing.oracles import max_min_reference as exact_progressive_filling
from tests.benchmark_module import load_benchmark

_bench = load_benchmark("allocation")          # its random-case generator serves both


def random_case(rng, n_links=12, n_aggs=30, hops=4):
    return _bench.random_case(rng, n_links=n_links, n_aggs=n_aggs, hops=hops)


@pytest.mark.parametrize("seed", range(25))
def test_matches_exact_progressive_filling(seed):
    rng = np.random.default_rng(seed)
    paths, weight, demand, capacity = random_case(rng)
    got = max_min_allocate(paths.T, weight, demand, capacity)
    want = exact_progressive_filling(paths, weight, demand, capacity)
    assert got.converged
    np.testing.assert_allclose(got.rate, want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_bounded_iterations_stay_feasible_and_close(seed):
    rng = np.random.default_rng(100 + seed)
    paths, weight, demand, capacity = random_case(rng, n_links=20, n_aggs=80)
    got = max_min_allocate(paths.T, weight, demand, capacity, max_iter=2)
    load = np.zeros(len(capacity))
    for a, p in enumerate(paths):
        load[p[p >= 0]] += got.rate[a]
    assert (load <= capacity * (1 + 1e-9)).all()          # never above capacity
    assert (got.rate <= demand * (1 + 1e-9)).all()
    want = exact_progressive_filling(paths, weight, demand, capacity)
    # truncated early, nobody gets more than its fair share would allow and the total is close
    assert got.rate.sum() >= 0.5 * want.sum()


def test_flows_sharing_no_bottleneck_get_their_demand():
    paths = np.array([[0, 1], [2, 3]]).T
    got = max_min_allocate(paths, np.ones(2), np.array([4.0, 9.0]), np.full(4, 10.0))
    assert got.rate.tolist() == [4.0, 9.0]


def test_weights_share_per_flow():
    # aggregate of 3 flows and one single flow over a 8 B/s link: 2 each per flow
    got = max_min_allocate(np.array([[0, 0]]), np.array([3.0, 1.0]), np.array([100.0, 100.0]),
                           np.array([8.0]))
    assert got.rate.tolist() == [6.0, 2.0]


def test_empty():
    got = max_min_allocate(np.zeros((3, 0), dtype=int), np.zeros(0), np.zeros(0), np.ones(2))
    assert got.rate.size == 0 and got.converged


def unsent_upstream_reference(paths, weight, demand, rate, capacity):
    """Per aggregate: its unsent demand on each link before its first bottleneck (a saturated
    link where no aggregate has a higher rate per flow). ``paths`` aggregate-major, padded with -1."""
    n = len(capacity)
    carried = np.zeros(n)
    top = np.zeros(n)
    for a, p in enumerate(paths):
        for link in p[p >= 0]:
            carried[link] += rate[a]
            top[link] = max(top[link], rate[a] / weight[a])
    out = np.zeros(n)
    found = 0
    for a, p in enumerate(paths):
        if rate[a] >= demand[a] * (1 - 1e-7):
            continue
        for link in p[p >= 0]:
            if carried[link] >= capacity[link] * (1 - 1e-7) and rate[a] / weight[a] >= top[link] * (1 - 1e-7):
                found += 1
                break
            out[link] += demand[a] - rate[a]
    return out, carried, found


@pytest.mark.parametrize("seed", range(25))
def test_unsent_demand_waits_before_the_bottleneck_only(seed):
    rng = np.random.default_rng(seed)
    paths, weight, demand, capacity = random_case(rng)
    n = len(capacity)
    padded = np.where(paths < 0, n, paths).T
    alloc = max_min_allocate(padded, weight, demand, capacity)
    want, carried, found = unsent_upstream_reference(paths, weight, demand, alloc.rate, capacity)
    limited = (alloc.rate < demand * (1 - 1e-7)).sum()
    assert limited > 0 and found == limited           # max-min: every limited aggregate has a bottleneck
    got = unsent_upstream(padded, demand, alloc.rate, alloc.bottleneck, n + 1)
    np.testing.assert_allclose(got[:n], want, rtol=1e-9, atol=1e-9)
    assert got[n] == 0


def test_bottleneck_is_the_first_limiting_link_on_the_path():
    # flow 0: a 10 B/s link, then two 4 B/s links in a row; flow 1: the 10 B/s link, demand 1
    paths = np.array([[0, 0], [1, 3], [2, 3]])
    demand = np.array([10.0, 1.0])
    alloc = max_min_allocate(paths, np.ones(2), demand, np.array([10.0, 4.0, 4.0]))
    assert alloc.rate.tolist() == [4.0, 1.0]
    assert alloc.bottleneck.tolist() == [1, 3]          # held before the first 4 B/s link; flow 1: none
    got = unsent_upstream(paths, demand, alloc.rate, alloc.bottleneck, 4)
    assert got.tolist() == [6.0, 0.0, 0.0, 0.0]         # waits before it, not between the two


def test_truncated_allocation_names_the_link_that_set_the_share():
    rng = np.random.default_rng(7)
    paths, weight, demand, capacity = random_case(rng, n_links=20, n_aggs=80)
    n = len(capacity)
    padded = np.where(paths < 0, n, paths).T
    alloc = max_min_allocate(padded, weight, demand, capacity, max_iter=1)
    assert not alloc.converged
    H = padded.shape[0]
    held = alloc.rate < demand * (1 - 1e-9)
    assert (alloc.bottleneck[held] < H).all() and (alloc.bottleneck[~held] == H).all()


def test_nothing_waits_when_every_demand_is_met():
    paths = np.array([[0, 1]])
    alloc = max_min_allocate(paths, np.ones(2), np.array([4.0, 5.0]), np.array([4.0, 5.0]))
    got = unsent_upstream(paths, np.array([4.0, 5.0]), alloc.rate, alloc.bottleneck, 3)
    assert not got.any()
