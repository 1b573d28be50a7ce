"""Traffic: jobs and their communication patterns.

A :class:`Job` picks a set of CAs, a pattern, an offered load per host (a
fraction of the host's link rate, or an absolute rate) and a time window.
A pattern turns the job's ``n`` hosts into demands: either explicit pairs
``(src, dst, fraction of the source's load)`` over host indices 0..n-1, or
:data:`DENSE`, meaning every host spreads its load evenly over all other
hosts of the job (handled in aggregate by the engine, never as n^2 pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from .errors import ScenarioError, lookup
from .params import (REQUIRED, Param, check, describe, duration, int_list, integer, list_of, name, name_pairs,
                     number, optional, rate)
from .units import parse_duration

__all__ = ["Job", "PATTERNS", "Pattern", "DENSE", "Pairs", "resolve_pattern", "JOB_PARAMS", "job_params",
           "redraw_interval"]


class _Dense:
    """Sentinel: every host sends to every other host of the job, evenly."""

    def __repr__(self) -> str:
        return "DENSE"


DENSE = _Dense()


@dataclass(frozen=True)
class Pairs:
    """Explicit demands over job host indices.

    Attributes
    ----------
    src, dst : ndarray of int64
        Host indices (0..n-1) of each pair.
    frac : ndarray of float64
        Fraction of the source's offered load sent on the pair; a source's
        fractions sum to at most 1.
    """

    src: np.ndarray
    dst: np.ndarray
    frac: np.ndarray

    def __post_init__(self):
        keep = self.src != self.dst
        if not keep.all():
            object.__setattr__(self, "src", self.src[keep])
            object.__setattr__(self, "dst", self.dst[keep])
            object.__setattr__(self, "frac", self.frac[keep])


def _full(src, dst, f=1.0) -> Pairs:
    src = np.asarray(src, dtype=np.int64)
    return Pairs(src, np.asarray(dst, dtype=np.int64), np.full(src.size, f, dtype=np.float64))


def pattern_all_to_all(n: int, rng, **_) -> _Dense:
    """Every host sends to every other host, load split evenly (MPI_Alltoall)."""
    return DENSE


def pattern_uniform(n: int, rng, **_) -> Pairs:
    """Each host sends to one uniformly random other host, redrawn every ``interval``."""
    if n < 2:
        return _full([], [])
    src = np.arange(n)
    off = rng.integers(1, n, size=n)
    return _full(src, (src + off) % n)


def pattern_permutation(n: int, rng, **_) -> Pairs:
    """A random permutation without fixed points: each host sends to exactly one other."""
    if n < 2:
        return _full([], [])
    perm = rng.permutation(n)
    fixed = np.flatnonzero(perm == np.arange(n))
    for i in fixed:                      # at most a few; swap with a neighbour
        j = (i + 1) % n
        perm[i], perm[j] = perm[j], perm[i]
    return _full(np.arange(n), perm)


def pattern_shift(n: int, rng, k: int = 1, **_) -> Pairs:
    """Host i sends to host (i + k) mod n."""
    src = np.arange(n)
    return _full(src, (src + int(k)) % max(n, 1))


def pattern_bit_complement(n: int, rng, **_) -> Pairs:
    """Host i sends to host n-1-i (the bit complement when n is a power of two)."""
    src = np.arange(n)
    return _full(src, n - 1 - src)


def pattern_incast(n: int, rng, targets: int = 1, **_) -> Pairs:
    """N -> 1 hotspot: the last ``targets`` hosts receive from all the others."""
    targets = int(targets)
    if not 1 <= targets < n:
        raise ScenarioError(f"incast needs 1 <= targets < hosts ({n}), got {targets}")
    src = np.arange(n - targets)
    return _full(src, n - targets + src % targets)


def pattern_ring_allreduce(n: int, rng, **_) -> Pairs:
    """Ring all-reduce in steady state: each host streams to its ring successor."""
    return pattern_shift(n, rng, 1)


def _grid(n: int, ndims: int) -> tuple[int, ...]:
    dims = [1] * ndims
    rest = n
    for i in range(ndims):
        want = round(rest ** (1 / (ndims - i)))
        d = max(1, want)
        while rest % d:
            d -= 1
        dims[i] = d
        rest //= d
    return tuple(sorted(dims, reverse=True))


def pattern_stencil(n: int, rng, dims=2, **_) -> Pairs:
    """Nearest-neighbour halo exchange on a 2D/3D grid (wrap-around).

    ``dims`` is 2 or 3 (grid shape chosen to factor n) or an explicit shape
    whose product is n. Each host sends 1/(2d) of its load to each neighbour.
    """
    shape = _grid(n, int(dims)) if isinstance(dims, (int, np.integer)) else tuple(int(x) for x in dims)
    if int(np.prod(shape)) != n or len(shape) not in (2, 3):
        raise ScenarioError(f"stencil grid {shape} must be 2D or 3D with {n} hosts in all")
    idx = np.arange(n).reshape(shape)
    srcs, dsts = [], []
    for axis in range(len(shape)):
        if shape[axis] == 1:
            continue
        for step in (1, -1):
            srcs.append(idx.ravel())
            dsts.append(np.roll(idx, step, axis=axis).ravel())
    if not srcs:
        return _full([], [])
    src, dst = np.concatenate(srcs), np.concatenate(dsts)
    return _full(src, dst, 1.0 / len(srcs))


def pattern_pairs(n: int, rng, pairs=(), **_) -> Pairs:
    """Explicit pairs of host indices (resolved from names by the job)."""
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return _full(arr[:, 0], arr[:, 1])


def _stencil_dims(v):
    """``dims``: 2 or 3 (an integer >= 2), or an explicit grid shape (a list of integers >= 1)."""
    if isinstance(v, (list, tuple)):
        return int_list(lo=1)(v)
    return integer(lo=2)(v)


_stencil_dims.cli = str


def _resolve_pairs(job: "Job", params: dict, host_index: dict | None) -> dict:
    """Host names of ``pairs`` -> host indices of the job."""
    if host_index is None:
        raise ScenarioError(f"job {job.name!r}: pairs need the job's host names")
    try:
        pairs = [(host_index[a], host_index[b]) for a, b in params.get("pairs", ())]
    except KeyError as exc:
        raise ScenarioError(f"job {job.name!r}: pair names host {exc.args[0]!r}, which is not "
                            f"among the job's hosts") from None
    except (TypeError, ValueError):
        raise ScenarioError(f"job {job.name!r}: pairs must be a list of [source, destination]") from None
    return {**params, "pairs": pairs}


@dataclass(frozen=True)
class Pattern:
    """A traffic pattern: its function and everything the scenario and the engine need to know.

    Parameters
    ----------
    func : callable
        ``func(n, rng, **params)`` -> :class:`Pairs` or :data:`DENSE`.
    params : dict of str to Param
        The pattern's own keys in a job (besides the common job keys).
    redraw : str, optional
        Name of the Param holding the redraw interval (s): the engine draws
        the pattern again every interval. None: drawn once per job start.
    resolve : callable, optional
        ``resolve(job, params, host_index) -> params`` run before ``func``
        (``pairs`` turns host names into job host indices).
    """

    func: Callable
    params: dict = field(default_factory=dict)
    redraw: str | None = None
    resolve: Callable | None = None

    def __call__(self, n: int, rng, **params):
        return self.func(n, rng, **params)


#: pattern name -> Pattern; a new pattern declared here is validated by the scenario as it is
PATTERNS: dict[str, Pattern] = {
    "uniform": Pattern(pattern_uniform, {
        "interval": Param(1.0, duration(positive=True), "how often destinations are redrawn", unit="s")},
        redraw="interval"),
    "permutation": Pattern(pattern_permutation),
    "shift": Pattern(pattern_shift, {
        "k": Param(1, integer(), "host i sends to host (i + k) mod n", unit="hosts")}),
    "bit_complement": Pattern(pattern_bit_complement),
    "all_to_all": Pattern(pattern_all_to_all),
    "incast": Pattern(pattern_incast, {
        "targets": Param(1, integer(lo=1), "hosts that receive (the last ones)", unit="hosts")}),
    "ring_allreduce": Pattern(pattern_ring_allreduce),
    "stencil": Pattern(pattern_stencil, {
        "dims": Param(2, _stencil_dims, "2 or 3 (grid factors n), or the grid shape")}),
    "pairs": Pattern(pattern_pairs, {
        "pairs": Param((), name_pairs, "[source, destination] host names")}, resolve=_resolve_pairs),
}


def _hosts(v):
    """``hosts``: ``all`` (None too), a count >= 2 picked with the seed, or a list of names."""
    if v is None or v == "all":
        return "all"
    if isinstance(v, bool) or not isinstance(v, (int, np.integer, list, tuple)):
        raise ScenarioError(f"expected 'all', a count or a list of hosts, got {describe(v)}")
    if isinstance(v, (int, np.integer)):
        if v < 2:
            raise ScenarioError(f"a job needs at least 2 hosts, got {v}")
        return v
    return list_of(name)(v)


#: keys every job takes, whatever its pattern (absent: the default; ``name`` defaults to job<i>)
JOB_PARAMS: dict[str, Param] = {
    "name": Param(None, name, "job name, unique in the scenario"),
    "pattern": Param(REQUIRED, name, "one of: " + ", ".join(PATTERNS)),
    "hosts": Param("all", _hosts, "all, a count or a list of node descriptions/GUIDs"),
    "load": Param(None, number(lo=0, hi=1, lo_open=True), "offered load per host, fraction of its link",
                  unit="fraction"),
    "rate": Param(None, rate, "offered load per host, e.g. 40Gbps", unit="bytes/s"),
    "start": Param(0.0, duration(), "when the job starts", unit="s"),
    "stop": Param(None, optional(duration()), "when the job stops (null: never)", unit="s"),
}


def job_params(pattern: str, given, *, path: tuple = (), doc=None) -> tuple[dict, dict]:
    """Validate a job's keys for ``pattern``: ``(job keys with defaults, given pattern parameters)``.

    The job's keys are :data:`JOB_PARAMS` plus the pattern's own Params. An
    unknown key names the closest valid one, or the patterns it belongs to.
    """
    spec = lookup(PATTERNS, pattern, "traffic pattern").params
    owners: dict[str, list] = {}
    for other, p in PATTERNS.items():
        for key in p.params:
            owners.setdefault(key, []).append(other)
    elsewhere = {k: ", ".join(v) for k, v in owners.items() if k not in spec}
    got = check(f"a job of pattern {pattern!r}", given, {**JOB_PARAMS, **spec}, path=path, doc=doc, fill=False,
                elsewhere=elsewhere)
    common = {k: got.get(k, p.default) for k, p in JOB_PARAMS.items()}
    return common, {k: v for k, v in got.items() if k in spec}


def redraw_interval(job: "Job") -> float | None:
    """Seconds between redraws of the job's pattern, or None when it is drawn once."""
    pattern = PATTERNS[job.pattern]
    if pattern.redraw is None:
        return None
    return parse_duration(job.params.get(pattern.redraw, pattern.params[pattern.redraw].default))


