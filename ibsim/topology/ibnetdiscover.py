"""Read and write ibnetdiscover dumps and linux-rdma ibsim net files.

One reader serves both dialects, because ibsim's net file *is* the
ibnetdiscover format plus a few extensions. The writer produces the
ibnetdiscover format exactly as ``ibnetdiscover`` (infiniband-diags 44)
prints it, which linux-rdma's C ``ibsim`` also serves unchanged.

What the reader takes from where
--------------------------------
Node GUID
    ``switchguid=``/``caguid=``/``hcaguids=``/``rtguid=`` given since the
    previous node of that type (ibnetdiscover writes one before every node;
    ``0x..(..)`` suffixes and the ``+off`` relative form work as in ibsim);
    else a node id of the form ``"S-<16 hex>"``, ``"H-<16 hex>"`` or
    ``"R-<16 hex>"``; else ibsim's counters: CAs from 0x100000 stepping
    nports + 1, switches from 0x200000 stepping 1, routers from 0x300000
    (ibsim itself starts routers at the invalid GUID 0). The counters advance
    for every node, as in ibsim, so plain net files get ibsim's GUIDs.
``vendid=``, ``sysimgguid=``
    the next node only (ibsim semantics); a node without ``vendid=`` gets 0,
    as ibsim serves it. ``devid=`` is sticky, again as in ibsim.
NodeDescription
    the header's ``# "desc"`` (or unquoted text up to ``base port``/``lid``);
    without one, or when it is empty, the node id (as ibsim serves it).
Port GUIDs
    CAs and routers: ``[1](2c903000d8a26)`` on the node's own port line, or
    the ``"H-.."[1](..)`` of the peer's line; default node GUID + port.
LIDs
    switch: ``lid N lmc M`` on the header; CA port: the first ``lid N lmc M``
    of its own port line (``# lid N lmc M "remote desc" lid R 4xEDR``); when a
    node's own line is missing, the ``lid R`` of its peer's line. LID 0 means
    "not assigned" and is not stored.

Link width and speed (a documented choice)
------------------------------------------
Each end contributes what it states, per dimension (width, speed):

1. the ``lid R <W>x<SPEED>`` of its ibnetdiscover comment, read as "this
   port trained at W x SPEED", i.e. it enables that rate and everything below;
2. else ``w=``/``s=``/``e=`` options on the port line (ibsim bitmasks:
   w 1=1x 2=4x 4=8x 8=12x 16=2x; s 1=SDR 2=DDR 4=QDR, 0=QDR; e 1=FDR 2=EDR
   4=HDR 8=NDR 16=XDR);
3. else sticky ``width=``/``speed=``/``extspeed=`` settings, if the file has
   any before the node.

The active rate is the highest width and speed both ends enable, so two
comments that disagree give the lower rate, as link training would (a
``4xDDR`` end against a ``4xEDR`` end is a 4x DDR link). An end that states
nothing is ignored, so a link commented on one end only keeps that end's
rate (ibsim would intersect it with its 4x SDR default). When neither end
states anything the link is ``default_width`` x ``default_speed``, 4x SDR
as in ibsim (pass ``default_speed="EDR"`` for modern hand-written files).
Two stated ends with nothing in common (``w=4`` against ``w=2``) are an
error naming both lines.

Links and records
-----------------
ibnetdiscover lists every link on both ends; a link listed on one end only is
accepted (dumps can be truncated), but two ends that contradict each other are
a :class:`~ibsim.errors.FileFormatError` naming both lines. Port lines may
name nodes whose records come later. A record ends at the next node header,
setting or other non-blank, non-comment line; blank lines and ``#`` lines do
not end it. Remote ports default to 1. Unknown lines are ignored.

Differences from the C ibsim parser, for hand-written files: ibsim swallows
the line that ends a record (so ``vendid=`` written right after a port line,
without a blank line, is lost there; the writer always emits the blank line),
matches keywords by prefix (``Cable...`` is a ``Ca`` header there, ignored
here), and requires keywords in column 0. ``include "file"`` is resolved
relative to the including file (up to 9 levels); ``module="p"`` prefixes node
ids as in ibsim. ``do`` commands and ``@[port] "alias"`` port aliases are
rejected with an error.

Writer caveats (C ibsim 0.10): it keeps 63 bytes of a NodeDescription, knows
no NDR/XDR (such links come up 4x SDR there), ignores port GUIDs in parentheses
(it derives CA port GUIDs as node GUID + port), and scans whole port lines for
``w=``/``s=``/``e=``, so a description containing e.g. ``bus=x`` aborts its
parse; it reads no rate or LID from ``Rt`` lines (router links come up 4x SDR,
router LIDs 0). Descriptions containing ``"`` or control characters cannot be
written.

"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import IO

from ..errors import TopologyError
from ..linkrate import parse_speed, parse_width
from .graph import Topology
from .ibnd_parser import (_SBIT, _WBIT, IBSIM_CA_GUID_BASE, IBSIM_ROUTER_GUID_BASE,
                          IBSIM_SWITCH_GUID_BASE, MAX_INCLUDE_DEPTH, _Parser, _read_text)

__all__ = ["parse_ibnetdiscover", "read_ibnetdiscover", "format_ibnetdiscover",
           "write_ibnetdiscover", "IBSIM_CA_GUID_BASE", "IBSIM_SWITCH_GUID_BASE",
           "IBSIM_ROUTER_GUID_BASE", "MAX_INCLUDE_DEPTH"]

_ID_PREFIX = {"switch": "S", "ca": "H", "router": "R"}
_BAD_DESC = re.compile(r'["\x00-\x1f\x7f]')


# ------------------------------------------------------------------ public API
def parse_ibnetdiscover(text: str, source: str = "<string>", *, name: str | None = None,
                        default_width: str = "4x", default_speed: str = "SDR",
                        base_dir: str | None = None) -> Topology:
    """Parse ibnetdiscover output or an ibsim net file.

    Parameters
    ----------
    text : str
        The file contents (LF or CRLF line ends).
    source : str
        File name for error messages.
    name : str, optional
        Topology name (default: ``source``).
    default_width, default_speed : str
        Rate of links for which neither end states anything (ibsim: 4x SDR).
    base_dir : str, optional
        Directory ``include`` lines are relative to (default: that of
        ``source``, or the current directory).

    Raises
    ------
    FileFormatError
        Naming the file, the line and what was expected.
    """
    dw, ds = parse_width(default_width), parse_speed(default_speed)
    parser = _Parser(_WBIT[dw], _SBIT[ds])
    if base_dir is None:
        base_dir = os.path.dirname(source) if source and not source.startswith("<") else "."
    parser.feed(text, source, base_dir or ".", 0)
    return parser.build(name if name is not None else source)


def read_ibnetdiscover(path, **kwargs) -> Topology:
    """Read an ibnetdiscover dump or ibsim net file; see :func:`parse_ibnetdiscover`."""
    path = str(path)
    try:
        text = _read_text(path)
    except FileNotFoundError:
        raise TopologyError(f"topology file {path!r} does not exist") from None
    except OSError as exc:
        raise TopologyError(f"cannot read topology file {path!r}: {exc.strerror or exc}") from None
    kwargs.setdefault("name", Path(path).stem)
    return parse_ibnetdiscover(text, path, **kwargs)


def _check_desc(guid: int, desc: str) -> str:
    if _BAD_DESC.search(desc):
        raise TopologyError(f"node 0x{guid:016x}: description {desc!r} contains a double quote "
                            f"or a control character, which the ibnetdiscover format cannot hold")
    return desc


def format_ibnetdiscover(topo: Topology, *, generated_on: float | str | None = None) -> str:
    """The topology as ``ibnetdiscover`` prints it (and linux-rdma ibsim reads it).

    Parameters
    ----------
    generated_on : float or str, optional
        Timestamp for the header (seconds since the epoch, or ready text);
        default now.
    """
    nodes = topo.graph.nodes
    peer = topo.peer
    link_at = topo.link_at
    ids: dict[int, str] = {}
    descs: dict[int, str] = {}
    for guid, d in nodes(data=True):
        ids[guid] = f'"{_ID_PREFIX[d["kind"]]}-{guid:016x}"'
        descs[guid] = _check_desc(guid, d["desc"])

    def lid_of(guid: int, port: int) -> int:
        d = nodes[guid]
        return d["lids"].get(0 if d["kind"] == "switch" else port, 0) if d["lids"] else 0

    def port_guid(guid: int, port: int) -> int:
        pg = nodes[guid]["port_guids"]
        return pg.get(port, guid + port) if pg else guid

    if isinstance(generated_on, str):
        stamp = generated_on
    else:
        stamp = time.ctime(time.time() if generated_on is None else generated_on)
    order = topo.switches() + topo.nodes("ca") + topo.nodes("router")
    out: list[str] = ["#\n", f"# Topology file: generated on {stamp}\n", "#\n"]
    if order:
        first = order[0]
        fp = first if nodes[first]["kind"] == "switch" else port_guid(first, 1)
        out.append(f"# Initiated from node {first:016x} port {fp:016x}\n")
    for guid in order:
        d = nodes[guid]
        kind, nports = d["kind"], d["nports"]
        out.append(f"\nvendid=0x{d['vendid']:x}\ndevid=0x{d['devid']:x}\n"
                   f"sysimgguid=0x{d['sysimgguid']:x}\n")
        if kind == "switch":
            out.append(f"switchguid=0x{guid:x}({guid:x})\n"
                       f"Switch\t{nports} {ids[guid]}\t\t# \"{descs[guid]}\" "
                       f"{'enhanced' if d['enhanced_port0'] else 'base'} port 0 "
                       f"lid {lid_of(guid, 0)} lmc {d['lmc']}\n")
        else:
            out.append(f"{'ca' if kind == 'ca' else 'rt'}guid=0x{guid:x}\n"
                       f"{'Ca' if kind == 'ca' else 'Rt'}\t{nports} {ids[guid]}\t\t# "
                       f"\"{descs[guid]}\"\n")
        for p in range(1, nports + 1):
            rem = peer(guid, p)
            if rem is None:
                continue
            rg, rp = rem
            rate = link_at(guid, p).rate
            rswitch = nodes[rg]["kind"] == "switch"
            if kind == "switch":
                rguid = "" if rswitch else f"({port_guid(rg, rp):x}) "
                out.append(f"[{p}]\t{ids[rg]}[{rp}]{rguid}\t\t# \"{descs[rg]}\" "
                           f"lid {lid_of(rg, rp)} {rate}\n")
            else:
                rguid = "" if rswitch else f" ({port_guid(rg, rp):x}) "
                out.append(f"[{p}]({port_guid(guid, p):x}) \t{ids[rg]}[{rp}]{rguid}\t\t# "
                           f"lid {lid_of(guid, p)} lmc {d['lmc']} \"{descs[rg]}\" "
                           f"lid {lid_of(rg, rp)} {rate}\n")
    return "".join(out)


def write_ibnetdiscover(topo: Topology, path_or_file: str | os.PathLike | IO[str], **kwargs) -> None:
    """Write :func:`format_ibnetdiscover` output to a path or an open text file."""
    text = format_ibnetdiscover(topo, **kwargs)
    if hasattr(path_or_file, "write"):
        path_or_file.write(text)
        return
    try:
        with open(path_or_file, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except OSError as exc:
        raise TopologyError(f"cannot write topology file {str(path_or_file)!r}: "
                            f"{exc.strerror or exc}") from None
