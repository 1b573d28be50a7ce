"""A sweep's figure (``sweep.png``) and summary (``report.md``).

The figure has one panel per metric, plotted against the first numeric axis
(``seed`` aside), one line per combination of the other axes, each point the
mean over seeds with the standard deviation as its error bar. Without a
numeric axis the first axis's values stand side by side on the x axis.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["write_report", "plot_sweep", "axis_kinds", "PLOT_METRICS"]

#: metrics drawn (when the results have them), with their axis labels
PLOT_METRICS = {
    "throughput_gbps": "injected throughput [Gb/s]",
    "util_p99": "p99 link utilisation",
    "util_mean": "mean link utilisation",
    "xmit_wait": "PortXmitWait (all ports)",
    "xmit_discards": "PortXmitDiscards (all ports)",
    "reroutes": "reroutes",
}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def axis_kinds(spec) -> tuple[list, list]:
    """(numeric axes, categorical axes) of a sweep, ``seed`` left out of both."""
    num, cat = [], []
    for ax in spec.axes:
        if ax == "seed":
            continue
        vals = [p.labels[ax] for p in spec.points if ax in p.labels]
        (num if vals and all(_is_number(v) for v in vals) else cat).append(ax)
    return num, cat


def _metrics(df) -> list:
    cols = [m for m in PLOT_METRICS if m in df.columns]
    cols += sorted(c for c in df.columns if c.startswith("fault") and c.endswith("_recovery_s"))
    return [c for c in cols if df[c].notna().any()]


def _label(metric: str) -> str:
    if metric in PLOT_METRICS:
        return PLOT_METRICS[metric]
    return metric.replace("_recovery_s", ": time to recovery [s]").replace("fault", "fault ")


def plot_sweep(df, spec, path) -> list:
    """Draw ``path`` (PNG); returns the metrics drawn. Needs matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    metrics = _metrics(ok)
    num, cat = axis_kinds(spec)
    if num:
        x, lines = num[0], cat + num[1:]
    elif cat:
        x, lines = cat[0], cat[1:]
    else:
        x, lines = "point", []
    n = max(len(metrics), 1)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    ticks = None
    if not num and x in ok.columns:
        ticks = list(dict.fromkeys(str(v) for v in ok[x]))
    groups = list(ok.groupby(lines, sort=True, dropna=False)) if lines else [((), ok)]
    for ax, metric in zip(axs.flat, metrics):
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            stats = g.groupby(x, sort=True)[metric].agg(["mean", "std", "count"])
            xs = [ticks.index(str(v)) for v in stats.index] if ticks is not None else stats.index
            label = ", ".join(f"{a}={v}" for a, v in zip(lines, key)) or None
            ax.errorbar(xs, stats["mean"], yerr=np.nan_to_num(stats["std"].to_numpy()), marker="o",
                        capsize=3, label=label)
        ax.set_title(_label(metric), fontsize=10)
        ax.set_xlabel(x)
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks, rotation=20, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axs.flat)[len(metrics):]:
        ax.axis("off")
    if groups and lines:
        axs.flat[0].legend(fontsize=7)
    seeds = ok["seed"].nunique() if "seed" in ok.columns else 1
    fig.suptitle(f"sweep {spec.name}: {len(ok)} points"
                 + (f", mean and std over {seeds} seeds" if seeds > 1 else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return metrics


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:.4g}"
    return str(v)


def _table(head: list, rows: list) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_report(df, spec, out) -> None:
    """Write ``sweep.png`` (when matplotlib imports) and ``report.md`` into ``out``."""
    out = Path(out)
    meta = json.loads((out / "sweep.json").read_text(encoding="utf-8")) if (out / "sweep.json").is_file() else {}
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    err = df[df["status"] != "ok"] if "status" in df.columns else df.iloc[0:0]
    lines = [f"# Sweep {spec.name}\n"]
    if spec.description:
        lines.append(spec.description.strip() + "\n")
    wall = meta.get("wall_s")
    lines.append(f"{len(df)} points ({len(ok)} ok, {len(err)} failed) over axes "
                 f"{', '.join(f'`{a}`' for a in spec.axes)}"
                 + (f"; {wall:.1f} s wall" if isinstance(wall, (int, float)) else "")
                 + (f", {meta['skipped']} resumed" if meta.get("skipped") else "") + ".\n")
    plotted = []
    try:
        if len(ok):
            plotted = plot_sweep(df, spec, out / "sweep.png")
            lines.append("![sweep](sweep.png)\n")
    except ImportError:
        lines.append("(no figure: matplotlib is not installed)\n")
    if len(ok):
        by = [a for a in spec.axes if a != "seed" and a in ok.columns]
        metrics = plotted or _metrics(ok)
        lines.append("## Mean over seeds\n" if "seed" in spec.axes else "## Results\n")
        groups = ok.groupby(by, sort=True, dropna=False) if by else [((), ok)]
        rows = []
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            rows.append(list(key) + [len(g)] + [g[m].mean() for m in metrics])
        lines.append(_table(by + ["n"] + metrics, rows))
    if len(err):
        lines.append("## Failed points\n")
        lines.append(_table(["point", "point_id", "error"],
                            [[r["point"], r["point_id"], r.get("error", "")] for r in err.to_dict("records")]))
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
