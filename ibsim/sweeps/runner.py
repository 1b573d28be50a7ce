"""Run a sweep's points on Dask and stream their rows to ``results.parquet`` and ``results.csv``.

Without a scheduler address a ``distributed.LocalCluster`` is started on
127.0.0.1 (worker processes with one thread each, as many as the machine
has cores unless ``workers`` says otherwise, no dashboard); with one, the
points go to that existing cluster (its workers need ibsim importable).
Every point is one task, submitted with ``retries``; a worker that dies is
replaced by its nanny and the scheduler runs its points again elsewhere, and
since a point is deterministic by its seed, a retry gives the same row.

Rows are written as they come: after each finished point the whole table is
rewritten to a temporary file and renamed over ``results.parquet`` and
``results.csv``, so an interrupted sweep leaves every finished row behind.
``resume=True`` reads them back and skips the points whose id has a row
with ``status == "ok"`` (error rows are run again).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from ..errors import SweepError
from .spec import SweepSpec
from .worker import PointTask, run_point

__all__ = ["LOCAL_CONFIG", "run_sweep", "load_sweep", "read_results", "check_output_dir", "RESULTS_FILE", "CSV_FILE"]

RESULTS_FILE = "results.parquet"
CSV_FILE = "results.csv"
#: seconds to wait for an existing scheduler before giving up
CONNECT_TIMEOUT_S = 5.0
#: how often Dask runs a point again after an exception other than bad input
RETRIES = 2
#: Dask settings of the LocalCluster, for points that keep a core busy for seconds (benchmarks/sweep.py):
#: the event loop's 20 ms tick, the profiler's 10 ms stack samples and the 0.1-0.5 s monitors take
#: the GIL from the running point (about 10 % of its time on 2 cores), and the nannies' MALLOC_TRIM_THRESHOLD_=65536 makes the engine's
#: numpy allocations about 12 % slower; the workers keep glibc's default
LOCAL_CONFIG = {
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}

log = logging.getLogger(__name__)


def _frame(rows: list):
    """The rows as a DataFrame in point order; a column of mixed kinds (an axis of 1 and "auto")
    becomes text, so Parquet can hold it."""
    import pandas as pd
    df = pd.DataFrame(rows)
    if "point" in df.columns:
        df = df.sort_values("point", kind="stable").reset_index(drop=True)
    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if not _missing(v)}
            if len(kinds) > 1:
                df[col] = [v if _missing(v) else str(v) for v in df[col]]
    return df


def read_results(out) -> list:
    """Rows already written in ``out`` (``results.parquet``, else ``results.csv``), as dicts."""
    out = Path(out)
    import pandas as pd
    if (out / RESULTS_FILE).is_file():
        df = pd.read_parquet(out / RESULTS_FILE)
    elif (out / CSV_FILE).is_file():
        df = pd.read_csv(out / CSV_FILE, keep_default_na=False, na_values=[""])
    else:
        return []
    return [{k: v for k, v in r.items() if not _missing(v)} for r in df.to_dict("records")]


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def load_sweep(path):
    """A sweep's results as a pandas DataFrame, one row per point (``ibsim.load_sweep``).

    Parameters
    ----------
    path : str or Path
        The sweep's output directory (or its ``results.parquet``).
    """
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not (p / RESULTS_FILE).is_file() and not (p / CSV_FILE).is_file():
        raise FileNotFoundError(f"{str(p)!r} has no {RESULTS_FILE} (is it a sweep output directory?)")
    return _frame(read_results(p))


class _Writer:
    """Rewrites the results files atomically after every new row."""

    def __init__(self, out: Path, rows: list):
        self.out = out
        self.rows = {r["point_id"]: r for r in rows}

    def add(self, row: dict) -> None:
        self.rows[row["point_id"]] = row
        df = _frame(list(self.rows.values()))
        tmp = self.out / f".{RESULTS_FILE}.tmp"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, self.out / RESULTS_FILE)
        tmp = self.out / f".{CSV_FILE}.tmp"
        df.to_csv(tmp, index=False)
        os.replace(tmp, self.out / CSV_FILE)

    def frame(self):
        return _frame(list(self.rows.values()))


def _tasks(spec: SweepSpec, out: Path, todo: list) -> list:
    """One PointTask per point; a topology file's text goes with its point (for remote workers)."""
    texts: dict = {}
    tasks = []
    for p in todo:
        path = spec.scenario(p).topology.file
        if path is not None and path not in texts:
            texts[path] = Path(path).read_text(encoding="utf-8")
        tasks.append(PointTask(p, spec.source, spec.base_dir, spec.name, spec.recovery,
                               str((out / "runs" / p.id).resolve()) if spec.keep_runs else None,
                               path, texts.get(path)))
    return tasks


def _dask():
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError:
        raise SweepError("sweeps need Dask: pip install 'dask[distributed]' (or ibsim's 'sweep' extra)") \
            from None
    return distributed


