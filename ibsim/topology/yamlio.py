"""Read and write topologies as YAML (ibsim's own, human-editable format).

Schema (version 1)::

    format: ibsim-topology        # optional, checked when present
    version: 1                    # optional, checked when present
    name: cluster-a               # optional (default: the file name)
    nodes:                        # required, one mapping per node
      - {guid: "0x0002c90302000000", kind: switch, nports: 36, desc: leaf01}
      - guid: "0x0002c90301000000"
        kind: ca                  # switch | ca | router
        nports: 2
        desc: node001 HCA-1       # optional (default "<kind>-<guid>")
        vendid: 0x2c9             # optional: 24 bits (default 0x2c9)
        devid: 0x1017             # optional: 16 bits (default 0xcb20 switch, 0x1021 CA)
        sysimgguid: "0x..."       # optional (default: the node GUID)
        port_guids: {1: "0x.."}   # optional, CA/router ports (default node GUID + port)
        lids: {1: 17}             # optional preset LIDs, port -> LID (switch: port 0)
        lmc: 0                    # optional
        enhanced_port0: false     # optional, switches only
    links:                        # optional, one list per cable
      - ["0x0002c90302000000:1", "0x0002c90301000000:1"]          # default 4xEDR
      - ["0x0002c90302000000:2", "0x0002c90301000008:1", 4xDDR]

GUIDs are hex strings (``"0x..."``; YAML integers are accepted too). A link
end is ``"<node GUID>:<port>"``. Validation is strict: unknown keys, wrong
types and out-of-range values raise :class:`~ibsim.errors.FileFormatError`
naming the file, the line and the key path (``nodes[3].nports``).

The writer emits one flow mapping per node and one flow list per link, so
large fabrics stay compact and diffable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from ..errors import FileFormatError, TopologyError, suggest
from ..linkrate import DEFAULT_SPEED, DEFAULT_WIDTH, parse_rate_label
from .graph import NODE_KINDS, Topology

__all__ = ["parse_yaml_topology", "read_yaml_topology", "format_yaml_topology",
           "write_yaml_topology", "YAML_FORMAT", "YAML_VERSION"]

YAML_FORMAT = "ibsim-topology"
YAML_VERSION = 1

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TOP_KEYS = ("format", "version", "name", "nodes", "links")
_NODE_KEYS = ("guid", "kind", "nports", "desc", "vendid", "devid", "sysimgguid",
              "port_guids", "lids", "lmc", "enhanced_port0")
_REQUIRED = ("guid", "kind", "nports")


class _Invalid(Exception):
    def __init__(self, path: tuple, message: str):
        self.path = path
        self.message = message


def _path_str(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _line_of(text: str, path: tuple) -> int | None:
    """1-based line of the YAML node at ``path`` (or of its closest parent)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(key):
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _int(value, path: tuple, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise _Invalid(path, f"expected {what}, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            raise _Invalid(path, f"expected {what}, got {value!r}") from None
    if not isinstance(value, int):
        raise _Invalid(path, f"expected {what}, got {value!r}")
    if not lo <= value <= hi:
        shown = f"{value:#x}" if hi >= 2**16 - 1 else str(value)
        raise _Invalid(path, f"{shown} is out of range: expected {what}")
    return value


def _guid(value, path: tuple) -> int:
    return _int(value, path, 'a GUID such as "0x0002c90300001234" (1..2^64-1)', 1, 2**64 - 1)


def _port_map(value, path: tuple, what: str, conv) -> dict[int, int]:
    if not isinstance(value, dict):
        raise _Invalid(path, f"expected a mapping of port number to {what}, got {value!r}")
    return {_int(k, path + (k,), "a port number 0..254", 0, 254): conv(v, path + (k,))
            for k, v in value.items()}


def _end(value, path: tuple, topo: Topology) -> tuple[int, int]:
    if not isinstance(value, str) or ":" not in value:
        raise _Invalid(path, f'expected a link end "<node GUID>:<port>", got {value!r}')
    g, _, p = value.rpartition(":")
    guid = _guid(g, path)
    port = _int(p, path, "a port number 1..254", 1, 254)
    if guid not in topo.graph:
        raise _Invalid(path, f"link end {value!r}: no node with GUID {guid:#x} in nodes")
    return guid, port


def _build(data, source: str, name: str | None) -> Topology:
    if not isinstance(data, dict):
        raise _Invalid((), "expected a mapping with 'nodes' and 'links' at the top level")
    for k in data:
        if k not in _TOP_KEYS:
            hint = suggest(str(k), _TOP_KEYS)
            raise _Invalid((k,), f"unknown key; expected one of {', '.join(_TOP_KEYS)}"
                           + (f" (did you mean {hint!r}?)" if hint else ""))
    if "format" in data and data["format"] != YAML_FORMAT:
        raise _Invalid(("format",), f"expected {YAML_FORMAT!r}, got {data['format']!r}")
    if "version" in data and data["version"] != YAML_VERSION:
        raise _Invalid(("version",), f"unsupported version {data['version']!r}; "
                                     f"this ibsim reads version {YAML_VERSION}")
    topo_name = data.get("name", name if name is not None else source)
    if not isinstance(topo_name, str):
        raise _Invalid(("name",), f"expected a string, got {topo_name!r}")
    topo = Topology(topo_name)
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise _Invalid(("nodes",), "expected a list of nodes")
    for i, n in enumerate(nodes):
        path = ("nodes", i)
        if not isinstance(n, dict):
            raise _Invalid(path, f"expected a mapping with guid, kind, nports; got {n!r}")
        for k in n:
            if k not in _NODE_KEYS:
                hint = suggest(str(k), _NODE_KEYS)
                raise _Invalid(path + (k,), f"unknown node key; expected one of "
                               f"{', '.join(_NODE_KEYS)}" + (f" (did you mean {hint!r}?)" if hint else ""))
        for k in _REQUIRED:
            if k not in n:
                raise _Invalid(path, f"missing required key {k!r}")
        guid = _guid(n["guid"], path + ("guid",))
        kind = n["kind"]
        if kind not in NODE_KINDS:
            raise _Invalid(path + ("kind",), f"expected one of {', '.join(NODE_KINDS)}, got {kind!r}")
        nports = _int(n["nports"], path + ("nports",), "a port count 1..254", 1, 254)
        desc = n.get("desc")
        if desc is not None and not isinstance(desc, str):
            desc = str(desc)
        kw: dict = {}
        if "vendid" in n:
            kw["vendid"] = _int(n["vendid"], path + ("vendid",), "a 24-bit vendor ID", 0, 2**24 - 1)
        if "devid" in n:
            kw["devid"] = _int(n["devid"], path + ("devid",), "a 16-bit device ID", 0, 2**16 - 1)
        if "sysimgguid" in n:
            kw["sysimgguid"] = _guid(n["sysimgguid"], path + ("sysimgguid",))
        lmc = _int(n.get("lmc", 0), path + ("lmc",), "an LMC 0..7", 0, 7)
        lids = {}
        if "lids" in n:
            lids = _port_map(n["lids"], path + ("lids",), "a LID",
                             lambda v, p: _int(v, p, "a unicast LID 1..49151", 1, 0xBFFF))
        try:
            if kind == "switch":
                if "port_guids" in n:
                    raise _Invalid(path + ("port_guids",), "switch ports all use the node GUID; "
                                   "port_guids is for CAs and routers")
                if set(lids) - {0}:
                    raise _Invalid(path + ("lids",), "a switch has one LID, on port 0")
                esp0 = n.get("enhanced_port0", False)
                if not isinstance(esp0, bool):
                    raise _Invalid(path + ("enhanced_port0",), f"expected true or false, got {esp0!r}")
                topo.add_switch(guid, nports, desc, enhanced_port0=esp0, lid=lids.get(0),
                                lmc=lmc, **kw)
            else:
                if "enhanced_port0" in n:
                    raise _Invalid(path + ("enhanced_port0",), "only switches have an enhanced port 0")
                if 0 in lids:
                    raise _Invalid(path + ("lids",), "CA and router ports are numbered from 1")
                pg = None
                if "port_guids" in n:
                    pg = _port_map(n["port_guids"], path + ("port_guids",), "a GUID", _guid)
                topo.add_ca(guid, nports, desc, port_guids=pg, lids=lids or None, lmc=lmc,
                            kind=kind, **kw)
        except TopologyError as exc:
            raise _Invalid(path, str(exc)) from None
    links = data.get("links") or []
    if not isinstance(links, list):
        raise _Invalid(("links",), "expected a list of links")
    for i, ln in enumerate(links):
        path = ("links", i)
        if not isinstance(ln, list) or len(ln) not in (2, 3):
            raise _Invalid(path, f'expected ["<guid>:<port>", "<guid>:<port>"] or with a '
                                 f'rate such as 4xEDR as a third item; got {ln!r}')
        a = _end(ln[0], path + (0,), topo)
        b = _end(ln[1], path + (1,), topo)
        width, speed = DEFAULT_WIDTH, DEFAULT_SPEED
        if len(ln) == 3:
            try:
                width, speed = parse_rate_label(str(ln[2]))
            except TopologyError as exc:
                raise _Invalid(path + (2,), str(exc)) from None
        try:
            topo.add_link(a[0], a[1], b[0], b[1], width, speed)
        except TopologyError as exc:
            raise _Invalid(path, str(exc)) from None
    return topo.validate()


# The writer's layout, one node or link per line, read without building YAML
# events (PyYAML needs ~3 s for a 13k-node fabric). Each pattern matches only
# lines whose YAML meaning is exactly what the regex extracts; any other node
# line goes through YAML on its own, and any other layout through YAML whole.
_FAST_NODE = re.compile(
    r'  - \{guid: "(0x[0-9a-fA-F]{1,16})", kind: (switch|ca|router), nports: ([1-9][0-9]{0,2}), '
    r'desc: "([^"\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]*)", '
    r'vendid: 0x([0-9a-fA-F]{1,6}), devid: 0x([0-9a-fA-F]{1,4})\}$')
_FAST_LINK = re.compile(r'  - \["([^"\\:]+:[0-9]{1,3})", "([^"\\:]+:[0-9]{1,3})", '
                        r'([0-9]{1,2}x[A-Z0-9]{3,5})\]$')


def _fast_load(text: str):
    """The document as plain data, or None when it is not in the writer's layout."""
    lines = text.split("\n")
    try:
        i_nodes = lines.index("nodes:")
    except ValueError:
        return None
    i_links = None
    for j in range(i_nodes + 1, len(lines)):
        if lines[j] in ("links:", "links: []"):
            i_links = j
            break
    if i_links is None:
        return None
    end = len(lines)
    while end > i_links + 1 and lines[end - 1] == "":
        end -= 1
    node_lines = lines[i_nodes + 1:i_links]
    link_lines = lines[i_links + 1:end]
    if lines[i_links] == "links: []" and link_lines:
        return None
    if not all(ln.startswith("  - {") and ln.endswith("}") for ln in node_lines):
        return None
    links = []
    match = _FAST_LINK.match
    for ln in link_lines:
        m = match(ln)
        if m is None:
            return None
        links.append([m.group(1), m.group(2), m.group(3)])
    try:
        head = yaml.load("\n".join(lines[:i_nodes]), Loader=_Loader)
    except yaml.YAMLError:
        return None
    if head is None:
        head = {}
    if not isinstance(head, dict) or "nodes" in head or "links" in head:
        return None
    nodes = []
    match = _FAST_NODE.match
    for ln in node_lines:
        m = match(ln)
        if m is not None:
            nodes.append({"guid": m.group(1), "kind": m.group(2), "nports": int(m.group(3)),
                          "desc": m.group(4), "vendid": int(m.group(5), 16),
                          "devid": int(m.group(6), 16)})
        else:
            try:
                nodes.append(yaml.load(ln[4:], Loader=_Loader))
            except yaml.YAMLError:
                return None
    return {**head, "nodes": nodes, "links": links}


def parse_yaml_topology(text: str, source: str = "<string>", *, name: str | None = None,
                        fast: bool = True) -> Topology:
    """Parse a YAML topology; see the module docstring for the schema.

    ``fast=False`` skips the line-level reader for the writer's own layout
    (the result is the same, only slower).

    Raises
    ------
    FileFormatError
        Naming the file, the line and the key path.
    """
    data = _fast_load(text) if fast else None
    if data is None:
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise FileFormatError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                                  source=source, line=mark.line + 1 if mark else None) from None
    try:
        return _build(data, source, name)
    except _Invalid as exc:
        key = _path_str(exc.path)
        raise FileFormatError(f"{key}: {exc.message}" if key else exc.message, source=source,
                              line=_line_of(text, exc.path)) from None


def read_yaml_topology(path) -> Topology:
    """Read a YAML topology file (name defaults to the file's stem)."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError(f"topology file {path!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"not UTF-8 text: {exc.reason}", source=path) from None
    except OSError as exc:
        raise TopologyError(f"cannot read topology file {path!r}: {exc.strerror or exc}") from None
    return parse_yaml_topology(text, path, name=Path(path).stem)


def _yaml_safe(c: str) -> bool:
    o = ord(c)
    return (0x20 <= o <= 0x7E or 0xA0 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD
            or 0x10000 <= o <= 0x10FFFF) and c not in '"\\\u2028\u2029'


def _q(text: str) -> str:
    """A YAML double-quoted scalar that reads back as exactly ``text``."""
    if all(_yaml_safe(c) for c in text):
        return f'"{text}"'
    out = []
    for c in text:
        if _yaml_safe(c):
            out.append(c)
        elif c in '"\\':
            out.append("\\" + c)
        elif ord(c) <= 0xFF:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def format_yaml_topology(topo: Topology) -> str:
    """The topology in the YAML schema above."""
    out = [f"# ibsim topology: {topo.summary()['switches']} switches, "
           f"{topo.summary()['cas']} CAs, {topo.graph.number_of_edges()} links\n",
           f"format: {YAML_FORMAT}\nversion: {YAML_VERSION}\nname: {_q(topo.name)}\nnodes:\n"]
    for guid, d in topo.graph.nodes(data=True):
        kind = d["kind"]
        parts = [f'guid: "0x{guid:016x}"', f"kind: {kind}", f"nports: {d['nports']}",
                 f"desc: {_q(d['desc'])}", f"vendid: 0x{d['vendid']:x}", f"devid: 0x{d['devid']:x}"]
        if d["sysimgguid"] != guid:
            parts.append(f'sysimgguid: "0x{d["sysimgguid"]:016x}"')
        pg = d.get("port_guids")
        if pg and any(g != guid + p for p, g in pg.items()):
            parts.append("port_guids: {" + ", ".join(f'{p}: "0x{g:016x}"'
                                                     for p, g in sorted(pg.items())) + "}")
        if d.get("lids"):
            parts.append("lids: {" + ", ".join(f"{p}: {lid}" for p, lid in sorted(d["lids"].items())) + "}")
        if d.get("lmc"):
            parts.append(f"lmc: {d['lmc']}")
        if kind == "switch" and d.get("enhanced_port0"):
            parts.append("enhanced_port0: true")
        out.append("  - {" + ", ".join(parts) + "}\n")
    out.append("links:\n" if topo.graph.number_of_edges() else "links: []\n")
    for _, _, e in topo.graph.edges(data=True):
        (ga, pa), (gb, pb) = e["a"], e["b"]
        out.append(f'  - ["0x{ga:016x}:{pa}", "0x{gb:016x}:{pb}", {e["width"]}{e["speed"]}]\n')
    return "".join(out)


def write_yaml_topology(topo: Topology, path) -> None:
    """Write :func:`format_yaml_topology` output to ``path``."""
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(format_yaml_topology(topo))
    except OSError as exc:
        raise TopologyError(f"cannot write topology file {os.fspath(path)!r}: "
                            f"{exc.strerror or exc}") from None
