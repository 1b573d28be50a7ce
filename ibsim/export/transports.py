"""Transports that survive a server going away: TCP with reconnect, UDP, HTTP POST.

Shared by the exporters through :mod:`ibsim.export`. Nothing here raises on
a network failure: failures are counted, logged once per kind (see
:class:`ErrorLog`), and the data waits in a bounded buffer (oldest dropped
first, counted) until a reconnect succeeds. Reconnects back off
exponentially.

What each sender counts (``sent`` is always what the other side confirmed):

* :class:`~ibsim.export.tcp.TcpSender`: ``sent`` = written on a connection
  whose orderly close completed; ``unconfirmed`` = written, close not
  confirmed, not re-sent; ``resent`` = written again after a failed
  connection (at least once); ``dropped`` = never written.
* :class:`HttpPoster`: ``sent`` = answered 2xx; ``resent`` = posted again
  after an attempt that may have reached the server; ``dropped`` = rejected
  (4xx) or never posted.
* :class:`UdpSender`: nothing can be confirmed: every datagram handed to the
  kernel is ``unconfirmed``; ``dropped`` = refused by the kernel.

Every sender shares the run's stall budget (``deliver_timeout``, see
:class:`~ibsim.export.tcp.StallBudget`): the total time it may hold the run
up waiting on a server that makes no progress, close included.
"""

from __future__ import annotations

import collections
import errno
import logging
import select
import socket
import time
import urllib.error
import urllib.request
from typing import Callable, Iterable

__all__ = ["ErrorLog", "Backoff", "StallBudget", "UdpSender", "HttpPoster", "failure_kind"]

log = logging.getLogger("ibsim.export")

_SLICE_S = 0.25                         # one wait of a sender; a wait without progress is charged


def failure_kind(exc: BaseException) -> str:
    """A short stable name for a failure: the errno name (``ECONNREFUSED``) or the type."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return failure_kind(exc.reason)
    if isinstance(exc, socket.timeout):
        return "timeout"
    no = getattr(exc, "errno", None)
    if no is not None and no in errno.errorcode:
        return errno.errorcode[no]
    return type(exc).__name__


class ErrorLog:
    """Log the first failure of each kind for one exporter; count every failure.

    ``summary()`` (called at close) logs how many of each were not logged.
    """

    def __init__(self, name: str, logger: logging.Logger = log):
        self.name = name
        self.logger = logger
        self.counts: collections.Counter = collections.Counter()

    def error(self, kind: str, message: str) -> None:
        """Count a failure; log it if it is the first of its kind."""
        self.counts[kind] += 1
        if self.counts[kind] == 1:
            self.logger.warning("exporter %s: %s [%s] (repeats are counted, not logged)",
                                self.name, message, kind)

    @property
    def total(self) -> int:
        """Failures counted so far."""
        return sum(self.counts.values())

    def summary(self) -> None:
        """Log the number of repeats of each kind (once, at close)."""
        rep = {k: n - 1 for k, n in self.counts.items() if n > 1}
        if rep:
            self.logger.warning("exporter %s: repeated failures not logged: %s", self.name,
                                ", ".join(f"{k} x{n}" for k, n in sorted(rep.items())))


class Backoff:
    """Exponential retry delay: ``first``, doubling up to ``cap`` seconds."""

    def __init__(self, first: float = 0.5, cap: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.first, self.cap, self.clock = first, cap, clock
        self.delay = first
        self.next_try = 0.0

    def ready(self) -> bool:
        """True when a new attempt is allowed."""
        return self.clock() >= self.next_try

    def wait_s(self) -> float:
        """Seconds until the next attempt is allowed."""
        return max(0.0, self.next_try - self.clock())

    def failed(self) -> None:
        """Record a failure: the next attempt waits, and the wait after that doubles."""
        self.next_try = self.clock() + self.delay
        self.delay = min(self.delay * 2, self.cap)

    def succeeded(self) -> None:
        """Record a success: the next failure waits ``first`` again."""
        self.delay = self.first
        self.next_try = 0.0


class StallBudget:
    """Seconds a sender may still wait on a server that makes no progress (one per run).

    Parameters
    ----------
    seconds : float
        The whole budget (s).
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.total = float(seconds)
        self.left = float(seconds)
        self.clock = clock

    @property
    def exhausted(self) -> bool:
        return self.left <= 0.0

    @property
    def spent(self) -> float:
        """Seconds charged so far."""
        return self.total - self.left

    def charge(self, seconds: float) -> None:
        self.left = max(0.0, self.left - max(0.0, seconds))

    def wait(self, read=(), write=()) -> bool:
        """Wait up to one slice for a socket; a slice that ends with none ready is charged.

        Returns False at once (no wait) when the budget is spent.
        """
        s = min(_SLICE_S, self.left)
        if s <= 0:
            return False
        t = self.clock()
        r, w, _ = select.select(list(read), list(write), [], s)
        if r or w:
            return True
        self.charge(self.clock() - t)
        return False

    def sleep(self, seconds: float) -> None:
        """Sleep (charged: nothing moves while we sleep), at most what is left."""
        s = min(seconds, self.left)
        if s > 0:
            time.sleep(s)
            self.charge(s)


