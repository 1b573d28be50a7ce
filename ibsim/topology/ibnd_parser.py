"""The line parser behind :func:`ibsim.topology.ibnetdiscover.parse_ibnetdiscover`.

Internal: collects node records and port lines (first pass), then pairs link
ends, resolves port GUIDs, LIDs and link rates and builds the Topology
(second pass). The semantics are documented in :mod:`.ibnetdiscover`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import FileFormatError, TopologyError
from ..linkrate import SPEEDS, WIDTH_CODE, WIDTHS, parse_speed, parse_width
from .graph import Topology

IBSIM_CA_GUID_BASE = 0x100000
IBSIM_SWITCH_GUID_BASE = 0x200000
IBSIM_ROUTER_GUID_BASE = 0x300000   # ibsim uses 0, which is not a valid GUID
MAX_INCLUDE_DEPTH = 9

_KINDS = {"Switch": "switch", "Ca": "ca", "Hca": "ca", "Rt": "router"}
_GUID_SETTING_KIND = {"switchguid": "switch", "caguid": "ca", "hcaguids": "ca", "rtguid": "router"}

# rate sets are bitmasks over these orders (bit i = i-th slowest)
_WIDTH_ORDER = sorted(WIDTHS, key=WIDTHS.__getitem__)       # 1x 2x 4x 8x 12x
_SPEED_ORDER = list(SPEEDS)                                  # SDR .. XDR
_WBIT = {w: 1 << i for i, w in enumerate(_WIDTH_ORDER)}
_SBIT = {s: 1 << i for i, s in enumerate(_SPEED_ORDER)}
_W_UPTO = {w: (_WBIT[w] << 1) - 1 for w in _WIDTH_ORDER}    # "trained at w": w and narrower
_S_UPTO = {s: (_SBIT[s] << 1) - 1 for s in _SPEED_ORDER}
_SPEED_MASK_BITS = {1: "SDR", 2: "DDR", 4: "QDR"}
_EXT_MASK_BITS = {1: "FDR", 2: "EDR", 4: "HDR", 8: "NDR", 16: "XDR"}
_IBSIM_DEFAULT_WMASK = _WBIT["4x"]      # width=2
_IBSIM_DEFAULT_SMASK = _SBIT["SDR"]     # speed=1, extspeed=0

_HEADER = re.compile(r'(Switch|Hca|Ca|Rt)\s+(\d+)\s*"([^"]*)"(.*)$')
_KEYWORD = re.compile(r'(Switch|Hca|Ca|Rt)(?:\s|$)|(switchguid|hcaguids|caguid|rtguid|vendid|devid'
                      r'|sysimgguid|extspeed|width|speed|module|pdebug)\s*([=+])\s*(.*)$'
                      r'|(include|do)(?:\s|$)')
_PORT = re.compile(r'\[(\d+)\](?:\[ext \d+\])?\s*(?:\(([^)]*)\))?\s*"([^"]*)"\s*'
                   r'(?:\[(\d+)\])?(?:\[ext \d+\])?\s*(?:\(([^)]*)\))?(.*)$')
_OPT = re.compile(r'\b([wse])\s*=\s*(\S+)')
_OWN_LID = re.compile(r'\s*lid\s+(\d+)(?:\s+lmc\s+(\d+))?')
_RATE = re.compile(r'lid\s+(\d+)\s+(\d+)x([A-Za-z0-9]+)')
_HDR_LID = re.compile(r'\blid\s+(\d+)')
_HDR_LMC = re.compile(r'\blmc\s+(\d+)')
_DESC_END = re.compile(r' enhanced port | base port | lid | lmc ')
_GUID_ID = re.compile(r'[SHR]-([0-9a-fA-F]{16})$')


# --------------------------------------------------------------------- helpers
def _c_int(text: str) -> int:
    """strtoul(text, NULL, 0) without the silent failures: 0x.. hex, 0.. octal, else decimal."""
    t = text.strip().lower()
    if t.startswith("0x"):
        return int(t[2:], 16)
    if len(t) > 1 and t.startswith("0"):
        return int(t[1:], 8)
    return int(t, 10)


def _highest(mask: int, order: list[str]) -> str:
    return order[mask.bit_length() - 1]


def _wmask_from_ibsim(v: int) -> int:
    return sum(_WBIT[name] for name, code in WIDTH_CODE.items() if v & code)


def _smask_from_ibsim(s: int | None, e: int | None) -> int:
    m = 0
    for bit, name in _SPEED_MASK_BITS.items():
        if s and s & bit:
            m |= _SBIT[name]
    for bit, name in _EXT_MASK_BITS.items():
        if e and e & bit:
            m |= _SBIT[name]
    return m


class _Node:
    __slots__ = ("nid", "kind", "nports", "desc", "guid", "sysimgguid", "vendid", "devid",
                 "esp0", "lid", "lmc", "source", "line", "wmask", "wexp", "smask", "sexp",
                 "ports")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


class _Port:
    """One port line: the declaration of one end of a cable."""

    __slots__ = ("node", "port", "rid", "rport", "rnode", "source", "line", "own_guid",
                 "peer_guid", "wmask", "wexp", "smask", "sexp", "own_lid", "own_lmc",
                 "peer_lid", "seq")

    def where(self) -> str:
        return f"{self.source}:{self.line}"


class _Parser:
    def __init__(self, default_wmask: int, default_smask: int):
        self.nodes: list[_Node] = []
        self.by_id: dict[str, _Node] = {}
        self.ports: list[_Port] = []
        self.counter = {"ca": IBSIM_CA_GUID_BASE, "switch": IBSIM_SWITCH_GUID_BASE,
                        "router": IBSIM_ROUTER_GUID_BASE}
        self.absbase = dict(self.counter)
        self.guid_pending = {"ca": False, "switch": False, "router": False}
        self.vendid = 0
        self.devid = 0
        self.sysimgguid = 0
        self.wmask, self.wexp = _IBSIM_DEFAULT_WMASK, False
        self.smask, self.sexp = _IBSIM_DEFAULT_SMASK, False
        self.s_raw, self.e_raw = 1, 0
        self.prefix = ""
        self.default_wmask = default_wmask
        self.default_smask = default_smask
        self.rate_cache: dict[tuple[str, str], tuple[int, int]] = {}

    # ------------------------------------------------------------- lines
    def feed(self, text: str, source: str, base_dir: str, depth: int) -> None:
        node: _Node | None = None
        ports = self.ports
        for lineno, raw in enumerate(text.splitlines(), 1):
            s = raw.strip()
            if not s or s[0] == "#":
                continue
            c = s[0]
            if c == "[":
                if node is None:
                    raise FileFormatError(
                        "port line outside a node record: expected a 'Switch', 'Ca' or 'Rt' "
                        "header line before it", source=source, line=lineno)
                ports.append(self._port_line(s, node, source, lineno))
                continue
            if c == "@":
                raise FileFormatError(
                    "ibsim port aliases ('@[port] \"alias\"' lines) are not supported; "
                    "write the links out on both ends", source=source, line=lineno)
            m = _KEYWORD.match(s)
            node = None
            if m is None:
                continue                      # unknown line: ignored, ends the record
            if m.group(1):
                node = self._header(s, source, lineno)
            elif m.group(2):
                self._setting(m.group(2), m.group(3), m.group(4), source, lineno)
            elif m.group(5) == "include":
                self._include(s, source, base_dir, depth, lineno)
            else:
                raise FileFormatError(
                    "'do' lines run ibsim console commands while parsing and are not "
                    "supported; remove the line", source=source, line=lineno)

    def _header(self, s: str, source: str, lineno: int) -> _Node:
        m = _HEADER.match(s)
        if m is None:
            raise FileFormatError(
                f"malformed or truncated node header {s[:60]!r}: expected "
                f"'Switch|Ca|Hca|Rt <nports> \"<node id>\"  # \"<description>\"'",
                source=source, line=lineno)
        kind = _KINDS[m.group(1)]
        nports = int(m.group(2))
        base_id, rest = m.group(3), m.group(4)
        if not 1 <= nports <= 254:
            raise FileFormatError(f"node \"{base_id}\": {nports} ports; expected 1..254",
                                  source=source, line=lineno)
        if not base_id or "#" in base_id or "@" in base_id:
            raise FileFormatError(f"bad node id \"{base_id}\": expected a non-empty id "
                                  f"without '#' or '@'", source=source, line=lineno)
        nid = f"{self.prefix}#{base_id}" if self.prefix else base_id
        prev = self.by_id.get(nid)
        if prev is not None:
            raise FileFormatError(f"duplicate node id \"{nid}\" (first defined at "
                                  f"{prev.source}:{prev.line})", source=source, line=lineno)
        # GUID: explicit setting > GUID in the id > ibsim counter
        ibsim_guid = self.counter[kind]
        if self.guid_pending[kind]:
            guid = ibsim_guid
        else:
            gm = _GUID_ID.match(base_id)
            guid = int(gm.group(1), 16) if gm else ibsim_guid
        self.counter[kind] = ibsim_guid + (1 if kind == "switch" else nports + 1)
        self.guid_pending[kind] = False
        if not 0 < guid < 2**64:
            raise FileFormatError(f"node \"{nid}\" would get GUID {guid:#x}; expected "
                                  f"1..2^64-1 (set one with {kind if kind != 'router' else 'rt'}"
                                  f"guid=)", source=source, line=lineno)
        # description and switch port-0 data
        desc, tail = nid, ""
        h = rest.find("#")
        if h >= 0:
            d = rest[h + 1:].lstrip()
            if d.startswith('"'):
                q = d.find('"', 1)
                desc, tail = (d[1:q], d[q + 1:]) if q >= 0 else (d[1:], "")
            else:
                e = _DESC_END.search(" " + d)
                desc, tail = (d[:e.start()].rstrip(), d[e.start():]) if e else (d.rstrip(), "")
            if not desc:
                desc = nid
        lid = lmc = 0
        esp0 = False
        if kind == "switch" and tail:
            esp0 = "enhanced port 0" in tail
            lm = _HDR_LID.search(tail)
            lid = int(lm.group(1)) if lm else 0
            lm = _HDR_LMC.search(tail)
            lmc = int(lm.group(1)) if lm else 0
        node = _Node(nid=nid, kind=kind, nports=nports, desc=desc, guid=guid,
                     sysimgguid=self.sysimgguid or guid, vendid=self.vendid, devid=self.devid,
                     esp0=esp0, lid=lid, lmc=lmc, source=source, line=lineno,
                     wmask=self.wmask, wexp=self.wexp, smask=self.smask, sexp=self.sexp,
                     ports={})
        self.vendid = 0
        self.sysimgguid = 0
        self.nodes.append(node)
        self.by_id[nid] = node
        return node

    def _port_line(self, s: str, node: _Node, source: str, lineno: int) -> _Port:
        m = _PORT.match(s)
        if m is None:
            raise FileFormatError(
                f"malformed or truncated port line {s[:60]!r}: expected "
                f"'[<port>] \"<remote node id>\"[<remote port>]  # comment'",
                source=source, line=lineno)
        p = _Port()
        p.node, p.source, p.line, p.seq = node, source, lineno, len(self.ports)
        p.port = port = int(m.group(1))
        if not 1 <= port <= node.nports:
            extra = " (port 0 is the switch management port and has no cable)" if port == 0 else ""
            raise FileFormatError(
                f"bad port number {port} on \"{node.nid}\": expected 1..{node.nports}{extra}",
                source=source, line=lineno)
        prev = node.ports.get(port)
        if prev is not None:
            raise FileFormatError(f"port {port} of \"{node.nid}\" is listed twice (also at "
                                  f"{prev.where()})", source=source, line=lineno)
        node.ports[port] = p
        rid = m.group(3)
        if "@" in rid:
            raise FileFormatError(f"remote \"{rid}\": ibsim port aliases are not supported",
                                  source=source, line=lineno)
        if self.prefix and "#" not in rid:
            rid = f"{self.prefix}#{rid}"
        p.rid = rid
        p.rnode = None
        rp = m.group(4)
        p.rport = int(rp) if rp is not None else 1
        if p.rport < 1:
            raise FileFormatError(f"bad remote port number {p.rport}: expected 1 or more",
                                  source=source, line=lineno)
        p.own_guid = self._paren_guid(m.group(2), source, lineno)
        p.peer_guid = self._paren_guid(m.group(5), source, lineno)
        rest = m.group(6)
        if rest.lstrip()[:1] in ("(", "["):
            raise FileFormatError(
                f"malformed or truncated port line {s[:60]!r}: expected "
                f"'[<port>] \"<remote node id>\"[<remote port>](<port GUID>)  # comment'",
                source=source, line=lineno)
        h = rest.find("#")
        opts, comment = (rest[:h], rest[h + 1:]) if h >= 0 else (rest, "")
        wmask, wexp, smask, sexp = node.wmask, node.wexp, node.smask, node.sexp
        if "=" in opts:
            sv = ev = None
            for key, val in _OPT.findall(opts):
                try:
                    v = _c_int(val)
                except ValueError:
                    raise FileFormatError(f"bad port option {key}={val}: expected a number",
                                          source=source, line=lineno) from None
                if key == "w":
                    if not 1 <= v <= 31:
                        raise FileFormatError(f"bad width mask w={val}: expected 1..31 "
                                              f"(1=1x 2=4x 4=8x 8=12x 16=2x)",
                                              source=source, line=lineno)
                    wmask, wexp = _wmask_from_ibsim(v), True
                elif key == "s":
                    if not 0 <= v <= 7:
                        raise FileFormatError(f"bad speed mask s={val}: expected 0..7 "
                                              f"(1=SDR 2=DDR 4=QDR)", source=source, line=lineno)
                    sv = v or 4
                else:
                    if not 0 <= v <= 31:
                        raise FileFormatError(f"bad extended speed mask e={val}: expected 0..31 "
                                              f"(1=FDR 2=EDR 4=HDR 8=NDR 16=XDR)",
                                              source=source, line=lineno)
                    ev = v
            if sv is not None or ev is not None:
                smask = _smask_from_ibsim(self.s_raw if sv is None else sv,
                                          self.e_raw if ev is None else ev)
                sexp = True
        p.own_lid = p.own_lmc = p.peer_lid = 0
        if comment:
            if node.kind != "switch":
                lm = _OWN_LID.match(comment)
                if lm:
                    p.own_lid = int(lm.group(1))
                    p.own_lmc = int(lm.group(2) or 0)
            q = comment.rfind('"')
            rm = _RATE.search(comment, q + 1 if q >= 0 else 0)
            if rm:
                p.peer_lid = int(rm.group(1))
                key = (rm.group(2), rm.group(3))
                masks = self.rate_cache.get(key)
                if masks is None:
                    try:
                        masks = _W_UPTO[parse_width(key[0])], _S_UPTO[parse_speed(key[1])]
                    except TopologyError as exc:
                        raise FileFormatError(f"bad link rate {key[0]}x{key[1]} in the comment: "
                                              f"{exc}", source=source, line=lineno) from None
                    self.rate_cache[key] = masks
                wmask, smask = masks
                wexp = sexp = True
        p.wmask, p.wexp, p.smask, p.sexp = wmask, wexp, smask, sexp
        return p

    @staticmethod
    def _paren_guid(text: str | None, source: str, lineno: int) -> int | None:
        if text is None:
            return None
        t = text.strip()
        try:
            g = int(t[2:] if t.lower().startswith("0x") else t, 16)
        except ValueError:
            g = -1
        if not 0 < g < 2**64:
            raise FileFormatError(f"bad port GUID ({text}): expected up to 16 hex digits, "
                                  f"e.g. (2c903000d8a26)", source=source, line=lineno)
        return g

    def _setting(self, key: str, op: str, value: str, source: str, lineno: int) -> None:
        tok = value.split()[0] if value.split() else ""
        if key in ("module",):
            if op != "=":
                raise FileFormatError("expected module=\"<prefix>\"", source=source, line=lineno)
            self.prefix = tok.strip('"')
            if "#" in self.prefix or "@" in self.prefix:
                raise FileFormatError(f"bad module prefix {tok}: '#' and '@' are reserved",
                                      source=source, line=lineno)
            return
        if key == "pdebug":
            return
        tok = tok.split("(", 1)[0]
        if op == "+" and key not in _GUID_SETTING_KIND:
            raise FileFormatError(f"expected {key}=<value>", source=source, line=lineno)
        try:
            v = _c_int(tok)
        except ValueError:
            what = "a GUID such as 0x0002c90300001234" if "guid" in key else "a number"
            raise FileFormatError(f"bad value {tok!r} for {key}: expected {what}",
                                  source=source, line=lineno) from None
        if key in _GUID_SETTING_KIND:
            kind = _GUID_SETTING_KIND[key]
            if not 0 <= v < 2**64:
                raise FileFormatError(f"bad GUID {tok!r} for {key}: expected 64 bits",
                                      source=source, line=lineno)
            if op == "=":
                self.absbase[kind] = v
                self.counter[kind] = v
            else:
                self.counter[kind] = self.absbase[kind] + v
            self.guid_pending[kind] = True
        elif key == "vendid":
            if not 0 <= v < 2**24:
                raise FileFormatError(f"vendid={tok}: expected 24 bits", source=source, line=lineno)
            self.vendid = v
        elif key == "devid":
            if not 0 <= v < 2**16:
                raise FileFormatError(f"devid={tok}: expected 16 bits", source=source, line=lineno)
            self.devid = v
        elif key == "sysimgguid":
            if not 0 <= v < 2**64:
                raise FileFormatError(f"bad GUID {tok!r} for sysimgguid: expected 64 bits",
                                      source=source, line=lineno)
            self.sysimgguid = v
        elif key == "width":
            if not 1 <= v <= 31:
                raise FileFormatError(f"width={tok}: expected a width mask 1..31 "
                                      f"(1=1x 2=4x 4=8x 8=12x 16=2x)", source=source, line=lineno)
            self.wmask, self.wexp = _wmask_from_ibsim(v), True
        elif key == "speed":
            if not 0 <= v <= 7:
                raise FileFormatError(f"speed={tok}: expected a speed mask 1..7 "
                                      f"(1=SDR 2=DDR 4=QDR)", source=source, line=lineno)
            self.s_raw = v or 4
            self.smask, self.sexp = _smask_from_ibsim(self.s_raw, self.e_raw), True
        elif key == "extspeed":
            if not 0 <= v <= 31:
                raise FileFormatError(f"extspeed={tok}: expected a mask 0..31 "
                                      f"(1=FDR 2=EDR 4=HDR 8=NDR 16=XDR)", source=source, line=lineno)
            self.e_raw = v
            self.smask, self.sexp = _smask_from_ibsim(self.s_raw, self.e_raw), True

    def _include(self, s: str, source: str, base_dir: str, depth: int, lineno: int) -> None:
        m = re.match(r'include\s+"([^"]+)"', s) or re.match(r'include\s+(\S+)', s)
        if m is None:
            raise FileFormatError('expected include "<file name>"', source=source, line=lineno)
        if depth >= MAX_INCLUDE_DEPTH:
            raise FileFormatError(f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels "
                                  f"(an include loop?)", source=source, line=lineno)
        path = os.path.join(base_dir, m.group(1))
        try:
            text = _read_text(path)
        except OSError as exc:
            raise FileFormatError(f"cannot read included file {path!r}: {exc.strerror or exc}",
                                  source=source, line=lineno) from None
        self.feed(text, path, os.path.dirname(path), depth + 1)

    # ------------------------------------------------------------- build
    def build(self, name: str) -> Topology:
        by_id = self.by_id
        for p in self.ports:
            r = by_id.get(p.rid)
            if r is None:
                raise FileFormatError(
                    f"port {p.port} of \"{p.node.nid}\" is cabled to \"{p.rid}\", but no "
                    f"Switch/Ca/Rt record has that id", source=p.source, line=p.line)
            if p.rport > r.nports:
                raise FileFormatError(
                    f"bad remote port number {p.rport}: \"{r.nid}\" has ports 1..{r.nports} "
                    f"({r.source}:{r.line})", source=p.source, line=p.line)
            p.rnode = r
        # pair the two ends of each cable
        pairs: list[tuple[_Port, _Port | None]] = []
        claimed: dict[tuple[int, int], _Port] = {}
        for p in self.ports:
            r = p.rnode
            q = r.ports.get(p.rport)
            if q is not None:
                if q.rnode is not p.node or q.rport != p.port:
                    raise FileFormatError(
                        f"contradicting link ends: this line cables \"{p.node.nid}\"[{p.port}] to "
                        f"\"{r.nid}\"[{p.rport}], but {q.where()} cables \"{r.nid}\"[{p.rport}] "
                        f"to \"{q.rid}\"[{q.rport}]", source=p.source, line=p.line)
                if q.seq < p.seq:
                    continue
                pairs.append((p, q))
            else:
                key = (id(r), p.rport)
                other = claimed.get(key)
                if other is not None:
                    raise FileFormatError(
                        f"contradicting link ends: \"{r.nid}\"[{p.rport}] is cabled to "
                        f"\"{p.node.nid}\"[{p.port}] here and to \"{other.node.nid}\"[{other.port}] "
                        f"at {other.where()}", source=p.source, line=p.line)
                claimed[key] = p
                pairs.append((p, None))
        # port GUIDs and LIDs from both sides
        pguid: dict[tuple[int, int], tuple[int, _Port]] = {}
        lids: dict[tuple[int, int], int] = {}
        for p, q in pairs:
            for a, b in ((p, q), (q, p)):
                if a is None:
                    continue
                na, nb = a.node, a.rnode
                if na.kind != "switch":
                    if a.own_guid is not None:
                        self._put_guid(pguid, na, a.port, a.own_guid, a)
                    if a.own_lid:
                        lids[(id(na), a.port)] = a.own_lid
                        na.lmc = max(na.lmc, a.own_lmc)
                if nb.kind != "switch" and a.peer_guid is not None:
                    self._put_guid(pguid, nb, a.rport, a.peer_guid, a)
                if b is None:
                    if a.peer_lid:
                        lids.setdefault((id(nb), 0 if nb.kind == "switch" else a.rport),
                                        a.peer_lid)
        topo = Topology(name)
        for n in self.nodes:
            try:
                if n.kind == "switch":
                    lid = n.lid or lids.get((id(n), 0), 0)
                    topo.add_switch(n.guid, n.nports, n.desc, sysimgguid=n.sysimgguid,
                                    vendid=n.vendid, devid=n.devid, enhanced_port0=n.esp0,
                                    lid=lid or None, lmc=n.lmc)
                else:
                    pg = {pt: pguid[(id(n), pt)][0] for pt in range(1, n.nports + 1)
                          if (id(n), pt) in pguid}
                    nl = {pt: lids[(id(n), pt)] for pt in range(1, n.nports + 1)
                          if (id(n), pt) in lids}
                    topo.add_ca(n.guid, n.nports, n.desc, sysimgguid=n.sysimgguid,
                                vendid=n.vendid, devid=n.devid, port_guids=pg or None,
                                lids=nl or None, lmc=n.lmc, kind=n.kind)
            except TopologyError as exc:
                raise FileFormatError(f"node \"{n.nid}\": {exc}", source=n.source,
                                      line=n.line) from None
        dw, ds = self.default_wmask, self.default_smask
        for p, q in pairs:
            w = self._combine(p, q, "width", dw)
            s = self._combine(p, q, "speed", ds)
            try:
                topo.add_link(p.node.guid, p.port, p.rnode.guid, p.rport, w, s)
            except TopologyError as exc:
                raise FileFormatError(str(exc), source=p.source, line=p.line) from None
        return topo

    @staticmethod
    def _put_guid(pguid, node: _Node, port: int, guid: int, where: _Port) -> None:
        key = (id(node), port)
        prev = pguid.get(key)
        if prev is None:
            pguid[key] = (guid, where)
        elif prev[0] != guid:
            raise FileFormatError(
                f"port {port} of \"{node.nid}\" has GUID {guid:x} here but {prev[0]:x} at "
                f"{prev[1].where()}", source=where.source, line=where.line)

    @staticmethod
    def _combine(p: _Port, q: _Port | None, what: str, default: int) -> str:
        if what == "width":
            order, pm, pe = _WIDTH_ORDER, p.wmask, p.wexp
            qm, qe = (q.wmask, q.wexp) if q is not None else (0, False)
        else:
            order, pm, pe = _SPEED_ORDER, p.smask, p.sexp
            qm, qe = (q.smask, q.sexp) if q is not None else (0, False)
        if pe and qe:
            m = pm & qm
            if not m:
                names = lambda mask: "|".join(o for i, o in enumerate(order) if mask >> i & 1)
                raise FileFormatError(
                    f"the two ends of this link share no {what}: this end enables "
                    f"{names(pm)}, the other ({q.where()}) {names(qm)}",
                    source=p.source, line=p.line)
        elif pe:
            m = pm
        elif qe:
            m = qm
        else:
            m = default
        return _highest(m, order)


def _read_text(path) -> str:
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
