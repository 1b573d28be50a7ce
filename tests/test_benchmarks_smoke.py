"""Every benchmark runs once at its smallest size and prints the JSON keys it promises."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script, *args):
    p = subprocess.run([sys.executable, str(BENCH / script), *args, "--json"], capture_output=True,
                       text=True, timeout=300, cwd=BENCH.parent)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_fabric_benchmark():
    out = run("fabric.py", "--radix", "4", "--levels", "2")
    assert {"ports", "compile_s", "bytes_per_port", "route_minhop_s", "route_updn_s", "route_ftree_s"} <= set(out)
    assert out["metrics_ftree"]["unreachable"] == 0


def test_engine_benchmark():
    out = run("engine.py", "--radix", "4", "--levels", "2", "--ticks", "2")
    assert {"ports", "tick_s", "baseline_s", "tick_vs_baseline", "reallocate_s", "peak_rss_mb"} <= set(out)
    assert out["reroute_s"] is not None


@pytest.mark.parametrize("bounds", ["1,32"])
def test_allocation_benchmark(bounds):
    out = run("allocation.py", "--cases", "5", "--bounds", bounds)
    assert out["by_max_iter"]["32"]["converged"] == 5
    assert out["by_max_iter"]["32"]["rel_error_max"] < 1e-6


def test_mad_benchmark():
    from ibsim.bench.ofed import have_tools
    if not have_tools("ibnetdiscover", "opensm"):
        pytest.skip("needs ibsim-utils, libumad2sim0, infiniband-diags and opensm")
    out = run("mad.py", "--radix", "4", "--rounds", "1", "--runs", "1", "--mads", "200", "--python-loop",
              "--traffic", "0.5")
    assert {"ibnetdiscover_s", "ibnetdiscover_c_s", "ibnetdiscover_ratio", "opensm_up_s", "opensm_up_c_s",
            "opensm_up_ratio", "mads_per_s", "ibnetdiscover_py_s", "opensm_up_py_s", "mads_per_s_py",
            "opensm_up_traffic_s"} <= set(out)
    from ibsim.mad.server import fast_path_available
    assert out["fast_path"] is fast_path_available() and out["opensm_up_traffic_s"] > 0


def test_sm_reaction_benchmark():
    from ibsim.bench.ofed import have_tools
    if not have_tools("opensm"):
        pytest.skip("needs libumad2sim0 and opensm")
    out = run("sm_reaction.py", "--radix", "4")
    assert out["sizes"][0]["ports"] == 38 and out["sizes"][0]["trap_to_active_s"] > 0
    assert set(out["fit"]) == {"a_s", "b_s_per_port"}


@pytest.mark.requires_entry_points
def test_exporters_benchmark():
    import shutil
    if not shutil.which("carbon-cache"):
        pytest.skip("needs graphite-carbon")
    pytest.importorskip("graphyte", reason="pip install graphyte (the benchmark compares with it)")
    pytest.importorskip("whisper", reason="pip install whisper (reads carbon's files back)")
    out = run("exporters.py", "--radix", "4", "--levels", "2", "--repeat", "1", "--carbon-radix", "4",
              "--carbon-snapshots", "5")
    assert {"graphite_points_per_s", "graphyte_points_per_s", "speedup_vs_graphyte", "targets_met"} <= set(out)
    assert out["carbon_points_stored"] == out["carbon_sent"] > 0 and out["carbon_points_lost"] == 0


def test_cluster_benchmark():
    from ibsim.errors import HostError
    try:
        from ibsim.hosts import docker_client
        docker_client()
    except HostError as exc:
        pytest.skip(f"no Docker daemon: {exc}")
    out = run("cluster.py", "--sizes", "2", "--tries", "1", "--refreshes", "2", "--slurm-hosts", "3",
              "--jobs", "2", "--burst", "3")
    assert {"hosts", "up_s", "down_s", "sysfs_refresh_ms", "stop_to_link_down_ms", "start_to_link_up_ms",
            "mem_per_host_mb"} <= set(out)
    assert out["coupling_missed"] == 0
    assert out["slurm_hosts"] == 3 and out["slurm_up_s"] > 0
    assert out["job_to_traffic_samples"] == 2 and out["job_to_traffic_ms"] is not None
    assert out["burst_missed"] == 0 and out["jobs_per_min"] > 0


def test_monitoring_benchmark():
    from ibsim.bench.ofed import have_tools
    if not have_tools("opensm"):
        pytest.skip("needs libumad2sim0 and opensm")
    out = run("monitoring.py", "--quick", "--approaches", "direct")
    row = out["results"][0]
    assert row["approach"] == "direct" and row["size"] == 32 and row["final_sweep_complete"] == 1.0
    assert {"sweep_s_median", "cpu_s_per_sweep", "perf_mads_per_sweep", "staleness_s_max",
            "data_rel_err_max", "event_latency_counter_s", "points_per_s"} <= set(row)


def test_sweep_benchmark():
    pytest.importorskip("distributed", reason="pip install '.[sweep]'")
    out = run("sweep.py", "--points", "2", "--duration", "0.5s", "--radix", "4")
    assert {"serial_s", "dask_s", "speedup", "overhead_per_point_s", "cluster_start_s", "loadavg_1m"} <= set(out)
    assert out["points"] == 2 and out["rows_ok"] == 2 and out["rows_equal"] is True
