"""Scenarios: YAML file -> frozen specs -> :class:`Simulation`. The composition root.

A scenario file has these top-level keys (only ``topology`` is required)::

    name: demo                   # run directory prefix (default: the file name)
    description: free text
    seed: 7                      # default: fresh entropy, recorded in the run
    clock: {tick: 100ms, duration: 120s, realtime: false}   # realtime: false or a factor
    topology: {generate: fat-tree, radix: 36, levels: 2}    # or {file: cluster.topo}
    routing: {engine: ftree, roots: [spine01], sweep_delay: 10s}
    mtu: 4096                    # 256 .. 4096 bytes (or "4KiB")
    traffic:
      - {name: cfd, pattern: all_to_all, hosts: 256, load: 0.6, start: 0s, stop: 90s}
      - {name: io, pattern: incast, hosts: 64, targets: 2, rate: 40Gbps}
    faults:
      - {at: 40s, unplug: "node042 HCA-1", for: 10s}
      - {at: 20s, flap: {link: "leaf03:19", period: 2s, count: 5}}
      - {at: 30s, ber: {link: "leaf05:20", rate: 1e-9}}
    output: runs/                # or {dir: runs/, every: 1s, max_rows: 500000}

Rules
-----
* Unknown keys are rejected with the nearest valid key suggested; every
  error names the file, the line and the key path (``traffic[0].load``).
* Quantities take units: durations ``100ms``/``10s``/``2m``, rates
  ``40Gbps``/``5GB/s``, sizes ``4KiB``.
* ``topology.file`` is relative to the scenario file; generator parameters
  are checked against the generator's signature (names and types).
* A fault entry has ``at``, exactly one kind key from :data:`ibsim.faults.FAULTS`
  and optionally ``for``. The kind's value is a target (a node by description
  or GUID, or a link or port by one end, ``"<node>:<port>"``) or a mapping
  with ``node``/``link``/``port`` plus the kind's parameters (``for``,
  ``period``, ``count``, ``rate``, ``down_above``). Targets are checked
  against the fabric when the scenario is built.
* ``output`` is relative to the current directory; runs go to a new
  ``<output>/<name>-<UTC time>/`` (see :mod:`ibsim.run.rundir`); ``every``
  is the wished sampling interval and ``max_rows`` the memory budget of the
  series (samples x cabled ports; see :mod:`ibsim.run.recorder`).

Modules: ``specs`` (the frozen spec dataclasses), ``schema`` (validation of
the YAML tree into specs), ``core`` (:class:`Scenario`, :meth:`Scenario.build`,
:class:`ScenarioSimulation`).
"""

from .core import Scenario, ScenarioSimulation, Simulation, from_scenario, load_scenario
from .schema import MTUS, TOP_KEYS
from .specs import ClockSpec, FaultSpec, OutputSpec, RoutingSpec, TopologySpec

__all__ = ["Scenario", "ClockSpec", "TopologySpec", "RoutingSpec", "OutputSpec", "FaultSpec",
           "Simulation", "ScenarioSimulation", "load_scenario", "from_scenario", "TOP_KEYS", "MTUS"]
