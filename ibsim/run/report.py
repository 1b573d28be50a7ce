"""Reports of a recorded run: ``summary.txt`` and ``overview.png``.

:func:`summary_text` gives the table the CLI prints (top talkers by bytes,
hottest links by utilisation, nonzero error counters, event counts).
:func:`plot_overview` draws the operator's dashboard picture: jobs as a
timeline, fabric throughput, the busiest links (bytes), the hottest links
(percent of their capacity) and fabric health over simulated time, with incidents (link outages grouped
by cause, bit-error faults, subnet-manager reroutes) overlaid as labelled
vertical lines. Both read only what the recorder hands them (numpy arrays
and event dicts); per-port work is vectorised.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..fabric.counters import COUNTER_NAMES, COUNTER_ROW
from ..fabric.state import ACTIVE
from ..fabric.names import node_names
from .degraded import summary_lines as _degraded_lines
from .jobs import job_label, job_table, node_spans

__all__ = ["summary_text", "plot_overview", "incidents", "busiest_ports", "hottest_ports",
           "link_utilisation", "node_names", "ERROR_COUNTERS"]

#: the error counters of the schema (everything before the data counters)
ERROR_COUNTERS = COUNTER_NAMES[:COUNTER_ROW["port_xmit_data"]]


def _guid_names(fabric) -> dict[str, str]:
    """``"0x..."`` node GUID text -> display name."""
    names = node_names(fabric)
    return {f"0x{int(g):016x}": n for g, n in zip(fabric.node_guid, names)}


# ----------------------------------------------------------------- text
def _bytes(n: float) -> str:
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f} B"


def _table_lines(head: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(x).rjust(w) if i in right else str(x).ljust(w)  # noqa: E731
                              for i, (x, w) in enumerate(zip(r, widths))).rstrip()
    return ["  " + fmt(head)] + ["  " + fmt(r) for r in rows]


def busiest_ports(data, n: int = 5, *, prefer_switch_links: bool = True) -> np.ndarray:
    """Positions (into ``data.ports``) of the ``n`` ports that sent the most bytes.

    With ``prefer_switch_links``, switch-to-switch ports are taken when any
    of them carried traffic (they show routing and contention best).
    """
    f = data.fabric
    sent = data.counter("port_xmit_data")[-1].astype(np.float64) - data.counter("port_xmit_data")[0]
    cand = np.ones(sent.size, dtype=bool)
    if prefer_switch_links:
        isl = f.is_switch[data.ports] & f.is_switch[f.peer_of_port[data.ports]]
        if (sent[isl] > 0).any():
            cand = isl
    order = np.argsort(-np.where(cand, sent, -1.0), kind="stable")
    order = order[sent[order] > 0]
    return order[:n]


def link_utilisation(data) -> dict:
    """How full each cabled port's link was: percent of its active capacity.

    Parameters
    ----------
    data : SeriesData

    Returns
    -------
    dict of ndarray, (n_cabled,)
        ``peak``: the highest utilisation over one sample interval (0..1);
        ``mean``: the time-weighted mean over the intervals that end with the
        port Active (0..1); ``capacity``: the capacity in the peak interval
        [bytes/s]; ``sent``: bytes sent. And ``series``, (n_samples,
        n_cabled): the utilisation over the interval ending at each sample.
    """
    util, cap = data.utilisation("port_xmit_data")
    cols = np.arange(util.shape[1])
    at = util.argmax(axis=0) if util.size else np.zeros(0, dtype=np.int64)
    xmit = data.counter("port_xmit_data")
    sent = (xmit[-1].astype(np.float64) - xmit[0]) * 4.0
    up = (data.port_state[1:] == ACTIVE) * np.diff(data.time_s)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(up.sum(axis=0) > 0, (util[1:] * up).sum(axis=0) / up.sum(axis=0), 0.0)
    return {"peak": util[at, cols], "mean": mean, "capacity": cap[at, cols], "sent": sent,
            "series": util}


def hottest_ports(data, n: int = 5, *, util: dict | None = None) -> np.ndarray:
    """Positions (into ``data.ports``) of the ``n`` ports whose links were fullest.

    Ranked by peak utilisation, then mean utilisation (both to 0.01%), then
    bytes sent; ports that sent nothing are left out. A slow (degraded) link
    at 100% ranks above a fast one carrying more bytes at 60%.

    Parameters
    ----------
    data : SeriesData
    n : int
    util : dict, optional
        :func:`link_utilisation` of ``data``, when already computed.
    """
    u = util if util is not None else link_utilisation(data)
    order = np.lexsort((-u["sent"], -np.round(u["mean"], 4), -np.round(u["peak"], 4)))
    order = order[u["peak"][order] > 0]
    return order[:n]


def _delta(data, name: str, idx) -> np.ndarray:
    """Increase of series counter ``name`` over the run at cabled-port positions ``idx``."""
    c = data.counter(name)
    return c[-1, idx].astype(np.float64) - c[0, idx]


def summary_text(meta: dict, data, events: list[dict], table: dict, *, top: int = 10,
                 max_error_rows: int = 15, jobs: list[dict] | None = None) -> str:
    """The run summary (``summary.txt``, also printed by ``python -m ibsim run``).

    Parameters
    ----------
    meta : dict
        The run metadata (``metadata.json`` content).
    data : SeriesData
        The sampled series.
    events : list of dict
        ``Event.to_dict()`` of every event.
    table : dict
        Final counters table (``ibsim.engine.table.counters_table``).
    top : int
        Rows of the top-talkers table.
    max_error_rows : int
        Rows of the error table (the rest is counted).
    jobs : list of dict, optional
        ``jobs.csv`` rows (:func:`ibsim.run.jobs.job_rows`): the Jobs table.
    """
    scn = meta["scenario"]
    topo = meta["topology"]
    lines = [f"ibsim run {scn['name']}" + (f" ({scn['path']})" if scn.get("path") else "")]
    lines.append(f"  fabric     {topo['name']}: {topo['switches']} switches, {topo['cas']} CAs, "
                 f"{topo['links']} links; routing {meta['routing']['engine']}")
    tps = meta.get("ticks_per_s")
    lines.append(f"  simulated  {meta['simulated_s']:g} s ({meta['ticks']} ticks of "
                 f"{meta['tick_s'] * 1000:g} ms) in {meta['wall_s']:.2f} s wall"
                 + (f", {tps:,.0f} ticks/s" if tps else "") + f"; seed {meta['seed']}")
    if meta.get("interrupted"):
        lines.append(f"  INTERRUPTED at t={meta['simulated_s']:g} s")
    for j in meta.get("jobs", []):
        load = f"load {j['load']:g}" if j.get("load") is not None else \
            f"{j['rate_bytes_s'] * 8 / 1e9:g} Gb/s"
        stop = f"{j['stop_s']:g}" if j.get("stop_s") is not None else "end"
        lines.append(f"  job        {j['name']}: {j['pattern']}, {j['hosts']} hosts, {load}, "
                     f"{j['start_s']:g}-{stop} s")
    t = data.time_s
    dur = float(t[-1] - t[0]) if len(t) > 1 else 0.0

    # top talkers
    xmit = data.counter("port_xmit_data")
    sent = (xmit[-1].astype(np.float64) - xmit[0]) * 4.0
    order = np.argsort(-sent, kind="stable")[:top]
    order = order[sent[order] > 0]
    lines += ["", f"Top talkers (bytes sent per port, of {len(data.ports)} cabled ports)"]
    if order.size:
        peak = data.rates_gbps("port_xmit_data")[:, order].max(axis=0)
        wait = _delta(data, "port_xmit_wait", order)
        rows = [[lab, peer, _bytes(s), f"{s * 8 / dur / 1e9:.1f}" if dur else "-", f"{p:.1f}", f"{int(w):,}"]
                for lab, peer, s, p, w in zip(data.labels(order), data.peer_labels(order),
                                              sent[order], peak, wait)]
        lines += _table_lines(["port", "peer", "sent", "mean Gb/s", "peak Gb/s", "xmit_wait"], rows,
                              {2, 3, 4, 5})
    else:
        lines.append("  (no traffic)")

    # hottest links: percent of capacity, so a slow link at 100% shows whatever it carries
    util = link_utilisation(data)
    hot = hottest_ports(data, top, util=util)
    every = (meta.get("series") or {}).get("every_s")
    lines += ["", "Hottest links (percent of the link's active capacity: peak over one sample"
              + (f" of {every:g} s" if every else "") + ", mean while Active)"]
    if hot.size:
        wait = _delta(data, "port_xmit_wait", hot)
        rows = [[lab, peer, f"{c * 8 / 1e9:g}", f"{100 * p:.1f}", f"{100 * m:.1f}", _bytes(s), f"{int(w):,}"]
                for lab, peer, c, p, m, s, w in zip(
                    data.labels(hot), data.peer_labels(hot), util["capacity"][hot], util["peak"][hot],
                    util["mean"][hot], util["sent"][hot], wait)]
        lines += _table_lines(["port", "peer", "capacity Gb/s", "peak %", "mean %", "sent", "xmit_wait"],
                              rows, {2, 3, 4, 5, 6})
    else:
        lines.append("  (no traffic)")

    # nonzero error counters (final values)
    present = [c for c in ERROR_COUNTERS if c in table]
    mat = np.stack([np.asarray(table[c], dtype=np.uint64) for c in present]) if present else \
        np.zeros((0, 0), dtype=np.uint64)
    lines += ["", "Error counters (nonzero, final values)"]
    if mat.size and mat.any():
        cols = [i for i in range(len(present)) if mat[i].any()]
        bad = np.flatnonzero(mat[cols].any(axis=0))
        bad = bad[np.argsort(-mat[np.ix_(cols, bad)].astype(np.float64).sum(axis=0), kind="stable")]
        names = _guid_names(data.fabric)
        guid, port = table["node_guid"], table["port"]
        rows = [[f"{names.get(guid[i], guid[i])}:{int(port[i])}"] + [f"{int(mat[c, i]):,}" for c in cols]
                for i in bad[:max_error_rows]]
        lines += _table_lines(["port"] + [present[c] for c in cols], rows, set(range(1, len(cols) + 1)))
        if bad.size > max_error_rows:
            lines.append(f"  ... and {bad.size - max_error_rows} more ports")
    else:
        lines.append("  (none)")

    lines += _degraded_lines(meta)

    if jobs:
        head, rows, right = job_table(jobs, meta["simulated_s"], _bytes)
        lines += ["", f"Jobs ({len(jobs)} runs: bytes their hosts sent, share of all CA traffic meanwhile)"]
        lines += _table_lines(head, rows, right)

    # events
    counts = Counter(e["kind"] for e in events)
    lines += ["", f"Events ({len(events)})"]
    lines.append("  " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
                         if counts else "(none)"))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ incidents
def _end(e: dict, names: dict | None = None, peer: bool = False) -> tuple[str, str]:
    """(node name, ``name:port``) of an event's port (or of its peer)."""
    guid, desc, port = (e.get("peer_guid"), e.get("peer_desc"), e.get("peer_port")) if peer else \
        (e.get("node_guid"), e.get("node_desc"), e.get("port"))
    name = (names or {}).get(guid, desc)
    return name, f"{name}:{port}"


