"""Fabric: the topology compiled to numbers.

index     FabricIndex, compile_fabric: frozen port index (node_of_port, peer_of_port, default LIDs, ...)
state     FabricState: port/physical states, rates, LIDs, counters, LFTs (live; the simulation writes it)
counters  COUNTERS: the IB counter schema table, legacy saturation, reset masks
devices   DEVICES: what each device generation supports (speed, width, MTU); degraded_ports
names     node_names: unique node names for display or for metric paths
"""

from .counters import COUNTER_NAMES, COUNTER_ROW, COUNTERS, Counter, legacy_view, reset_mask_rows
from .index import NODE_TYPE, SPEED_NAMES, WIDTH_NAMES, FabricIndex, compile_fabric, lft_width, lid_to_port
from .names import node_names
from .state import ACTIVE, ARMED, DISABLED, DOWN, INIT, LINKUP, NO_ROUTE, PHYS, POLLING, STATE, FabricState

__all__ = ["FabricIndex", "FabricState", "compile_fabric", "lid_to_port", "lft_width", "COUNTERS",
           "COUNTER_NAMES", "COUNTER_ROW", "Counter", "legacy_view", "reset_mask_rows", "node_names",
           "NODE_TYPE", "SPEED_NAMES", "WIDTH_NAMES",
           "STATE", "PHYS", "DOWN", "INIT", "ARMED", "ACTIVE", "LINKUP", "POLLING", "DISABLED",
           "NO_ROUTE"]
