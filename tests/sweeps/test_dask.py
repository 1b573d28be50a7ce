"""Sweeps on a real LocalCluster (2 worker processes on 127.0.0.1): rows equal serial runs,
error rows, resume, a worker killed mid-sweep, an unreachable scheduler."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ibsim.errors import SweepError
from ibsim.sweeps import NONDETERMINISTIC, PointTask, load_sweep, load_sweep_file, run_point, run_sweep

from .conftest import AFTER, BASE, SLOW, write

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("distributed", reason="pip install '.[sweep]' (dask, distributed)")


def _serial_rows(spec) -> dict:
    return {p.id: run_point(PointTask(p, spec.source, spec.base_dir, spec.name, spec.recovery))
            for p in spec.points}


def _same(a: dict, b: dict) -> None:
    keys = (set(a) | set(b)) - set(NONDETERMINISTIC)
    for k in sorted(keys):
        x, y = a.get(k), b.get(k)
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        assert x == y, (k, x, y)


def _rows(df) -> dict:
    return {r["point_id"]: {k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
            for r in df.to_dict("records")}


def test_twelve_points_on_the_cluster_equal_serial_runs(client, grid12, tmp_path):
    spec = load_sweep_file(grid12)
    seen = []
    df = run_sweep(spec, tmp_path / "out", client=client, on_row=lambda r, d, t: seen.append((d, t)))
    assert len(df) == 12 and (df["status"] == "ok").all()
    assert [d for d, _ in seen] == list(range(1, 13)) and {t for _, t in seen} == {12}
    assert len(set(df["worker"])) == 2                       # both worker processes ran points
    serial = _serial_rows(spec)
    rows = _rows(df)
    assert set(rows) == set(serial)
    for pid, row in rows.items():
        _same(row, {k: v for k, v in serial[pid].items() if not (isinstance(v, float) and math.isnan(v))})
    # the files: parquet and CSV hold the same rows, plus the figure and the report
    out = tmp_path / "out"
    for name in ("results.parquet", "results.csv", "sweep.json", "sweep.png", "report.md"):
        assert (out / name).is_file(), name
    assert _rows(load_sweep(out)) == rows
    import pandas as pd
    csv = pd.read_csv(out / "results.csv")
    assert list(csv["point_id"]) == list(df["point_id"])
    assert list(csv["throughput_gbps"]) == list(df["throughput_gbps"])
    report = (out / "report.md").read_text()
    assert "12 points (12 ok, 0 failed)" in report and "| minhop | 0.3 | 2 |" in report


def test_a_bad_override_is_an_error_row_naming_the_key(client, tmp_path):
    p = write(tmp_path, "base:\n" + BASE + "grid:\n  routing.engine: [minhop, bogus]\n"
              "points:\n  - {topology.radix: 5}\n")
    spec = load_sweep_file(p)
    df = run_sweep(spec, tmp_path / "out", client=client)
    rows = df.set_index("point").to_dict("index")
    assert rows[0]["status"] == "ok"
    assert rows[1]["status"] == "error" and f"{p}:{AFTER + 1}: routing.engine: unknown routing engine 'bogus'" \
        in rows[1]["error"]
    assert rows[2]["status"] == "error" and f"(from the override topology.radix = 5 on line {AFTER + 3})" in rows[2]["error"]
    assert "## Failed points" in (tmp_path / "out" / "report.md").read_text()


def test_resume_skips_finished_points(client, grid12, tmp_path):
    spec = load_sweep_file(grid12)
    out = tmp_path / "out"

    class Stop(Exception):
        pass

    def stop_after_five(row, done, total):
        if done == 5:
            raise Stop
    with pytest.raises(Stop):                          # the sweep is interrupted after 5 rows
        run_sweep(spec, out, client=client, on_row=stop_after_five)
    first = _rows(load_sweep(out))
    assert len(first) == 5
    with pytest.raises(SweepError, match="already holds sweep results; pass --resume"):
        run_sweep(spec, out, client=client)
    ran = []
    df = run_sweep(spec, out, client=client, resume=True, on_row=lambda r, d, t: ran.append(r["point_id"]))
    assert len(ran) == 7 and not set(ran) & set(first)
    rows = _rows(df)
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows.values())
    for pid, row in first.items():                     # finished rows are kept as they were
        assert rows[pid] == row
    again = []
    run_sweep(spec, out, client=client, resume=True, on_row=lambda r, d, t: again.append(r))
    assert again == []


def test_a_worker_killed_mid_sweep_still_completes(tmp_path):
    from ibsim.sweeps import connect
    spec = load_sweep_file(write(tmp_path, SLOW))
    client, cluster = connect(None, workers=2)
    killed = []

    def kill_a_busy_worker(row, done, total):
        if killed:
            return
        busy = [addr for addr, keys in client.processing().items() if keys]
        pids = client.run(os.getpid, workers=busy[:1])
        pid = pids[busy[0]]
        os.kill(pid, signal.SIGKILL)
        killed.append((busy[0], client.processing()[busy[0]]))
    try:
        df = run_sweep(spec, tmp_path / "out", client=client, on_row=kill_a_busy_worker)
    finally:
        client.close()
        cluster.close()
    assert killed and killed[0][1], "a worker was killed while it ran a point"
    assert len(df) == 6 and (df["status"] == "ok").all(), df[["point", "status", "error"]]
    # the point that was running on the killed worker ran again and gives the same row
    serial = _serial_rows(spec)
    for pid, row in _rows(df).items():
        _same(row, {k: v for k, v in serial[pid].items() if not (isinstance(v, float) and math.isnan(v))})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_and_exit_1(grid12, tmp_path):
    port = _free_port()
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "ibsim", "sweep", str(grid12), "--scheduler",
                        f"tcp://127.0.0.1:{port}", "--connect-timeout", "1", "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"ibsim: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")
    assert p.stdout == "" and not out.exists()


def _listening(dask_scheduler=None):
    """Addresses the scheduler's HTTP server listens on (runs on the scheduler)."""
    return sorted({s.getsockname()[0] for s in dask_scheduler.http_server._sockets.values()})


