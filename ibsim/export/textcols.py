"""Vectorised text for wire formats: numbers to ASCII, lines from columns, path-safe names.

Exporters turn whole counter rows (70k ports) into text without a Python
object per value. A line is laid out as a ``uint8`` matrix, one row per line,
its columns the line's fields side by side (NUL-padded); squeezing out the
NUL bytes (``m[m != 0]``) gives the concatenated lines in order, because text
fields never contain NUL. Used through :mod:`ibsim.export`.
"""

from __future__ import annotations

import datetime as _dt
from typing import Sequence

import numpy as np

from ..fabric.names import node_names as _node_names
from ..fabric.names import path_segment

__all__ = ["node_names", "path_segment", "port_labels", "selected_ports", "iso_utc", "ndigits", "ascii_uint",
           "ascii_decimal", "text_matrix", "assemble", "squeeze", "squeeze_chunks"]

_ZERO = 48   # ord("0")
_DOT = 46    # ord(".")


def _digits(v: np.ndarray, width: int) -> np.ndarray:
    """(width, n) ASCII digits of uint64 ``v``, most significant first, zero-filled."""
    v = v.copy()
    out = np.empty((width, v.size), dtype=np.uint8)
    ten = np.uint64(10)
    q = np.empty_like(v)
    for j in range(width - 1, -1, -1):       # loops over digit positions, never values
        np.floor_divide(v, ten, out=q)
        out[j] = v - q * ten + np.uint64(_ZERO)
        v, q = q, v
    return out


def _ndigits(vmax) -> int:
    return len(str(int(vmax)))


_POW10 = np.array([10**k for k in range(1, 20)], dtype=np.uint64)


def ndigits(values: np.ndarray) -> np.ndarray:
    """Number of decimal digits of each non-negative integer (0 has one), as int64."""
    return np.searchsorted(_POW10, np.asarray(values, dtype=np.uint64), side="right").astype(np.int64) + 1


def ascii_uint(values: np.ndarray, return_lengths: bool = False):
    """Decimal text of non-negative integers as an ``(n, w)`` uint8 matrix.

    Digits are right-aligned and left-padded with NUL; ``w`` is the width of
    the largest value (at least 1). With ``return_lengths`` also the number of
    digits of each value.

    >>> m = ascii_uint(np.array([0, 7, 1234], dtype=np.uint64))
    >>> [bytes(r).replace(b"\\0", b"") for r in m]
    [b'0', b'7', b'1234']
    """
    v = np.ascontiguousarray(values, dtype=np.uint64).ravel()
    if v.size == 0:
        m = np.zeros((0, 1), dtype=np.uint8)
        return (m, np.zeros(0, dtype=np.int64)) if return_lengths else m
    width = _ndigits(v.max())
    d = _digits(v, width)
    nd = ndigits(v)
    if width > 1:
        d[np.arange(width)[:, None] < (width - nd)[None, :]] = 0
    return (d.T, nd) if return_lengths else d.T


def ascii_decimal(values: np.ndarray, decimals: int = 3) -> np.ndarray:
    """Fixed-point text of non-negative floats, trailing zeros (and a bare dot) dropped.

    Negative values and NaN are written as 0. Values are rounded to
    ``decimals`` places.

    >>> m = ascii_decimal(np.array([0.0, 2.5, 1234.0625, 0.001]), 3)
    >>> [bytes(r).replace(b"\\0", b"") for r in m]
    [b'0', b'2.5', b'1234.062', b'0.001']
    """
    x = np.nan_to_num(np.asarray(values, dtype=np.float64).ravel(), nan=0.0, posinf=0.0)
    if decimals <= 0:
        return ascii_uint(np.rint(np.maximum(x, 0)).astype(np.uint64))
    scaled = np.rint(np.maximum(x, 0.0) * 10.0 ** decimals).astype(np.uint64)
    if scaled.size == 0:
        return np.zeros((0, 1), dtype=np.uint8)
    width = max(_ndigits(scaled.max()), decimals + 1)
    d = _digits(scaled, width)
    k = width - decimals
    ip, fp = d[:k], d[k:]
    if k > 1:
        lead = np.logical_and.accumulate(ip[:-1] == _ZERO, axis=0)
        ip[:-1][lead] = 0
    trail = np.logical_and.accumulate((fp == _ZERO)[::-1], axis=0)[::-1]
    fp[trail] = 0
    dot = np.where(trail[0], 0, _DOT).astype(np.uint8)[None, :]
    return np.vstack([ip, dot, fp]).T