def incidents(events: list[dict], end_s: float, gap_s: float, *, names: dict | None = None,
              cas: set | None = None) -> list[dict]:
    """Group link_down/link_up events into outages by cause.

    Each link's down..up intervals are taken per ``details.reason``; intervals
    of one reason closer than ``gap_s`` [s] merge into one incident.

    Parameters
    ----------
    events : list of dict
        ``Event.to_dict()`` dicts in time order.
    end_s : float
        End of the run [s] (outages still open end there).
    gap_s : float
        Largest gap between two outages of one incident [s].
    names : dict, optional
        Node GUID text -> display name.
    cas : set, optional
        Display names of CAs (an outage of a CA link is named after the CA).

    Returns
    -------
    list of dict
        ``start``, ``end`` (None while still down at ``end_s``), ``reason``,
        ``links`` (set of sorted end-label pairs), ``nodes`` (set of node
        names), ``downs`` (count), ``label``.
    """
    cas = cas or set()
    open_: dict[tuple, tuple[float, str, str]] = {}
    spans: list[tuple] = []
    for e in events:
        if e["kind"] not in ("link_down", "link_up"):
            continue
        (na, a), (nb, b) = _end(e, names), _end(e, names, True)
        link = tuple(sorted((a, b)))
        reason = (e.get("details") or {}).get("reason", "")
        where = nb if nb in cas and na not in cas else (na if na in cas else a)
        if e["kind"] == "link_down":
            if link not in open_:
                open_[link] = (e["time_s"], reason, where)
        elif link in open_:
            t0, r, w = open_.pop(link)
            spans.append((t0, e["time_s"], r, link, w))
    for link, (t0, r, w) in open_.items():
        spans.append((t0, None, r, link, w))
    spans.sort(key=lambda s: (s[2], s[0]))
    out: list[dict] = []
    for t0, t1, reason, link, where in spans:
        last = out[-1] if out and out[-1]["reason"] == reason else None
        end_last = None if last is None else (last["end"] if last["end"] is not None else end_s)
        if last is not None and t0 <= end_last + gap_s:
            last["end"] = None if (t1 is None or last["end"] is None) else max(last["end"], t1)
            last["links"].add(link)
            last["where"].add(where)
            last["downs"] += 1
        else:
            out.append({"start": t0, "end": t1, "reason": reason, "links": {link},
                        "where": {where}, "downs": 1})
    for inc in out:
        inc["label"] = _incident_label(inc)
    out.sort(key=lambda i: i["start"])
    return out


