"""Run the monitoring benchmark: every approach, one after another, at every size.

For each (size, approach) the suite builds the same live fabric
(:class:`~ibsim.bench.live.LiveFabric`: same scenario and seed, routed by a
real OpenSM), starts a private carbon-cache, starts the approach and goes
through five phases:

1. **warm-up**: until the approach has delivered one complete sweep;
2. **measure**: ``sweeps`` sweeps at ``interval``; sweep durations, CPU,
   descriptors, MADs and staleness are taken here;
3. **event**: the first CA's cable goes down; the time until the change is
   visible in the monitoring system is taken for the trap path (a trap series
   in carbon) and the counter path (``link_downed`` of either end); the cable
   comes back;
4. **freeze**: the clock stops, so counters change only by MADs; one more
   sweep is awaited;
5. **read**: the values the monitoring system holds are compared with the
   engine's ground truth (:meth:`Simulation.counted_totals`).

An approach that cannot keep up (sweeps not finished in time, lost reports) is
a result, recorded in its row; only a setup failure of the suite's own (no
OpenSM, no carbon) raises.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from pathlib import Path

import numpy as np

from ..fabric import COUNTER_ROW
from .approaches import PREFIX, Context, read_stats
from .carbon import Carbon
from .live import metric_ports, wait_until
from .procs import Sampler, fd_count, udp_rcvbuf_errors

__all__ = ["ACCURACY_COUNTERS", "run_one", "run_suite"]

#: counters whose delivered values are compared with the ground truth
ACCURACY_COUNTERS = ("port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets", "link_downed")


def _pct(values, q) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _retention(interval: float, seconds: float) -> str:
    step = max(1, int(interval // 4))
    return f"{step}s:{int(math.ceil(seconds / step)) + 60}"


class _Staleness:
    """Every second: how old is the newest point carbon holds for a few sample series?"""

    def __init__(self, sink, metrics: list[str]):
        self.carbon, self.metrics = sink, metrics
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ibsim-bench-staleness", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                pts = self.carbon.points(self.metrics, since=time.time() - 3600)
            except OSError:
                continue
            newest = [max(p) for p in pts.values() if p]
            if newest:
                self.samples.append(time.time() - min(newest))

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(5)
        return self.samples


def run_one(approach, size, workdir, *, interval: float = 10.0, sweeps: int = 3, seed: int = 7,
            load: float = 0.5, say=None) -> dict:
    """Run one approach on one fabric size; returns its result row (a flat dict)."""
    say = say or (lambda s: None)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    row = {"approach": approach.name, "size": size.cas, "fabric": size.label, "interval_s": interval,
           "values": approach.values}
    approach.check()
    budget = (sweeps + 8) * interval + 600
    carbon = Carbon(work / "carbon", retention=_retention(interval, budget), udp=approach.carbon_udp)
    live = sampler = stale = None
    ctx = None
    started = False
    try:
        ctx = Context(live=None, carbon=carbon, workdir=work, interval=interval,
                      options={"build_dir": work.parent.parent / "build"})
        conf, env = approach.opensm_config(ctx)
        say(f"{size.label} {approach.name}: OpenSM up")
        live = ctx.live = approach.make_live(ctx, size, seed=seed, load=load, opensm_config=conf, opensm_env=env)
        row["opensm_up_s"] = round(live.up_s, 3)
        f = live.fabric
        approach.start(ctx)
        started = True
        expected = np.asarray(approach.expected_ports(ctx))
        row["ports_expected"] = int(expected.size)
        row["fabric_ports"] = int(live.cabled.size)
        sink = approach.sink(ctx)
        sm_pid = live.opensm.proc.pid
        sampler = Sampler(lambda: approach.cpu(ctx), lambda: {"opensm": fd_count(sm_pid)}).start()

        def n_sweeps() -> int:
            return len(read_stats(ctx.stats_path)[0])

        # 1. warm-up
        say(f"{size.label} {approach.name}: warm-up")
        if not wait_until(lambda: n_sweeps() >= 1, 4 * interval + 120, 0.2):
            row["error"] = "no complete sweep during warm-up"
            return row
        warm = n_sweeps()
        # 2. measure
        say(f"{size.label} {approach.name}: {sweeps} sweeps")
        sample = expected[np.linspace(0, expected.size - 1, min(8, expected.size)).astype(int)]
        stale = _Staleness(sink, metric_ports(f, PREFIX, "port_xmit_data", sample, approach.guid_style))
        t_start, frames0, udp0 = time.time(), live.frames(), udp_rcvbuf_errors()
        perf0 = live.server.dispatcher.by_class.get(0x04, 0)
        got = wait_until(lambda: n_sweeps() >= warm + sweeps, sweeps * interval * 3 + 120, 0.2)
        t_end, frames1, udp1 = time.time(), live.frames(), udp_rcvbuf_errors()
        if approach.carbon_udp and udp0 is not None and udp1 is not None:
            row["udp_rcvbuf_errors"] = udp1 - udp0     # machine-wide: datagrams carbon never saw
        perf1 = live.server.dispatcher.by_class.get(0x04, 0)
        staleness = stale.stop()
        stale = None
        all_sweeps = read_stats(ctx.stats_path)[0]
        measured = all_sweeps[warm:warm + sweeps]
        row["sweeps_measured"] = len(measured)
        row["sweeps_missing"] = 0 if got else sweeps - len(measured)
        n = max(len(measured), 1)
        dur = [s.get("duration_s", s["t1"] - s["t0"]) for s in measured]
        row.update({
            "sweep_s_median": _pct(dur, 50), "sweep_s_p95": _pct(dur, 95),
            "cpu_s_per_sweep": sampler.cpu_between(t_start, t_end) / n,
            "cpu_ms_per_port_sweep": 1e3 * sampler.cpu_between(t_start, t_end) / n / max(expected.size, 1),
            "perf_mads_per_sweep": (perf1 - perf0) / n,
            "all_mads_per_sweep": (frames1 - frames0) / n,
            "points_per_s": sum(s.get("points", 0) for s in measured) / max(t_end - t_start, 1e-9),
            "points_per_sweep": sum(s.get("points", 0) for s in measured) / n,
            "reported_ports_per_sweep": sum(s.get("ports", 0) for s in measured) / n,
            "dropped": sum(s.get("dropped", 0) for s in measured),
            "timeouts": sum(s.get("timeouts", 0) for s in measured),
            "staleness_s_median": _pct(staleness, 50), "staleness_s_max": max(staleness) if staleness else None,
        })
        # 3. event latency
        say(f"{size.label} {approach.name}: link down")
        row.update(_event_latency(live, sink, approach, interval, max(dur, default=0.0)))
        # 4. freeze
        say(f"{size.label} {approach.name}: freeze, one more sweep")
        t_freeze = time.time()
        at_freeze = live.freeze()
        if not wait_until(lambda: any(s["t0"] > t_freeze for s in read_stats(ctx.stats_path)[0]),
                          interval * 3 + 120, 0.2):
            row["error"] = "no sweep after the freeze"
        # 5. wait until the monitoring system holds that sweep, then read back and compare
        row.update(_final_sweep(sink, live, approach, ctx, t_freeze, catch_up=120 + 5 * interval))
        _settle(sink, live, expected, approach, t_freeze, timeout=60 + 2 * interval)
        # by now the monitoring system has long taken in the measured sweeps
        row["completeness"] = _completeness(sink, f, expected, measured, approach)
        row.update(_accuracy(sink, live, expected, approach, at_freeze))
        fds = sampler.fd_series("opensm")
        if fds:
            row.update({"opensm_fds_start": fds[0][1], "opensm_fds_end": fds[-1][1],
                        "opensm_fds_max": max(v for _t, v in fds)})
        row["carbon_series"] = len(carbon.series())
        row["carbon_disk_mb"] = round(carbon.disk_bytes() / 1e6, 1)
        return row
    finally:
        if stale is not None:
            stale.stop()
        if started:
            try:
                approach.stop(ctx)
                row.update(approach.extra(ctx))
            except Exception as exc:          # noqa: BLE001 - a result, not a crash of the suite
                row.setdefault("error", f"stop failed: {exc}")
        if sampler is not None:
            sampler.stop()
        if ctx is not None:
            _sweeps, final = read_stats(ctx.stats_path)
            if final:
                row["final"] = {k: v for k, v in final.items() if k != "final"}
        if live is not None:
            live.close()
        if ctx is not None and ctx.live is not None:
            approach.close_live(ctx)
        carbon.stop()
        shutil.rmtree(carbon.dir / "storage", ignore_errors=True)


def _completeness(carbon, f, expected, measured, approach) -> list[float]:
    """Per measured sweep: the share of expected ports with a ``port_xmit_data`` point in carbon
    stamped inside the sweep (1 s margin each side)."""
    names = metric_ports(f, PREFIX, "port_xmit_data", expected, approach.guid_style)
    if not measured:
        return []
    since = math.floor(min(min(s["t0"], s.get("stamp", s["t0"])) for s in measured)) - 2
    pts = carbon.points(names, since=since)
    stamps = [np.fromiter(pts[m].keys(), dtype=np.int64) if pts.get(m) else np.empty(0, np.int64) for m in names]
    out = []
    for s in measured:
        lo, hi = math.floor(min(s["t0"], s.get("stamp", s["t0"]))) - 1, math.ceil(s["t1"]) + 1
        seen = sum(bool(((st >= lo) & (st <= hi)).any()) for st in stamps)
        out.append(round(seen / max(len(names), 1), 6))
    return out


def _final_sweep(sink, live, approach, ctx, t_freeze: float, catch_up: float) -> dict:
    """Share of the ports the approach must report after the freeze that reached the monitoring
    system, waiting up to ``catch_up`` s for it to take in the whole sweep (its ingest lag)."""
    after = [s for s in read_stats(ctx.stats_path)[0] if s["t0"] > t_freeze or s.get("stamp", 0) > t_freeze]
    if not after:
        return {"final_sweep_complete": None}
    s = after[0]
    want = approach.expected_final(ctx, live.truth())
    if len(want) == 0:
        return {"final_sweep_complete": 1.0, "final_sweep_expected": 0}
    f = live.fabric
    lo, hi = math.floor(min(s["t0"], s.get("stamp", s["t0"]))) - 1, math.ceil(s["t1"]) + 1
    names = {c: metric_ports(f, PREFIX, c, want, approach.guid_style)
             for c in ("port_xmit_data", "port_xmit_wait", "symbol_error", "link_downed")}
    seen = np.zeros(len(want), dtype=bool)
    deadline = time.time() + catch_up
    last_gain = time.time()
    while True:
        before = int(seen.sum())
        for c, ns in names.items():
            todo = np.flatnonzero(~seen)
            if not todo.size:
                break
            pts = sink.points([ns[i] for i in todo], since=lo)
            seen[todo] |= np.array([any(lo <= t <= hi for t in pts.get(ns[i], {})) for i in todo])
        now = time.time()
        if seen.sum() > before:
            last_gain = now
        # done: all there, or nothing new for 15 s (lost, not late), or out of time
        if seen.all() or now - last_gain > 15 or now > deadline:
            break
        time.sleep(1.0)
    return {"final_sweep_complete": round(float(seen.mean()), 6), "final_sweep_expected": int(len(want)),
            "ingest_lag_s": round(max(last_gain - s["t1"], 0.0), 2)}


def _settle(sink, live, expected, approach, since: float, timeout: float) -> None:
    """Wait until the points of the compared counters stop arriving (a sweep's lines reach carbon
    counter by counter, so one counter can be in while another is still on its way)."""
    f = live.fabric
    names = [m for c in ACCURACY_COUNTERS for m in metric_ports(f, PREFIX, c, expected, approach.guid_style)]
    deadline = time.time() + timeout
    last = -1
    while time.time() < deadline:
        n = sum(len(p) for p in sink.points(names, since=since - 1).values())
        if n == last:
            return
        last = n
        time.sleep(2.0)


def _latest(points: dict, values: str) -> float | None:
    if not points:
        return None
    return float(sum(points.values())) if values == "delta" else float(points[max(points)])


def _event_latency(live, carbon, approach, interval: float, sweep_s: float) -> dict:
    f = live.fabric
    ca = int(live.ca_ports[0])
    peer = int(f.peer_of_port[ca])
    names = metric_ports(f, PREFIX, "link_downed", [ca, peer], approach.guid_style)
    with live.sim.lock:
        sw_lid = int(live.sim.state.lid[peer])
    trap_names = [f"{PREFIX}.traps.trap{n}.lid{sw_lid}" for n in (128, 129, 130, 131)]
    base = {m: _latest(p, approach.values) or 0.0 for m, p in carbon.points(names).items()}
    t_fault = time.time()
    live.sim.inject("link_down", live.fault_link())
    counter_at = trap_at = None
    deadline = t_fault + 3 * interval + sweep_s + 5
    want_counter = approach.link_downed
    while time.time() < deadline and ((want_counter and counter_at is None) or (approach.traps and trap_at is None)):
        now = time.time()
        if want_counter and counter_at is None:
            pts = carbon.points(names, since=t_fault - 1)
            if approach.values == "delta":
                hit = any(v > 0 for p in pts.values() for v in p.values())
            else:
                hit = any((_latest(p, "cumulative") or 0.0) > base[m] for m, p in pts.items())
            if hit:
                counter_at = now
        if approach.traps and trap_at is None:
            if any(carbon.points(trap_names, since=t_fault - 1).values()):
                trap_at = now
        time.sleep(0.1)
    live.sim.inject("link_up", live.fault_link())
    wait_until(lambda: _port_active(live, ca), 60, 0.2)
    return {"event_latency_counter_s": None if counter_at is None else round(counter_at - t_fault, 3),
            "event_latency_trap_s": None if trap_at is None else round(trap_at - t_fault, 3)}


def _port_active(live, port: int) -> bool:
    with live.sim.lock:
        return int(live.sim.state.port_state[port]) == 4


def _accuracy(carbon, live, expected, approach, at_freeze) -> dict:
    """Relative error of the delivered values against the engine's counters (resets undone).

    After the freeze only management traffic (the MADs of the SM and of the
    approach itself) still counts, so a value read in the sweep after the freeze
    is exact when it lies between the counters at the freeze and those now; the
    error is its distance from that range, relative to the counter.
    """
    f = live.fabric
    truth = live.truth()
    out = {}
    worst, errs, lost = 0.0, [], 0
    for c in ACCURACY_COUNTERS:
        names = metric_ports(f, PREFIX, c, expected, approach.guid_style)
        pts = carbon.points(names)
        t = truth[COUNTER_ROW[c], expected].astype(np.float64)
        t0 = at_freeze[COUNTER_ROW[c], expected].astype(np.float64)
        got = np.array([(_latest(pts.get(m), approach.values) if pts.get(m) else np.nan) for m in names])
        have = ~np.isnan(got)
        if c in ("port_xmit_data", "port_rcv_data"):
            off = np.maximum(np.maximum(t0[have] - got[have], got[have] - t[have]), 0.0)
            rel = off / np.maximum(t[have], 1.0)
            errs.extend(rel.tolist())
            lost += int((rel > 1e-3).sum())
        out[f"delivered_{c}"] = round(float(have.mean()), 6) if have.size else 0.0
        if c == "link_downed":
            out["link_downed_exact"] = round(float((got[have] == t[have]).mean()), 6) if have.any() else None
    if errs:
        worst = max(errs)
        out["data_rel_err_median"] = float(np.median(errs))
        out["data_rel_err_max"] = worst
        out["data_series_off_by_more_than_0.1pct"] = lost
    return out


def run_suite(sizes, approaches, out, *, interval: float = 10.0, sweeps: int = 3, seed: int = 7,
              load: float = 0.5, progress=None) -> list[dict]:
    """Every approach at every size, one after another; returns the rows (see :func:`run_one`)."""
    out = Path(out)
    rows = []
    total = len(sizes) * len(approaches)
    k = 0
    for size in sizes:
        for ap in approaches:
            k += 1
            say = (lambda s, k=k: progress(k, total, s)) if progress else None
            t = time.monotonic()
            try:
                row = run_one(ap, size, out / "work" / str(size.cas) / ap.name, interval=interval,
                              sweeps=sweeps, seed=seed, load=load, say=say)
            except Exception as exc:
                from ..errors import BenchError
                if isinstance(exc, BenchError) and k == 1:
                    raise
                row = {"approach": ap.name, "size": size.cas, "fabric": size.label,
                       "error": f"{type(exc).__name__}: {exc}"}
            row["wall_s"] = round(time.monotonic() - t, 1)
            rows.append(row)
    return rows
