"""Topology: what is connected (networkx MultiGraph; no numpy state).

graph       Topology, Link: nodes keyed by GUID, cables between (GUID, port) ends
generators  fat_tree, xgft, leaf_spine, dragonfly, torus, single_switch; GENERATORS
readwrite   read_topology/write_topology: the format follows the file suffix
ibnetdiscover  ibnetdiscover output and linux-rdma ibsim net files (parser: ibnd_parser)
yamlio      ibsim's YAML topology schema
devices     DEVICES: device ids -> generation (fastest speed, MTU); GENERATED devids by speed
"""

from .generators import GENERATORS, dragonfly, fat_tree, leaf_spine, single_switch, torus, xgft
from .graph import Link, Topology
from .readwrite import (format_ibnetdiscover, parse_ibnetdiscover, read_ibnetdiscover,
                        read_topology, read_yaml_topology, write_ibnetdiscover, write_topology,
                        write_yaml_topology)

__all__ = ["Topology", "Link", "GENERATORS", "fat_tree", "single_switch", "xgft", "leaf_spine",
           "dragonfly", "torus", "read_topology", "write_topology", "parse_ibnetdiscover",
           "read_ibnetdiscover", "format_ibnetdiscover", "write_ibnetdiscover",
           "read_yaml_topology", "write_yaml_topology"]
