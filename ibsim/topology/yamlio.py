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

GUIDs are hex strings (``"0x..."``; YAML integers are accepted too), and so
may vendor and device IDs be; every other integer is a YAML integer (the one
rule of :mod:`ibsim.params`: ``nports: "4"`` is rejected). A link end is
``"<node GUID>:<port>"``. Validation is strict: unknown keys, wrong types and
out-of-range values raise :class:`~ibsim.errors.FileFormatError` naming the
file, the line and the key path (``nodes[3].nports``); the fields are checked
by :func:`ibsim.params.check` and lines come from :mod:`ibsim.yamldoc`.

The writer emits one flow mapping per node and one flow list per link, so
large fabrics stay compact and diffable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from ..errors import FileFormatError, ScenarioError, TopologyError, format_path
from ..linkrate import DEFAULT_SPEED, DEFAULT_WIDTH, parse_rate_label
from ..params import REQUIRED, Param, boolean, check, choice, integer, mapping_of, optional
from ..yamldoc import load_yaml
from .graph import NODE_KINDS, Topology

__all__ = ["parse_yaml_topology", "read_yaml_topology", "format_yaml_topology",
           "write_yaml_topology", "YAML_FORMAT", "YAML_VERSION"]

YAML_FORMAT = "ibsim-topology"
YAML_VERSION = 1

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _guid(v) -> int:
    """Converter: a GUID, hex text ``"0x0002c903..."`` or a YAML integer, 1..2^64-1."""
    try:
        return integer(1, 2**64 - 1, text=True)(v)
    except ScenarioError:
        raise ScenarioError(f'expected a GUID such as "0x0002c90300001234" (1..2^64-1), got {v!r}') from None


def _text(v) -> str:
    if not isinstance(v, str):
        raise ScenarioError(f"expected a string, got {v!r}")
    return v


def _is(expected, message: str):
    def conv(v):
        if v != expected:
            raise ScenarioError(message.format(v=v))
        return v
    return conv


def _list_of(what: str):
    def conv(v):
        if not isinstance(v, list):
            raise ScenarioError(f"expected a list of {what}")
        return v
    return conv


_TOP = {
    "format": Param(None, _is(YAML_FORMAT, f"expected {YAML_FORMAT!r}, got {{v!r}}"), "file format"),
    "version": Param(None, _is(YAML_VERSION, "unsupported version {v!r}; this ibsim reads version "
                               f"{YAML_VERSION}"), "schema version"),
    "name": Param(None, _text, "topology name (default: the file name)"),
    "nodes": Param(REQUIRED, _list_of("nodes"), "one mapping per node"),
    "links": Param(None, optional(_list_of("links")), "one list per cable"),
}
_PORT = integer(0, 254)
#: node keys; integers follow the one rule of ibsim.params (hex text only for identifiers)
_NODE = {
    "guid": Param(REQUIRED, _guid, "node GUID"),
    "kind": Param(REQUIRED, choice(*NODE_KINDS), "switch, ca or router"),
    "nports": Param(REQUIRED, integer(1, 254), "number of ports", unit="ports"),
    "desc": Param(None, optional(str), "NodeDescription"),
    "vendid": Param(None, integer(0, 2**24 - 1, text=True), "24-bit vendor ID"),
    "devid": Param(None, integer(0, 2**16 - 1, text=True), "16-bit device ID"),
    "sysimgguid": Param(None, _guid, "system image GUID"),
    "port_guids": Param(None, mapping_of(_PORT, _guid), "port -> port GUID (CAs and routers)"),
    "lids": Param(None, mapping_of(_PORT, integer(1, 0xBFFF)), "port -> preset unicast LID"),
    "lmc": Param(0, integer(0, 7), "LID mask control"),
    "enhanced_port0": Param(None, boolean, "switches only"),
}
_LINK_PORT = integer(1, 254, text=True)


