"""ibsim: a numpy-vectorised InfiniBand fabric simulator with metric exporters.

Map of the package (innermost first):

errors     IbsimError family and lookup() for registries
linkrate   IB widths, speeds and data rates
topology   Topology (networkx): generators, ibnetdiscover/net/YAML read and write
fabric     compile_fabric -> Fabric: frozen port index, FabricState, counter schema
routing    ENGINES minhop/updn/ftree -> LFTs; route metrics; opensm-lfts.dump
cli        python -m ibsim (the only module that prints or exits)
"""

from .errors import IbsimError, RoutingError, ScenarioError, TopologyError
from .fabric import COUNTERS, Fabric, compile_fabric
from .topology import GENERATORS, Topology, fat_tree

__version__ = "0.1.0"

__all__ = ["IbsimError", "ScenarioError", "TopologyError", "RoutingError", "Topology", "GENERATORS",
           "fat_tree", "Fabric", "compile_fabric", "COUNTERS", "__version__"]
