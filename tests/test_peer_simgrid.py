"""benchmarks/peer_simgrid.py: ibsim's max-min rates equal SimGrid's, with real SimGrid.

tests/run.sh installs Debian's python3-simgrid, so these run in CI; elsewhere
they skip without it.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.benchmark_module import BENCHMARKS, load_benchmark

peer = load_benchmark("peer_simgrid")


@pytest.fixture(scope="module")
def simgrid_python():
    exe = peer.simgrid_python()
    if exe is None:
        pytest.skip("apt-get install python3-simgrid (tests/run.sh installs it)")
    return exe


def run(*args):
    p = subprocess.run([sys.executable, str(BENCHMARKS / "peer_simgrid.py"), *args, "--json"],
                       capture_output=True, text=True, timeout=300, cwd=BENCHMARKS.parent)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_rates_equal_simgrid(simgrid_python):
    out = run("--sizes", "300:8:2,400:4:3", "--slow-frac", "0.25", "--repeat", "1")
    assert [r["flows"] for r in out["sizes"]] == [300, 400]
    for row in out["sizes"]:
        assert {"flows", "rates_max_rel_err", "ours_s", "simgrid_s", "speedup", "speedup_solve"} <= set(row)
        assert row["simgrid"] == "ok"
        assert row["rate_levels"] > 5              # several bottleneck levels, not one fair share
        assert row["rates_max_rel_err"] <= 1e-6
    assert out["targets_met"]["rates_max_rel_err<=1e-6"]


def test_comparison_sees_a_different_model(simgrid_python):
    """SimGrid's default cross-traffic (5 % of each flow on its back route) is not max-min: caught."""
    out = run("--sizes", "300:8:2", "--repeat", "1", "--simgrid-cfg", "network/crosstraffic:1")
    assert out["sizes"][0]["rates_max_rel_err"] > 1e-3


def test_timeout_is_reported_not_raised(simgrid_python):
    out = run("--sizes", "300:8:2", "--repeat", "1", "--simgrid-timeout", "0.001")
    row = out["sizes"][0]
    assert row["simgrid"] == "timeout" and row["rates_max_rel_err"] is None and row["speedup"] is None
    assert row["ours_s"] > 0 and "targets_met" not in out


def test_ours_is_max_min_with_host_links():
    """ibsim's side of the table: per-flow rates equal textbook progressive filling over every hop."""
    from ibsim.testing.oracles import max_min_reference

    case = peer.build_case(4, 2, 60, seed=3, routing="minhop", slow_frac=0.5)
    rate, pairs, paths, pair_of_flow, rounds, _ = peer.ours(case)
    n = case["fabric"].n_ports
    assert (paths[0] == pairs[:, 0]).all()          # the source CA's port is the first hop
    weight = np.bincount(pair_of_flow).astype(float)
    want = max_min_reference(np.where(paths.T < n, paths.T, -1), weight, np.full(weight.size, np.inf),
                             case["capacity"])
    np.testing.assert_allclose(rate, (want / weight)[pair_of_flow], rtol=1e-9)
    assert weight.max() > 1                         # some pair carries several flows