def connect(scheduler: str | None = None, *, workers: int | None = None,
            timeout: float = CONNECT_TIMEOUT_S):
    """A ``distributed.Client``: to ``scheduler``, or to a new LocalCluster on 127.0.0.1.

    Returns
    -------
    (client, cluster)
        ``cluster`` is the LocalCluster started here (None with ``scheduler``);
        close both when done.

    Raises
    ------
    SweepError
        When the scheduler does not answer within ``timeout`` seconds.
    """
    distributed = _dask()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s "
                             f"({type(exc).__name__}); is it running (dask scheduler)?") from None
        return client, None
    import dask
    n = workers if workers is not None else (os.cpu_count() or 1)
    # no dashboard; the scheduler's HTTP endpoints (health, metrics) on a free loopback port
    with dask.config.set(LOCAL_CONFIG):
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None,
                                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                           silence_logs=logging.ERROR)
    client = distributed.Client(cluster, set_as_default=False)
    return client, cluster


def check_output_dir(out, resume: bool) -> list:
    """The rows already in ``out``; raises SweepError when there are some and not ``resume``."""
    out = Path(out)
    old = read_results(out) if out.is_dir() else []
    if old and not resume:
        raise SweepError(f"{str(out)!r} already holds sweep results; pass --resume to skip the finished "
                         f"points, or choose another --out")
    return old


def run_sweep(spec: SweepSpec, out, *, scheduler: str | None = None, workers: int | None = None,
              client=None, resume: bool = False, serial: bool = False, on_row=None,
              timeout: float = CONNECT_TIMEOUT_S, report: bool = True):
    """Run every point of ``spec``; return the results as a pandas DataFrame.

    Parameters
    ----------
    spec : SweepSpec
    out : str or Path
        Output directory: ``results.parquet``, ``results.csv``, ``sweep.json``,
        ``sweep.png``, ``report.md`` and with ``keep_runs`` ``runs/<point id>/``.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``).
    workers : int, optional
        Worker processes of the LocalCluster (default: the machine's cores).
    client : distributed.Client, optional
        Use this client (not closed here) instead of ``scheduler``/``workers``.
    resume : bool
        Keep the rows already in ``out`` and skip their points (``ok`` ones).
    serial : bool
        Run the points one after another in this process (no Dask).
    on_row : callable, optional
        ``on_row(row, done, total)`` after each finished point.
    report : bool
        Draw ``sweep.png`` and write ``report.md`` at the end.

    Raises
    ------
    SweepError
        When ``out`` already has results and ``resume`` is false, or the
        scheduler cannot be reached.
    """
    out = Path(out)
    old = check_output_dir(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    ids = {p.id for p in spec.points}
    # rows of points no longer in the sweep are dropped; kept rows take their point's new position
    done_ids = {r["point_id"] for r in old if r.get("status") == "ok" and r.get("point_id") in ids}
    index = {p.id: p.index for p in spec.points}
    writer = _Writer(out, [dict(r, point=index[r["point_id"]]) for r in old if r.get("point_id") in ids])
    todo = [p for p in spec.points if p.id not in done_ids]
    total, done = len(spec.points), len(done_ids)
    _write_meta(out, spec, skipped=done)
    wall0 = time.monotonic()

    def finish(row):
        nonlocal done
        done += 1
        writer.add(row)
        if on_row is not None:
            on_row(row, done, total)

    # points the checker rejected need no worker
    for p in [p for p in todo if p.error is not None]:
        finish(run_point(PointTask(p, spec.source, spec.base_dir, spec.name)))
    tasks = _tasks(spec, out, [p for p in todo if p.error is None])
    if serial:
        for task in tasks:
            finish(run_point(task))
    elif tasks:
        _run_on_dask(tasks, finish, client=client, scheduler=scheduler, workers=workers, timeout=timeout)
    df = writer.frame()
    _write_meta(out, spec, skipped=len(done_ids), wall_s=time.monotonic() - wall0)
    if report:
        from .report import write_report
        write_report(df, spec, out)
    return df


def _run_on_dask(tasks: list, finish, *, client, scheduler, workers, timeout) -> None:
    distributed = _dask()
    own = client is None
    cluster = None
    if own:
        client, cluster = connect(scheduler, workers=workers, timeout=timeout)
    try:
        futures = {client.submit(run_point, t, key=f"ibsim-point-{t.point.id}", retries=RETRIES, pure=False): t
                   for t in tasks}
        for fut in distributed.as_completed(futures, loop=client.loop):
            task = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost point is a row, not the end of the sweep
                from .worker import _error_row
                row = _error_row(task.point, f"{type(exc).__name__}: {exc}")
            finish(row)
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()


def _write_meta(out: Path, spec: SweepSpec, **extra) -> None:
    meta = {"format": "ibsim-sweep", "version": 1, "name": spec.name, "source": spec.source,
            "description": spec.description, "axes": list(spec.axes), "points": len(spec.points),
            "keep_runs": spec.keep_runs, "recovery": spec.recovery, **extra}
    (out / "sweep.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
