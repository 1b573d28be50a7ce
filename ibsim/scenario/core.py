"""Scenario: the validated, frozen description, and its build into a Simulation.

"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..engine import Simulation as EngineSimulation
from ..errors import RoutingError, ScenarioError, TopologyError
from ..units import parse_duration
from ..yamldoc import YamlDoc, format_path, load_yaml, read_file
from .cluster import ClusterSpec
from .schema import parse_scenario
from .specs import ClockSpec, OutputSpec, RoutingSpec, TopologySpec

__all__ = ["Scenario", "Simulation", "ScenarioSimulation", "load_scenario", "from_scenario"]


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; :meth:`build` turns it into a :class:`Simulation`.

    Attributes
    ----------
    name : str
        Run directory prefix.
    seed : int or None
        Seed of every random choice (None: drawn and recorded at build).
    clock, topology, routing, output : specs
    mtu : int
        Path MTU [bytes].
    traffic : tuple of Job
    faults : tuple of FaultSpec
    exporters : tuple of ExporterSpec
        Exporters attached by ``python -m ibsim run`` (see :mod:`ibsim.export`).
    cluster : ClusterSpec or None
        Compute hosts as containers (``python -m ibsim cluster up``; see
        :mod:`ibsim.scenario.cluster`).
    mad_server : dict or None
        Options of the MAD server ``python -m ibsim run`` starts (``sockname``,
        ``udp``, ``host``), None for no server.
    description : str
    source : str or None
        The scenario file (absolute), when it came from one.
    data : dict
        The parsed YAML as written (recorded in the run metadata).
    """

    name: str
    topology: TopologySpec
    seed: int | None = None
    clock: ClockSpec = ClockSpec()
    routing: RoutingSpec = RoutingSpec()
    mtu: int = 4096
    traffic: tuple = ()
    faults: tuple = ()
    exporters: tuple = ()
    mad_server: dict | None = None
    output: OutputSpec = OutputSpec()
    cluster: ClusterSpec | None = None
    description: str = ""
    source: str | None = None
    data: dict = field(default_factory=dict, repr=False, compare=False)
    doc: YamlDoc | None = field(default=None, repr=False, compare=False)

    # ---------------------------------------------------------- loading
    @classmethod
    def from_file(cls, path) -> "Scenario":
        """Read and validate a scenario file.

        Raises
        ------
        ScenarioError
            Naming the file, the line and the key path of the problem.
        """
        p = Path(path)
        text = read_file(p, "scenario")
        return cls.from_text(text, source=str(path), name=p.stem, base=p.resolve().parent)

    @classmethod
    def from_text(cls, text: str, *, source: str = "<string>", name: str = "scenario",
                  base=None) -> "Scenario":
        """Validate scenario YAML ``text`` (``base``: directory of relative files)."""
        doc = load_yaml(text, source)
        return cls.from_doc(doc, name=name, base=base)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<dict>", name: str = "scenario",
                  base=None) -> "Scenario":
        """Validate an already parsed scenario (no line numbers in errors)."""
        return cls.from_doc(YamlDoc(data, source, {}), name=name, base=base)

    @classmethod
    def from_doc(cls, doc: YamlDoc, *, name: str = "scenario", base=None) -> "Scenario":
        """Validate a :class:`~ibsim.yamldoc.YamlDoc`."""
        fields = parse_scenario(doc, name=name, base=base)
        source = doc.source
        src = str(Path(source).resolve()) if source and not source.startswith("<") else None
        return cls(**fields, source=src, data=doc.data, doc=doc)

    # --------------------------------------------------------- overrides
    def replace(self, **changes) -> "Scenario":
        """A copy with some fields replaced (see :func:`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def with_overrides(self, *, seed=None, until=None, realtime=..., topology_file=None) -> "Scenario":
        """The command-line overrides: seed, end time, pacing and topology file.

        Parameters
        ----------
        seed : int, optional
        until : float or str, optional
            New end time (``"30s"``).
        realtime : float or None, optional
            Pacing factor; None runs as fast as possible; leave out to keep.
        topology_file : str, optional
            Replace the topology with this file (relative to the current directory).
        """
        s = self
        if seed is not None:
            s = s.replace(seed=int(seed))
        clock = s.clock
        if until is not None:
            clock = dataclasses.replace(clock, duration_s=parse_duration(until))
        if realtime is not ...:
            if realtime is not None and realtime <= 0:
                raise ScenarioError(f"realtime factor must be positive, got {realtime}")
            clock = dataclasses.replace(clock, realtime=realtime)
        s = s.replace(clock=clock)
        if topology_file is not None:
            p = Path(topology_file).expanduser().resolve()
            if not p.is_file():
                raise ScenarioError(f"topology file {str(topology_file)!r} does not exist")
            s = s.replace(topology=TopologySpec(file=str(p)))
        return s

    # ------------------------------------------------------------ build
    def _error(self, path: tuple, message: str) -> ScenarioError:
        if self.doc is not None:
            return self.doc.error(path, message)
        return ScenarioError(message, source=self.source, path=format_path(path) or None)

    def load_topology(self):
        """The topology (generated or read); errors name the scenario's ``topology`` key."""
        spec = self.topology
        path = ("topology", "file") if spec.file else ("topology",)
        try:
            return spec.load()
        except (ScenarioError, TopologyError) as exc:
            if getattr(exc, "source", None) and getattr(exc, "line", None):
                raise                       # a parse error inside the topology file
            msg = getattr(exc, "message", None) or str(exc)
            raise self._error(path, msg) from None
        except OSError as exc:
            raise self._error(path, f"cannot read topology file: {exc}") from None

    def build(self, fabric=None) -> "ScenarioSimulation":
        """Compile the fabric and return a ready :class:`ScenarioSimulation`.

        Parameters
        ----------
        fabric : FabricIndex, optional
            Use this compiled fabric instead of loading the topology.

        Raises
        ------
        ScenarioError
            For a target, host, root or routing engine that does not fit the
            fabric, naming the scenario file, line and key path.
        """
        from ..fabric import compile_fabric
        if fabric is None:
            fabric = compile_fabric(self.load_topology())
        r = self.routing
        options = {}
        if r.roots is not None:
            guids = []
            for i, root in enumerate(r.roots):
                try:
                    guids.append(fabric.topology.find(root))
                except TopologyError as exc:
                    raise self._error(("routing", "roots", i), str(exc)) from None
            options["roots"] = guids
        try:
            sim = ScenarioSimulation(fabric, tick=self.clock.tick_s, seed=self.seed,
                                     routing=r.engine, routing_options=options, mtu=self.mtu,
                                     sweep_delay=r.sweep_delay_s, sweep_interval=r.sweep_interval_s,
                                     sm_settle=r.sm_settle_s)
        except (RoutingError, ScenarioError) as exc:
            msg = getattr(exc, "message", None) or str(exc)
            key = "roots" if r.roots is not None and "root" in msg else "engine"
            raise self._error(("routing", key), msg) from None
        sim.scenario = self
        for i, job in enumerate(self.traffic):
            try:
                sim.add_job(job)
            except ScenarioError as exc:
                raise self._error(("traffic", i, "hosts"), exc.message) from None
        for i, fs in enumerate(self.faults):
            try:
                sim.schedule(fs.fault)
            except ScenarioError as exc:
                raise self._error(fs.path or ("faults", i), exc.message) from None
        return sim


