"""Job accounting: what each traffic job sent, received and waited on the fabric.

:class:`JobAccounting` is one part of a
:class:`~ibsim.engine.simulation.Simulation`. When a job starts (the tick it
becomes active) it takes a baseline of its hosts' CA port counters and of the
data all CA ports sent; when it stops it freezes the differences. In between
:meth:`JobAccounting.stats` computes them from the live counters. Counters
are read reset-proof (``counters + cleared``), so a ``perfquery -r`` on a
host changes nothing here. Work happens only at job start and stop and when
stats are asked for (one fancy index over the job's ports each), never per
tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..fabric.counters import COUNTER_ROW

__all__ = ["JobStat", "JobAccounting"]

#: counter rows read per job: PortXmitData, PortRcvData (4-octet words), PortXmitWait (ticks)
_ROWS = np.array([COUNTER_ROW["port_xmit_data"], COUNTER_ROW["port_rcv_data"],
                  COUNTER_ROW["port_xmit_wait"]], dtype=np.intp)
_XMIT = COUNTER_ROW["port_xmit_data"]


@dataclass(frozen=True)
class JobStat:
    """What one run of a traffic job did on the fabric since it started.

    Attributes
    ----------
    name : str
        The job's name (several runs may share it: a requeued Slurm job).
    key : str
        Its key in metrics: the ``job_id`` label, else the name.
    labels : mapping of str to str
        The job's labels (``job_id``, ``job_name``, ``user``, ``nodes``, ...).
    pattern : str
        Traffic pattern.
    hosts : tuple of str
        Node descriptions of its hosts, in host order.
    start_s : float
        Simulated second it became active.
    end_s : float or None
        Simulated second it stopped; None while it runs.
    running : bool
        Whether it runs now.
    xmit_bytes, rcv_bytes : int
        Bytes its hosts' CA ports sent and received since it started
        (``port_xmit_data``/``port_rcv_data`` 4-octet words times 4).
        Port counters: a host shared with another job counts that job's
        traffic too (Slurm jobs on exclusive nodes do not share).
    xmit_wait : int
        XmitWait ticks those ports counted since it started.
    share : float
        ``xmit_bytes`` over the bytes all CA ports sent in the same interval
        (0..1; 0 when nothing was sent).
    """

    name: str
    key: str
    labels: Mapping[str, str] = field(default_factory=dict)
    pattern: str = ""
    hosts: tuple = ()
    start_s: float = 0.0
    end_s: float | None = None
    running: bool = False
    xmit_bytes: int = 0
    rcv_bytes: int = 0
    xmit_wait: int = 0
    share: float = 0.0


class JobAccounting:
    """Baselines and frozen results of every job run that has started.

    Parameters
    ----------
    fabric : FabricIndex
    state : FabricState
        The live state (read only: ``counters`` and ``cleared``).
    """

    def __init__(self, fabric, state):
        self.fabric = fabric
        self.state = state
        self._ca_ports = np.flatnonzero(fabric.node_type[fabric.node_of_port] == 1)
        #: workload index -> {job, ports, start_s, base (3,), ca_base, end_s, final (3,), ca_final}
        self._runs: dict[int, dict] = {}

    def _totals(self, ports: np.ndarray) -> np.ndarray:
        """Reset-proof sums of the three rows over ``ports``, (3,) uint64."""
        st = self.state
        vals = st.counters[_ROWS][:, ports]
        if st.cleared is not None:
            vals = vals + st.cleared[_ROWS][:, ports]
        return vals.sum(axis=1, dtype=np.uint64)

    def _ca_xmit(self) -> int:
        """Reset-proof ``port_xmit_data`` words sent by all CA ports."""
        st = self.state
        total = int(st.counters[_XMIT, self._ca_ports].sum(dtype=np.uint64))
        if st.cleared is not None:
            total += int(st.cleared[_XMIT, self._ca_ports].sum(dtype=np.uint64))
        return total

    def started(self, i: int, job, ports: np.ndarray, t: float) -> None:
        """Job ``i`` became active at ``t`` [s]: take its baseline (a restart starts afresh)."""
        self._runs[i] = {"job": job, "ports": np.asarray(ports), "start_s": float(t),
                         "base": self._totals(ports), "ca_base": self._ca_xmit(), "end_s": None,
                         "final": None, "ca_final": None}

    def stopped(self, i: int, t: float) -> None:
        """Job ``i`` stopped at ``t`` [s]: freeze its values."""
        run = self._runs.get(i)
        if run is None or run["end_s"] is not None:
            return
        run["final"] = self._totals(run["ports"])
        run["ca_final"] = self._ca_xmit()
        run["end_s"] = float(t)
        run["stat"] = None                          # made once, at the first stats() after the stop

    def stats(self, jobs) -> list[JobStat]:
        """A :class:`JobStat` per job run that has started, in the order the jobs were added.

        Parameters
        ----------
        jobs : list of Job
            The workload's jobs (their latest form: a stop time set by ``end_job``).
        """
        ca_now = None
        out = []
        f = self.fabric
        for i in sorted(self._runs):                   # loops over jobs, never ports
            run = self._runs[i]
            if run.get("stat") is not None:             # an ended run's values are frozen
                out.append(run["stat"])
                continue
            job = jobs[i] if i < len(jobs) else run["job"]
            if run["end_s"] is None:
                cur = self._totals(run["ports"])
                if ca_now is None:
                    ca_now = self._ca_xmit()
                ca = ca_now
            else:
                cur, ca = run["final"], run["ca_final"]
            words, rcv, wait = (int(x) for x in cur - run["base"])
            ca_words = ca - run["ca_base"]
            hosts = tuple(f.node_desc[int(n)] for n in f.node_of_port[run["ports"]])
            stat = JobStat(job.name, job.key, dict(job.labels), job.pattern, hosts, run["start_s"],
                           run["end_s"], run["end_s"] is None, 4 * words, 4 * rcv, wait,
                           min(words / ca_words, 1.0) if ca_words > 0 else 0.0)
            if run["end_s"] is not None:
                run["stat"] = stat
            out.append(stat)
        return out
