"""Topology generators: plain functions with deterministic GUIDs and descriptions.

Every generator takes ``speed=`` and ``width=`` (default 4x EDR) and returns a
validated :class:`~ibsim.topology.graph.Topology`. GUIDs use the Mellanox OUI
(00:02:c9): switch *i* gets ``0x0002c90302000000 + i``; CA *i* gets
``0x0002c90301000000 + 8 i`` and its ports ``node GUID + port``, as on
ConnectX HCAs. Host descriptions read ``node042 HCA-1``. May import: graph,
errors, linkrate.
"""

from __future__ import annotations

import itertools
import math
from numbers import Integral

from ..errors import TopologyError
from ..linkrate import DEFAULT_SPEED, DEFAULT_WIDTH, parse_speed, parse_width
from .graph import Topology

__all__ = ["GENERATORS", "fat_tree", "single_switch", "xgft", "leaf_spine", "dragonfly",
           "torus", "Builder"]

SWITCH_GUID_BASE = 0x0002C90302000000
CA_GUID_BASE = 0x0002C90301000000
CA_GUID_STEP = 8          # leaves room for up to 7 port GUIDs per CA


class Builder:
    """Allocates GUIDs and descriptions while a generator builds a topology.

    Parameters
    ----------
    name : str
        Topology name.
    width, speed : str
        Default link width and speed.
    n_hosts : int
        Expected host count, only to choose the zero padding of ``nodeNNN``.
    """

    def __init__(self, name: str, width: str = DEFAULT_WIDTH, speed: str = DEFAULT_SPEED,
                 n_hosts: int = 0):
        self.topo = Topology(name)
        self.width = parse_width(width)
        self.speed = parse_speed(speed)
        self._n_switches = 0
        self._n_cas = 0
        self._host_digits = max(3, len(str(max(n_hosts, 1))))

    def switch(self, nports: int, desc: str) -> int:
        """Add a switch; return its GUID."""
        guid = SWITCH_GUID_BASE + self._n_switches
        self._n_switches += 1
        self.topo.add_switch(guid, nports, desc)
        return guid

    def host(self, nports: int = 1, desc: str | None = None) -> int:
        """Add a CA named ``node<NNN> HCA-1`` (numbered from 1); return its GUID."""
        if nports >= CA_GUID_STEP:
            raise TopologyError(f"generated CAs have at most {CA_GUID_STEP - 1} ports, got {nports}")
        guid = CA_GUID_BASE + CA_GUID_STEP * self._n_cas
        self._n_cas += 1
        if desc is None:
            desc = f"node{self._n_cas:0{self._host_digits}d} HCA-1"
        self.topo.add_ca(guid, nports, desc)
        return guid

    def link(self, a: int, pa: int, b: int, pb: int) -> None:
        """Cable two ports at the default width and speed."""
        self.topo.add_link(a, pa, b, pb, self.width, self.speed)

    def done(self) -> Topology:
        """Validate and return the topology."""
        return self.topo.validate()


def _check_radix(radix: int) -> None:
    if not isinstance(radix, int) or radix < 2 or radix % 2 or radix > 254:
        raise TopologyError(f"radix must be an even integer in 2..254, got {radix!r}")


