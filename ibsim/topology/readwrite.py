"""Read and write topology files; the format follows the file name suffix.

=====================  ==============================================
``.topo .net .ibnd``   ibnetdiscover output / linux-rdma ibsim net file
                       (:mod:`ibsim.topology.ibnetdiscover`)
``.yml .yaml``         ibsim's YAML schema (:mod:`ibsim.topology.yamlio`)
=====================  ==============================================

Pass ``format="ibnetdiscover"`` or ``format="yaml"`` for other names
(``ibnetdiscover > fabric.txt``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FileFormatError, TopologyError, suggest
from .graph import Topology
from .ibnetdiscover import (format_ibnetdiscover, parse_ibnetdiscover, read_ibnetdiscover,
                            write_ibnetdiscover)
from .yamlio import (format_yaml_topology, parse_yaml_topology, read_yaml_topology,
                     write_yaml_topology)

__all__ = ["read_topology", "write_topology", "topology_format", "SUFFIXES",
           "parse_ibnetdiscover", "read_ibnetdiscover", "format_ibnetdiscover",
           "write_ibnetdiscover", "parse_yaml_topology", "read_yaml_topology",
           "format_yaml_topology", "write_yaml_topology"]

#: file name suffix -> format name
SUFFIXES = {".topo": "ibnetdiscover", ".net": "ibnetdiscover", ".ibnd": "ibnetdiscover",
            ".yml": "yaml", ".yaml": "yaml"}
_FORMATS = ("ibnetdiscover", "yaml")


def _choices() -> str:
    by_fmt: dict[str, list[str]] = {}
    for suf, fmt in SUFFIXES.items():
        by_fmt.setdefault(fmt, []).append(suf)
    return "; ".join(f"{' '.join(sufs)} ({fmt})" for fmt, sufs in by_fmt.items())


def topology_format(path, format: str | None = None) -> str:
    """The format name for ``path``: ``"ibnetdiscover"`` or ``"yaml"``.

    Raises
    ------
    FileFormatError
        For an unknown suffix or format name, listing the choices.
    """
    if format is not None:
        if format not in _FORMATS:
            hint = suggest(format, _FORMATS)
            raise FileFormatError(f"unknown topology format {format!r}; choose one of: "
                                  f"{', '.join(_FORMATS)}" + (f" (did you mean {hint!r}?)" if hint else ""),
                                  source=os.fspath(path))
        return format
    suffix = Path(path).suffix.lower()
    fmt = SUFFIXES.get(suffix)
    if fmt is None:
        what = f"suffix {suffix!r}" if suffix else "no suffix"
        raise FileFormatError(f"unknown topology file type ({what}); name it with one of: "
                              f"{_choices()}, or pass format=", source=os.fspath(path))
    return fmt


def read_topology(path, format: str | None = None) -> Topology:
    """Read a topology file; the format follows the suffix (see module docstring).

    Raises
    ------
    TopologyError
        The file is missing or unreadable (naming it).
    FileFormatError
        Unknown suffix, or a parse error naming file, line and what was expected.
    """
    fmt = topology_format(path, format)
    p = Path(path)
    if not p.exists():
        raise TopologyError(f"topology file {os.fspath(path)!r} does not exist")
    if p.is_dir():
        raise TopologyError(f"topology file {os.fspath(path)!r} is a directory")
    if fmt == "yaml":
        return read_yaml_topology(path)
    return read_ibnetdiscover(path)


def write_topology(topo: Topology, path, format: str | None = None) -> None:
    """Write a topology file; the format follows the suffix (see module docstring)."""
    fmt = topology_format(path, format)
    if fmt == "yaml":
        write_yaml_topology(topo, path)
    else:
        write_ibnetdiscover(topo, path)
