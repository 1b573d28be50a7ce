"""Fabric: the topology compiled to numbers.

index     Fabric, compile_fabric: frozen port index (node_of_port, peer_of_port, ...)
state     FabricState: port/physical states, rates, LIDs, counters, LFTs (mutable)
counters  COUNTERS: the IB counter schema table, legacy saturation, reset masks
names     node_names: unique node names for display or for metric paths
"""

from .counters import COUNTER_NAMES, COUNTER_ROW, COUNTERS, Counter, legacy_view, reset_mask_rows
from .index import NODE_TYPE, SPEED_NAMES, WIDTH_NAMES, Fabric, compile_fabric
from .names import node_names
from .state import ACTIVE, ARMED, DISABLED, DOWN, INIT, LINKUP, NO_ROUTE, PHYS, POLLING, STATE, FabricState

__all__ = ["Fabric", "FabricState", "compile_fabric", "COUNTERS", "COUNTER_NAMES", "COUNTER_ROW",
           "Counter", "legacy_view", "reset_mask_rows", "node_names", "NODE_TYPE", "SPEED_NAMES",
           "WIDTH_NAMES",
           "STATE", "PHYS", "DOWN", "INIT", "ARMED", "ACTIVE", "LINKUP", "POLLING", "DISABLED",
           "NO_ROUTE"]
