"""``python -m ibsim run``: exit codes, the run directory, Ctrl-C, determinism."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "topologies" / "small.yml"
#: without matplotlib a run skips overview.png (and says so in metadata.json)
PLOT = importlib.util.find_spec("matplotlib") is not None
RUN_FILES = {"metadata.json", "events.jsonl", "counters.csv", "fabric_series.csv", "summary.txt"} | \
    ({"overview.png"} if PLOT else set())


def ibsim(*args, cwd=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ibsim", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def run_files(path: Path) -> set[str]:
    names = {p.name for p in path.iterdir()}
    assert ("series.parquet" in names) != ("series.csv.gz" in names)
    return names - {"series.parquet", "series.csv.gz"}


def test_run_small_quiet(tmp_path):
    out = tmp_path / "run"
    r = ibsim("run", SMALL, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out) and r.stderr == ""
    assert run_files(out) == RUN_FILES | {"jobs.csv"}          # its jobs ran
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["simulated_s"] == pytest.approx(20.0) and meta["seed"] == 1
    assert meta.get("overview") == (None if PLOT else "skipped: matplotlib is not installed")
    assert meta["scenario"]["path"] == str(SMALL) and not meta["interrupted"]
    # counters.csv holds the final values the run reports (metadata totals, summary)
    with open(out / "counters.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for name, total in meta["totals"].items():
        assert sum(int(r[name]) for r in rows) == total, name
    top = max(rows, key=lambda r: int(r["port_xmit_data"]))
    summary = (out / "summary.txt").read_text()
    sent = int(top["port_xmit_data"]) * 4
    shown = f"{sent / 1e12:.2f} TB" if sent >= 1e12 else f"{sent / 1e9:.2f} GB"   # the summary's unit
    assert shown in summary


def test_run_prints_summary_and_progress(tmp_path):
    r = ibsim("run", SMALL, "--out", tmp_path / "r", "--until", "5s", "--seed", "9")
    assert r.returncode == 0, r.stderr
    assert "Top talkers" in r.stdout and f"run directory: {tmp_path / 'r'}" in r.stdout
    assert r.stdout == (tmp_path / "r" / "summary.txt").read_text() + \
        f"\nrun directory: {tmp_path / 'r'}{os.sep}\n"
    lines = r.stderr.splitlines()                 # not a terminal: plain log lines, no \r
    assert lines[0].startswith("ibsim: running small:") and "\r" not in r.stderr
    assert any("(100%)" in ln for ln in lines)
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert meta["seed"] == 9 and meta["simulated_s"] == pytest.approx(5.0)


def test_default_run_dir_under_output(tmp_path):
    r = ibsim("run", SMALL, "--until", "1s", "--quiet", "--no-plot", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert path.parent == Path("runs") and path.name.startswith("small-")
    assert (tmp_path / path / "metadata.json").exists()
    assert not (tmp_path / path / "overview.png").exists()


def one_error_line(r) -> str:
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ibsim: error: "), r.stderr
    return lines[0]


def test_bad_scenario_exit_2_one_line(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(SMALL.read_text().replace("load: 0.5", "laod: 0.5"))
    line = one_error_line(ibsim("run", bad, "--out", tmp_path / "r"))
    assert f"{bad}:" in line and "traffic[0].laod" in line and "did you mean 'load'?" in line
    assert not (tmp_path / "r").exists()
    bad.write_text(SMALL.read_text().replace('"leaf1:3"', '"leaf9:3"'))
    line = one_error_line(ibsim("run", bad))
    assert "faults[0].link_down" in line and "leaf9" in line
    bad.write_text("seed: [1\n")
    assert "malformed YAML" in one_error_line(ibsim("run", bad))
    assert "does not exist" in one_error_line(ibsim("run", tmp_path / "missing.yml"))


def test_usage_errors_exit_2_one_line():
    assert "not allowed with" in one_error_line(ibsim("run", SMALL, "--fast", "--realtime", "2"))
    assert "--until" in one_error_line(ibsim("run", SMALL, "--until", "soon"))
    assert "--realtime" in one_error_line(ibsim("run", SMALL, "--realtime", "0"))


def test_topology_override(tmp_path):
    # small.yml generates fat_tree(4, 2) (6 switches, 8 CAs); the override is fat_tree(6, 2)
    topo = tmp_path / "ft6.topo"
    r = ibsim("topo", "generate", "fat-tree", "--radix", "6", "--levels", "2", "-o", topo)
    assert r.returncode == 0, r.stderr
    r = ibsim("run", SMALL, "--topology", topo, "--until", "2s", "--out", tmp_path / "r", "--quiet")
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert meta["topology"]["name"] == "ft6"
    assert (meta["topology"]["switches"], meta["topology"]["cas"], meta["topology"]["links"]) == (9, 18, 36)
    with open(tmp_path / "r" / "counters.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 72                        # both ends of the 36 cables
    assert "a2a: all_to_all, 18 hosts" in (tmp_path / "r" / "summary.txt").read_text()


def test_ctrl_c_stops_and_still_writes(tmp_path):
    out = tmp_path / "r"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "ibsim", "run", str(SMALL), "--realtime", "1",
                          "--until", "60s", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = p.stderr.readline()               # printed once the simulation is built
        assert first.startswith("ibsim: running"), first
        time.sleep(1.0)
        os.kill(p.pid, signal.SIGINT)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, stderr
    assert "interrupted at t=" in stderr and "Traceback" not in stderr
    assert run_files(out) - {"jobs.csv"} == RUN_FILES and "run directory:" in stdout   # jobs.csv if one started
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["interrupted"] is True and 0 < meta["simulated_s"] < 60
    assert meta["status"] == "interrupted" and meta["status_reason"].startswith("SIGINT at t=")


def test_same_seed_same_counters(tmp_path):
    for name in ("a", "b"):
        r = ibsim("run", SMALL, "--seed", "123", "--out", tmp_path / name, "--quiet", "--no-plot")
        assert r.returncode == 0, r.stderr
    a = (tmp_path / "a" / "counters.csv").read_bytes()
    assert a == (tmp_path / "b" / "counters.csv").read_bytes()
    r = ibsim("run", SMALL, "--seed", "124", "--out", tmp_path / "c", "--quiet", "--no-plot")
    assert r.returncode == 0
    assert (tmp_path / "c" / "counters.csv").read_bytes() != a


class _FakeSim:
    def __init__(self):
        self.ticks, self.time_s, self.events = 0, 0.0, []

    def step(self, n=1, dt=0.1):
        self.ticks += n
        self.time_s += n * dt


def test_progress_bar_on_a_terminal():
    import io
    from ibsim.cli.run import Progress
    buf = io.StringIO()
    bar = Progress(10.0, buf, tty=True, min_interval=0.0)
    sim = _FakeSim()
    for _ in range(100):
        sim.step()
        bar(sim)
    bar.close()
    text = buf.getvalue()
    assert text.count("\r") == 100 and text.endswith("\n")
    assert "10.0/10 s 100%" in text and "ticks/s" in text and "events" in text


def test_progress_log_lines_elsewhere():
    import io
    from ibsim.cli.run import Progress
    buf = io.StringIO()
    log = Progress(10.0, buf, tty=False)
    sim = _FakeSim()
    for _ in range(100):
        sim.step()
        log(sim)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("ibsim: t=1.0/10 s (10%)")
    assert lines[-1].startswith("ibsim: t=10.0/10 s (100%)") and "\r" not in buf.getvalue()


# ------------------------------------------------------------ the run directory is never lost
def test_a_finished_run_says_complete(tmp_path):
    r = ibsim("run", SMALL, "--until", "1s", "--out", tmp_path / "r", "--quiet", "--no-plot")
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert meta["status"] == "complete" and meta["status_reason"] is None
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == meta["files"]


def unbuildable(tmp_path) -> Path:
    """A scenario that parses but fails when the simulation is built (a fault on a missing switch)."""
    bad = tmp_path / "late.yml"
    bad.write_text(SMALL.read_text().replace('"leaf1:3"', '"leaf9:3"'))
    return bad


@pytest.mark.parametrize("out, reason", [
    ("file", "it is a file, not a directory"),
    ("file/run", "file is a file, not a directory"),
    ("/proc/ibsim-run", "is on the proc pseudo-filesystem"),
    ("/proc/self/ibsim-run", "is on the proc pseudo-filesystem"),
])
def test_unusable_out_exit_2_before_simulating(tmp_path, out, reason):
    (tmp_path / "file").write_text("keep me")
    path = out if out.startswith("/") else str(tmp_path / out)
    # the scenario would fail at build time: the run directory is reported, so it was checked first
    line = one_error_line(ibsim("run", unbuildable(tmp_path), "--out", path))
    assert line.startswith(f"ibsim: error: {path}: ") and reason in line, line
    assert (tmp_path / "file").read_text() == "keep me"


def test_a_failed_build_leaves_no_run_directory(tmp_path):
    line = one_error_line(ibsim("run", unbuildable(tmp_path), "--out", tmp_path / "a" / "run"))
    assert "faults[0].link_down" in line
    assert not (tmp_path / "a").exists()
    r = ibsim("run", unbuildable(tmp_path), cwd=tmp_path)           # default runs/<name>-<time>/
    assert r.returncode == 2 and not (tmp_path / "runs").exists()


def test_non_empty_out_needs_overwrite(tmp_path):
    out = tmp_path / "r"
    r = ibsim("run", SMALL, "--until", "2s", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    first = (out / "metadata.json").read_text()
    line = one_error_line(ibsim("run", SMALL, "--until", "1s", "--out", out, "--quiet", "--no-plot"))
    assert line.startswith(f"ibsim: error: {out}: is not empty") and "--overwrite" in line
    assert (out / "metadata.json").read_text() == first                 # refused: untouched
    r = ibsim("run", SMALL, "--until", "1s", "--out", out, "--quiet", "--no-plot", "--overwrite")
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["simulated_s"] == pytest.approx(1.0) and meta["status"] == "complete"
    assert not (out / "overview.png").exists()                          # no stale chart of the first run
    assert sorted(p.name for p in out.iterdir()) == meta["files"]
    (out / "notes.txt").write_text("mine")                              # not a run's: never removed
    line = one_error_line(ibsim("run", SMALL, "--until", "1s", "--out", out, "--overwrite"))
    assert "not a run's" in line and (out / "notes.txt").read_text() == "mine"


def test_default_run_directories_are_never_reused(tmp_path):
    paths = set()
    for _ in range(2):                          # same scenario, same second: two directories
        r = ibsim("run", SMALL, "--until", "1s", "--quiet", "--no-plot", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        paths.add(r.stdout.strip())
    assert len(paths) == 2 and all((tmp_path / p / "metadata.json").exists() for p in paths)


def in_mount_namespace(tmp_path, setup: str, then: str) -> subprocess.CompletedProcess:
    """Run ``setup`` (mounts) and ``then`` in a private mount namespace (util-linux unshare, as root).

    The mounts vanish with the namespace, so ``then`` copies what the test checks out of them.
    """
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(["unshare", "-m", "sh", "-euc", f"{setup}\n{then}"], capture_output=True,
                          text=True, env=env, timeout=300)


def ibsim_cmd(*args) -> str:
    import shlex
    return " ".join(shlex.quote(str(a)) for a in (sys.executable, "-m", "ibsim", *args))


def test_read_only_out_exit_2_before_simulating(tmp_path):
    """A real read-only directory: a read-only bind mount as root, file modes otherwise."""
    ro = tmp_path / "ro"
    ro.mkdir()
    args = ("run", unbuildable(tmp_path), "--out", ro / "run")
    if os.geteuid() != 0:
        ro.chmod(0o500)
        try:
            line = one_error_line(ibsim(*args))
        finally:
            ro.chmod(0o700)
        assert "permission denied" in line.lower()
    else:
        r = in_mount_namespace(tmp_path, f"mount --bind {ro} {ro}\nmount -o remount,ro,bind {ro}",
                               f"set +e\n{ibsim_cmd(*args)}\necho rc=$?")
        assert "rc=2" in r.stdout, r.stderr
        line = r.stderr.strip()
        assert line.count("\n") == 0 and "Traceback" not in line
        assert line.startswith(f"ibsim: error: {ro / 'run'}: ") and "read-only file system" in line
    assert list(ro.iterdir()) == []


def test_a_full_disk_leaves_metadata_saying_failed(tmp_path):
    """A real tiny filesystem (tmpfs, 128 KiB): the results do not fit, metadata.json says so."""
    keep = tmp_path / "kept"
    keep.mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = in_mount_namespace(
        tmp_path, f"mount -t tmpfs -o size=128k tmpfs {mnt}",
        f"set +e\n{ibsim_cmd('run', SMALL, '--out', mnt / 'run', '--quiet')}\necho rc=$?\n"
        f"ls -A {mnt / 'run'} > {keep / 'ls'}\ncp {mnt / 'run' / 'metadata.json'} {keep}/")
    assert "rc=1" in r.stdout, r.stdout + r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and line.startswith(f"ibsim: error: {mnt / 'run'}: writing ")
    assert "no space left on device" in line.lower()
    meta = json.loads((keep / "metadata.json").read_text())
    assert meta["status"] == "failed" and "no space left on device" in meta["status_reason"].lower()
    assert sorted((keep / "ls").read_text().split()) == meta["files"]     # no partial file left
    assert "counters.csv" in meta["files"] and meta["simulated_s"] == pytest.approx(20.0)


def test_nearly_full_disk_exit_2_before_simulating(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = in_mount_namespace(tmp_path, f"mount -t tmpfs -o size=16k tmpfs {mnt}",
                           f"set +e\n{ibsim_cmd('run', unbuildable(tmp_path), '--out', mnt / 'run')}\n"
                           f"echo rc=$?\nls -A {mnt}")
    assert r.stdout.split() == ["rc=2"], r.stdout + r.stderr          # nothing left behind
    assert r.stderr.startswith(f"ibsim: error: {mnt / 'run'}: ") and "no space left" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_and_still_write(tmp_path, sig):
    """What timeout, systemd, docker stop (SIGTERM) and a closed terminal (SIGHUP) send."""
    out = tmp_path / "r"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # planned for 100,000 s; stopped after a few seconds, its series is still sampled every second
    p = subprocess.Popen([sys.executable, "-m", "ibsim", "run", str(SMALL), "--realtime", "1",
                          "--until", "100000s", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = p.stderr.readline()               # printed once the simulation is built
        assert first.startswith("ibsim: running"), first
        meta = json.loads((out / "metadata.json").read_text())
        assert meta["status"] == "running"        # written before the run
        time.sleep(2.5)
        os.kill(p.pid, sig)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 128 + sig, stderr
    assert "interrupted at t=" in stderr and sig.name in stderr and "Traceback" not in stderr
    assert run_files(out) - {"jobs.csv"} == RUN_FILES and "run directory:" in stdout   # jobs.csv if one started
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "interrupted" and meta["interrupted"] is True
    assert meta["status_reason"].startswith(f"{sig.name} at t=")
    assert 0 < meta["simulated_s"] < 100_000
    assert meta["series"]["every_s"] == 1.0 and meta["series"]["samples"] >= int(meta["simulated_s"])