def text_matrix(strings: Sequence) -> np.ndarray:
    """``(n, w)`` uint8 matrix of ASCII/UTF-8 strings, NUL-padded on the right."""
    arr = np.asarray([s.encode() if isinstance(s, str) else bytes(s) for s in strings], dtype=np.bytes_) \
        if not (isinstance(strings, np.ndarray) and strings.dtype.kind == "S") else strings
    if arr.size == 0:
        return np.zeros((0, 1), dtype=np.uint8)
    w = max(arr.dtype.itemsize, 1)
    return np.ascontiguousarray(arr).view(np.uint8).reshape(arr.size, w)


def assemble(columns: Sequence, n: int) -> np.ndarray:
    """Lay fields side by side: each column is ``bytes`` (same for every line) or an (n, w) matrix."""
    widths = [len(c) if isinstance(c, (bytes, bytearray)) else c.shape[1] for c in columns]
    m = np.empty((n, sum(widths)), dtype=np.uint8)
    at = 0
    for c, w in zip(columns, widths):         # loops over fields, never lines
        if isinstance(c, (bytes, bytearray)):
            m[:, at:at + w] = np.frombuffer(bytes(c), dtype=np.uint8)
        else:
            m[:, at:at + w] = c
        at += w
    return m


def squeeze(m: np.ndarray, keep: np.ndarray | None = None) -> memoryview:
    """The lines of a text matrix concatenated: the bytes where ``keep`` (default: non-NUL)."""
    return memoryview(m[m != 0 if keep is None else keep])


def squeeze_chunks(m: np.ndarray, batch: int, keep: np.ndarray | None = None,
                   lengths: np.ndarray | None = None) -> list[tuple[memoryview, int]]:
    """Like :func:`squeeze`, cut into chunks of at most ``batch`` lines: ``[(bytes-like, n_lines)]``.

    ``lengths`` (bytes kept per line), when known, saves counting them.
    """
    n = m.shape[0]
    if n == 0:
        return []
    if keep is None:
        keep = m != 0
    data = memoryview(m[keep])
    if n <= batch:
        return [(data, n)]
    if lengths is None:
        lengths = keep.sum(axis=1, dtype=np.int64)
    ends = np.cumsum(lengths)
    cuts = list(range(batch, n, batch)) + [n]
    out, start, prev = [], 0, 0
    for c in cuts:                              # loops over chunks
        stop = int(ends[c - 1])
        out.append((data[start:stop], c - prev))
        start, prev = stop, c
    return out


def node_names(fabric) -> np.ndarray:
    """A unique, path-safe name per node (``(n_nodes,)`` array of str).

    The node description with every run of characters other than letters,
    digits, ``_`` and ``-`` replaced by ``_`` (``"node01 HCA-1"`` ->
    ``node01_HCA-1``); where that is empty or shared by several nodes (real
    fabrics give every switch the same description) the GUID
    (``0x0002c90300a1b2c0``) instead. Computed once per fabric: see
    :func:`ibsim.fabric.names.node_names` (``path_safe=True``).
    """
    return _node_names(fabric, path_safe=True)


def port_labels(fabric, ports: np.ndarray) -> np.ndarray:
    """``p01``-style labels (zero-padded so they sort as text) for port indices, as bytes."""
    width = max(2, len(str(int(fabric.port_num.max())))) if fabric.n_ports else 2
    nums = np.char.zfill(fabric.port_num[ports].astype("S3"), width)
    return np.char.add(b"p", nums)


def selected_ports(fabric, which: str) -> np.ndarray:
    """Port indices: ``cabled`` (the rows of counters.csv) or ``all``."""
    if which == "all":
        return np.arange(fabric.n_ports)
    return np.flatnonzero(fabric.peer_of_port >= 0)


def iso_utc(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds, ``2025-01-01T00:00:00.000Z``."""
    return (_dt.datetime.fromtimestamp(epoch, _dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"))
