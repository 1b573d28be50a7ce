"""The run directory: checked and created before the run, metadata.json first and last (ibsim.run.rundir)."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
from pathlib import Path

import pytest

from ibsim.errors import OutputError
from ibsim.run import RUN_FILES, Recorder, RunDir, load_run
from ibsim.run import recorder as recorder_mod
from ibsim.run import rundir as rundir_mod
from ibsim.scenario import Scenario

SCN = """\
name: rd
seed: 3
clock: {tick: 100ms, duration: 4s}
topology: {generate: fat-tree, radix: 4, levels: 2}
routing: {engine: ftree, sweep_delay: 1s}
traffic:
  - {name: a2a, pattern: all_to_all, hosts: all, load: 0.5}
"""


@pytest.fixture
def sim():
    return Scenario.from_text(SCN, source="rd.yml", name="rd").build()


def meta_of(path: Path) -> dict:
    return json.loads((path / "metadata.json").read_text())


def leftovers(path: Path) -> list[str]:
    """Temporary or reserve files left in a run directory."""
    return [n for n in os.listdir(path) if n.startswith(".")]


# ------------------------------------------------------------ preparing
def test_an_explicit_directory_is_created_with_its_parents(tmp_path):
    rd = RunDir.prepare(tmp_path / "a" / "b" / "run")
    assert rd.path.is_dir() and rd.created == [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "run"]
    rd.discard()                                   # nothing ran: everything it created goes
    assert not (tmp_path / "a").exists()
    (tmp_path / "empty").mkdir()
    rd = RunDir.prepare(tmp_path / "empty")        # an empty directory is fine
    assert rd.created == []
    rd.discard()
    assert (tmp_path / "empty").is_dir()           # not created by it: kept


def test_the_default_directory_is_always_fresh(tmp_path):
    a = RunDir.prepare(parent=tmp_path / "runs", name="fat tree")
    b = RunDir.prepare(parent=tmp_path / "runs", name="fat tree")
    assert a.path != b.path and a.path.parent == b.path.parent == tmp_path / "runs"
    assert a.path.name.startswith("fat-tree-") and a.path.is_dir() and b.path.is_dir()


@pytest.mark.parametrize("out, reason", [
    ("f", "it is a file, not a directory"),
    ("f/sub", "/f is a file, not a directory"),
])
def test_a_file_in_the_way_is_refused(tmp_path, out, reason):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError) as err:
        RunDir.prepare(tmp_path / out)
    assert err.value.exit_code == 2 and str(err.value).startswith(f"{tmp_path / out}: ")
    assert reason in str(err.value) and (tmp_path / "f").read_text() == "x"


@pytest.mark.parametrize("out", ["/proc/ibsim-run", "/proc/self/ibsim-run", "/sys/ibsim-run"])
def test_a_pseudo_filesystem_is_refused(out):
    with pytest.raises(OutputError) as err:
        RunDir.prepare(out)
    msg = str(err.value)
    assert msg.startswith(out + ": ") and "pseudo-filesystem" in msg and err.value.exit_code == 2


def test_a_non_empty_directory_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("metadata.json", "overview.png", "counters.csv", ".metadata.json.123.tmp"):
        (out / name).write_text("old")
    with pytest.raises(OutputError) as err:
        RunDir.prepare(out)
    assert "is not empty" in str(err.value) and "--overwrite" in str(err.value)
    assert (out / "overview.png").read_text() == "old"            # refused: nothing touched
    rd = RunDir.prepare(out, overwrite=True)                       # the old run's files are removed
    assert sorted(os.listdir(out)) == [".metadata.json.reserve.tmp"]
    rd.discard()


def test_overwrite_never_removes_what_is_not_a_run(tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "metadata.json").write_text("old")
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    with pytest.raises(OutputError) as err:
        RunDir.prepare(out, overwrite=True)
    assert "not a run's" in str(err.value) and "'notes.txt'" in str(err.value)
    assert sorted(os.listdir(out)) == ["metadata.json", "notes.txt", "sub"]


def test_write_json_atomic_keeps_the_old_file_when_the_disk_is_full(tmp_path, monkeypatch):
    path = tmp_path / "metadata.json"
    rundir_mod.write_json_atomic(path, {"status": "running"})

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(rundir_mod.os, "fsync", full)
    with pytest.raises(OSError):
        rundir_mod.write_json_atomic(path, {"status": "complete"})
    assert json.loads(path.read_text()) == {"status": "running"} and leftovers(tmp_path) == []


# ------------------------------------------------------------ metadata first and last
def test_metadata_says_running_first_and_complete_last(sim, tmp_path):
    rec = Recorder(sim, every="1s")
    path = rec.start(tmp_path / "run")
    meta = meta_of(path)
    assert meta["status"] == "running" and meta["finished_utc"] is None and meta["started_utc"]
    assert meta["scenario"]["name"] == "rd" and meta["seed"] == 3
    sim.run()
    res = rec.write(plot=False)
    meta = meta_of(path)
    assert res.path == path and meta["status"] == "complete" and meta["status_reason"] is None
    assert meta["interrupted"] is False and meta["finished_utc"]
    assert sorted(os.listdir(path)) == meta["files"] and leftovers(path) == []
    assert load_run(path).status == "complete"


def test_an_interrupted_run_says_so_and_why(sim, tmp_path):
    rec = Recorder(sim, every="1s")
    rec.start(tmp_path / "run")
    sim.run(until="2s")
    rec.write(interrupted=True, reason="SIGTERM at t=2 s", plot=False)
    meta = meta_of(tmp_path / "run")
    assert (meta["status"], meta["status_reason"], meta["interrupted"]) == \
        ("interrupted", "SIGTERM at t=2 s", True)


@pytest.mark.parametrize("broken", ["write_series", "write_columns_csv", "write_counters_csv"])
def test_a_full_disk_leaves_metadata_saying_failed(sim, tmp_path, monkeypatch, broken):
    """A write that fails with ENOSPC: the partial file goes, metadata.json says failed and why."""
    def half_then_full(*args, **kw):             # leave a partial file, as a full disk does
        if broken == "write_columns_csv":
            Path(args[0]).write_text("part")
        elif broken == "write_series":
            name = "series.parquet" if importlib.util.find_spec("pyarrow") else "series.csv.gz"
            (Path(args[1]) / name).write_text("part")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(recorder_mod, broken, half_then_full)
    rec = Recorder(sim, every="1s")
    rec.start(tmp_path / "run")
    sim.run()
    with pytest.raises(OutputError) as err:
        rec.write(plot=False)
    assert err.value.exit_code == 1 and "no space left on device" in str(err.value)
    meta = meta_of(tmp_path / "run")
    assert meta["status"] == "failed" and "no space left on device" in meta["status_reason"]
    assert sorted(os.listdir(tmp_path / "run")) == meta["files"]          # no partial file, no reserve
    assert "metadata.json" in meta["files"] and len(meta["files"]) < len(RUN_FILES) - 2


def test_metadata_stays_running_when_even_the_last_update_fails(sim, tmp_path, monkeypatch):
    rec = Recorder(sim, every="1s")
    rec.start(tmp_path / "run")
    sim.run()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(rundir_mod, "write_json_atomic", full)
    with pytest.raises(OutputError):
        rec.write(plot=False)
    assert meta_of(tmp_path / "run")["status"] == "running"                # still says: not complete


def test_write_refuses_another_non_empty_directory(sim, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "overview.png").write_text("old")
    rec = Recorder(sim, every="1s")
    sim.run(until="1s")
    with pytest.raises(OutputError, match="--overwrite"):
        rec.write(tmp_path / "other", plot=False)
    rec.write(tmp_path / "other", plot=False, overwrite=True)
    assert not (tmp_path / "other" / "overview.png").exists()              # no stale chart
    assert meta_of(tmp_path / "other")["status"] == "complete"
    rec.write(tmp_path / "other", plot=False)                              # its own directory: rewritten


def test_an_abort_while_writing_leaves_metadata_saying_failed(sim, tmp_path, monkeypatch):
    """A second Ctrl-C (KeyboardInterrupt) during the writing: metadata.json says failed, and why."""
    def abort(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(recorder_mod, "write_series", abort)
    rec = Recorder(sim, every="1s")
    rec.start(tmp_path / "run")
    sim.run()
    with pytest.raises(KeyboardInterrupt):
        rec.write(plot=False)
    meta = meta_of(tmp_path / "run")
    assert meta["status"] == "failed" and "aborted" in meta["status_reason"]
    assert "counters.csv" in meta["files"] and leftovers(tmp_path / "run") == []
    rec.fail("later")                              # the final metadata.json stays as written
    assert meta_of(tmp_path / "run")["status_reason"] == meta["status_reason"]
