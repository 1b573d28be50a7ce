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
                        "--levels", "2", "--repeat", "1", "--no-carbon", "--json"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["points"] == out["ports"] * 21 and out["graphite_dropped"] == 0
    assert out["graphyte_received"] == out["points"] and out["speedup_vs_graphyte"] > 0