def _incident_label(inc: dict) -> str:
    links, where = inc["links"], inc["where"]
    if len(where) == 1:
        place = next(iter(where))
        if len(links) > 1:
            place += f" ({len(links)} links)"
    else:
        common = set.intersection(*[{x.rsplit(":", 1)[0] for x in link} for link in links])
        place = (sorted(common)[0] + f" ({len(links)} links)") if common else f"{len(links)} links"
    times = f" ×{inc['downs']}" if inc["downs"] > 1 and len(links) == 1 else ""
    return f"{inc['reason'] or 'link down'} {place}{times}"


# ----------------------------------------------------------------- plot
_RED, _GREEN, _ORANGE, _GREY, _BLUE = "#c0392b", "#27ae60", "#e67e22", "#7f8c8d", "#2c6fbb"
_PURPLE = "#8e44ad"


def _timeline_items(meta: dict, events: list[dict], t_end: float, gap: float, names: dict,
                    cas: set, jobs: list[dict] | None = None) -> list[dict]:
    """Bars of the timeline strip: jobs, link outages (grouped), bit-error faults.

    Jobs come from ``jobs`` (``jobs.csv`` rows, a bar per run from its start to
    its end, labelled ``<key> <job name>``) when given, else from the
    scenario's jobs in ``meta``.
    """
    cmap = None
    try:
        import matplotlib
        cmap = matplotlib.colormaps["tab10"]
    except ImportError:  # pragma: no cover - plot_overview needs matplotlib anyway
        pass
    items = []
    colour: dict[str, int] = {}                  # by key: the runs of a requeued job look alike
    for j in jobs or []:
        if j["start_s"] >= t_end:
            continue
        stop = min(j["end_s"] if j.get("end_s") is not None else t_end, t_end)
        n = len(j["hosts"].split(";")) if j.get("hosts") else 0
        c = colour.setdefault(j["key"], len(colour))
        items.append({"kind": "job", "start": j["start_s"], "end": stop, "alpha": 0.3,
                      "color": cmap(c % 10) if cmap else _BLUE,
                      "label": f"{job_label(j)} ({j['pattern']}, {j.get('nodes') or f'{n} hosts'})"})
    for i, j in enumerate(meta.get("jobs", []) if jobs is None else []):
        if j["start_s"] >= t_end:
            continue
        stop = min(j["stop_s"] if j.get("stop_s") is not None else t_end, t_end)
        load = f"load {j['load']:g}" if j.get("load") is not None else \
            f"{j['rate_bytes_s'] * 8 / 1e9:g} Gb/s"
        items.append({"kind": "job", "start": j["start_s"], "end": stop, "alpha": 0.3,
                      "color": cmap(i % 10) if cmap else _BLUE,
                      "label": f"{j['name']}: {j['pattern']}, {j['hosts']} hosts, {load}"})
    for sp in node_spans(events, t_end):             # Slurm nodes down or drained
        why = f": {sp['reason']}" if sp["reason"] and sp["reason"] != "Not responding" else ""
        items.append({"kind": "node", "start": sp["start"], "end": sp["end"] if sp["end"] is not None else t_end,
                      "closed": sp["end"] is not None, "color": _GREY, "alpha": 0.3, "text": "#2e3b3c",
                      "label": f"{sp['node']} {sp['state'].replace('_', ' ')}{why}"[:60]})
    for inc in incidents(events, t_end, gap, names=names, cas=cas):
        closed = inc["end"] is not None
        items.append({"kind": "outage", "start": inc["start"], "end": inc["end"] if closed else t_end,
                      "closed": closed, "color": _RED, "alpha": 0.25, "text": "#7b1f16",
                      "label": inc["label"]})
    # link faults that last: bit errors (orange), a link trained below its rate (purple)
    open_: dict[tuple, dict] = {}
    for e in events:
        d = e.get("details") or {}
        kind = d.get("fault")
        if e["kind"] != "fault" or kind not in ("ber", "degrade"):
            continue
        where = _end(e, names)[1]
        if kind == "ber" and d.get("rate", 0):
            it = {"kind": "ber", "start": e["time_s"], "end": t_end, "color": _ORANGE, "alpha": 0.25,
                  "text": "#8a4a0b", "label": f"bit errors (BER {d['rate']:.0e}) {where}"}
        elif kind == "degrade" and (d.get("width") or d.get("speed")):
            rate = " ".join(x for x in (d.get("width"), d.get("speed")) if x)
            it = {"kind": "degrade", "start": e["time_s"], "end": t_end, "color": _PURPLE, "alpha": 0.25,
                  "text": "#4a235a", "label": f"trains at {rate} {where}"}
        else:
            if (kind, where) in open_:
                open_.pop((kind, where))["end"] = e["time_s"]
            continue
        items.append(it)
        open_[(kind, where)] = it
    # cables that trained below their devices (a bad cable in the topology file, a degrade fault)
    faulted = {it["label"].rsplit(" ", 1)[-1] for it in items if it["kind"] == "degrade"}
    for d in meta.get("degraded_links") or []:
        if d["port"] not in faulted and d["peer"] not in faulted and d["since_s"] < t_end:
            items.append({"kind": "degrade", "start": d["since_s"], "end": t_end, "color": _PURPLE,
                          "alpha": 0.25, "text": "#4a235a",
                          "label": f"degraded {d['trained']} (could be {d['supported']}) {d['port']}"})
    return items


