"""Topology generators: plain functions with deterministic GUIDs and descriptions.

Every generator takes ``speed=`` and ``width=`` (default 4x EDR) and returns a
validated :class:`~ibsim.topology.graph.Topology`. GUIDs use the Mellanox OUI
(00:02:c9): switch *i* gets ``0x0002c90302000000 + i``; CA *i* gets
``0x0002c90301000000 + 8 i`` and its ports ``node GUID + port``, as on
ConnectX HCAs. Host descriptions read ``node042 HCA-1``.
"""


from __future__ import annotations

import functools
import itertools
import math
from typing import Callable

from ..errors import ScenarioError, TopologyError, lookup
from ..linkrate import DEFAULT_SPEED, DEFAULT_WIDTH
from ..params import Param, boolean, check, describe, int_list, integer, optional, text
from .builder import (CA_GUID_BASE, CA_GUID_STEP, MAX_GENERATED_CAS, MAX_SWITCH_PORTS,  # noqa: F401
                      SWITCH_GUID_BASE, Builder, _check_radix, _check_size, _digits, _int, _ints)
from .direct import dragonfly, torus
from .graph import Topology

__all__ = ["GENERATORS", "Generator", "generator_params", "fat_tree", "single_switch", "xgft", "leaf_spine", "dragonfly",
           "torus", "Builder"]

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


# ---------------------------------------------------------------- registry
class Generator:
    """A topology generator: its function and its declared Params (one per keyword).

    Calling it calls the function; ``inspect.signature`` sees the function's.
    The scenario's ``topology:`` parameters and the ``topo generate`` flags
    are both built from :attr:`params`.
    """

    def __init__(self, func: Callable[..., Topology], params: dict[str, Param]):
        self.func = func
        self.params = params
        functools.update_wrapper(self, func)

    def __call__(self, *args, **kwargs) -> Topology:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Generator({self.func.__name__})"


def _ratio(v):
    """``oversubscription``: a ratio as text (``"3:1"``) or a number (the generator checks it)."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ScenarioError(f"expected a ratio such as '2:1' or a number, got {describe(v)}")
    return v


_ratio.cli = str
_INT = optional(integer())
_RATE = {"width": Param(DEFAULT_WIDTH, text, "link width of every cable (1x, 4x, ...)"),
         "speed": Param(DEFAULT_SPEED, text, "link speed of every cable (SDR ... XDR)")}

#: generator name (as on the command line, kebab-case) -> Generator
GENERATORS = {
    "fat-tree": Generator(fat_tree, {
        "radix": Param(36, integer(), "ports per switch", unit="ports"),
        "levels": Param(2, integer(), "switch levels"), **_RATE}),
    "single-switch": Generator(single_switch, {
        "ports": Param(8, integer(), "switch ports", unit="ports"),
        "hosts": Param(None, _INT, "CAs (default: every port)", unit="CAs"), **_RATE}),
    "xgft": Generator(xgft, {
        "m": Param((18, 36), int_list(), "children per switch at each level, e.g. 18,36"),
        "w": Param((1, 18), int_list(), "parents per node at each level, e.g. 1,18"),
        "parallel": Param(None, optional(int_list()), "parallel cables per level (PGFT)"),
        "hosts_per_leaf": Param(None, _INT, "CAs per leaf (default m1)", unit="CAs"),
        "radix": Param(None, _INT, "ports of every switch (default: what each needs)", unit="ports"),
        **_RATE}),
    "leaf-spine": Generator(leaf_spine, {
        "leaves": Param(8, integer(), "leaf switches"),
        "spines": Param(4, integer(), "spine switches"),
        "hosts_per_leaf": Param(None, _INT, "CAs per leaf (default: non-blocking)", unit="CAs"),
        "uplinks_per_spine": Param(1, integer(), "cables from each leaf to each spine"),
        "radix": Param(None, _INT, "ports of every switch (default: what each needs)", unit="ports"),
        "oversubscription": Param(None, optional(_ratio), "blocking factor d:u, e.g. 2:1"), **_RATE}),
    "dragonfly": Generator(dragonfly, {
        "a": Param(4, integer(), "routers per group"),
        "p": Param(2, integer(), "CAs per router", unit="CAs"),
        "h": Param(2, integer(), "global cables per router"),
        "g": Param(None, _INT, "groups (default a*h+1)"), **_RATE}),
    "torus": Generator(torus, {
        "dims": Param((4, 4, 4), int_list(), "switches along each dimension, e.g. 4x4x4"),
        "hosts_per_switch": Param(1, integer(), "CAs per switch", unit="CAs"),
        "wrap": Param(True, boolean, "wrap-around cables (false: a mesh)"), **_RATE}),
}


def generator_params(name: str, given, *, path: tuple = (), doc=None) -> tuple[str, dict]:
    """Validate the parameters of generator ``name`` (``_`` read as ``-``); ``(name, params)``.

    Only the given parameters are returned (lists as tuples); the generator
    applies its defaults and checks ranges itself.
    """
    key = str(name).replace("_", "-")
    gen = lookup(GENERATORS, key, "topology generator")
    return key, check(f"generator {key!r}", given, gen.params, path=path, doc=doc, fill=False)
