"""Engine: the simulation clock and the only writer of fabric state.

simulation  Simulation: step / run(until), fault actions, sweeps, observers
flows       jobs -> aggregated flows (source switch, destination port); LFT path walking
allocation  max_min_allocate: vectorised weighted max-min fair sharing
snapshot    Event, Snapshot: read-only views for exporters and recorders
table       counters.csv layout
"""

from .allocation import max_min_allocate
from .simulation import Simulation
from .snapshot import Event, Snapshot

__all__ = ["Simulation", "Snapshot", "Event", "max_min_allocate"]
