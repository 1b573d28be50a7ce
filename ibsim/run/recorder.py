"""Record a run: sample a time series while it runs, write the run directory at the end.

A :class:`Recorder` is an observer (``sim.observe``). It keeps, for every
cabled port, a few counters and its link's active width and speed at each
sample (vectorised: fancy-index copies per sample, no loop over ports) and at
the end writes::

    <run dir>/
      metadata.json        scenario (path and parsed content), seed, versions,
                           topology summary, ticks, simulated and wall seconds,
                           engine stats, counter totals, file list
      events.jsonl         one Event.to_dict() per line
      counters.csv         final state of every cabled port (ibsim.engine.table)
      series.parquet       long format: time_s, node_guid, port, port_state and
        or series.csv.gz   the SERIES_COUNTERS (Parquet when pyarrow imports)
      fabric_series.csv    fabric-wide totals per sample (throughput in Gb/s, ...)
      overview.png         throughput, busiest (bytes) and hottest (% of capacity)
                           links, with event overlays
      summary.txt          top talkers, hottest links, nonzero error counters,
                           degraded links, event counts

The series stays bounded: the interval grows with the fabric so that
samples x cabled ports stays under ``max_rows``; when a run outlasts the
expected duration, every other sample is dropped and the interval doubled.
:func:`load_run` reads a run directory back.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import json
import math
import platform
import sys
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.table import write_counters_csv
from ..fabric.counters import COUNTER_NAMES, COUNTER_ROW
from ..fabric.names import node_names
from .degraded import DegradedLinks

__all__ = ["Recorder", "RunResult", "SeriesData", "load_run", "run_dir_name",
           "SERIES_COUNTERS", "FABRIC_SERIES_COLUMNS"]

#: counters kept per cabled port in the time series (sysfs names)
SERIES_COUNTERS = ("port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets",
                   "port_xmit_wait", "symbol_error", "port_rcv_errors", "link_error_recovery",
                   "link_downed", "port_xmit_discards")
#: columns of fabric_series.csv
FABRIC_SERIES_COLUMNS = ("time_s", "ca_xmit_gbps", "ca_rcv_gbps", "switch_xmit_gbps",
                         "stalled_ports", "ports_not_active", "symbol_error", "port_rcv_errors",
                         "link_downed", "port_xmit_discards", "events")
_ACTIVE = 4
_EPS = 1e-9


def run_dir_name(name: str, when: _dt.datetime | None = None) -> str:
    """``<name>-<UTC time>`` (``fat-tree-20240501T120000Z``)."""
    when = when or _dt.datetime.now(_dt.timezone.utc)
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "run"
    return f"{safe}-{when.strftime('%Y%m%dT%H%M%SZ')}"


@dataclass
class SeriesData:
    """The sampled series in memory, shaped for vectorised reductions.

    Attributes
    ----------
    time_s : ndarray of float64, (n_samples,)
        Simulated seconds of each sample.
    counters : ndarray of uint64, (n_samples, n_series_counters, n_cabled)
        :data:`SERIES_COUNTERS` of every cabled port at each sample.
    port_state : ndarray of uint8, (n_samples, n_cabled)
    ports : ndarray of int64, (n_cabled,)
        Dense port indices of the cabled ports.
    fabric : FabricIndex
    width, speed : ndarray of uint8, (n_samples, n_cabled), optional
        Active link width (lanes) and speed code at each sample (0 while
        down); without them the cables' rates stand in.
    """

    time_s: np.ndarray
    counters: np.ndarray
    port_state: np.ndarray
    ports: np.ndarray
    fabric: object
    width: np.ndarray | None = None
    speed: np.ndarray | None = None
    _names: np.ndarray | None = field(default=None, repr=False)

    def counter(self, name: str) -> np.ndarray:
        """(n_samples, n_cabled) values of one series counter."""
        return self.counters[:, SERIES_COUNTERS.index(name), :]

    def rates_gbps(self, name: str = "port_xmit_data") -> np.ndarray:
        """(n_samples, n_cabled) data rate over the interval ending at each sample [Gb/s].

        The first sample has rate 0 (nothing before it).
        """
        words = self.counter(name).astype(np.float64)
        out = np.zeros_like(words)
        if len(self.time_s) > 1:
            dt = np.diff(self.time_s)[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                out[1:] = np.where(dt > 0, np.diff(words, axis=0) * 32.0 / dt / 1e9, 0.0)
        return out

    def capacity_bytes(self) -> np.ndarray:
        """(n_samples, n_cabled) data capacity of each link at each sample [bytes/s], 0 while down."""
        f = self.fabric
        if self.width is None or self.speed is None:
            cap = f.capacity_bytes(f.cable_width[self.ports], f.cable_speed[self.ports])
            return np.broadcast_to(cap, (len(self.time_s), len(self.ports)))
        return f.capacity_bytes(self.width, self.speed)

    def utilisation(self, name: str = "port_xmit_data") -> tuple[np.ndarray, np.ndarray]:
        """Sent words over the interval ending at each sample, as a fraction of what the link
        could carry in it, and that capacity.

        An interval is measured against the link's capacity at its end (at
        its start when the link is down at the end); an interval in which
        the link retrained to a lower rate is capped at 100%.

        Returns
        -------
        util : ndarray of float64, (n_samples, n_cabled)
            0..1; 0 for the first sample and where the link was down at both ends.
        capacity : ndarray of float64, (n_samples, n_cabled)
            Bytes/s each interval was measured against.
        """
        cap = self.capacity_bytes()
        util = np.zeros(cap.shape)
        cap_iv = np.zeros(cap.shape)
        if len(self.time_s) > 1:
            sent = np.diff(self.counter(name).astype(np.float64), axis=0) * 4.0
            cap_iv[1:] = np.where(cap[1:] > 0, cap[1:], cap[:-1])
            room = cap_iv[1:] * np.diff(self.time_s)[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                util[1:] = np.where(room > 0, np.minimum(sent / room, 1.0), 0.0)
        return util, cap_iv

    @property
    def names(self) -> np.ndarray:
        """Display names of every node (see :func:`ibsim.fabric.names.node_names`)."""
        if self._names is None:
            self._names = node_names(self.fabric)
        return self._names

    def _label(self, ports: np.ndarray) -> list[str]:
        f = self.fabric
        return [f"{n}:{int(p)}" for n, p in zip(self.names[f.node_of_port[ports]], f.port_num[ports])]

    def labels(self, idx) -> list[str]:
        """``leaf03:19`` labels of cabled-port positions ``idx``."""
        return self._label(self.ports[np.atleast_1d(idx)])

    def peer_labels(self, idx) -> list[str]:
        """Labels of the far ends of cabled-port positions ``idx``."""
        return self._label(self.fabric.peer_of_port[self.ports[np.atleast_1d(idx)]])


class Recorder:
    """Sample a :class:`~ibsim.engine.Simulation` and write its run directory.

    Parameters
    ----------
    sim : Simulation
        The simulation to observe (the recorder registers itself).
    every : float or str
        Wished sampling interval [s] (default 1 s); raised when the fabric is
        large so that the series stays under ``max_rows`` rows.
    max_rows : int
        Bound on samples x cabled ports kept in memory and written.
    duration : float or str, optional
        Expected end of the run [s], used to choose the interval up front.
    scenario : Scenario, optional
        Recorded in ``metadata.json`` (default: ``sim.scenario`` when set).

    Examples
    --------
    >>> rec = Recorder(sim, every="1s", duration=120)        # doctest: +SKIP
    >>> sim.run(until=120)                                    # doctest: +SKIP
    >>> rec.write("runs/demo")                                # doctest: +SKIP
    """

    def __init__(self, sim, *, every=1.0, max_rows: int = 500_000, duration=None, scenario=None):
        from ..units import parse_duration
        self.sim = sim
        self.scenario = scenario if scenario is not None else getattr(sim, "scenario", None)
        f = sim.fabric
        self.ports = np.flatnonzero(f.peer_of_port >= 0)
        self.max_rows = int(max_rows)
        self._rows = np.array([COUNTER_ROW[n] for n in SERIES_COUNTERS], dtype=np.int64)
        base = max(parse_duration(every), sim.tick_s)
        base = sim.tick_s * math.ceil(base / sim.tick_s - _EPS)   # whole ticks
        n = max(len(self.ports), 1)
        self.every_s = base
        if duration is not None:
            span = parse_duration(duration) - sim.time_s
            want = span * n / max(self.max_rows - n, n)
            if want > base:
                self.every_s = base * math.ceil(want / base - _EPS)
        self._times: list[float] = []
        self._data: list[np.ndarray] = []
        self._state: list[np.ndarray] = []
        self._rate: list[np.ndarray] = []       # (2, n_cabled) active width and speed
        self._next = sim.time_s
        self._wall0 = _time.time()
        self._wall_run = None
        self.interrupted = False
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
        self._times.append(float(snap.time_s))
        self._data.append(snap.counters[np.ix_(self._rows, self.ports)])
        self._state.append(snap.port_state[self.ports])
        self._rate.append(np.stack((snap.width[self.ports], snap.speed[self.ports])))
        self.degraded.update(float(snap.time_s), snap.width, snap.speed)
        self._next = snap.time_s + self.every_s
        if len(self._times) * max(len(self.ports), 1) > self.max_rows and len(self._times) > 2:
            # outlasted the plan: keep every other sample (the first included), halve the density
            keep = slice(0, None, 2)
            self._times = self._times[keep]
            self._data = self._data[keep]
            self._state = self._state[keep]
            self._rate = self._rate[keep]
            self.every_s *= 2
            self._next = self._times[-1] + self.every_s

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
        """``<parent>/<scenario name>-<UTC time>/`` (parent: the scenario's output dir)."""
        scn = self.scenario
        if parent is None:
            parent = scn.output.dir if scn is not None else "runs"
        name = scn.name if scn is not None else self.sim.fabric.topology.name
        path = Path(parent) / run_dir_name(name)
        i = 2
        while path.exists():
            path = Path(parent) / f"{run_dir_name(name)}-{i}"
            i += 1
        return path

    def write(self, out=None, *, wall_s: float | None = None, interrupted: bool | None = None,
              plot: bool = True, extra: dict | None = None) -> "RunResult":
        """Write the run directory and return it as a :class:`RunResult`.

        Parameters
        ----------
        out : str or Path, optional
            The run directory (created; files in it are replaced). Default:
            :meth:`default_dir`.
        wall_s : float, optional
            Wall seconds the run took (default: since the recorder was made).
        interrupted : bool, optional
            Whether the run was stopped early (recorded in the metadata).
        plot : bool
            Draw ``overview.png`` (needs matplotlib; skipped when missing).
        extra : dict, optional
            More metadata (e.g. ``{"exporters": {...}}``: what each exporter
            sent, dropped and how often it reconnected).
        """
        from . import report
        out = Path(out) if out is not None else self.default_dir()
        out.mkdir(parents=True, exist_ok=True)
        if interrupted is not None:
            self.interrupted = bool(interrupted)
        sim = self.sim
        wall = wall_s if wall_s is not None else _time.time() - self._wall0
        snap = sim.snapshot()
        data = self.series()
        events = [e.to_dict() for e in sim.events]
        files = []

        with open(out / "events.jsonl", "w", encoding="utf-8") as fh:
            for ev in events:
                fh.write(json.dumps(ev, default=str) + "\n")
        files.append("events.jsonl")
        with open(out / "counters.csv", "w", encoding="utf-8", newline="") as fh:
            write_counters_csv(snap, fh)
        files.append("counters.csv")
        series_file = _write_series(data, out)
        files.append(series_file)
        fseries = fabric_series(data, sim.events)
        _write_columns_csv(out / "fabric_series.csv", fseries, FABRIC_SERIES_COLUMNS)
        files.append("fabric_series.csv")

        meta = self._metadata(snap, data, wall, series_file)
        meta.update(extra or {})
        table = _table(snap)
        summary = report.summary_text(meta, data, events, table)
        (out / "summary.txt").write_text(summary, encoding="utf-8")
        files.append("summary.txt")
        if plot:
            try:
                report.plot_overview(out / "overview.png", meta, data, fseries, events)
                files.append("overview.png")
            except ImportError:
                meta["overview"] = "skipped: matplotlib is not installed"
        meta["files"] = sorted(files + ["metadata.json"])
        with open(out / "metadata.json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2, default=_json_default)
            fh.write("\n")
        return RunResult(out, meta, events, _frame(table), _frame(fseries), None, summary)

    def _metadata(self, snap, data: SeriesData, wall: float, series_file: str) -> dict:
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
            "wall_s": round(wall, 3),
            "ticks_per_s": round(sim.ticks / wall, 1) if wall > 0 else None,
            "interrupted": self.interrupted,
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "jobs": [{"name": j.name, "pattern": j.pattern, "hosts": n,
                      "load": j.load, "rate_bytes_s": j.rate, "start_s": j.start_s, "stop_s": j.stop_s}
                     for j, n in zip(sim.jobs, _job_hosts(sim))],
            "stats": _jsonable(sim.stats),
            "events": len(sim.events),
            "series": {"file": series_file, "every_s": self.every_s, "samples": int(len(data.time_s)),
                       "rows": int(len(data.time_s) * len(ports)),
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
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    return str(obj)


def _frame(cols: dict):
    """A pandas DataFrame of the columns when pandas imports, else the dict."""
    try:
        import pandas as pd
    except ImportError:
        return cols
    return pd.DataFrame(cols)


def _table(snap) -> dict:
    from ..engine.table import counters_table
    return counters_table(snap)


def fabric_series(data: SeriesData, events=()) -> dict:
    """Fabric-wide totals per sample (the columns of ``fabric_series.csv``).

    Rates are averages over the interval that ends at each sample [Gb/s];
    ``stalled_ports`` is the PortXmitWait time over that interval summed over
    ports (ports fully stalled, on average); error columns are cumulative.
    """
    f = data.fabric
    ports = data.ports
    t = data.time_s
    is_sw = f.is_switch[ports]
    peer_sw = f.is_switch[f.peer_of_port[ports]]
    ca = ~is_sw
    isl = is_sw & peer_sw
    xmit = data.rates_gbps("port_xmit_data")
    rcv = data.rates_gbps("port_rcv_data")
    cap_words = f.capacity_bytes(f.cable_width[ports], f.cable_speed[ports]) / 4.0   # words/s
    wait = data.counter("port_xmit_wait").astype(np.float64)
    stalled = np.zeros(len(t))
    if len(t) > 1:
        dt = np.diff(t)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(cap_words > 0, np.diff(wait, axis=0) / cap_words, 0.0)
            stalled[1:] = frac.sum(axis=1) / np.where(dt > 0, dt, np.inf)
    ev_t = np.array([e.time_s if hasattr(e, "time_s") else e["time_s"] for e in events], dtype=float)
    n_ev = np.zeros(len(t), dtype=np.int64)
    if len(t) and ev_t.size:
        idx = np.searchsorted(t, ev_t, side="left")     # event at (t[i-1], t[i]] -> sample i
        idx = idx[idx < len(t)]
        n_ev = np.bincount(idx, minlength=len(t))
    return {
        "time_s": np.round(t, 9),
        "ca_xmit_gbps": np.round(xmit[:, ca].sum(axis=1), 6),
        "ca_rcv_gbps": np.round(rcv[:, ca].sum(axis=1), 6),
        "switch_xmit_gbps": np.round(xmit[:, isl].sum(axis=1), 6),
        "stalled_ports": np.round(stalled, 6),
        "ports_not_active": (data.port_state != _ACTIVE).sum(axis=1),
        "symbol_error": data.counter("symbol_error").sum(axis=1, dtype=np.uint64),
        "port_rcv_errors": data.counter("port_rcv_errors").sum(axis=1, dtype=np.uint64),
        "link_downed": data.counter("link_downed").sum(axis=1, dtype=np.uint64),
        "port_xmit_discards": data.counter("port_xmit_discards").sum(axis=1, dtype=np.uint64),
        "events": n_ev,
    }


def _write_columns_csv(path: Path, cols: dict, order, *, compress: bool = False) -> None:
    opener = (lambda p: gzip.open(p, "wt", encoding="utf-8", newline="", compresslevel=1)) \
        if compress else (lambda p: open(p, "w", encoding="utf-8", newline=""))
    with opener(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(order)
        w.writerows(zip(*[np.asarray(cols[c]).tolist() for c in order]))


def _series_columns(data: SeriesData) -> dict:
    """Long-format columns: one row per (sample, cabled port), vectorised."""
    f = data.fabric
    n_s, n_c = len(data.time_s), len(data.ports)
    guid = np.array([f"0x{int(g):016x}" for g in f.node_guid], dtype=object)[f.node_of_port[data.ports]]
    cols = {
        "time_s": np.repeat(np.round(data.time_s, 9), n_c),
        "node_guid": np.tile(guid, n_s),
        "port": np.tile(f.port_num[data.ports].astype(np.int64), n_s),
        "port_state": data.port_state.reshape(-1).astype(np.int64),
    }
    flat = data.counters.transpose(1, 0, 2).reshape(len(SERIES_COUNTERS), n_s * n_c)
    for i, name in enumerate(SERIES_COUNTERS):
        cols[name] = flat[i]
    return cols


def _write_series(data: SeriesData, out: Path) -> str:
    """Write the long series as Parquet (pyarrow) or gzip CSV; returns the file name."""
    cols = _series_columns(data)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None:
        for stale in ("series.csv.gz",):
            (out / stale).unlink(missing_ok=True)
        pq.write_table(pa.table({k: pa.array(v) for k, v in cols.items()}), out / "series.parquet")
        return "series.parquet"
    (out / "series.parquet").unlink(missing_ok=True)
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        pd.DataFrame(cols).to_csv(out / "series.csv.gz", index=False,
                                  compression={"method": "gzip", "compresslevel": 1})
    else:
        _write_columns_csv(out / "series.csv.gz", cols, list(cols), compress=True)
    return "series.csv.gz"


# -------------------------------------------------------------- reading
@dataclass
class RunResult:
    """A run directory read back (or just written).

    Attributes
    ----------
    path : Path
    metadata : dict
        ``metadata.json``.
    events : list of dict
        ``events.jsonl``.
    counters : pandas.DataFrame or dict of lists
        ``counters.csv`` (a dict of columns when pandas is missing).
    fabric_series : pandas.DataFrame or dict of lists
        ``fabric_series.csv``.
    series : pandas.DataFrame or dict of lists, optional
        The long series (read on first access when loaded from disk).
    summary : str
        ``summary.txt``.
    """

    path: Path
    metadata: dict
    events: list
    counters: object
    fabric_series: object
    _series: object = field(default=None, repr=False)
    summary: str = ""

    @property
    def series(self):
        """The per-port time series (Parquet or ``series.csv.gz``), loaded lazily."""
        if self._series is None:
            self._series = _read_series(Path(self.path))
        return self._series

    def __repr__(self) -> str:
        m = self.metadata
        return (f"<RunResult {str(self.path)!r}: {m.get('simulated_s')} s simulated, "
                f"{len(self.events)} events>")


def _read_csv(path: Path, *, compress: bool = False):
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        return pd.read_csv(path)
    opener = gzip.open if compress else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    head, body = rows[0], rows[1:]
    cols = {h: [r[i] for r in body] for i, h in enumerate(head)}
    for h, vals in cols.items():
        for conv in (int, float):
            try:
                cols[h] = [conv(v) for v in vals]
                break
            except ValueError:
                continue
    return cols


def _read_series(path: Path):
    pq_file, csv_file = path / "series.parquet", path / "series.csv.gz"
    if pq_file.exists():
        try:
            import pandas as pd
            return pd.read_parquet(pq_file)
        except ImportError:
            import pyarrow.parquet as pq
            return pq.read_table(pq_file).to_pydict()
    if csv_file.exists():
        return _read_csv(csv_file, compress=True)
    return None


def load_run(path) -> RunResult:
    """Read a run directory written by :class:`Recorder` (or ``python -m ibsim run``).

    Parameters
    ----------
    path : str or Path
        The run directory.

    Returns
    -------
    RunResult
        ``metadata`` (dict), ``events`` (list of dict), ``counters`` and
        ``fabric_series`` (pandas DataFrames when pandas imports, else dicts
        of columns) and ``series`` (loaded on first access).

    Raises
    ------
    FileNotFoundError
        When ``path`` has no ``metadata.json``.
    """
    p = Path(path)
    if not (p / "metadata.json").is_file():
        raise FileNotFoundError(f"{str(p)!r} is not an ibsim run directory (no metadata.json)")
    meta = json.loads((p / "metadata.json").read_text(encoding="utf-8"))
    events = []
    ev_file = p / "events.jsonl"
    if ev_file.exists():
        with open(ev_file, encoding="utf-8") as fh:
            events = [json.loads(line) for line in fh if line.strip()]
    counters = _read_csv(p / "counters.csv") if (p / "counters.csv").exists() else None
    fser = _read_csv(p / "fabric_series.csv") if (p / "fabric_series.csv").exists() else None
    summary = (p / "summary.txt").read_text(encoding="utf-8") if (p / "summary.txt").exists() else ""
    return RunResult(p, meta, events, counters, fser, None, summary)