def _greedy_lanes(items: list[dict], which: list[int], t_end: float, char_frac: float) -> dict[int, int]:
    """Lanes (from 0) of the items ``which``: each in the first lane free at its start."""
    out: dict[int, int] = {}
    ends: list[float] = []          # visible end of the last item of each lane
    for i in sorted(which, key=lambda i: items[i]["start"]):
        it = items[i]
        vis_end = max(it["end"], it["start"] + (len(it["label"]) + 2) * char_frac * t_end)
        k = next((k for k, e in enumerate(ends) if e <= it["start"]), None)
        if k is None:
            k = len(ends)
            ends.append(vis_end)
        else:
            ends[k] = vis_end
        out[i] = k
    return out


def _pack_lanes(items: list[dict], t_end: float, char_frac: float = 0.0063) -> list[int]:
    """Lane of each timeline item: jobs first (a lane per job running at once), then the others.

    Both are packed greedily; an item's extent includes its label (about
    ``char_frac`` of the axis width per character), so labels never overlap.
    """
    job_lanes = _greedy_lanes(items, [i for i, it in enumerate(items) if it["kind"] == "job"], t_end, char_frac)
    other = _greedy_lanes(items, [i for i, it in enumerate(items) if it["kind"] != "job"], t_end, char_frac)
    n_jobs = max(job_lanes.values(), default=-1) + 1
    return [job_lanes[i] if i in job_lanes else n_jobs + other[i] for i in range(len(items))]


