"""The monitoring benchmark's outputs: ``results.json``, ``results.csv``, ``report.md``, plots.

``report.md`` holds one table (approach x size: sweep duration, completeness,
CPU, MADs, descriptors, staleness, accuracy, event latency, points per
second) and a short reading generated from the figures. The plots: sweep
duration against ports (log-log, one line per approach), CPU per sweep
against ports, completeness against ports, and event latency per approach.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

__all__ = ["COLUMNS", "write_results", "render_table", "plot_results"]

#: (row key, column title, format) of report.md's table and results.csv's first columns
COLUMNS = (
    ("approach", "approach", "{}"),
    ("fabric", "fabric", "{}"),
    ("fabric_ports", "ports", "{:,}"),
    ("reported_ports_per_sweep", "ports seen", "{:,.0f}"),
    ("sweeps_measured", "sweeps", "{}"),
    ("sweep_s_median", "sweep s (median)", "{:.3g}"),
    ("sweep_s_p95", "sweep s (p95)", "{:.3g}"),
    ("completeness_min", "complete (min)", "{:.1%}"),
    ("final_sweep_complete", "as designed", "{:.1%}"),
    ("cpu_s_per_sweep", "CPU s/sweep", "{:.3g}"),
    ("perf_mads_per_sweep", "PerfMgt MADs/sweep", "{:,.0f}"),
    ("opensm_fds_max", "OpenSM fds (max)", "{}"),
    ("staleness_s_max", "staleness s (max)", "{:.3g}"),
    ("data_rel_err_max", "data rel. err (max)", "{:.2g}"),
    ("event_latency_trap_s", "trap latency s", "{:.3g}"),
    ("event_latency_counter_s", "counter latency s", "{:.3g}"),
    ("points_per_s", "points/s", "{:,.0f}"),
)


def _derive(row: dict) -> dict:
    r = dict(row)
    comp = r.get("completeness") or []
    r["completeness_min"] = min(comp) if comp else None
    r["completeness_mean"] = float(np.mean(comp)) if comp else None
    return r


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    if v is None:
        return "—" if "error" not in row or key in ("approach", "fabric") else "failed"
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def render_table(rows) -> str:
    """The approach x size table in Markdown."""
    rows = [_derive(r) for r in rows]
    head = "| " + " | ".join(t for _k, t, _f in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [head, sep]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, k, f) for k, _t, f in COLUMNS) + " |")
    return "\n".join(lines)


def _reading(rows) -> list[str]:
    """A few sentences drawn from the figures."""
    rows = [_derive(r) for r in rows if "error" not in r]
    out = []
    for size in sorted({r["size"] for r in rows}):
        at = [r for r in rows if r["size"] == size and r.get("sweep_s_median") is not None]
        if not at:
            continue
        fast = min(at, key=lambda r: r["sweep_s_median"])
        slow = max(at, key=lambda r: r["sweep_s_median"])
        out.append(f"- {at[0]['fabric']} ({at[0].get('fabric_ports', 0):,} ports): fastest sweep "
                   f"{fast['approach']} ({fast['sweep_s_median']:.3g} s), slowest {slow['approach']} "
                   f"({slow['sweep_s_median']:.3g} s, {slow['sweep_s_median'] / r_interval(slow):.0%} of the interval).")
        short = [r["approach"] for r in at if (r.get("completeness_min") or 0) < 0.999]
        if short:
            out.append(f"  Incomplete sweeps (some ports missing in carbon): {', '.join(short)}.")
        leak = [r for r in at if (r.get("opensm_fds_max") or 0) > 2 * max(r.get("opensm_fds_start") or 1, 1) + 50]
        for r in leak:
            out.append(f"  {r['approach']}: OpenSM's descriptors grew from {r['opensm_fds_start']} to "
                       f"{r['opensm_fds_max']} (a socket leaked per event).")
        wrong = [r["approach"] for r in at if (r.get("data_rel_err_max") or 0) > 1e-3]
        if wrong:
            out.append(f"  Values off by more than 0.1% from the engine's counters: {', '.join(wrong)}.")
    failed = [f"{r['approach']} at {r['fabric']}" for r in rows if "error" in r]
    if failed:
        out.append(f"- Did not finish: {', '.join(failed)}.")
    return out


def r_interval(row) -> float:
    return float(row.get("interval_s") or 10.0)


def write_results(rows, out, *, meta: dict | None = None, plots: bool = True) -> dict:
    """Write results.json, results.csv, report.md and the plots into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    doc = {"meta": meta or {}, "results": [_derive(r) for r in rows]}
    paths["json"] = out / "results.json"
    paths["json"].write_text(json.dumps(doc, indent=1, default=str) + "\n")
    keys = [k for k, _t, _f in COLUMNS]
    extra = sorted({k for r in doc["results"] for k in r if k not in keys and not isinstance(r[k], (list, dict))})
    paths["csv"] = out / "results.csv"
    with open(paths["csv"], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys + extra, extrasaction="ignore")
        w.writeheader()
        for r in doc["results"]:
            w.writerow({k: r.get(k) for k in keys + extra})
    figs = plot_results(rows, out) if plots else {}
    paths.update(figs)
    md = ["# Monitoring benchmark", ""]
    if meta:
        md += [f"{meta.get('command', '')}", "", f"Machine: {meta.get('machine', '?')}; interval "
               f"{meta.get('interval_s')} s; {meta.get('sweeps')} measured sweeps per approach; "
               f"seed {meta.get('seed')}.", ""]
    md += [render_table(rows), "", "## Reading", ""] + (_reading(rows) or ["- (no finished approach)"])
    md += ["", "Columns: sweep = first to last report of one sweep; complete = ports with a point in the "
           "monitoring system inside the sweep / ports expected; as designed = in the sweep after the "
           "freeze, the ports the approach is meant to report (ibqueryerrors: those with an error "
           "counter or PortXmitWait above 0) that reached the monitoring system; CPU = user+system seconds of the "
           "monitoring processes (OpenSM for the plugins, the collector and its tools for sweeps, the "
           "export thread for direct) per sweep; MADs counted by ibsim's server; staleness = age of the "
           "newest point of sample series, sampled every second; data rel. err = distance of the delivered "
           "value from the engine's counters between the freeze and the read (only MADs count then), "
           "relative to the counter, over port_xmit_data and port_rcv_data; latencies from the link going "
           "down in the simulation to the change being readable in carbon (or Prometheus).", ""]
    for name, p in figs.items():
        md.append(f"![{name}]({Path(p).name})")
    paths["md"] = out / "report.md"
    paths["md"].write_text("\n".join(md) + "\n")
    return paths


