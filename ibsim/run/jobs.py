"""Jobs of a recorded run: ``jobs.csv``, the summary's Jobs table, the timeline's job bars.

Each row is one job run (a :class:`~ibsim.engine.JobStat`: a scenario job, or
a Slurm job started at run time; a requeued job has a row per run) as a dict
of the :data:`JOBS_COLUMNS`. ``key`` is the Slurm ``job_id`` (else the job's
name), ``job_name`` and ``user`` its Slurm name and user (empty when not
known), ``nodes`` its Slurm node list, ``hosts`` its hosts' node
descriptions separated by ``;``; ``end_s`` is empty while it still ran at
the end; bytes and XmitWait are counted on its hosts' CA ports since it
started; ``share`` is its fraction (0..1) of the bytes all CA ports sent
meanwhile.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["JOBS_COLUMNS", "job_rows", "write_jobs_csv", "read_jobs_csv", "job_table", "job_label",
           "node_spans"]

#: columns of ``jobs.csv``
JOBS_COLUMNS = ("key", "name", "job_name", "user", "nodes", "hosts", "pattern", "start_s", "end_s",
                "xmit_bytes", "rcv_bytes", "xmit_wait", "share")


def job_rows(stats) -> list[dict]:
    """One ``jobs.csv`` row (dict) per job stat, in start order."""
    return [{"key": s.key, "name": s.name, "job_name": s.labels.get("job_name", ""),
             "user": s.labels.get("user", ""), "nodes": s.labels.get("nodes", ""), "hosts": ";".join(s.hosts),
             "pattern": s.pattern, "start_s": round(s.start_s, 9),
             "end_s": round(s.end_s, 9) if s.end_s is not None else None,
             "xmit_bytes": s.xmit_bytes, "rcv_bytes": s.rcv_bytes, "xmit_wait": s.xmit_wait,
             "share": round(s.share, 9)} for s in stats]


def write_jobs_csv(path, rows: list[dict]) -> None:
    """Write ``jobs.csv`` (an absent end as an empty field)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(JOBS_COLUMNS)
        w.writerows([["" if r[c] is None else r[c] for c in JOBS_COLUMNS] for r in rows])


def read_jobs_csv(path) -> list[dict]:
    """``jobs.csv`` back as rows with numbers (``end_s`` None while running at the end)."""
    out = []
    with open(Path(path), encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            for c in ("start_s", "share"):
                r[c] = float(r[c])
            r["end_s"] = float(r["end_s"]) if r["end_s"] else None
            for c in ("xmit_bytes", "rcv_bytes", "xmit_wait"):
                r[c] = int(r[c])
            out.append(r)
    return out


def job_label(row: dict) -> str:
    """``<key> <job_name or name>`` (just the key when it is the name); ``requeued`` for a later run."""
    name = row.get("job_name") or row["name"]
    text = row["key"] if name == row["key"] else f"{row['key']} {name}"
    run = row["name"].rsplit(".", 1)[-1] if row["name"].startswith("slurm-") and "." in row["name"] else ""
    return text + (" requeued" if run.isdigit() else "")


_TROUBLE = ("down", "drain", "fail", "not_responding")


def node_spans(events: list[dict], t_end: float) -> list[dict]:
    """Spans of Slurm nodes in trouble, from the ``node_state`` events of a run.

    A span opens when a node's state says ``down``, ``drain``, ``fail`` or
    ``not_responding`` and closes at its next state without them (or at
    ``t_end``); one span per node and episode, labelled with the worst state
    seen (``node010 down``, ``node004 drain``) and Slurm's reason.

    Returns
    -------
    list of dict
        ``{"node", "start", "end" (None: open at the end), "state", "reason"}``.
    """
    open_: dict[str, dict] = {}
    out = []
    for e in events:
        if e.get("kind") != "node_state":
            continue
        d = e.get("details") or {}
        node, state = d.get("node"), str(d.get("state") or "")
        bad = [w for w in _TROUBLE if w in state]
        cur = open_.get(node)
        if bad and cur is None:
            cur = open_[node] = {"node": node, "start": e["time_s"], "end": None, "state": bad[0],
                                 "reason": d.get("reason") or ""}
            out.append(cur)
        elif bad:
            if _TROUBLE.index(bad[0]) < _TROUBLE.index(cur["state"]):
                cur["state"] = bad[0]                       # down outranks drain outranks not_responding
            if d.get("reason") and not cur["reason"]:
                cur["reason"] = d["reason"]
        elif cur is not None:
            cur["end"] = e["time_s"]
            del open_[node]
    return [s for s in out if s["start"] < t_end]


def _hosts(row: dict) -> str:
    n = len(row["hosts"].split(";")) if row["hosts"] else 0
    return row["nodes"] or f"{n} hosts"


def job_table(rows: list[dict], end_s: float, bytes_text) -> tuple[list[str], list[list[str]], set[int]]:
    """The summary's Jobs table: ``(header, rows, right-aligned columns)``.

    Parameters
    ----------
    rows : list of dict
        :func:`job_rows`.
    end_s : float
        End of the run [s] (for jobs still running).
    bytes_text : callable
        Bytes -> readable text (``1.20 GB``).
    """
    table = [[r["key"], r.get("job_name") or r["name"], _hosts(r),
              f"{r['start_s']:g}-" + (f"{r['end_s']:g}" if r["end_s"] is not None else f"{end_s:g} (running)"),
              bytes_text(r["xmit_bytes"]), f"{100 * r['share']:.1f}", f"{r['xmit_wait']:,}"] for r in rows]
    return ["key", "name", "hosts", "start-end s", "sent", "share %", "xmit_wait"], table, {4, 5, 6}
