"""Direct-network generators: dragonfly and torus (routers that also hold CAs).

"""

from __future__ import annotations

import itertools
import math

from ..errors import TopologyError
from ..linkrate import DEFAULT_SPEED, DEFAULT_WIDTH
from .builder import Builder, _check_size, _digits, _int, _ints
from .graph import Topology

__all__ = ["dragonfly", "torus"]


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