def _link_panel(ax, data, idx, values, ylabel: str, *, ymax: float | None = None,
                suffix=None) -> None:
    """One step curve per cabled-port position in ``idx`` (thick to thin, so equal curves stay
    visible on top of each other), labelled ``port → peer`` (plus ``suffix(i)``)."""
    import matplotlib
    tt = data.time_s
    labels = [f"{a} → {b}" + (suffix(i) if suffix else "")
              for i, a, b in zip(idx, data.labels(idx), data.peer_labels(idx))]
    for k, (i, lab) in enumerate(zip(idx, labels)):
        ax.step(tt, values[:, i], where="pre", lw=max(4.0 - 0.7 * k, 1.0), alpha=0.85,
                color=matplotlib.colormaps["Dark2"](k), label=lab)
    ax.set_ylabel(ylabel)
    longest = max((len(x) for x in labels), default=0)
    ncol = 3 if longest <= 30 else (2 if longest <= 48 else 1)
    same = idx.size > 1 and np.allclose(values[:, idx], values[:, idx[:1]], rtol=1e-3, atol=1e-3)
    rows = (-(-idx.size // ncol) + same) if idx.size else 0          # the title takes a row
    peak = ymax if ymax is not None else (float(values[:, idx].max(initial=0)) if idx.size else 0.0)
    ax.set_ylim(0, max(peak, 1.0) * (1.12 + 0.11 * rows))
    if ymax is not None:                 # the room above is for the legend
        ax.set_yticks(np.linspace(0, ymax, 5))
    if idx.size:
        ax.legend(loc="upper right", fontsize=8, ncol=ncol, framealpha=0.9,
                  title="identical curves, drawn on top of each other" if same else None,
                  title_fontsize=7.5)
    else:
        ax.text(0.5, 0.5, "no traffic", transform=ax.transAxes, ha="center", color=_GREY)


def plot_overview(path, meta: dict, data, fseries: dict, events: list[dict], *, top: int = 5,
                  jobs: list[dict] | None = None) -> None:
    """Draw ``overview.png``: jobs, throughput, busiest and hottest links, health, event overlays.

    Parameters
    ----------
    path : str or Path
        PNG file to write.
    meta : dict
        Run metadata (title, jobs).
    data : SeriesData
        The sampled series.
    fseries : dict
        Fabric-wide series (:func:`ibsim.run.series.fabric_series`).
    events : list of dict
        ``Event.to_dict()`` of every event.
    top : int
        Busiest links (bytes) and hottest links (utilisation) drawn.
    jobs : list of dict, optional
        ``jobs.csv`` rows: each job run is a bar on the timeline (default: the
        scenario's jobs from ``meta``). ``log`` events are not drawn.

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = np.asarray(fseries["time_s"], dtype=float)
    t_end = float(meta.get("simulated_s") or (t[-1] if t.size else 1.0)) or 1.0
    f = data.fabric
    names = _guid_names(f)
    cas = set(data.names[~f.node_is_switch])
    gap = max(0.03 * t_end, 3 * float(meta.get("tick_s", 0.1)))
    events = [e for e in events if e["kind"] != "log"]           # log lines would only clutter
    items = _timeline_items(meta, events, t_end, gap, names, cas, jobs)
    lanes = _pack_lanes(items, t_end)
    n_lanes = max(lanes, default=-1) + 1
    strip_h = 0.3 + 0.27 * max(n_lanes, 1)
    fig = Figure(figsize=(13, 11.5 + strip_h), dpi=110)
    FigureCanvasAgg(fig)      # no pyplot: no global state, no GUI backend
    gs = fig.add_gridspec(6, 1, height_ratios=[strip_h, 3.0, 2.8, 2.6, 1.3, 1.4], hspace=0.12)
    ax_tl = fig.add_subplot(gs[0])
    ax_tp = fig.add_subplot(gs[1], sharex=ax_tl)
    ax_top = fig.add_subplot(gs[2], sharex=ax_tl)
    ax_hot = fig.add_subplot(gs[3], sharex=ax_tl)
    ax_cong = fig.add_subplot(gs[4], sharex=ax_tl)
    ax_h = fig.add_subplot(gs[5], sharex=ax_tl)
    axes = [ax_tl, ax_tp, ax_top, ax_hot, ax_cong, ax_h]

    scn = meta["scenario"]
    topo = meta["topology"]
    fig.suptitle(f"{scn['name']}: {topo['name']} ({topo['switches']} switches, {topo['cas']} CAs), "
                 f"routing {meta['routing']['engine']}, seed {meta['seed']}"
                 + ("  [interrupted]" if meta.get("interrupted") else ""),
                 x=0.01, y=0.997, ha="left", fontsize=12, fontweight="bold")

    # timeline: jobs, outages and bit-error faults as labelled bars, one lane each when they overlap
    for it, lane in zip(items, lanes):
        y = n_lanes - 1 - lane
        ax_tl.barh(y, max(it["end"] - it["start"], 0.004 * t_end), left=it["start"], height=0.72,
                   color=it["color"], alpha=it.get("alpha", 0.35), lw=0)
        ax_tl.text(it["start"] + 0.004 * t_end, y, it["label"], va="center", ha="left", fontsize=8,
                   color=it.get("text", "#222222"), clip_on=True)
    ax_tl.set_ylim(-0.6, max(n_lanes, 1) - 0.4)
    ax_tl.set_yticks([])
    ax_tl.set_ylabel("timeline", rotation=0, ha="right", va="center", fontsize=9)
    if not items:
        ax_tl.text(0.5, 0.5, "no jobs and no faults", transform=ax_tl.transAxes, ha="center",
                   va="center", fontsize=9, color=_GREY)
    reroutes = [e["time_s"] for e in events if e["kind"] == "reroute"]
    if reroutes:
        ax_tl.plot(reroutes, np.full(len(reroutes), max(n_lanes, 1) - 0.45), "v", color=_GREY, ms=5,
                   clip_on=False)

    # throughput (Tb/s when it is large)
    ca = np.asarray(fseries["ca_xmit_gbps"], dtype=float)
    isl = np.asarray(fseries["switch_xmit_gbps"], dtype=float)
    big = max(float(ca.max(initial=0)), float(isl.max(initial=0))) >= 5000
    scale, unit = (1e-3, "Tb/s") if big else (1.0, "Gb/s")
    ax_tp.fill_between(t, ca * scale, step="pre", color=_BLUE, alpha=0.25, linewidth=0)
    ax_tp.step(t, ca * scale, where="pre", color=_BLUE, lw=1.6, label="CA injection (sum of host ports)")
    if isl.any():
        ax_tp.step(t, isl * scale, where="pre", color="#8e44ad", lw=1.1, alpha=0.85,
                   label="switch-to-switch (sum of ISL ports)")
    ax_tp.set_ylabel(f"fabric throughput\n[{unit}]")
    ax_tp.set_ylim(0, max(float(ca.max(initial=0)), float(isl.max(initial=0)), 1.0) * scale * 1.32)
    ax_tp.legend(loc="upper right", fontsize=8, framealpha=0.9)

    # busiest links (bytes) and hottest links (percent of capacity)
    idx = busiest_ports(data, top)
    isl_mask = f.is_switch[data.ports[idx]] & f.is_switch[f.peer_of_port[data.ports[idx]]]
    kind = "switch-to-switch ports" if idx.size and isl_mask.all() else "ports"
    _link_panel(ax_top, data, idx, data.rates_gbps("port_xmit_data"), f"busiest {kind}\n[Gb/s sent]")
    util = link_utilisation(data)
    hot = hottest_ports(data, top, util=util)
    _link_panel(ax_hot, data, hot, 100 * util["series"],
                "hottest links\n[% of capacity]", ymax=100.0,
                suffix=lambda i: f" ({util['capacity'][i] * 8 / 1e9:g} Gb/s)")

    # congestion
    stalled = np.asarray(fseries["stalled_ports"], dtype=float)
    ax_cong.fill_between(t, stalled, step="pre", color=_ORANGE, alpha=0.3, linewidth=0)
    ax_cong.step(t, stalled, where="pre", color=_ORANGE, lw=1.2)
    ax_cong.set_ylabel("congestion\n[ports stalled]")
    ax_cong.set_ylim(0, max(float(stalled.max(initial=0)), 1.0) * 1.25)

    # health: ports not active, symbol errors per second
    down = np.asarray(fseries["ports_not_active"], dtype=float)
    ax_h.step(t, down, where="pre", color=_RED, lw=1.4, label="ports not Active")
    ax_h.set_ylabel("health\n[ports not Active]", color=_RED)
    ax_h.set_ylim(0, max(float(down.max(initial=0)), 1.0) * 1.3)
    sym = np.asarray(fseries["symbol_error"], dtype=float)
    if t.size > 1 and sym[-1] > sym[0]:
        ax_e = ax_h.twinx()
        sym_rate = np.zeros_like(sym)
        with np.errstate(divide="ignore", invalid="ignore"):
            sym_rate[1:] = np.diff(sym) / np.maximum(np.diff(t), 1e-12)
        ax_e.step(t, sym_rate, where="pre", color=_ORANGE, lw=1.1, ls="-", label="symbol errors/s")
        ax_e.set_ylabel("symbol errors/s", color=_ORANGE, fontsize=9)
        ax_e.set_ylim(0, max(float(sym_rate.max()), 1.0) * 1.3)
        ax_e.tick_params(axis="y", labelsize=8, colors=_ORANGE)
    ax_h.set_xlabel("simulated time [s]")

    # event overlays: vertical lines through the data panels (labels are on the timeline)
    for it in items:
        if it["kind"] == "outage":
            for ax in axes[1:]:
                ax.axvspan(it["start"], it["end"], color=_RED, alpha=0.06, lw=0)
                ax.axvline(it["start"], color=_RED, lw=1.0, alpha=0.85)
                if it["closed"]:
                    ax.axvline(it["end"], color=_GREEN, ls="--", lw=1.0, alpha=0.85)
        elif it["kind"] in ("ber", "degrade"):
            for ax in axes[1:]:
                ax.axvline(it["start"], color=it["color"], ls="-.", lw=1.0, alpha=0.9)
    for rt in reroutes:
        for ax in axes[1:]:
            ax.axvline(rt, color=_GREY, ls=":", lw=1.0, alpha=0.9)
    sym_t = [e["time_s"] for e in events if e["kind"] == "symbol_errors"]
    if sym_t:
        ax_h.plot(sym_t, np.full(len(sym_t), ax_h.get_ylim()[1] * 0.9), "v", color=_ORANGE, ms=5)

    for ax in axes:
        ax.grid(True, axis="x", color="#dddddd", lw=0.6)
        ax.set_xlim(0, t_end)
        ax.tick_params(labelsize=8)
        if ax is not ax_h:
            ax.tick_params(labelbottom=False)
    for ax in axes[1:]:
        ax.grid(True, axis="y", color="#eeeeee", lw=0.6)
    fig.text(0.99, 0.003, f"ibsim {meta['versions'].get('ibsim', '')} | {meta['ticks']} ticks of "
             f"{meta['tick_s'] * 1000:g} ms | series every {meta['series']['every_s']:g} s | "
             "red: link down, green dashed: link up, shaded: outage, orange: bit errors, purple: degraded link "
             "(▼ symbol_errors event), grey dotted ▼: SM reroute", ha="right", va="bottom",
             fontsize=7, color=_GREY)
    fig.subplots_adjust(left=0.075, right=0.93, top=1 - 0.45 / fig.get_figheight(),
                        bottom=0.55 / fig.get_figheight())
    fig.savefig(path)
