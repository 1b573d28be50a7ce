"""OpenSM's ``opensm-lfts.dump`` format: write ours, read a real OpenSM's.

The format is the one ``dump_ucast_lfts()`` in OpenSM's ``osm_dump.c``
prints (3.3.x up to the current master) into ``<dump_files_dir>/
opensm-lfts.dump`` when the log has the ROUTING bit (``-D 0x40``), and that
its ``file`` routing engine (``-R file -U FILE``) reads back::

    Unicast lids [0-13284] of switch Lid 1 guid 0x0002c90302000000 ('pod01-leaf01'):
    0x0001 000 # Switch portguid 0x0002c90302000000: 'pod01-leaf01'
    0x0652 019 # Switch portguid 0x0002c90302000000: 'pod01-leaf01'
    0x0655 001 # Channel Adapter portguid 0x0002c90301000001: 'node00001 HCA-1'
    13284 lids dumped

The header range and the trailer give the switch's LinearFDBTop (the
highest LID) in decimal; only entries naming an existing port are listed
(255, "no route", is left out); LIDs are 4 hex digits, ports 3 decimal
digits. Switches come in node GUID order.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from ..fabric.index import lft_width, lid_to_port

from ..errors import FileFormatError

__all__ = ["write_lft_dump", "format_lft_dump", "read_lft_dump", "lft_from_dump"]

#: ib_get_node_type_str() by IB NodeType
_TYPE_STR = {1: "Channel Adapter", 2: "Switch", 3: "Router"}


def format_lft_dump(fabric, lft: np.ndarray, lid: np.ndarray | None = None) -> Iterator[str]:
    """Yield the dump text switch by switch (see :func:`write_lft_dump`)."""
    f = fabric
    port_lid = f.default_lid if lid is None else np.asarray(lid)
    top = int(port_lid.max()) if port_lid.size else 0
    l2p = lid_to_port(f, port_lid)
    suffix = []
    for lid in range(top + 1):
        p = int(l2p[lid]) if lid < l2p.size else -1
        if p < 0:
            suffix.append("unknown node and type\n")
            continue
        node = int(f.node_of_port[p])
        suffix.append(f"{_TYPE_STR.get(int(f.node_type[node]), 'UNKNOWN')} portguid "
                      f"0x{int(f.port_guid[p]):016x}: '{f.node_desc[node]}'\n")
    lid_txt = [f"0x{lid:04x} " for lid in range(top + 1)]
    port_txt = [f"{p:03d} # " for p in range(256)]
    width = min(top + 1, lft.shape[1])
    for row in range(f.n_switches):
        node = int(f.node_of_switch[row])
        port0 = int(f.first_port[node])
        head = (f"Unicast lids [0-{top}] of switch Lid {int(port_lid[port0])} guid "
                f"0x{int(f.node_guid[node]):016x} ('{f.node_desc[node]}'):\n")
        entries = lft[row, :width]
        valid = np.flatnonzero(entries <= f.node_nports[node])  # OpenSM: port < num_ports
        ports = entries[valid].tolist()
        body = "".join([lid_txt[x] + port_txt[p] + suffix[x] for x, p in zip(valid.tolist(), ports)])
        yield head + body + f"{top} lids dumped\n"


def write_lft_dump(fabric, lft: np.ndarray, file, lid: np.ndarray | None = None) -> None:
    """Write LFTs in OpenSM's ``opensm-lfts.dump`` format.

    Parameters
    ----------
    fabric : FabricIndex
        Supplies GUIDs, node types and descriptions.
    lft : ndarray of uint8, (n_switches, lft_size)
    file : str, os.PathLike or text file object
        Destination; a path is overwritten.
    lid : ndarray of uint16, (n_ports,), optional
        Port LIDs (default: ``fabric.default_lid``).
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "w", encoding="utf-8") as fh:
            fh.writelines(format_lft_dump(fabric, lft, lid))
    else:
        file.writelines(format_lft_dump(fabric, lft, lid))


def _parse(text: str, source: str) -> Iterator[tuple[int, int, int, int | None]]:
    """Yield (switch GUID, LID, port, destination port GUID or None) per entry line."""
    sw = None
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("Unicast lids"):
            i = line.find(" guid 0x")
            if i < 0:
                raise FileFormatError("cannot parse the switch GUID in an 'Unicast lids' header",
                                      source=source, line=no)
            try:
                sw = int(line[i + 8:].split()[0], 16)
            except (ValueError, IndexError):
                raise FileFormatError(f"bad switch GUID in {line!r}", source=source, line=no) from None
        elif line.startswith("0x") and sw is not None:
            parts = line.split()
            try:
                lid = int(parts[0], 16)
                port = int(parts[1], 10)
            except (ValueError, IndexError):
                raise FileFormatError(f"expected '0x<lid> <port>', got {line!r}",
                                      source=source, line=no) from None
            guid = None
            j = line.find(" portguid 0x")
            if j >= 0:
                try:
                    guid = int(line[j + 12:].split(":")[0].split()[0], 16)
                except (ValueError, IndexError):
                    guid = None
            yield sw, lid, port, guid


def read_lft_dump(text: str, *, source: str = "<string>") -> dict[int, dict[int, int]]:
    """Parse an ``opensm-lfts.dump`` text.

    Parameters
    ----------
    text : str
        The file's content.
    source : str
        Name for error messages.

    Returns
    -------
    dict
        ``{switch node GUID: {LID: output port}}`` (LIDs in the dump's own
        numbering).

    Raises
    ------
    FileFormatError
        On a malformed header or entry line.
    """
    out: dict[int, dict[int, int]] = {}
    for sw, lid, port, _ in _parse(text, source):
        out.setdefault(sw, {})[lid] = port
    return out


def lft_from_dump(fabric, text: str, *, source: str = "<string>", lid: np.ndarray | None = None) -> np.ndarray:
    """Translate a dump (e.g. a real OpenSM's) into this fabric's LID numbering.

    Entries are matched through GUIDs: the switch GUID of each header and
    the destination port GUID of each line (a switch's port GUID is its node
    GUID). Entries whose GUIDs are unknown here are skipped.

    ``lid`` gives this fabric's port LIDs (default: ``fabric.default_lid``).

    Returns
    -------
    ndarray of uint8, (n_switches, lft_size of the LIDs)
        255 where the dump gives no entry.
    """
    f = fabric
    port_lid = f.default_lid if lid is None else np.asarray(lid)
    lft = np.full((f.n_switches, lft_width(port_lid)), 255, dtype=np.uint8)
    row_of_guid = {int(g): int(r) for r, g in enumerate(f.node_guid[f.node_of_switch])}
    lid_of_guid: dict[int, int] = {}
    ca = np.flatnonzero(~f.is_switch & (port_lid > 0))
    lid_of_guid.update(zip(f.port_guid[ca].tolist(), port_lid[ca].tolist()))
    sw0 = f.first_port[f.node_of_switch]
    lid_of_guid.update(zip(f.node_guid[f.node_of_switch].tolist(), port_lid[sw0].tolist()))
    for sw, _, port, guid in _parse(text, source):
        row = row_of_guid.get(sw)
        our = lid_of_guid.get(guid) if guid is not None else None
        if row is not None and our:
            lft[row, our] = port
    return lft