def fat_tree(radix: int = 36, levels: int = 2, *, width: str = DEFAULT_WIDTH,
             speed: str = DEFAULT_SPEED) -> Topology:
    """The maximal non-blocking folded Clos built from radix-R switches.

    Parameters
    ----------
    radix : int
        Ports per switch (even).
    levels : int
        1: one switch with R CAs. 2: R leaves with R/2 CAs and R/2 uplinks
        each, R/2 spines (R^2/2 CAs). 3: R pods of R/2 leaves and R/2 spines,
        (R/2)^2 core switches (R^3/4 CAs, 5R^2/4 switches).
    width, speed : str
        Link width and speed of every cable.

    Notes
    -----
    Leaf ports 1..R/2 hold CAs and R/2+1..R are uplinks; a spine's port *j*
    goes to the *j*-th switch below it; a core switch's port *p* goes to pod *p*.

    Examples
    --------
    >>> fat_tree(36, 2).summary()["cas"]
    648
    """
    _check_radix(radix)
    half = radix // 2
    if levels == 1:
        b = Builder(f"fat-tree-r{radix}-l1", width, speed, radix)
        sw = b.switch(radix, "switch01")
        for p in range(1, radix + 1):
            b.link(sw, p, b.host(), 1)
        return b.done()
    if levels == 2:
        b = Builder(f"fat-tree-r{radix}-l2", width, speed, radix * half)
        d = len(str(radix))
        leaves = [b.switch(radix, f"leaf{i + 1:0{d}d}") for i in range(radix)]
        spines = [b.switch(radix, f"spine{i + 1:0{d}d}") for i in range(half)]
        for li, leaf in enumerate(leaves):
            for si, spine in enumerate(spines):
                b.link(leaf, half + 1 + si, spine, li + 1)
        for leaf in leaves:
            for p in range(1, half + 1):
                b.link(leaf, p, b.host(), 1)
        return b.done()
    if levels == 3:
        b = Builder(f"fat-tree-r{radix}-l3", width, speed, radix * half * half)
        d = len(str(radix))
        dh = len(str(half))
        dc = len(str(half * half))
        pods = []
        for p in range(radix):
            edges = [b.switch(radix, f"pod{p + 1:0{d}d}-leaf{i + 1:0{dh}d}") for i in range(half)]
            aggs = [b.switch(radix, f"pod{p + 1:0{d}d}-spine{i + 1:0{dh}d}") for i in range(half)]
            pods.append((edges, aggs))
        cores = [b.switch(radix, f"core{i + 1:0{dc}d}") for i in range(half * half)]
        for p, (edges, aggs) in enumerate(pods):
            for ei, edge in enumerate(edges):
                for ai, agg in enumerate(aggs):
                    b.link(edge, half + 1 + ai, agg, ei + 1)
            for ai, agg in enumerate(aggs):
                for c in range(half):
                    b.link(agg, half + 1 + c, cores[ai * half + c], p + 1)
        for edges, _ in pods:
            for edge in edges:
                for port in range(1, half + 1):
                    b.link(edge, port, b.host(), 1)
        return b.done()
    raise TopologyError(f"fat_tree levels must be 1, 2 or 3, got {levels!r} (use xgft for deeper trees)")


def single_switch(ports: int = 8, *, hosts: int | None = None, width: str = DEFAULT_WIDTH,
                  speed: str = DEFAULT_SPEED) -> Topology:
    """One switch of ``ports`` ports with ``hosts`` CAs (default: every port)."""
    hosts = ports if hosts is None else hosts
    if not 1 <= hosts <= ports:
        raise TopologyError(f"single_switch: hosts={hosts} must be 1..ports ({ports})")
    b = Builder(f"single-switch-{ports}", width, speed, hosts)
    sw = b.switch(ports, "switch01")
    for p in range(1, hosts + 1):
        b.link(sw, p, b.host(), 1)
    return b.done()


# ------------------------------------------------------------------ helpers
#: generated CA GUIDs must stay below the first switch GUID
MAX_GENERATED_CAS = (SWITCH_GUID_BASE - CA_GUID_BASE) // CA_GUID_STEP
MAX_GENERATED_SWITCHES = 1 << 24
MAX_SWITCH_PORTS = 254


