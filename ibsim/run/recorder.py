"""Record a run: sample a time series while it runs, write the run directory.

A :class:`Recorder` is an observer (``sim.observe``). It keeps, for every
cabled port, a few counters and its link's active width and speed at each
sample (vectorised: fancy-index copies per sample, no loop over ports).
:meth:`Recorder.start` checks and creates the run directory and writes
``metadata.json`` saying ``"status": "running"``; :meth:`Recorder.write`
writes the rest and replaces ``metadata.json`` last (see
:mod:`ibsim.run.rundir`)::

    <run dir>/
      metadata.json        status (running, complete, interrupted, failed) and
                           status_reason, scenario (path and parsed content),
                           seed, versions, topology summary, ticks, simulated
                           and wall seconds, engine stats, counter totals, files
      counters.csv         final state of every cabled port (ibsim.engine.table)
      events.jsonl         one Event.to_dict() per line (log lines and job events
                           noted by a Slurm layer included)
      jobs.csv             one row per job run: key, name, user, nodes, hosts, pattern,
                           start_s, end_s, bytes sent and received, XmitWait, share of
                           all CA traffic (when there were jobs; ibsim.run.jobs)
      summary.txt          top talkers, hottest links, nonzero error counters,
                           degraded links, jobs, event counts
      fabric_series.csv    fabric-wide totals per sample (throughput in Gb/s, ...)
      series.parquet       long format: time_s, node_guid, port, port_state and
        or series.csv.gz   the SERIES_COUNTERS (Parquet when pyarrow imports)
      overview.png         jobs and incidents on a timeline, throughput, busiest
                           (bytes) and hottest (% of capacity) links, event overlays

The series is sampled adaptively within a fixed memory budget: every sample
is kept at the wished interval until samples x cabled ports would pass
``max_rows``; then every other sample is dropped and the interval doubled,
as often as needed. The interval never depends on the planned duration, so a
run stopped early has as dense a series as one that ran to its end (between
half the budget and the budget once it has filled).
:func:`load_run` reads a run directory back.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import sys
import time as _time
from pathlib import Path

import numpy as np

from ..engine.table import write_counters_csv
from ..errors import OutputError
from ..fabric.counters import COUNTER_NAMES, COUNTER_ROW
from .degraded import DegradedLinks
from .jobs import job_rows, write_jobs_csv
from .rundir import RESERVE_MIN_BYTES, RunDir, RunResult, json_default, load_run, os_reason, run_dir_name
from .series import (FABRIC_SERIES_COLUMNS, SERIES_COUNTERS, SeriesData, fabric_series,
                     write_columns_csv, write_series)

__all__ = ["Recorder", "RunResult", "SeriesData", "load_run", "run_dir_name",
           "SERIES_COUNTERS", "FABRIC_SERIES_COLUMNS", "fabric_series"]

_EPS = 1e-9


class Recorder:
    """Sample a :class:`~ibsim.engine.Simulation` and write its run directory.

    Parameters
    ----------
    sim : Simulation
        The simulation to observe (the recorder registers itself).
    every : float or str
        Wished sampling interval [s] (default 1 s, rounded up to whole
        ticks); doubled each time the series fills its budget.
    max_rows : int
        Memory budget: samples x cabled ports kept (and written). Up to it
        every sample is kept; then every other one is dropped and the
        interval doubled. At least 4 samples are kept on any fabric.
    duration : float or str, optional
        Accepted for compatibility; the interval no longer depends on the
        planned duration (a run stopped early keeps a dense series).
    scenario : Scenario, optional
        Recorded in ``metadata.json`` (default: ``sim.scenario`` when set).

    Examples
    --------
    >>> rec = Recorder(sim, every="1s")                       # doctest: +SKIP
    >>> rec.start("runs/demo")         # checked, created, metadata.json "running"  # doctest: +SKIP
    >>> sim.run(until=120)                                    # doctest: +SKIP
    >>> rec.write()                    # every file, then metadata.json "complete"  # doctest: +SKIP
    """

    def __init__(self, sim, *, every=1.0, max_rows: int = 500_000, duration=None, scenario=None):
        from ..units import parse_duration
        self.sim = sim
        self.scenario = scenario if scenario is not None else getattr(sim, "scenario", None)
        f = sim.fabric
        self.ports = np.flatnonzero(f.peer_of_port >= 0)
        self.max_rows = int(max_rows)
        n = max(len(self.ports), 1)
        #: samples kept at most (even, so that halving keeps a regular grid)
        self.capacity = max(2 * (self.max_rows // (2 * n)), 4)
        self._rows = np.array([COUNTER_ROW[n] for n in SERIES_COUNTERS], dtype=np.int64)
        base = max(parse_duration(every), sim.tick_s)
        base = sim.tick_s * math.ceil(base / sim.tick_s - _EPS)   # whole ticks
        #: current sampling interval [s]: the wished one, doubled at each halving
        self.every_s = base
        self._times: list[float] = []
        self._data: list[np.ndarray] = []
        self._state: list[np.ndarray] = []
        self._rate: list[np.ndarray] = []       # (2, n_cabled) active width and speed
        self._next = sim.time_s
        self._wall0 = _time.time()
        self._started_utc = _utc_now()
        self.interrupted = False
        #: the run directory once :meth:`start` (or :meth:`write`) prepared it
        self.run_dir: RunDir | None = None
        #: the final metadata.json (complete, interrupted or failed) was written or attempted
        self.final = False
        #: links up below what both ends support, followed at every sample
        self.degraded = DegradedLinks(f, self.ports)
        self._take(sim.snapshot())
        sim.observe(base, self._on_snapshot)

    # ---------------------------------------------------------- sampling
    @property
    def n_samples(self) -> int:
        """Samples kept so far."""
        return len(self._times)

    def _take(self, snap) -> None:
        if self._times and snap.time_s <= self._times[-1] + _EPS:
            return
        if len(self._times) >= self.capacity:
            # the budget is full: keep every other sample (the first included), halve the density;
            # the capacity is even, so the new sample lands on the doubled grid
            keep = slice(0, None, 2)
            self._times = self._times[keep]
            self._data = self._data[keep]
            self._state = self._state[keep]
            self._rate = self._rate[keep]
            self.every_s *= 2
        self._times.append(float(snap.time_s))
        self._data.append(snap.counters[np.ix_(self._rows, self.ports)])
        self._state.append(snap.port_state[self.ports])
        self._rate.append(np.stack((snap.width[self.ports], snap.speed[self.ports])))
        self.degraded.update(float(snap.time_s), snap.width, snap.speed)
        self._next = snap.time_s + self.every_s

    def _on_snapshot(self, snap) -> None:
        if snap.time_s + _EPS >= self._next:
            self._take(snap)

    def series(self) -> SeriesData:
        """The samples so far (plus the current state when it is newer)."""
        self._take(self.sim.snapshot())
        rate = np.stack(self._rate)
        return SeriesData(np.array(self._times), np.stack(self._data), np.stack(self._state),
                          self.ports, self.sim.fabric, rate[:, 0], rate[:, 1])

    # ----------------------------------------------------------- writing
    def default_dir(self, parent=None) -> Path:
        """``<parent>/<scenario name>-<UTC time>/`` not yet taken (parent: the scenario's output dir)."""
        parent, name = self._default_location(parent)
        path = Path(parent) / run_dir_name(name)
        i = 2
        while path.exists():
            path = Path(parent) / f"{run_dir_name(name)}-{i}"
            i += 1
        return path

    def _default_location(self, parent=None) -> tuple:
        scn = self.scenario
        if parent is None:
            parent = scn.output.dir if scn is not None else "runs"
        return parent, (scn.name if scn is not None else self.sim.fabric.topology.name)

    def start(self, out=None, *, overwrite: bool = False) -> Path:
        """Check and create the run directory and write ``metadata.json`` (``"status": "running"``).

        Parameters
        ----------
        out : str, Path or RunDir, optional
            The run directory (see :meth:`RunDir.prepare`), or one already
            prepared. Default: a fresh ``<output>/<name>-<UTC time>/``.
        overwrite : bool
            Replace the run in a non-empty ``out``.

        Raises
        ------
        OutputError
            The directory cannot hold the run (exit code 2).
        """
        if isinstance(out, RunDir):
            rd = out
        else:
            parent, name = self._default_location()
            rd = RunDir.prepare(out, parent=parent, name=name, overwrite=overwrite)
        meta = self._metadata(self.sim.snapshot(), self.series(), None, None, status="running")
        try:
            rd.write_metadata(meta)
            rd.reserve(max(RESERVE_MIN_BYTES, 4 * len(json.dumps(meta, default=json_default))))
        except OSError as exc:
            rd.discard()
            raise OutputError(rd.path / "metadata.json", f"cannot be written: {os_reason(exc)}") from None
        self.run_dir = rd
        self.final = False
        return rd.path

    def fail(self, reason: str) -> None:
        """Mark the run directory ``"status": "failed"`` (e.g. the simulation raised).

        Only ``metadata.json`` is rewritten; nothing when :meth:`start` was not
        called or the final ``metadata.json`` is already written.
        """
        if self.run_dir is None or self.final:
            return
        self.final = True
        meta = self._metadata(self.sim.snapshot(), self.series(), None, None, status="failed",
                              reason=reason)
        meta["files"] = ["metadata.json"]
        self.run_dir.release()
        try:
            self.run_dir.write_metadata(meta)
        except OSError:
            pass                                # still "running": incomplete all the same

    def write(self, out=None, *, wall_s: float | None = None, interrupted: bool | None = None,
              reason: str | None = None, plot: bool = True, extra: dict | None = None,
              overwrite: bool = False) -> "RunResult":
        """Write the run directory and return it as a :class:`RunResult`.

        Every file is written first and ``metadata.json`` last, atomically,
        with ``status`` ``"complete"`` or ``"interrupted"``. When a file
        cannot be written (a full disk ...), the partial file is removed and
        ``metadata.json`` says ``"failed"`` and why (or, if even that cannot
        be written, still ``"running"``), and :class:`OutputError` is raised.

        Parameters
        ----------
        out : str or Path, optional
            The run directory; default: the one :meth:`start` prepared, else
            a fresh ``<output>/<name>-<UTC time>/``. A different directory is
            prepared as :meth:`start` does (it must be empty, or ``overwrite``).
        wall_s : float, optional
            Wall seconds the run took (default: since the recorder was made).
        interrupted : bool, optional
            Whether the run was stopped early (``status: "interrupted"``).
        reason : str, optional
            Why it was stopped (``status_reason``, e.g. ``"SIGTERM at t=12.5 s"``).
        plot : bool
            Draw ``overview.png`` (needs matplotlib; skipped when missing).
        extra : dict, optional
            More metadata (e.g. ``{"exporters": {...}}``: what each exporter
            sent, dropped and how often it reconnected).
        overwrite : bool
            Replace the run in a non-empty ``out`` (see :meth:`start`).

        Raises
        ------
        OutputError
            The directory cannot be used (exit code 2) or a file could not be
            written (exit code 1).
        """
        from . import report
        if self.run_dir is None or (out is not None and Path(out) != self.run_dir.path):
            self.start(out, overwrite=overwrite)
        out = self.run_dir.path
        if interrupted is not None:
            self.interrupted = bool(interrupted)
        status = "interrupted" if self.interrupted else "complete"
        sim = self.sim
        wall = wall_s if wall_s is not None else _time.time() - self._wall0
        files: list[str] = []
        current = meta = None
        try:
            snap = sim.snapshot()
            data = self.series()
            events = [e.to_dict() for e in sim.events]
            fseries = fabric_series(data, sim.events)
            series_file = "series.parquet" if _have("pyarrow") else "series.csv.gz"
            meta = self._metadata(snap, data, wall, series_file, status=status, reason=reason)
            meta.update(extra or {})
            table = _table(snap)
            jobs = job_rows(snap.jobs)
            summary = report.summary_text(meta, data, events, table, jobs=jobs)
            current = "counters.csv"
            with open(out / current, "w", encoding="utf-8", newline="") as fh:
                write_counters_csv(snap, fh)
            files.append(current)
            current = "events.jsonl"
            with open(out / current, "w", encoding="utf-8") as fh:
                for ev in events:
                    fh.write(json.dumps(ev, default=str) + "\n")
            files.append(current)
            if jobs:
                current = "jobs.csv"
                write_jobs_csv(out / current, jobs)
                files.append(current)
            current = "summary.txt"
            (out / current).write_text(summary, encoding="utf-8")
            files.append(current)
            current = "fabric_series.csv"
            write_columns_csv(out / current, fseries, FABRIC_SERIES_COLUMNS)
            files.append(current)
            current = series_file
            files.append(write_series(data, out))
            if plot:
                current = "overview.png"
                try:
                    report.plot_overview(out / current, meta, data, fseries, events, jobs=jobs)
                    files.append(current)
                except ImportError:
                    meta["overview"] = "skipped: matplotlib is not installed"
            current = "metadata.json"
            meta["files"] = sorted(files + [current])
            self.run_dir.release()
            self.run_dir.write_metadata(meta)
            self.final = True
        except BaseException as exc:
            self._failed_write(meta, files, current, exc)
            if isinstance(exc, OSError) and current is not None:
                raise OutputError(out, f"writing {current} failed: {os_reason(exc)}; metadata.json "
                                       f"says the run is not complete", exit_code=1) from None
            raise
        return RunResult(out, meta, events, _frame(table), _frame(fseries), None, summary, jobs)

    def _failed_write(self, meta: dict | None, files: list, current: str | None, exc: BaseException) -> None:
        """Remove the partial file and mark ``metadata.json`` failed (best effort)."""
        if isinstance(exc, OSError):
            why = os_reason(exc)
        elif isinstance(exc, KeyboardInterrupt):
            why = "aborted (a second signal)"
        else:
            why = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        if current not in (None, "metadata.json"):
            try:
                (self.run_dir.path / current).unlink(missing_ok=True)
            except OSError:
                pass
        if meta is None:                        # failed while preparing the results
            self.fail(f"preparing the results failed: {why}")
            return
        meta["status"] = "failed"
        meta["status_reason"] = f"writing {current} failed: {why}"
        meta["files"] = sorted(files + ["metadata.json"])
        self.run_dir.release()
        self.final = True
        try:
            self.run_dir.write_metadata(meta)
        except OSError:
            pass                                # still "running": incomplete all the same

    def _metadata(self, snap, data: SeriesData, wall: float | None, series_file: str | None, *,
                  status: str, reason: str | None = None) -> dict:
        sim = self.sim
        scn = self.scenario
        topo = sim.fabric.topology
        f = sim.fabric
        ports = self.ports
        totals = {name: int(snap.counters[i, ports].sum(dtype=np.uint64))
                  for i, name in enumerate(COUNTER_NAMES)}
        meta = {
            "format": "ibsim-run",
            "version": 1,
            "status": status,
            "status_reason": reason,
            "scenario": {
                "name": scn.name if scn is not None else topo.name,
                "path": scn.source if scn is not None else None,
                "content": scn.data if scn is not None else None,
            },
            "seed": sim.seed,
            "versions": _versions(),
            "topology": topo.summary(),
            "fabric": {"nodes": int(f.n_nodes), "switches": int(f.n_switches),
                       "ports": int(f.n_ports), "links": int(f.n_links),
                       "cabled_ports": int(len(ports))},
            "routing": {"engine": sim.routing, "options": _jsonable(sim.routing_options)},
            # attribute blocks a subnet manager set through the MAD server (P_Key, SL2VL, VLArb, ...)
            "sm_tables": snap.sma.counts() if snap.sma is not None else None,
            "tick_s": sim.tick_s,
            "mtu": sim.mtu,
            "ticks": int(sim.ticks),
            "simulated_s": round(sim.time_s, 9),
            "wall_s": round(wall, 3) if wall is not None else None,
            "ticks_per_s": round(sim.ticks / wall, 1) if wall else None,
            "interrupted": status == "interrupted",
            "started_utc": self._started_utc,
            "finished_utc": _utc_now() if status != "running" else None,
            "jobs": [{"name": j.name, "pattern": j.pattern, "hosts": n,
                      "load": j.load, "rate_bytes_s": j.rate, "start_s": j.start_s, "stop_s": j.stop_s}
                     for j, n in zip(sim.jobs, _job_hosts(sim))],
            "stats": _jsonable(sim.stats),
            "events": len(sim.events),
            "series": {"file": series_file, "every_s": self.every_s, "samples": int(len(data.time_s)),
                       "rows": int(len(data.time_s) * len(ports)),
                       "budget_rows": int(self.capacity * len(ports)),
                       "columns": ["time_s", "node_guid", "port", "port_state", *SERIES_COUNTERS]},
            "totals": totals,
            "degraded_links": self.degraded.to_meta(),
        }
        return meta


# ------------------------------------------------------------- helpers
def _job_hosts(sim) -> list[int]:
    """Resolved host count of each job."""
    return [int(sim.job_ports(i).size) for i in range(len(sim.jobs))]


def _versions() -> dict:
    import networkx
    from .._version import __version__
    v = {"python": platform.python_version(), "numpy": np.__version__,
         "networkx": networkx.__version__, "ibsim": __version__}
    for mod in ("yaml", "pandas", "pyarrow", "matplotlib"):
        m = sys.modules.get(mod)
        if m is not None:
            v["pyyaml" if mod == "yaml" else mod] = getattr(m, "__version__", "?")
    v["platform"] = platform.platform()
    return v


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=json_default))


def _frame(cols: dict):
    """A pandas DataFrame of the columns when pandas imports, else the dict."""
    try:
        import pandas as pd
    except ImportError:
        return cols
    return pd.DataFrame(cols)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _have(module: str) -> bool:
    """``module`` imports (``sys.modules[module] = None`` counts as missing)."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _table(snap) -> dict:
    from ..engine.table import counters_table
    return counters_table(snap)

