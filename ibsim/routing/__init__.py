"""Routing: fills linear forwarding tables (LFTs); engines named as in OpenSM.

graph    SwitchGraph (switch-level adjacency, destinations) and shared kernels
minhop   route_minhop: min hops, least-loaded port per destination (OpenSM default)
updn     route_updn: up*/down* from given or detected roots, deadlock free
ftree    route_ftree: fat-tree D-mod-K, contention free for shifts; RoutingError otherwise
lftwalk  walk: the vectorised LFT walker (route checks and the engine's paths)
metrics  route_metrics: reachability, hops, link loads
dump     write_lft_dump / read_lft_dump / lft_from_dump: OpenSM's opensm-lfts.dump

Engines compute; they never mutate the fabric (the engine layer installs the
result into its ``FabricState.lft``).

Examples
--------
>>> from ibsim.fabric import compile_fabric
>>> from ibsim.topology import fat_tree
>>> fab = compile_fabric(fat_tree(4, 2))
>>> lft = compute_lfts(fab, "ftree")
>>> m = route_metrics(fab, lft)
>>> m["unreachable"], m["loops"], m["max_hops"]
(0, 0, 4)
"""

from __future__ import annotations

import numpy as np

from ..errors import RoutingError, lookup
from .dump import format_lft_dump, lft_from_dump, read_lft_dump, write_lft_dump
from .ftree import route_ftree
from .graph import SwitchGraph
from .lftwalk import Walk, walk
from .metrics import route_metrics
from .minhop import route_minhop
from .updn import UpDownOrder, route_updn, updn_order

__all__ = ["ENGINES", "compute_lfts", "route_metrics", "walk", "Walk", "write_lft_dump",
           "format_lft_dump", "read_lft_dump", "lft_from_dump", "updn_order", "UpDownOrder",
           "route_minhop", "route_updn", "route_ftree", "SwitchGraph"]

#: routing engine name (as in OpenSM's ``-R``) -> ``fn(switch_graph, roots) -> lft``
ENGINES = {
    "minhop": route_minhop,
    "updn": route_updn,
    "ftree": route_ftree,
}

#: engines that take ``roots=``
_TAKES_ROOTS = {"updn", "ftree"}


def compute_lfts(fabric, engine: str = "minhop", *, up: np.ndarray | None = None,
                 lid: np.ndarray | None = None, lft_size: int | None = None, roots=None) -> np.ndarray:
    """Compute every switch's LFT with a routing engine.

    Parameters
    ----------
    fabric : FabricIndex
        The compiled fabric (read only).
    engine : str
        ``"minhop"``, ``"updn"`` or ``"ftree"`` (see :data:`ENGINES`).
    up : ndarray of bool, (n_ports,), optional
        Ports whose links may be used; a link needs both ends up. Default:
        every cabled link (the fabric as compiled).
    lid : ndarray of uint16, (n_ports,), optional
        Port LIDs (default: ``fabric.default_lid``); a simulation passes its
        live ``FabricState.lid``.
    lft_size : int, optional
        LFT entries per switch (default: the LIDs' whole 64-entry blocks).
    roots : iterable of int, optional
        Root switch node GUIDs (``updn``; ``ftree`` checks them against its
        top level).

    Returns
    -------
    ndarray of uint8, (n_switches, lft_size)
        A new array: entry ``[s, lid]`` is the output port of switch row
        ``s`` (``fabric.switch_of_node[node]``) for that LID, 255 = no
        route, 0 at the switch's own LID.

    Raises
    ------
    UnknownNameError
        For an unknown engine name (lists the choices).
    RoutingError
        When the engine cannot route this fabric, or ``roots`` are given to
        an engine that takes none.
    """
    fn = lookup(ENGINES, engine, "routing engine")
    if roots is not None and engine not in _TAKES_ROOTS:
        raise RoutingError(f"routing engine {engine!r} takes no roots; "
                           f"roots= applies to {', '.join(sorted(_TAKES_ROOTS))}")
    return fn(SwitchGraph(fabric, up, lid=lid, lft_size=lft_size), roots)
