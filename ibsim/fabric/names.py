"""Node names for people and for metric paths, one rule: a name per node that is
unique, taken from its NodeDescription, with the node GUID where it is not.

Real fabrics give many switches the same description (``SwitchIB Mellanox
Technologies``), and a description may be empty: those nodes are named by
their GUID (``0x0002c90300a1b2c0``), as ibnetdiscover users do. What is
taken from the description depends on the use:

- display names (reports, run summaries): Mellanox switch descriptions
  ``MF0;<hostname>:<model>/<slot>`` give the host name, anything else the
  description with surrounding white space stripped;
- path-safe names (Graphite paths, Prometheus labels): the description with
  every run of characters other than letters, digits, ``_`` and ``-``
  replaced by ``_`` and leading or trailing ``_`` stripped
  (``"node01 HCA-1"`` -> ``node01_HCA-1``).

Names are computed once per fabric and variant and kept while the fabric
lives (in a weak-keyed table, not on the fabric).
"""

from __future__ import annotations

import re
import weakref
from collections import Counter

import numpy as np

__all__ = ["node_names", "path_segment"]

_MLNX_DESC = re.compile(r"^MF0;([^:]+):")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_CACHE: "weakref.WeakKeyDictionary[object, dict[bool, np.ndarray]]" = weakref.WeakKeyDictionary()


def _display(desc: str) -> str:
    m = _MLNX_DESC.match(desc)
    return m.group(1) if m else desc.strip()


def path_segment(text: str) -> str:
    """``text`` as one metric path segment: every run of characters other than letters,
    digits, ``_`` and ``-`` becomes ``_``, leading and trailing ``_`` dropped
    (``"node01 HCA-1"`` -> ``node01_HCA-1``; may be empty)."""
    return _UNSAFE.sub("_", text).strip("_")



def node_names(fabric, *, path_safe: bool = False) -> np.ndarray:
    """A unique name for every node, by node index.

    Parameters
    ----------
    fabric : FabricIndex
        Anything with ``node_desc`` (sequence of str) and ``node_guid``
        (ndarray of uint64), both ``(n_nodes,)``.
    path_safe : bool
        Names for metric paths (letters, digits, ``_`` and ``-`` only)
        rather than for display; see the module docstring.

    Returns
    -------
    ndarray, (n_nodes,)
        Of object (str items) for display names, of str when ``path_safe``.
        The description-derived name where it is non-empty and no other
        node has it, else ``0x`` and the node GUID in 16 hex digits.
    """
    try:
        per = _CACHE.get(fabric)
    except TypeError:                        # neither hashable nor weakly referable: no cache
        per = None
    if per is not None and path_safe in per:
        return per[path_safe]
    clean = path_segment if path_safe else _display
    base = [clean(d) for d in fabric.node_desc]          # once per node, not per port
    counts = Counter(base)
    names = np.array([b if b and counts[b] == 1 else f"0x{int(g):016x}"
                      for b, g in zip(base, fabric.node_guid)], dtype=str if path_safe else object)
    try:
        _CACHE.setdefault(fabric, {})[path_safe] = names
    except TypeError:
        pass
    return names