def test_local_cluster_listens_on_loopback_only(client):
    info = client.scheduler_info()
    assert info["address"].startswith("tcp://127.0.0.1:")
    assert info["workers"] and all(a.startswith("tcp://127.0.0.1:") for a in info["workers"])
    assert client.run_on_scheduler(_listening) == ["127.0.0.1"]


def test_an_existing_cluster_needs_only_scheduler(grid12, tmp_path):
    """A scheduler and a worker started as separate programs (dask's own commands) on 127.0.0.1."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    addr = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=tmp_path)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--host", "127.0.0.1",
                               "--nthreads", "1", "--nworkers", "1", "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        from distributed import Client
        with Client(addr, timeout=60, set_as_default=False) as c:
            c.wait_for_workers(1, timeout=60)
        p = subprocess.run([sys.executable, "-m", "ibsim", "sweep", str(grid12), "--scheduler", addr,
                            "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=300)
    finally:
        for proc in (worker, sched):
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, sched):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert p.returncode == 0, p.stderr
    assert f"on {addr} (1 workers now)" in p.stderr and "12/12 points ok" in p.stdout
    serial = _serial_rows(load_sweep_file(grid12))
    rows = _rows(load_sweep(tmp_path / "out"))
    for pid, row in rows.items():
        _same(row, {k: v for k, v in serial[pid].items() if not (isinstance(v, float) and math.isnan(v))})


def _worker_settings():
    import dask
    return (dask.config.get("distributed.admin.tick.interval"), dask.config.get("distributed.worker.profile.enabled"),
            os.environ.get("MALLOC_TRIM_THRESHOLD_"))


def test_local_workers_leave_the_gil_and_malloc_to_the_points(client):
    assert set(client.run(_worker_settings).values()) == {("1s", False, None)}
