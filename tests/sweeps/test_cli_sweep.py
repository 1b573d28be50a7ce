"""``python -m ibsim sweep`` and the notebook functions ``ibsim.sweep`` / ``ibsim.load_sweep``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import AFTER, BASE, write

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def _sweep(tmp_path):
    return write(tmp_path, "name: cli\nbase:\n" + BASE + "grid:\n  routing.engine: [minhop, updn]\n"
                 "  traffic[0].load: [0.4, 0.8]\npoints:\n  - {routing.engine: nope}\n")


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ibsim", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=300)


def test_cli_writes_results_figure_and_report_and_resumes(tmp_path):
    pytest.importorskip("distributed", reason="pip install '.[sweep]'")
    sweep = _sweep(tmp_path)
    p = _cli("sweep", str(sweep), "--workers", "1", "--out", "o", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "4/5 points ok" in p.stdout
    assert "ibsim: sweep cli: 5 points over routing.engine, traffic[0].load (1 rejected" in p.stderr
    assert "a LocalCluster of 1 workers on 127.0.0.1" in p.stderr
    assert p.stderr.count("ibsim: point ") == 5                       # a progress line per point
    out = tmp_path / "o"
    for name in ("results.parquet", "results.csv", "sweep.png", "report.md", "sweep.json"):
        assert (out / name).is_file(), name
    # again without --resume: one line, nothing touched; with it: nothing left but the error row
    before = (out / "results.parquet").read_bytes()
    p = _cli("sweep", str(sweep), "--serial", "--out", "o", cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "pass --resume" in p.stderr
    assert (out / "results.parquet").read_bytes() == before
    p = _cli("sweep", str(sweep), "--serial", "--resume", "--out", "o", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr.count("ibsim: point ") == 1 and "error: " in p.stderr


def test_cli_bad_sweep_file_is_one_line_exit_2(tmp_path):
    bad = write(tmp_path, "base:\n" + BASE + "grid:\n  traffic[7].load: [1]\n")
    p = _cli("sweep", str(bad), "--serial", "--out", "o", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert f"{bad}:{AFTER + 1}: grid.traffic[7].load: traffic has 2 item(s); index 7 does not exist" in p.stderr


def test_notebook_functions(tmp_path):
    import ibsim
    df = ibsim.sweep(_sweep(tmp_path), tmp_path / "nb", serial=True)
    assert list(df["point"]) == [0, 1, 2, 3, 4] and list(df["status"]) == ["ok"] * 4 + ["error"]
    back = ibsim.load_sweep(tmp_path / "nb")
    assert back.drop(columns=["wall_s"]).equals(df.drop(columns=["wall_s"]))
    with pytest.raises(FileNotFoundError):
        ibsim.load_sweep(tmp_path)


def test_keep_runs_writes_each_point_run_directory(tmp_path):
    import ibsim
    sweep = write(tmp_path, "keep_runs: true\nbase:\n" + BASE + "grid:\n  routing.engine: [minhop, updn]\n")
    df = ibsim.sweep(sweep, tmp_path / "k", serial=True)
    for pid in df["point_id"]:
        run = ibsim.load_run(tmp_path / "k" / "runs" / pid)
        assert run.metadata["simulated_s"] == 6.0


def test_import_ibsim_stays_without_dask():
    code = "import sys, ibsim; print(any(m.split('.')[0] in ('dask', 'distributed', 'pandas') for m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert p.stdout.strip() == "False", p.stderr