class _LazyDoc:
    """Errors for data read by the fast reader: the line map is built only when one is raised."""

    def __init__(self, text: str, source: str):
        self.text, self.source = text, source

    def error(self, path: tuple, message: str) -> ScenarioError:
        try:
            line = load_yaml(self.text, self.source).line(path)
        except ScenarioError:
            line = None
        return ScenarioError(message, source=self.source, path=format_path(path) or None, line=line)


def _end(value, path: tuple, topo: Topology, doc) -> tuple[int, int]:
    if not isinstance(value, str) or ":" not in value:
        raise doc.error(path, f'expected a link end "<node GUID>:<port>", got {value!r}')
    g, _, p = value.rpartition(":")
    try:
        guid = _guid(g)
        port = _LINK_PORT(p)
    except ScenarioError as exc:
        raise doc.error(path, exc.message) from None
    if guid not in topo.graph:
        raise doc.error(path, f"link end {value!r}: no node with GUID {guid:#x} in nodes")
    return guid, port


def _build(data, source: str, name: str | None, doc) -> Topology:
    if not isinstance(data, dict):
        raise doc.error((), "expected a mapping with 'nodes' and 'links' at the top level")
    top = check("an ibsim topology", data, _TOP, doc=doc)
    topo = Topology(top["name"] if top["name"] is not None else (name if name is not None else source))
    for i, raw in enumerate(top["nodes"]):
        path = ("nodes", i)
        if not isinstance(raw, dict):
            raise doc.error(path, f"expected a mapping with guid, kind, nports; got {raw!r}")
        n = check("a node", raw, _NODE, path=path, doc=doc, fill=False)
        guid, kind, nports = n["guid"], n["kind"], n["nports"]
        kw = {k: n[k] for k in ("vendid", "devid", "sysimgguid") if k in n}
        lmc, lids = n.get("lmc", 0), n.get("lids") or {}
        try:
            if kind == "switch":
                if "port_guids" in n:
                    raise doc.error(path + ("port_guids",), "switch ports all use the node GUID; "
                                    "port_guids is for CAs and routers")
                if set(lids) - {0}:
                    raise doc.error(path + ("lids",), "a switch has one LID, on port 0")
                topo.add_switch(guid, nports, n.get("desc"), enhanced_port0=n.get("enhanced_port0", False),
                                lid=lids.get(0), lmc=lmc, **kw)
            else:
                if "enhanced_port0" in n:
                    raise doc.error(path + ("enhanced_port0",), "only switches have an enhanced port 0")
                if 0 in lids:
                    raise doc.error(path + ("lids",), "CA and router ports are numbered from 1")
                topo.add_ca(guid, nports, n.get("desc"), port_guids=n.get("port_guids"),
                            lids=lids or None, lmc=lmc, kind=kind, **kw)
        except TopologyError as exc:
            raise doc.error(path, str(exc)) from None
    for i, ln in enumerate(top["links"] or []):
        path = ("links", i)
        if not isinstance(ln, list) or len(ln) not in (2, 3):
            raise doc.error(path, f'expected ["<guid>:<port>", "<guid>:<port>"] or with a '
                                  f'rate such as 4xEDR as a third item; got {ln!r}')
        a = _end(ln[0], path + (0,), topo, doc)
        b = _end(ln[1], path + (1,), topo, doc)
        width, speed = DEFAULT_WIDTH, DEFAULT_SPEED
        if len(ln) == 3:
            try:
                width, speed = parse_rate_label(str(ln[2]))
            except TopologyError as exc:
                raise doc.error(path + (2,), str(exc)) from None
        try:
            topo.add_link(a[0], a[1], b[0], b[1], width, speed)
        except TopologyError as exc:
            raise doc.error(path, str(exc)) from None
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
    try:
        if data is None:
            doc = load_yaml(text, source)
            data = doc.data
        else:
            doc = _LazyDoc(text, source)
        return _build(data, source, name, doc)
    except ScenarioError as exc:
        raise FileFormatError(f"{exc.path}: {exc.message}" if exc.path else exc.message,
                              source=source, line=exc.line) from None


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
