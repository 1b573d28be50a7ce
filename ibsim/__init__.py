"""ibsim: a numpy-vectorised InfiniBand fabric simulator with metric exporters.

Map of the package (innermost first):

errors     IbsimError family and lookup() for registries
units      durations, rates and sizes with units ("100ms", "40Gbps", "4KiB")
linkrate   IB widths, speeds and data rates
topology   Topology (networkx): generators, ibnetdiscover/net/YAML read and write
fabric     compile_fabric -> FabricIndex (frozen port index); FabricState (live arrays); counter schema
routing    ENGINES minhop/updn/ftree -> LFTs; route metrics; opensm-lfts.dump
traffic    Job and PATTERNS (all_to_all, permutation, incast, ...)
faults     Fault and FAULTS (unplug, flap, ber, ...) expanded into timed actions
engine     Simulation (the clock, the only writer of fabric state), Snapshot, Event
yamldoc    YAML with a key path -> line map, for errors that name file and line
scenario   YAML -> frozen Scenario -> Simulation (the composition root)
export     Exporter protocol, entry-point discovery, attach() with failure isolation and time mapping
hosts      compute hosts as Docker containers: images, per-host sysfs trees, event coupling
mad        MAD server speaking linux-rdma ibsim's protocol (OpenSM, infiniband-diags via libumad2sim)
run        the run directory: Recorder, summary.txt and overview.png, load_run
cluster    Cluster: a scenario's hosts as containers coupled to the live fabric
sweeps     parameter sweeps: a base scenario x axes, one row of metrics per point, on Dask
cli        python -m ibsim (the only package that prints or exits): topo, routes, run, serve
testing    test support (OpenSM/diags runners, a wire-protocol client, oracles); nothing imports it

Notebook use::

    import ibsim
    sim = ibsim.Simulation.from_scenario("topologies/fat-tree.yml")
    sim.run(until="30s")
    sim.counters()                  # pandas DataFrame of every cabled port
    sim.inject("link_down", "leaf03:19", for_="5s")
    run = ibsim.load_run("runs/fat-tree-20250101T000000Z")
    df = ibsim.sweep("topologies/sweep-routing.yml", out="sweeps/routing")   # pandas DataFrame
    df = ibsim.load_sweep("sweeps/routing")
"""

from ._version import __version__  # noqa: E402

from .errors import IbsimError, RoutingError, ScenarioError, TopologyError  # noqa: E402
from .fabric import COUNTERS, FabricIndex, FabricState, compile_fabric  # noqa: E402
from .topology import GENERATORS, Topology, fat_tree  # noqa: E402
from .engine import Event, Snapshot  # noqa: E402
from .scenario import Scenario, Simulation, from_scenario, load_scenario  # noqa: E402
from .run import Recorder, RunResult, load_run  # noqa: E402
from .cluster import Cluster  # noqa: E402

__all__ = ["IbsimError", "ScenarioError", "TopologyError", "RoutingError", "Topology", "GENERATORS",
           "fat_tree", "FabricIndex", "FabricState", "compile_fabric", "COUNTERS", "Simulation", "Snapshot", "Event",
           "Scenario", "load_scenario", "from_scenario", "Recorder", "RunResult", "load_run", "Cluster", "sweep", "load_sweep", "__version__"]


def sweep(path, out=None, **options):
    """Run a sweep file on Dask; return one row per point as a pandas DataFrame.

    See :func:`ibsim.sweeps.sweep` (imported on first use, so ``import ibsim``
    needs neither Dask nor pandas).
    """
    from .sweeps import sweep as _sweep
    return _sweep(path, out, **options)


def load_sweep(path):
    """A sweep's results (``results.parquet`` in its output directory) as a pandas DataFrame.

    See :func:`ibsim.sweeps.load_sweep`.
    """
    from .sweeps import load_sweep as _load
    return _load(path)