class Simulation(EngineSimulation):
    """:class:`ibsim.engine.Simulation`, plus :meth:`from_scenario` (this is ``ibsim.Simulation``)."""

    @classmethod
    def from_scenario(cls, path, **overrides) -> "ScenarioSimulation":
        """Build the simulation a scenario file describes (see :func:`from_scenario`)."""
        return from_scenario(path, **overrides)


class ScenarioSimulation(Simulation):
    """A :class:`Simulation` built from a scenario; ``run()`` defaults to its clock.

    Attributes
    ----------
    scenario : Scenario
        The scenario it was built from.
    """

    scenario: Scenario

    def run(self, until=None, *, realtime=..., progress=None) -> None:
        """Run until ``until`` (default: the scenario's ``clock.duration``).

        ``realtime`` defaults to the scenario's ``clock.realtime`` (None: as
        fast as possible). See :meth:`Simulation.run`.
        """
        if until is None:
            until = self.scenario.clock.duration_s
            if until is None:
                raise ScenarioError("the scenario has no clock.duration; pass until= (e.g. '30s')")
        if realtime is ...:
            realtime = self.scenario.clock.realtime
        super().run(until, realtime=realtime, progress=progress)


def load_scenario(path) -> Scenario:
    """Read and validate a scenario file (see :class:`Scenario`)."""
    return Scenario.from_file(path)


def from_scenario(path, **overrides) -> ScenarioSimulation:
    """Build the simulation a scenario file describes (also ``ibsim.Simulation.from_scenario``).

    Parameters
    ----------
    path : str or Path
        Scenario YAML file.
    **overrides
        ``seed``, ``until``, ``realtime``, ``topology_file`` (see
        :meth:`Scenario.with_overrides`).

    Examples
    --------
    >>> import ibsim
    >>> sim = ibsim.Simulation.from_scenario("topologies/small.yml")  # doctest: +SKIP
    >>> sim.run(until="5s")                                            # doctest: +SKIP
    """
    scn = Scenario.from_file(path)
    if overrides:
        scn = scn.with_overrides(**overrides)
    return scn.build()