@dataclass(frozen=True)
class Job:
    """A traffic job.

    Parameters
    ----------
    name : str
    pattern : str
        One of :data:`PATTERNS`.
    hosts : "all", int or tuple of str
        All CAs, a count picked with the seed, or node descriptions/GUIDs.
    load : float, optional
        Offered load per host as a fraction of the host link's data rate.
    rate : float, optional
        Offered load per host in bytes/s (instead of ``load``).
    start_s, stop_s : float
        Active window in simulated seconds (``stop_s`` None: until the end).
    params : dict
        Pattern parameters (``k`` for shift, ``targets`` for incast, ``dims``
        for stencil, ``pairs`` for pairs, ``interval`` (s) for uniform).
    labels : mapping of str to str
        Who the job is, for metrics and reports (a Slurm job gives
        ``job_id``, ``job_name``, ``user``, ``nodes``); copied into a new dict
        of strings.
    announce : bool
        Whether the simulation emits ``job_start``/``job_stop`` events for
        the job (False when the caller announces it itself, as the Slurm
        layer does with ``job_start``/``job_end``/``job_requeue``).
    """

    name: str
    pattern: str
    hosts: object = "all"
    load: float | None = None
    rate: float | None = None
    start_s: float = 0.0
    stop_s: float | None = None
    params: dict = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    announce: bool = True

    def __post_init__(self):
        lookup(PATTERNS, self.pattern, "traffic pattern")
        if not isinstance(self.labels, Mapping):
            raise ScenarioError(f"job {self.name!r}: labels must be a mapping of names to strings, "
                                f"got {describe(self.labels)}")
        object.__setattr__(self, "labels", {str(k): str(v) for k, v in self.labels.items()})
        if (self.load is None) == (self.rate is None):
            raise ScenarioError(f"job {self.name!r}: give exactly one of 'load' (fraction of the host "
                                f"link rate) or 'rate' (e.g. 40Gbps)")
        if self.load is not None and not 0 < self.load <= 1:
            raise ScenarioError(f"job {self.name!r}: load must be in (0, 1], got {self.load}")
        if self.rate is not None and self.rate <= 0:
            raise ScenarioError(f"job {self.name!r}: rate must be positive")
        if self.stop_s is not None and self.stop_s <= self.start_s:
            raise ScenarioError(f"job {self.name!r}: stop ({self.stop_s}s) must be after start "
                                f"({self.start_s}s)")
        allowed = PATTERNS[self.pattern].params
        extra = set(self.params) - set(allowed)
        if extra:
            raise ScenarioError(f"job {self.name!r}: pattern {self.pattern!r} takes no parameter "
                                f"{sorted(extra)[0]!r}" + (f"; it takes: {', '.join(sorted(allowed))}"
                                                           if allowed else ""))

    @property
    def key(self) -> str:
        """The job's key in metrics: its ``job_id`` label, else its name."""
        return self.labels.get("job_id", self.name)

    def active(self, t: float) -> bool:
        """Whether the job runs at simulated time ``t`` (seconds)."""
        return t >= self.start_s and (self.stop_s is None or t < self.stop_s)


def resolve_pattern(job: Job, n: int, rng: np.random.Generator, host_index: dict | None = None):
    """Evaluate a job's pattern for ``n`` hosts; returns :class:`Pairs` or :data:`DENSE`."""
    pattern = PATTERNS[job.pattern]
    params = {k: v for k, v in job.params.items() if k != pattern.redraw}
    if pattern.resolve is not None:
        params = pattern.resolve(job, params, host_index)
    return pattern(n, rng, **params)
