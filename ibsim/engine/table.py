"""Tabular views of a snapshot (the ``counters.csv`` layout)."""

from __future__ import annotations

import csv
import io

import numpy as np

from ..fabric.counters import COUNTER_NAMES
from ..fabric.index import SPEED_NAMES, WIDTH_NAMES
from ..fabric.state import PHYS, STATE

__all__ = ["counters_table", "write_counters_csv", "COUNTERS_CSV_COLUMNS"]

COUNTERS_CSV_COLUMNS = ("node_guid", "node_desc", "port", "lid", "peer_guid", "peer_port", "state",
                        "phys_state", "width", "speed") + COUNTER_NAMES


def counters_table(snap) -> dict:
    """One row per cabled port: identity, state, rate and every counter (sysfs units).

    Returns a dict of equal-length columns in :data:`COUNTERS_CSV_COLUMNS` order.
    """
    f = snap.fabric
    ports = np.flatnonzero(f.peer_of_port >= 0)
    peer = f.peer_of_port[ports]
    node = f.node_of_port[ports]
    pnode = f.node_of_port[peer]
    width_names = np.array([""] + [WIDTH_NAMES.get(i, "") for i in range(1, 13)], dtype=object)
    speed_names = np.array(SPEED_NAMES, dtype=object)
    state_names = np.array(["?"] + [STATE[i] for i in range(1, 5)], dtype=object)
    phys_names = np.array(["?"] + [PHYS[i] for i in range(1, 8)], dtype=object)
    cols = {
        "node_guid": [f"0x{int(g):016x}" for g in f.node_guid[node]],
        "node_desc": [f.node_desc[n] for n in node],
        "port": f.port_num[ports].astype(int),
        "lid": snap.lid[ports].astype(int),
        "peer_guid": [f"0x{int(g):016x}" for g in f.node_guid[pnode]],
        "peer_port": f.port_num[peer].astype(int),
        "state": state_names[snap.port_state[ports]],
        "phys_state": phys_names[snap.phys_state[ports]],
        "width": width_names[snap.width[ports]],
        "speed": speed_names[snap.speed[ports]],
    }
    for i, name in enumerate(COUNTER_NAMES):
        cols[name] = snap.counters[i, ports]
    return cols


def write_counters_csv(snap, fh) -> int:
    """Write ``counters.csv`` to an open text file; returns the number of rows."""
    cols = counters_table(snap)
    n = len(cols["port"])
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(COUNTERS_CSV_COLUMNS)
    buf = io.StringIO()
    bw = csv.writer(buf, lineterminator="\n")
    data = [cols[c] for c in COUNTERS_CSV_COLUMNS]
    bw.writerows(zip(*[[int(v) if isinstance(v, np.integer) else v for v in col] for col in data]))
    fh.write(buf.getvalue())
    return n
