"""benchmarks/exporters.py runs at its smallest size (so it cannot rot)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.requires_entry_points
def test_exporters_benchmark_runs_at_its_smallest_size():
    pytest.importorskip("graphyte", reason="pip install graphyte (the benchmark compares with it)")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "exporters.py"), "--radix", "4",
                        "--levels", "2", "--repeat", "1", "--no-carbon", "--json",
                        "--stall-topology", str(ROOT / "topologies" / "small.yml")],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["points"] == out["ports"] * 21 and out["graphite_dropped"] == 0
    assert out["graphyte_received"] == out["points"] and out["speedup_vs_graphyte"] > 0
    # every point the sink read is confirmed, with and without rotation (two snapshots each)
    assert out["graphite_sent"] == 2 * out["points"] and out["graphite_unconfirmed"] == 0
    # a server that never reads: nothing sent, the wait bounded by deliver_timeout (5 s)
    st = out["stall_blackhole_stats"]
    assert st["sent"] == 0 and st["unconfirmed"] + st["dropped"] > 0 and st["waited_s"] <= 5.0
