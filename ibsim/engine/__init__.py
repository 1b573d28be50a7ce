"""Engine: the simulation clock and the only writer of fabric state.

simulation  Simulation: clock, lock, inbox, events, observers; composed of the parts below
links       LinkState: fault holds (ops dispatched through OPS), link down/up and training, bit errors
sm          SubnetManager: the embedded SM's sweeps and routing, an external SM's Sets
jobs        Workload: traffic jobs, their hosts and offered load; started and ended at run time too
accounting  JobStat, JobAccounting: per-job bytes, XmitWait and share of the fabric's traffic
rates       RateModel: inputs -> compute (pure, no lock) -> install; the per-tick counter add
flows       jobs -> aggregated flows (source switch, destination port); LFT path walking
allocation  max_min_allocate: vectorised weighted max-min fair sharing
snapshot    Event, Snapshot: read-only views for exporters and recorders
table       counters.csv layout
"""

from .accounting import JobStat
from .allocation import max_min_allocate
from .simulation import Simulation
from .snapshot import Event, Snapshot

__all__ = ["Simulation", "Snapshot", "Event", "JobStat", "max_min_allocate"]