def _int(gen: str, name: str, value, lo: int = 1, hi: int | None = None) -> int:
    """``value`` as an int in ``lo..hi``, else a TopologyError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TopologyError(f"{gen}: {name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise TopologyError(f"{gen}: {name}={value} is out of range; allowed: {allowed}")
    return value


def _ints(gen: str, name: str, value, lo: int = 1) -> tuple[int, ...]:
    """A sequence of ints (or text ``"18,36"`` / ``"4x4x4"``) as a tuple."""
    if isinstance(value, str):
        parts = [x.strip() for x in value.replace("x", ",").split(",") if x.strip()]
        try:
            value = [int(x) for x in parts]
        except ValueError:
            raise TopologyError(f"{gen}: {name}={value!r} must be a list of integers "
                                f"such as '18,36'") from None
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise TopologyError(f"{gen}: {name} must be a list of integers, got {value!r}") from None
    if not items:
        raise TopologyError(f"{gen}: {name} must not be empty")
    return tuple(_int(gen, f"{name}[{i}]", v, lo) for i, v in enumerate(items))


def _check_size(gen: str, n_switches: int, n_cas: int, max_ports: int) -> None:
    if max_ports > MAX_SWITCH_PORTS:
        raise TopologyError(f"{gen}: a switch would need {max_ports} ports; "
                            f"InfiniBand switches have at most {MAX_SWITCH_PORTS}")
    if n_cas > MAX_GENERATED_CAS:
        raise TopologyError(f"{gen}: {n_cas} CAs is more than the {MAX_GENERATED_CAS} "
                            f"the generated GUID range holds")
    if n_switches > MAX_GENERATED_SWITCHES:
        raise TopologyError(f"{gen}: {n_switches} switches is more than the "
                            f"{MAX_GENERATED_SWITCHES} the generated GUID range holds")


def _digits(n: int) -> int:
    """Zero padding of switch numbers: at least two digits (``leaf03``)."""
    return max(2, len(str(n)))


# --------------------------------------------------------------------- XGFT
def _xgft_level_names(h: int) -> list[str]:
    if h == 1:
        return ["leaf"]
    if h == 2:
        return ["leaf", "spine"]
    if h == 3:
        return ["leaf", "spine", "core"]
    return ["leaf"] + [f"l{i}-spine" for i in range(2, h)] + ["core"]


def xgft(m: tuple[int, ...] = (18, 36), w: tuple[int, ...] = (1, 18), *,
         parallel: tuple[int, ...] | None = None, hosts_per_leaf: int | None = None,
         radix: int | None = None, width: str = DEFAULT_WIDTH,
         speed: str = DEFAULT_SPEED) -> Topology:
    """Extended generalized fat tree XGFT(h; m1..mh; w1..wh), optionally a PGFT.

    Parameters
    ----------
    m : list of int
        ``m[i-1]`` = m_i, the number of children of every level-i switch.
        Level 0 holds the CAs; the tree has h = len(m) switch levels and
        prod(m) CAs.
    w : list of int
        ``w[i-1]`` = w_i, the number of level-i parents of every level-(i-1)
        node (same length as ``m``). w_1 > 1 gives multi-port CAs (one port
        per leaf, at most 7). w_i < m_i makes an oversubscribed tree.
    parallel : list of int or int, optional
        PGFT p_i: parallel cables between a level-(i-1) node and each of its
        level-i parents (default 1 everywhere).
    hosts_per_leaf : int, optional
        Populate only the first ``hosts_per_leaf`` of the m_1 children of
        every leaf group (default m_1, a full tree). Unused down ports stay
        uncabled.
    radix : int, optional
        Give every switch this many ports (it must be at least the largest
        need below); by default each switch gets exactly what it needs.
    width, speed : str
        Link width and speed of every cable.

    Notes
    -----
    A level-i node is labelled (x_h..x_{i+1}, y_i..y_1) with x_j < m_j and
    y_j < w_j; it is cabled to the level-(i+1) nodes (x_h..x_{i+2}, y, y_i..y_1)
    for every y < w_{i+1}. Nodes of a level are numbered in lexicographic
    label order (x_h most significant); GUIDs go to the switches level by
    level from the leaves up, then to the CAs.

    Ports of a level-i switch: the *down* ports come first, child x (its
    x_i digit), parallel cable r at port ``x*p_i + r + 1`` (1..m_i p_i); then
    the *up* ports, parent y (its y_{i+1} digit) at ``m_i p_i + y*p_{i+1} + r
    + 1``. A switch therefore needs m_i p_i + w_{i+1} p_{i+1} ports (the top
    level m_h p_h). A CA's port ``y*p_1 + r + 1`` goes to its parent y.
    Descriptions: ``leafNN``; with h = 2 the top level is ``spineNN``; with
    h = 3 ``spineNN`` and ``coreNN``; deeper trees use ``l<i>-spineNN`` for
    the middle levels and ``coreNN`` for the top.

    XGFT(2; R/2, R; 1, R/2) is exactly ``fat_tree(R, 2)`` (same GUIDs, ports
    and descriptions for 10 <= R < 100); XGFT(n; k..k; 1, k..k) is a
    k-ary n-tree.

    Examples
    --------
    >>> xgft((18, 36), (1, 18)).summary()["links"]
    1296
    """
    gen = "xgft"
    m = _ints(gen, "m", m)
    w = _ints(gen, "w", w)
    h = len(m)
    if len(w) != h:
        raise TopologyError(f"{gen}: m and w must have the same length (one entry per switch "
                            f"level), got m={list(m)} and w={list(w)}")
    if parallel is None:
        p = (1,) * h
    else:
        p = _ints(gen, "parallel", parallel)
        if len(p) == 1 and h > 1:
            p = p * h
        if len(p) != h:
            raise TopologyError(f"{gen}: parallel must have one entry per level ({h}) "
                                f"or a single value, got {list(p)}")
    hpl = m[0] if hosts_per_leaf is None else _int(gen, "hosts_per_leaf", hosts_per_leaf, 1, m[0])
    ca_ports = w[0] * p[0]
    if ca_ports >= CA_GUID_STEP:
        raise TopologyError(f"{gen}: every CA would need w1*p1 = {ca_ports} ports (one per leaf "
                            f"cable); generated CAs have at most {CA_GUID_STEP - 1}")
    # need[i]: ports of a level-(i+1) switch
    need = [m[i] * p[i] + (w[i + 1] * p[i + 1] if i + 1 < h else 0) for i in range(h)]
    if radix is not None:
        radix = _int(gen, "radix", radix, 1, MAX_SWITCH_PORTS)
        if radix < max(need):
            lvl = need.index(max(need)) + 1
            raise TopologyError(
                f"{gen}: radix={radix} is too small; level-{lvl} switches need "
                f"{max(need)} ports (m_i*p_i down + w_(i+1)*p_(i+1) up); per level: {need}")
    # radices of the label digits, most significant (level h) first, per level 0..h
    radices = [[m[j - 1] if j > i else w[j - 1] for j in range(h, 0, -1)] for i in range(h + 1)]
    counts = [math.prod(r) for r in radices]
    n_cas = counts[0] // m[0] * hpl
    _check_size(gen, sum(counts[1:]), n_cas, max(need) if radix is None else radix)

    def strides(i: int) -> list[int]:
        out, acc = [0] * h, 1
        for k in range(h - 1, -1, -1):
            out[k] = acc
            acc *= radices[i][k]
        return out

    strides_of = [strides(i) for i in range(h + 1)]
    name = f"xgft-h{h}-m{'x'.join(map(str, m))}-w{'x'.join(map(str, w))}"
    if parallel is not None:
        name += f"-p{'x'.join(map(str, p))}"
    if hpl != m[0]:
        name += f"-hpl{hpl}"
    b = Builder(name, width, speed, n_cas)
    names = _xgft_level_names(h)
    guids: list[list[int]] = [[]]
    for i in range(1, h + 1):
        d = _digits(counts[i])
        nports = radix if radix is not None else need[i - 1]
        guids.append([b.switch(nports, f"{names[i - 1]}{n + 1:0{d}d}") for n in range(counts[i])])
    for i in range(1, h):   # switch-to-switch cables, level i -> level i+1
        pos = h - (i + 1)   # label position of digit i+1
        down_base = m[i - 1] * p[i - 1]
        pi, st_up = p[i], strides_of[i + 1]
        for idx, label in enumerate(itertools.product(*map(range, radices[i]))):
            x = label[pos]
            base = sum(a * s for a, s in zip(label, st_up)) - x * st_up[pos]
            for y in range(w[i]):
                parent = guids[i + 1][base + y * st_up[pos]]
                for r in range(pi):
                    b.link(guids[i][idx], down_base + y * pi + r + 1, parent, x * pi + r + 1)
    pos, st_up = h - 1, strides_of[1]
    for label in itertools.product(*map(range, radices[0])):   # CAs
        x = label[pos]
        if x >= hpl:
            continue
        ca = b.host(ca_ports)
        base = sum(a * s for a, s in zip(label, st_up)) - x * st_up[pos]
        for y in range(w[0]):
            leaf = guids[1][base + y * st_up[pos]]
            for r in range(p[0]):
                b.link(leaf, x * p[0] + r + 1, ca, y * p[0] + r + 1)
    return b.done()


# --------------------------------------------------------------- leaf/spine
def _parse_ratio(gen: str, value) -> float:
    text = str(value).strip()
    try:
        if ":" in text:
            a, _, c = text.partition(":")
            ratio = float(a) / float(c)
        else:
            ratio = float(text)
    except (ValueError, ZeroDivisionError):
        raise TopologyError(f"{gen}: oversubscription={value!r} must be a ratio such as "
                            f"'2:1', '3:2' or a number such as 2.0") from None
    if not math.isfinite(ratio) or ratio <= 0:
        raise TopologyError(f"{gen}: oversubscription={value!r} must be a positive ratio")
    return ratio


def leaf_spine(leaves: int = 8, spines: int = 4, hosts_per_leaf: int | None = None, *,
               uplinks_per_spine: int = 1, radix: int | None = None,
               oversubscription: str | float | None = None, width: str = DEFAULT_WIDTH,
               speed: str = DEFAULT_SPEED) -> Topology:
    """A two-level leaf/spine (folded Clos), optionally oversubscribed.

    Parameters
    ----------
    leaves, spines : int
        Number of leaf and spine switches.
    hosts_per_leaf : int, optional
        CAs per leaf (d). Default: from ``oversubscription``, else equal to
        the uplinks per leaf (non-blocking 1:1).
    uplinks_per_spine : int
        Parallel cables from each leaf to each spine (k); a leaf has
        u = spines * k uplinks.
    radix : int, optional
        Ports per switch. When given, every switch gets this many ports and
        both d + u (leaf) and leaves * k (spine) must fit; by default each
        switch gets exactly what it needs.
    oversubscription : str or float, optional
        Blocking factor d:u, as ``"2:1"``, ``"3:2"`` or ``2.0``; sets
        hosts_per_leaf = ratio * u (must come out an integer, and agree with
        ``hosts_per_leaf`` when both are given).
    width, speed : str
        Link width and speed of every cable.

    Notes
    -----
    Leaf ports 1..d hold CAs; uplink r (0-based) to spine s is leaf port
    ``d + s*k + r + 1``; spine port ``l*k + r + 1`` goes to leaf l. GUIDs go
    to the leaves, then the spines, then the CAs (leaf by leaf), so
    ``leaf_spine(R, R // 2, R // 2)`` equals ``fat_tree(R, 2)`` for 10 <= R < 100.
    Descriptions ``leaf03``, ``spine02``, ``node042 HCA-1``.

    Examples
    --------
    >>> leaf_spine(16, 4, oversubscription="3:1").summary()["cas"]
    192
    """
    gen = "leaf_spine"
    leaves = _int(gen, "leaves", leaves)
    spines = _int(gen, "spines", spines)
    k = _int(gen, "uplinks_per_spine", uplinks_per_spine)
    u = spines * k
    if oversubscription is not None:
        ratio = _parse_ratio(gen, oversubscription)
        d_float = ratio * u
        d = round(d_float)
        if abs(d - d_float) > 1e-9 or d < 1:
            raise TopologyError(
                f"{gen}: oversubscription {oversubscription!r} with {u} uplinks per leaf gives "
                f"{d_float:g} hosts per leaf; choose a ratio that makes hosts_per_leaf a "
                f"positive integer (ratio = hosts_per_leaf / {u})")
        if hosts_per_leaf is not None and _int(gen, "hosts_per_leaf", hosts_per_leaf) != d:
            raise TopologyError(
                f"{gen}: hosts_per_leaf={hosts_per_leaf} contradicts oversubscription "
                f"{oversubscription!r} with {u} uplinks per leaf (which means {d} hosts "
                f"per leaf); give only one of them")
    elif hosts_per_leaf is None:
        d = u
    else:
        d = _int(gen, "hosts_per_leaf", hosts_per_leaf)
    leaf_need, spine_need = d + u, leaves * k
    if radix is not None:
        radix = _int(gen, "radix", radix, 1, MAX_SWITCH_PORTS)
        if leaf_need > radix:
            raise TopologyError(
                f"{gen}: a leaf needs {d} host ports + {u} uplinks = {leaf_need} ports but "
                f"radix is {radix}; lower hosts_per_leaf/oversubscription or "
                f"spines*uplinks_per_spine")
        if spine_need > radix:
            raise TopologyError(
                f"{gen}: a spine needs leaves*uplinks_per_spine = {spine_need} ports but "
                f"radix is {radix}; use at most {radix // k} leaves")
    _check_size(gen, leaves + spines, leaves * d,
                radix if radix is not None else max(leaf_need, spine_need))
    name = f"leaf-spine-l{leaves}-s{spines}-d{d}" + (f"-k{k}" if k > 1 else "")
    b = Builder(name, width, speed, leaves * d)
    leaf_g = [b.switch(radix or leaf_need, f"leaf{i + 1:0{_digits(leaves)}d}")
              for i in range(leaves)]
    spine_g = [b.switch(radix or spine_need, f"spine{i + 1:0{_digits(spines)}d}")
               for i in range(spines)]
    for li, leaf in enumerate(leaf_g):
        for si, spine in enumerate(spine_g):
            for r in range(k):
                b.link(leaf, d + si * k + r + 1, spine, li * k + r + 1)
    for leaf in leaf_g:
        for port in range(1, d + 1):
            b.link(leaf, port, b.host(), 1)
    return b.done()


# ---------------------------------------------------------------- dragonfly
def _dragonfly_targets(g: int, ports: int) -> list[list[int]]:
    """For each group, the group behind each of its ``ports`` global ports.

    Every pair of groups gets q = ports // (g-1) or q+1 cables: q rounds over
    the offsets 1..g-1 (group G's port j of round 0 goes to G+j+1 mod g, the
    "consecutive" arrangement), then one extra cable per edge of an
    r-regular circulant graph (r = ports mod (g-1)): offsets +-1..+-r/2, plus
    offset g/2 for odd r and even g; for odd r and odd g a near-perfect
    matching along offset (g-1)/2 (one group keeps one port free).
    """
    if g == 1:
        return [[]]
    q, r = divmod(ports, g - 1)
    half = r // 2
    k = (g - 1) // 2
    kinv = pow(k, -1, g) if r % 2 and g % 2 else 0

    def extra_offsets(G: int) -> list[int]:
        offs = list(range(1, half + 1)) + list(range(g - half, g))
        if r % 2:
            if g % 2 == 0:
                offs.append(g // 2)
            else:
                t = G * kinv % g
                if t < g - 1:
                    offs.append(k if t % 2 == 0 else g - k)
        return sorted(offs)

    out = []
    for G in range(g):
        offs = list(range(1, g)) * q + extra_offsets(G)
        out.append([(G + d) % g for d in offs])
    return out


def dragonfly(a: int = 4, p: int = 2, h: int = 2, g: int | None = None, *,
              width: str = DEFAULT_WIDTH, speed: str = DEFAULT_SPEED) -> Topology:
    """A dragonfly (Kim, Dally, Scott, Abts 2008) of routers built as IB switches.

    Parameters
    ----------
    a : int
        Routers per group, cabled all-to-all inside the group.
    p : int
        CAs per router.
    h : int
        Global ports per router.
    g : int, optional
        Number of groups, 1..a*h+1 (default a*h+1, the maximum, where every
        pair of groups has exactly one global cable).
    width, speed : str
        Link width and speed of every cable.

    Notes
    -----
    Radix k = p + a - 1 + h; router ports 1..p hold CAs, p+1..p+a-1 go to the
    other routers of the group in router order (skipping itself), and
    p+a..p+a-1+h are global. Group G's global ports are numbered j = 0..a*h-1
    (router j // h, its global port j % h) and follow the consecutive
    arrangement: with g = a*h+1, port j goes to group (G + j + 1) mod g.
    With fewer groups the a*h ports cycle over the offsets 1..g-1 again, so
    every pair of groups gets floor(a*h/(g-1)) or that plus one cables
    (spread over different routers); see ``_dragonfly_targets``. When g*a*h
    is odd one global port stays free. N = a*p*g CAs; descriptions
    ``g02-r03`` (group 2, router 3, from 1) and ``node042 HCA-1``.

    Examples
    --------
    >>> dragonfly(4, 2, 2).summary()["cas"]
    72
    """
    gen = "dragonfly"
    a = _int(gen, "a", a)
    p = _int(gen, "p", p)
    h = _int(gen, "h", h)
    gmax = a * h + 1
    g = gmax if g is None else _int(gen, "g", g, 1, gmax)
    radix = p + a - 1 + h
    _check_size(gen, a * g, a * p * g, radix)
    b = Builder(f"dragonfly-a{a}-p{p}-h{h}-g{g}", width, speed, a * p * g)
    dg, dr = _digits(g), _digits(a)
    routers = [[b.switch(radix, f"g{G + 1:0{dg}d}-r{R + 1:0{dr}d}") for R in range(a)]
               for G in range(g)]
    for grp in routers:   # local all-to-all
        for ri in range(a):
            for si in range(ri + 1, a):
                b.link(grp[ri], p + si, grp[si], p + ri + 1)
    targets = _dragonfly_targets(g, a * h)
    slots: list[dict[int, list[int]]] = []
    for G in range(g):
        by_target: dict[int, list[int]] = {}
        for j, T in enumerate(targets[G]):
            by_target.setdefault(T, []).append(j)
        slots.append(by_target)
    gbase = p + a   # first global port
    for G in range(g):
        for T, js in slots[G].items():
            if T < G:
                continue
            back = slots[T][G]
            if len(back) != len(js):   # pragma: no cover - construction invariant
                raise TopologyError(f"{gen}: internal error, groups {G} and {T} disagree")
            for j, jt in zip(js, back):
                b.link(routers[G][j // h], gbase + j % h, routers[T][jt // h], gbase + jt % h)
    for grp in routers:
        for router in grp:
            for port in range(1, p + 1):
                b.link(router, port, b.host(), 1)
    return b.done()


# -------------------------------------------------------------------- torus
def torus(dims: tuple[int, ...] = (4, 4, 4), hosts_per_switch: int = 1, *, wrap: bool = True,
          width: str = DEFAULT_WIDTH, speed: str = DEFAULT_SPEED) -> Topology:
    """A 2-D or 3-D torus (or mesh with ``wrap=False``) of switches.

    Parameters
    ----------
    dims : list of int
        Switches along each dimension, 2 or 3 entries (``(4, 4, 4)`` or the
        text ``"4x4x4"``), each >= 1.
    hosts_per_switch : int
        CAs per switch.
    wrap : bool
        Wrap-around cables (torus); False gives a mesh.
    width, speed : str
        Link width and speed of every cable.

    Notes
    -----
    Every switch has hosts_per_switch + 2*len(dims) ports: ports
    1..hosts_per_switch hold CAs; dimension d (0-based) uses port
    ``hosts + 2d + 1`` towards coordinate +1 and ``hosts + 2d + 2`` towards
    -1, and a cable joins the + port of c to the - port of c+1. A dimension of
    size k >= 3 has k cables per ring (k-1 without wrap); size 2 has a single
    cable (not two parallel ones; the other two ports stay free); size 1 has
    none. Switches are created in lexicographic coordinate order and named
    ``sw-x-y[-z]`` with 0-based coordinates, CAs ``node042 HCA-1``.

    Examples
    --------
    >>> torus((4, 4, 4)).summary()["links"]
    256
    """
    gen = "torus"
    dims = _ints(gen, "dims", dims)
    if len(dims) not in (2, 3):
        raise TopologyError(f"{gen}: dims must have 2 or 3 entries (a 2-D or 3-D torus), "
                            f"got {list(dims)}")
    hps = _int(gen, "hosts_per_switch", hosts_per_switch)
    nd = len(dims)
    nports = hps + 2 * nd
    n_sw = math.prod(dims)
    _check_size(gen, n_sw, n_sw * hps, nports)
    name = f"torus-{'x'.join(map(str, dims))}-h{hps}" + ("" if wrap else "-mesh")
    b = Builder(name, width, speed, n_sw * hps)
    coords = list(itertools.product(*map(range, dims)))
    sw = {c: b.switch(nports, "sw-" + "-".join(map(str, c))) for c in coords}
    for c in coords:
        for d, k in enumerate(dims):
            if c[d] + 1 < k or (wrap and k > 2):
                nb = c[:d] + ((c[d] + 1) % k,) + c[d + 1:]
                b.link(sw[c], hps + 2 * d + 1, sw[nb], hps + 2 * d + 2)
    for c in coords:
        for port in range(1, hps + 1):
            b.link(sw[c], port, b.host(), 1)
    return b.done()

#: generator name (as on the command line, kebab-case) -> function
GENERATORS = {
    "fat-tree": fat_tree,
    "single-switch": single_switch,
    "xgft": xgft,
    "leaf-spine": leaf_spine,
    "dragonfly": dragonfly,
    "torus": torus,
}
