"""Transports that survive a server going away: TCP with reconnect, UDP, HTTP POST.

Shared by the exporters through :mod:`ibsim.export`. Nothing here raises on
a network failure: failures are counted, logged once per kind (see
:class:`ErrorLog`), and the data waits in a bounded buffer (oldest dropped
first, counted) until a reconnect succeeds. Reconnects back off
exponentially.
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

__all__ = ["ErrorLog", "Backoff", "TcpSender", "UdpSender", "HttpPoster", "failure_kind"]

log = logging.getLogger("ibsim.export")


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


def _drain_then_drop(sender, timeout: float, reached: bool, where: str) -> None:
    """Retry ``sender.flush`` for up to ``timeout`` s (one try if the server was never
    reached during the run), then count what is still buffered as dropped."""
    deadline = time.monotonic() + (timeout if reached else 0.0)
    while not sender.flush(force=True):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(sender.backoff.wait_s() or 0.05, left, 1.0))
    buf = sender.buf
    if buf.count:
        sender.errors.error("closed_with_data", f"{buf.count} buffered not delivered to {where} before close")
        buf.dropped += buf.count
        buf.items.clear()
        buf.count = 0


class TcpSender:
    """A persistent TCP connection with reconnect, backoff and a bounded buffer.

    Parameters
    ----------
    host, port : str, int
    name : str
        Exporter name, for log lines.
    buffer : int
        Most counts (points, events) kept while the server is away; past it
        the oldest payloads are dropped and counted in ``dropped``.
    timeout : float
        Seconds for a connect and for one ``sendall`` of a payload.
    errors : ErrorLog, optional

    Notes
    -----
    Delivery is at least once: a payload cut by a failure is sent again
    whole on the next connection (carbon and JSON-lines receivers discard a
    partial last line of a dead connection). Before each send the socket is
    polled, so a server that closed the connection (killed, restarted) is
    noticed before data is written into a dead socket.
    """

    def __init__(self, host: str, port: int, *, name: str, buffer: int, timeout: float = 10.0,
                 errors: ErrorLog | None = None, backoff: Backoff | None = None):
        self.host, self.port, self.name = host, int(port), name
        self.timeout = float(timeout)
        self.errors = errors or ErrorLog(name)
        self.backoff = backoff or Backoff()
        self.buf = _Buffer(buffer)
        self.sock: socket.socket | None = None
        self.sent = 0
        self.reconnects = 0
        self._connected_once = False

    @property
    def dropped(self) -> int:
        """Counts dropped from the buffer (overflow, or left over at close)."""
        return self.buf.dropped

    def send(self, chunks: Iterable[tuple[bytes, int]]) -> None:
        """Queue ``(payload, count)`` chunks and send what the connection allows."""
        lost = 0
        for data, count in chunks:
            self.buf.append(data, count)
            if self.buf.count > self.buf.limit:
                self.flush()                 # a reachable server drains it; otherwise drop the oldest
                lost += self.buf.trim()
        if lost:
            self.errors.error("buffer_full", f"buffer of {self.buf.limit} full while "
                              f"{self.host}:{self.port} is away; dropping the oldest")
        self.flush()

    def flush(self, force: bool = False) -> bool:
        """Send buffered payloads; returns True when the buffer is empty.

        Without ``force`` no connection is attempted before the backoff delay
        has passed.
        """
        if not self.buf.items:
            return True
        if self.sock is not None and self._peer_closed():
            self._fail(ConnectionResetError(errno.ECONNRESET, "connection closed by the server"))
        if self.sock is None:
            if not (force or self.backoff.ready()) or not self._connect():
                return False
        while self.buf.items:
            data, count = self.buf.items[0]
            try:
                self.sock.sendall(data)
            except OSError as exc:
                self._fail(exc)
                return False
            self.buf.pop()
            self.sent += count
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Try for up to ``timeout`` seconds to send what is buffered, then close.

        A server that was never reached during the run gets a single last try.
        """
        _drain_then_drop(self, timeout, self._connected_once, f"{self.host}:{self.port}")
        self._drop_socket()

    # ------------------------------------------------------------------ internals
    def _connect(self) -> bool:
        try:
            s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            self._fail(exc)
            return False
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.sock = s
        if self._connected_once:
            self.reconnects += 1
            log.info("exporter %s: reconnected to %s:%s", self.name, self.host, self.port)
        self._connected_once = True
        self.backoff.succeeded()
        return True

    def _peer_closed(self) -> bool:
        """True if the server closed the connection (these servers never send data)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                return False
            return self.sock.recv(65536, socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _fail(self, exc: BaseException) -> None:
        self.errors.error(failure_kind(exc), f"{self.host}:{self.port}: {exc}")
        self._drop_socket()
        self.backoff.failed()

    def _drop_socket(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:  # pragma: no cover
                pass
            self.sock = None


class UdpSender:
    """Fire-and-forget datagrams: nothing is buffered (UDP cannot tell whether anyone listens)."""

    def __init__(self, host: str, port: int, *, name: str, errors: ErrorLog | None = None):
        self.addr = (host, int(port))
        self.name = name
        self.errors = errors or ErrorLog(name)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sent = 0
        self.dropped = 0
        self.reconnects = 0

    def send(self, datagrams: Iterable[bytes]) -> None:
        """Send each datagram; a failed one is counted as dropped."""
        for d in datagrams:
            try:
                self.sock.sendto(d, self.addr)
                self.sent += 1
            except OSError as exc:
                self.dropped += 1
                self.errors.error(failure_kind(exc), f"udp {self.addr[0]}:{self.addr[1]}: {exc}")

    def close(self, timeout: float = 0.0) -> None:
        self.sock.close()


class HttpPoster:
    """POST JSON bodies one by one, keeping unsent ones (bounded) across failures."""

    def __init__(self, url: str, *, name: str, buffer: int, timeout: float = 5.0,
                 errors: ErrorLog | None = None, backoff: Backoff | None = None):
        self.url = url
        self.name = name
        self.timeout = float(timeout)
        self.errors = errors or ErrorLog(name)
        self.backoff = backoff or Backoff()
        self.buf = _Buffer(buffer)
        self.sent = 0
        self.reconnects = 0
        self._failing = False
        self._ok_once = False

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
            body, _ = self.buf.items[0]
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500:           # the server rejects this body: do not retry it
                    self.errors.error(failure_kind(exc), f"{self.url} rejected an event: {exc}")
                    self.buf.pop()
                    self.buf.dropped += 1
                    continue
                self._fail(exc)
                return False
            except (OSError, urllib.error.URLError) as exc:
                self._fail(exc)
                return False
            if self._failing:
                self.reconnects += 1
                self._failing = False
            self.backoff.succeeded()
            self._ok_once = True
            self.buf.pop()
            self.sent += 1
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Try for up to ``timeout`` seconds to post what is buffered (once if never reached)."""
        _drain_then_drop(self, timeout, self._ok_once, self.url)

    def _fail(self, exc: BaseException) -> None:
        self.errors.error(failure_kind(exc), f"{self.url}: {exc}")
        self._failing = True
        self.backoff.failed()