class _Buffer:
    """Bounded FIFO of ``(payload, count)``; drops the oldest payloads past ``limit`` counts."""

    def __init__(self, limit: int):
        self.limit = int(limit)
        self.items: collections.deque = collections.deque()
        self.count = 0
        self.dropped = 0

    def push(self, payload, count: int) -> int:
        """Append; returns how many counts were dropped to stay within the limit."""
        self.append(payload, count)
        return self.trim()

    def append(self, payload, count: int) -> None:
        self.items.append((payload, count))
        self.count += count

    def trim(self) -> int:
        """Drop the oldest payloads past the limit; returns the counts dropped."""
        lost = 0
        while self.count > self.limit and self.items:
            _, c = self.items.popleft()
            self.count -= c
            lost += c
        self.dropped += lost
        return lost

    def pop(self) -> None:
        _, c = self.items.popleft()
        self.count -= c


class UdpSender:
    """Fire-and-forget datagrams: nothing is buffered, nothing confirmed (counted ``unconfirmed``)."""

    def __init__(self, host: str, port: int, *, name: str, errors: ErrorLog | None = None):
        self.addr = (host, int(port))
        self.name = name
        self.errors = errors or ErrorLog(name)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sent = 0                   # UDP confirms nothing
        self.unconfirmed = 0
        self.dropped = 0
        self.resent = 0
        self.reconnects = 0

    def send(self, datagrams: Iterable[bytes]) -> None:
        """Send each datagram (``unconfirmed``); one the kernel refuses is counted as dropped."""
        for d in datagrams:
            try:
                self.sock.sendto(d, self.addr)
                self.unconfirmed += 1
            except OSError as exc:
                self.dropped += 1
                self.errors.error(failure_kind(exc), f"udp {self.addr[0]}:{self.addr[1]}: {exc}")

    def close(self, timeout: float | None = None) -> None:
        self.sock.close()


class HttpPoster:
    """POST JSON bodies one by one, keeping unsent ones (bounded) across failures.

    ``sent`` counts bodies the server answered with 2xx. A request that fails
    after it may have reached the server (a timeout, a reset, a 5xx) is posted
    again (``resent``: at least once). The time failed requests and retries at
    close take is charged to the stall budget (``deliver_timeout``); once it is
    spent no further request is made and what is left is dropped at close.
    """

    def __init__(self, url: str, *, name: str, buffer: int, timeout: float = 5.0,
                 deliver_timeout: float = 5.0, errors: ErrorLog | None = None,
                 backoff: Backoff | None = None):
        self.url = url
        self.name = name
        self.timeout = float(timeout)
        self.errors = errors or ErrorLog(name)
        self.backoff = backoff or Backoff()
        self.budget = StallBudget(deliver_timeout)
        self.buf = _Buffer(buffer)
        self.sent = 0
        self.unconfirmed = 0
        self.resent = 0
        self.reconnects = 0
        self._failing = False
        self._ok_once = False
        self._head_tried = False         # the first body may have reached the server already
        self._stall_logged = False

    @property
    def dropped(self) -> int:
        return self.buf.dropped

    def send(self, bodies: Iterable[bytes]) -> None:
        """Queue bodies and post what the server accepts now."""
        lost = sum(self.buf.push(b, 1) for b in bodies)
        if lost:
            self.errors.error("buffer_full", f"buffer of {self.buf.limit} full while {self.url} "
                              f"is away; dropping the oldest")
        self.flush()

    def flush(self, force: bool = False) -> bool:
        """Post buffered bodies in order; True when none is left."""
        if self.buf.items and not (force or self.backoff.ready()):
            return False
        while self.buf.items:
            if self.budget.exhausted:
                self._stalled()
                return False
            body, _ = self.buf.items[0]
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            t = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=min(self.timeout, self.budget.left)) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500:           # the server rejects this body: do not retry it
                    self.errors.error(failure_kind(exc), f"{self.url} rejected an event: {exc}")
                    self._pop()
                    self.buf.dropped += 1
                    continue
                self._fail(exc, t)
                return False
            except (OSError, urllib.error.URLError) as exc:
                self._fail(exc, t)
                return False
            if self._failing:
                self.reconnects += 1
                self._failing = False
            self.backoff.succeeded()
            self._ok_once = True
            if self._head_tried:
                self.resent += 1
            self._pop()
            self.sent += 1
        return True

    def close(self, timeout: float | None = None) -> None:
        """Post what is buffered within the remaining stall budget (one try if never reached)."""
        if timeout is not None:
            self.budget.left = min(self.budget.left, float(timeout))
        while not self.flush(force=True) and self._ok_once and not self.budget.exhausted:
            self.budget.sleep(max(self.backoff.wait_s(), 0.05))
        if self.buf.count:
            self.errors.error("closed_with_data", f"{self.buf.count} buffered not delivered to "
                              f"{self.url} before close")
            self.buf.dropped += self.buf.count
            self.buf.items.clear()
            self.buf.count = 0

    def _pop(self) -> None:
        self.buf.pop()
        self._head_tried = False

    def _fail(self, exc: BaseException, t0: float) -> None:
        self.errors.error(failure_kind(exc), f"{self.url}: {exc}")
        self.budget.charge(time.monotonic() - t0)
        if failure_kind(exc) not in ("ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH"):
            self._head_tried = True          # it may have reached the server: a retry is a resend
        self._failing = True
        self.backoff.failed()

    def _stalled(self) -> None:
        if not self._stall_logged:
            self._stall_logged = True
            self.errors.error("stalled", f"{self.url} made no progress for {self.budget.total:g} s "
                              f"in all; no more requests")

