"""What monitoring costs the machine: CPU seconds and file descriptors from ``/proc``.

CPU time is ``utime + stime`` of ``/proc/PID/stat`` (fields 14 and 15), plus
``cutime + cstime`` (16, 17) when the children a collector waited for count
too (the tools a sweep runs). A thread's own time comes from
``/proc/PID/task/TID/stat``. :class:`Sampler` records both for a set of
processes every ``every`` seconds in a thread.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["cpu_seconds", "thread_cpu_seconds", "fd_count", "tree_pids", "Sampler"]

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: str) -> list[str] | None:
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return None
    # the command name (field 2) may hold blanks and parentheses: split after the last ')'
    return text[text.rfind(")") + 2:].split()


def cpu_seconds(pid: int, children: bool = True) -> float | None:
    """CPU seconds (user + system) of process ``pid``, plus its waited-for children's; None once gone."""
    f = _stat_fields(f"/proc/{pid}/stat")
    if f is None:
        return None
    # after the name: state=0, ..., utime=11, stime=12, cutime=13, cstime=14
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / _TICK


def thread_cpu_seconds(tid: int, pid: int | None = None) -> float | None:
    """CPU seconds of one thread (``threading.Thread.native_id``) of ``pid`` (default: this process)."""
    f = _stat_fields(f"/proc/{pid or os.getpid()}/task/{tid}/stat")
    if f is None:
        return None
    return (int(f[11]) + int(f[12])) / _TICK


def fd_count(pid: int) -> int | None:
    """Open file descriptors of ``pid`` (entries of ``/proc/PID/fd``); None once gone or not readable."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Sampler:
    """Sample CPU seconds and descriptors of named processes every ``every`` seconds.

    Parameters
    ----------
    cpu : callable
        Returns ``{name: cpu seconds}`` of the monitoring processes right now.
    fds : callable, optional
        Returns ``{name: open descriptors}``.
    every : float
        Sampling interval (s).

    Attributes
    ----------
    samples : list of (unix time, {name: cpu s}, {name: fds})
    """

    def __init__(self, cpu, fds=None, every: float = 0.5):
        self.cpu = cpu
        self.fds = fds or (lambda: {})
        self.every = every
        self.samples: list[tuple[float, dict, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ibsim-bench-sampler", daemon=True)

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def sample(self) -> tuple[float, dict, dict]:
        s = (time.time(), self.cpu(), self.fds())
        self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.sample()

    def cpu_between(self, t0: float, t1: float) -> float:
        """CPU seconds all processes used between unix times ``t0`` and ``t1`` (nearest samples)."""
        if not self.samples:
            return 0.0
        a = min(self.samples, key=lambda s: abs(s[0] - t0))
        b = min(self.samples, key=lambda s: abs(s[0] - t1))
        return sum(max(b[1].get(k, 0.0) - a[1].get(k, 0.0), 0.0) for k in b[1])

    def fd_series(self, name: str) -> list[tuple[float, int]]:
        """``[(unix time, descriptors)]`` of one process."""
        return [(t, f[name]) for t, _c, f in self.samples if f.get(name) is not None]


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (``/proc/PID/task/*/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out
