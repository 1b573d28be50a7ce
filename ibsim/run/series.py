"""The sampled time series of a run: in memory (:class:`SeriesData`), fabric-wide totals,
and the long per-port file (``series.parquet`` or ``series.csv.gz``) written and read back.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..fabric.names import node_names

__all__ = ["SeriesData", "fabric_series", "write_series", "write_columns_csv", "read_csv", "read_series",
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


def write_columns_csv(path: Path, cols: dict, order, *, compress: bool = False) -> None:
    """Write columns ``cols`` (in ``order``) as CSV, gzip-compressed when ``compress``."""
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


def write_series(data: SeriesData, out: Path) -> str:
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
        write_columns_csv(out / "series.csv.gz", cols, list(cols), compress=True)
    return "series.csv.gz"


def read_csv(path: Path, *, compress: bool = False):
    """A CSV file as a pandas DataFrame, or a dict of columns (ints, floats) without pandas."""
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


def read_series(path: Path):
    """The long series of run directory ``path`` (Parquet or gzip CSV), or None when absent."""
    pq_file, csv_file = path / "series.parquet", path / "series.csv.gz"
    if pq_file.exists():
        try:
            import pandas as pd
            return pd.read_parquet(pq_file)
        except ImportError:
            import pyarrow.parquet as pq
            return pq.read_table(pq_file).to_pydict()
    if csv_file.exists():
        return read_csv(csv_file, compress=True)
    return None

