"""Frozen specs: the validated pieces of a scenario."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..faults import Fault

__all__ = ["ClockSpec", "TopologySpec", "RoutingSpec", "OutputSpec", "FaultSpec"]


@dataclass(frozen=True)
class ClockSpec:
    """Simulated time.

    Attributes
    ----------
    tick_s : float
        Simulated seconds per tick [s].
    duration_s : float or None
        End of the run in simulated seconds [s] (None: given at run time).
    realtime : float or None
        Wall seconds per simulated second are ``1 / realtime``; None runs as
        fast as possible.
    """

    tick_s: float = 0.1
    duration_s: float | None = None
    realtime: float | None = None


@dataclass(frozen=True)
class TopologySpec:
    """Where the topology comes from: a generator and its parameters, or a file.

    Attributes
    ----------
    generate : str or None
        Name in :data:`ibsim.topology.GENERATORS` (``fat-tree``, ...).
    params : dict
        Generator keyword arguments (checked against its signature).
    file : str or None
        Absolute path of a topology file (ibnetdiscover or YAML).
    """

    generate: str | None = None
    params: dict = field(default_factory=dict)
    file: str | None = None

    def load(self):
        """Build or read the :class:`~ibsim.topology.Topology`."""
        if self.file is not None:
            from ..topology.readwrite import read_topology
            return read_topology(self.file)
        from ..topology import GENERATORS
        return GENERATORS[self.generate](**self.params)

    def describe(self) -> str:
        """``fat-tree(radix=36, levels=2)`` or the file name."""
        if self.file is not None:
            return os.path.basename(self.file)
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.generate}({args})"


@dataclass(frozen=True)
class RoutingSpec:
    """The embedded subnet manager.

    Attributes
    ----------
    engine : str
        Routing engine (``minhop``, ``updn``, ``ftree``).
    roots : tuple of str or None
        Root switches (descriptions or GUIDs) for ``updn``/``ftree``.
    sweep_delay_s : float or str
        Seconds from a trap (a link change at a switch port) to the SM's
        sweep that activates ports and reroutes [s]; ``"auto"``: OpenSM's
        reaction for the fabric's size (:func:`ibsim.engine.sm.reaction_delay`);
        ``"off"``: traps ignored.
    sm_settle_s : float
        With an external SM (``opensm``): quiet time after its last Set before
        the data plane follows its tables [s].
    sweep_interval_s : float or str
        Seconds between periodic sweeps [s] (OpenSM's default 10), or ``"off"``.
    """

    engine: str = "minhop"
    roots: tuple[str, ...] | None = None
    sweep_delay_s: float | str = "auto"
    sm_settle_s: float = 0.5
    sweep_interval_s: float | str = 10.0


@dataclass(frozen=True)
class OutputSpec:
    """Where and how densely a run is recorded.

    Attributes
    ----------
    dir : str
        Parent of the run directories (relative to the current directory).
    every_s : float
        Wished sampling interval of the time series [s]; doubled each time
        the series fills ``max_rows``.
    max_rows : int
        Memory budget of the time series: samples x cabled ports kept.
    """

    dir: str = "runs"
    every_s: float = 1.0
    max_rows: int = 500_000


@dataclass(frozen=True)
class FaultSpec:
    """A fault plus the key path of its target (for build-time errors)."""

    fault: Fault
    path: tuple = ()

