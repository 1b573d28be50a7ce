"""Topology: what is connected (networkx MultiGraph; no numpy state).

graph       Topology, Link: nodes keyed by GUID, cables between (GUID, port) ends
generators  fat_tree, xgft, leaf_spine, dragonfly, torus, single_switch; GENERATORS
readwrite   read/write ibnetdiscover output, ibsim net files and YAML topologies
"""

from .generators import GENERATORS, dragonfly, fat_tree, leaf_spine, single_switch, torus, xgft
from .graph import Link, Topology

__all__ = ["Topology", "Link", "GENERATORS", "fat_tree", "single_switch", "xgft", "leaf_spine",
           "dragonfly", "torus"]
