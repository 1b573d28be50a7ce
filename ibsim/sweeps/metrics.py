"""One flat row of metrics from a finished run (computed where the run ran).

Every value is a plain int, float or str, so rows go to Parquet and CSV as
they are. Columns (``<job>`` is each job's name, ``<i>`` each fault's
position in the scenario's ``faults``)::

    sim_s                     simulated seconds
    throughput_gbps           aggregate injected throughput: bytes every CA sent / sim_s [Gb/s]
    throughput_peak_gbps      highest sampled CA injection rate [Gb/s]
    util_max, util_p99,       max, 99th percentile and mean of link utilisation (0..1) over
      util_mean               every cabled port and sampled interval
    xmit_wait                 PortXmitWait summed over every cabled port [ticks of one word]
    xmit_discards             PortXmitDiscards summed (packets dropped at a down link)
    rcv_errors                PortRcvErrors summed (packets dropped for bit errors)
    link_downed               LinkDownedCounter summed
    reroutes                  SM reroutes after the initial one
    events                    events of the run
    fault<i>_at_s             when fault i happened [s]
    fault<i>_recovery_s       fault to the first sample where the CA injection rate is back
                              at ``recovery`` x its level just before the fault [s]; NaN when
                              it never is before the run ends
    job_<job>_bytes           bytes the job's hosts sent while it ran
    job_<job>_xmit_wait       PortXmitWait on the job's hosts' ports while it ran

A host in several running jobs has its bytes and XmitWait split between them
in proportion to what each offers it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["run_metrics", "METRIC_COLUMNS"]

#: columns every successful row has (job and fault columns come on top)
METRIC_COLUMNS = ("sim_s", "throughput_gbps", "throughput_peak_gbps", "util_max", "util_p99", "util_mean", "xmit_wait",
                  "xmit_discards", "rcv_errors", "link_downed", "reroutes", "events")


def _job_offer(sim, data) -> np.ndarray:
    """(n_jobs, n_cabled) bytes/s each job offers each cabled port (0 off its hosts)."""
    f = sim.fabric
    W = np.zeros((len(sim.jobs), len(data.ports)))
    for j, job in enumerate(sim.jobs):
        ports = sim.job_ports(j)
        pos = np.searchsorted(data.ports, ports)
        cap = f.capacity_bytes(f.cable_width[ports], f.cable_speed[ports])
        W[j, pos] = cap * job.load if job.load is not None else float(job.rate)
    return W


def _job_active(sim, t: np.ndarray) -> np.ndarray:
    """(n_intervals, n_jobs): whether each job ran at some time in each interval (t[k], t[k+1]]."""
    a = np.zeros((max(len(t) - 1, 0), len(sim.jobs)), dtype=bool)
    for j, job in enumerate(sim.jobs):
        stop = math.inf if job.stop_s is None else job.stop_s
        a[:, j] = (job.start_s < t[1:]) & (stop > t[:-1])
    return a


def _per_job(sim, data, name: str) -> np.ndarray:
    """Per-job totals of one series counter's increments on the jobs' host ports."""
    if not sim.jobs or len(data.time_s) < 2:
        return np.zeros(len(sim.jobs))
    delta = np.diff(data.counter(name).astype(np.float64), axis=0)       # (n_int, n_cabled)
    W = _job_offer(sim, data)
    A = _job_active(sim, data.time_s).astype(np.float64)
    denom = A @ W                                                        # (n_int, n_cabled)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(denom > 0, delta / denom, 0.0)
    return np.einsum("kj,kh,jh->j", A, share, W)


def _recovery(t: np.ndarray, rate: np.ndarray, at: float, frac: float) -> float:
    """Seconds from ``at`` to the first sample after it where ``rate`` is back at ``frac`` x its level."""
    before = np.flatnonzero(t <= at + 1e-9)
    if before.size == 0:
        return math.nan
    level = rate[before[-1]]
    after = np.flatnonzero(t > at + 1e-9)
    if after.size == 0:
        return math.nan
    ok = after[rate[after] >= frac * level - 1e-9]
    return float(t[ok[0]] - at) if ok.size else math.nan


def run_metrics(sim, data, *, recovery: float = 0.95) -> dict:
    """The metrics row of a finished simulation.

    Parameters
    ----------
    sim : Simulation
        After ``run()``; its scenario's faults give the fault columns.
    data : SeriesData
        The recorder's series (``Recorder.series()``).
    recovery : float
        Fraction of the pre-fault injection rate that counts as recovered.

    Returns
    -------
    dict
        Column -> int, float or str (see the module docstring).
    """
    from ..fabric.counters import COUNTER_ROW
    f = sim.fabric
    snap = sim.snapshot()
    ports = data.ports
    is_ca = ~f.is_switch[ports]

    def total(name, sel=slice(None)):
        return int(snap.counters[COUNTER_ROW[name], ports[sel]].sum(dtype=np.uint64))

    t = data.time_s
    sim_s = float(sim.time_s)
    ca_rate = data.rates_gbps("port_xmit_data")[:, is_ca].sum(axis=1)
    util, _ = data.utilisation("port_xmit_data")
    u = util[1:].ravel() if len(t) > 1 else np.zeros(1)
    row = {
        "sim_s": round(sim_s, 9),
        "throughput_gbps": total("port_xmit_data", is_ca) * 32.0 / sim_s / 1e9 if sim_s > 0 else 0.0,
        "throughput_peak_gbps": float(ca_rate.max()) if ca_rate.size else 0.0,
        "util_max": float(u.max()),
        "util_p99": float(np.percentile(u, 99)),
        "util_mean": float(u.mean()),
        "xmit_wait": total("port_xmit_wait"),
        "xmit_discards": total("port_xmit_discards"),
        "rcv_errors": total("port_rcv_errors"),
        "link_downed": total("link_downed"),
        "reroutes": sum(1 for e in sim.events if e.kind == "reroute"
                        and e.details.get("reason") != "initial"),
        "events": len(sim.events),
    }
    faults = getattr(getattr(sim, "scenario", None), "faults", ())
    for i, fs in enumerate(faults):
        at = float(fs.fault.at_s)
        row[f"fault{i}_at_s"] = at
        row[f"fault{i}_recovery_s"] = _recovery(t, ca_rate, at, recovery)
    nbytes = _per_job(sim, data, "port_xmit_data") * 4.0
    wait = _per_job(sim, data, "port_xmit_wait")
    for j, job in enumerate(sim.jobs):
        row[f"job_{job.name}_bytes"] = float(nbytes[j])
        row[f"job_{job.name}_xmit_wait"] = float(wait[j])
    return row