def plot_results(rows, out) -> dict:
    """The four plots as PNG files in ``out``; {} without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return {}
    out = Path(out)
    rows = [_derive(r) for r in rows]
    approaches = list(dict.fromkeys(r["approach"] for r in rows))
    paths = {}

    def lines(key, fname, ylabel, *, logy=True, ylim=None):
        fig = Figure(figsize=(7.5, 4.8), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for a in approaches:
            pts = sorted((r["fabric_ports"], r[key]) for r in rows
                         if r["approach"] == a and r.get(key) is not None and r.get("fabric_ports")
                         and (r[key] > 0 or not logy))
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, marker="o", label=a)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        if ylim:
            ax.set_ylim(*ylim)
        ax.set_xlabel("ports in the fabric")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no non-zero values", ha="center", transform=ax.transAxes)
        fig.tight_layout()
        p = out / fname
        fig.savefig(p)
        paths[fname.rsplit(".", 1)[0]] = p

    lines("sweep_s_median", "sweep_duration.png", "sweep duration, median (s)")
    lines("cpu_s_per_sweep", "cpu_per_sweep.png", "CPU seconds per sweep")
    lines("completeness_min", "completeness.png", "completeness, worst sweep", logy=False, ylim=(0, 1.05))

    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    sizes = sorted({r["size"] for r in rows})
    width = 0.8 / max(2 * len(sizes), 1)
    x = np.arange(len(approaches))
    for i, size in enumerate(sizes):
        for j, (key, hatch) in enumerate((("event_latency_trap_s", "//"), ("event_latency_counter_s", ""))):
            vals = []
            for a in approaches:
                r = next((r for r in rows if r["approach"] == a and r["size"] == size), {})
                vals.append(r.get(key) or 0.0)
            ax.bar(x + (2 * i + j) * width, vals, width, hatch=hatch,
                   label=f"{'trap' if j == 0 else 'counter'} path, {size:,} CAs")
    ax.set_xticks(x + width * (len(sizes) - 0.5), approaches, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("link down -> visible (s)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    p = out / "event_latency.png"
    fig.savefig(p)
    paths["event_latency"] = p
    return paths
