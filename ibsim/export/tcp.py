"""TCP delivery that counts as sent only what the server confirmed, within a bounded wait.

Bytes written into a socket are not delivered: the kernel accepts them
whether or not the server will ever read them. :class:`TcpSender` therefore
confirms data the only way TCP can, by an orderly close:

1. it writes payloads on one connection, keeping them (bounded) until confirmed;
2. every ``confirm_bytes`` bytes or ``confirm_every`` seconds (and at the end)
   it shuts the connection down for writing (``shutdown(SHUT_WR)``: a FIN after
   the last byte) and goes on with a new connection;
3. the old connection is confirmed when the server has closed its side too
   (EOF), our FIN is acknowledged and no reset arrived. A server closes with a
   FIN only if it had read everything it received (Linux resets a socket
   closed with unread data, and resets data that arrives after a close), so
   every byte written on a confirmed connection was read by the server process.

A connection that is reset, or that the server closes before all data was
acknowledged, confirms nothing: its payloads are written again on the next
connection (at least once: duplicates are possible; carbon keeps the last
value per series and timestamp, so re-sent points change nothing). A
connection still open at the end, whose close could not be completed, leaves
its payloads *unconfirmed* (maybe delivered, maybe not).

Stalls are bounded: waiting on a server that makes no progress (a connect
that does not complete, a socket the server does not read, a close it does not
answer, retries at the end) is charged to one budget of ``deliver_timeout``
seconds for the whole run, close included. Waiting while the server reads
(backpressure) is free. Once the budget is spent the sender no longer waits:
it writes what the socket takes, checks confirmations without blocking, and
what does not fit in the buffer is dropped (never written) or left
unconfirmed (written, no longer kept for a resend), both counted.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import logging
import os
import select
import socket
import struct
import termios
import time
from typing import Callable, Iterable

from .options import Option, duration, integer
from .transports import _SLICE_S, Backoff, ErrorLog, StallBudget, failure_kind

__all__ = ["TcpSender", "DELIVERY_OPTIONS", "tcp_sender"]

log = logging.getLogger("ibsim.export")

_TCP_CLOSE, _TCP_TIME_WAIT = 7, 6       # linux/tcp_states.h
_MAX_CLOSING = 2                        # connections awaiting their confirmation at once


def _outq(sock: socket.socket) -> int:
    """Bytes written but not yet acknowledged by the peer (SIOCOUTQ); -1 if unknown."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return -1


def _tcp_state(sock: socket.socket) -> int | None:
    """The kernel's TCP state (``tcpi_state``), or None where TCP_INFO is missing."""
    opt = getattr(socket, "TCP_INFO", None)
    if opt is None:
        return None
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, opt, 8)[0]
    except OSError:
        return None


class _Conn:
    """One connection: its socket and what was written on it since it opened.

    ``count`` counts every payload completely written; ``kept`` holds the
    payloads still kept for a resend (``kept_count`` of them; the buffer
    bound may release the oldest, which then cannot be re-sent).
    """

    def __init__(self, sock: socket.socket, since: float):
        self.sock = sock
        self.since = since
        self.connected = False
        self.count = 0
        self.nbytes = 0
        self.kept: collections.deque = collections.deque()
        self.kept_count = 0
        self.eof = False
        self.error: BaseException | None = None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass


class TcpSender:
    """A TCP sender with confirmed delivery, reconnect with backoff and a bounded buffer.

    Parameters
    ----------
    host, port : str, int
    name : str
        Exporter name, for log lines.
    buffer : int
        Most counts (points, documents) kept in memory: waiting to be written
        plus written but not yet confirmed. Past it the oldest are released:
        written ones stay countable but cannot be re-sent; unwritten ones are
        dropped.
    timeout : float
        Seconds for one connect attempt.
    deliver_timeout : float
        The stall budget of the run (s): see the module docstring.
    confirm_bytes : int
        Rotate (close orderly, to confirm) a connection after this many bytes.
    confirm_every : float
        ... or after this many seconds.
    errors : ErrorLog, optional
    backoff : Backoff, optional

    Attributes
    ----------
    sent : int
        Counts confirmed by an orderly close.
    unconfirmed : int
        Counts written on a connection whose close could not be confirmed and
        that could not be (or were no longer kept to be) re-sent.
    dropped : int
        Counts never written (buffer overflow, or still waiting at the end).
        (Counts written once on a failed connection and then given up are
        ``unconfirmed``: the server may have read them.)
    resent : int
        Counts written again after the connection they were on failed.
    reconnects : int
        Connections opened after a failure.
    transmitted : int
        Counts completely written into a socket so far, re-sends included
        (what left the process, confirmed or not; for timing, not accounting).
    """

    def __init__(self, host: str, port: int, *, name: str, buffer: int, timeout: float = 10.0,
                 deliver_timeout: float = 5.0, confirm_bytes: int = 16_000_000,
                 confirm_every: float = 10.0, errors=None, backoff=None,
                 clock: Callable[[], float] = time.monotonic):
        self.host, self.port, self.name = host, int(port), name
        self.limit = int(buffer)
        self.timeout = float(timeout)
        self.confirm_bytes = int(confirm_bytes)
        self.confirm_every = float(confirm_every)
        self.clock = clock
        self.errors = errors or ErrorLog(name)
        self.backoff = backoff or Backoff(clock=clock)
        self.budget = StallBudget(deliver_timeout, clock)
        # (payload, count, written before on a connection that failed), not yet fully written
        self.pending: collections.deque = collections.deque()
        self.n_pending = 0
        self.offset = 0                 # bytes of pending[0] already written on ``cur``
        self.cur: _Conn | None = None
        self.closing: collections.deque = collections.deque()  # shut down, awaiting confirmation
        self.sent = self.unconfirmed = self.dropped = self.resent = self.reconnects = 0
        self.transmitted = 0            # counts completely written into a socket, re-sends included
        self._failed = False            # the last connection failed: the next one is a reconnect
        self._connected_once = False
        self._stall_logged = False
        self._addr = None

    # ------------------------------------------------------------------ public
    @property
    def buffered(self) -> int:
        """Counts held in memory: waiting plus kept for a resend."""
        return self.n_pending + sum(c.kept_count for c in self._conns())

    def send(self, chunks: Iterable[tuple[bytes, int]]) -> None:
        """Queue ``(payload, count)`` chunks and send what the connection allows."""
        released = 0
        for data, count in chunks:
            self.pending.append((data, count, False))
            self.n_pending += count
            if self.buffered > self.limit:
                self.flush()           # a server that reads drains it; otherwise release the oldest
                released += self._trim()
        if released:
            self.errors.error("buffer_full", f"buffer of {self.limit} full while {self.host}:{self.port} "
                              f"is away or slow; releasing the oldest")
        self.flush()

    def flush(self, force: bool = False) -> bool:
        """Write what is waiting and check confirmations; True when nothing waits to be written.

        Without ``force`` no connection is attempted before the backoff delay has passed.
        """
        self._poll_closing()
        if self.cur is not None and self.cur.connected and self._peer_closed(self.cur):
            self._failed = True          # the server went away: the next connection is a reconnect
            self._rotate(force=True)     # confirm what it read before closing, or resend
        while True:
            can_rotate = True
            if self.cur is not None and self.offset == 0 and self._due(self.cur):
                can_rotate = self._rotate()
            if not self.pending:
                return True
            if self.cur is None and not self._connect(force):
                return False
            if not self.cur.connected and not self._finish_connect():
                return False
            if not self._write(stop_when_due=can_rotate):
                return False
            if not can_rotate:
                return not self.pending

    def close(self, timeout: float | None = None) -> None:
        """Deliver and confirm what is left within the remaining stall budget, then close.

        A server never reached during the run gets one last try without waiting.
        ``timeout`` (s), if given, lowers the remaining budget.
        """
        if timeout is not None:
            self.budget.left = min(self.budget.left, float(timeout))
        first = True
        while True:
            self.flush(force=True)
            if self.cur is not None and not self.pending and self.offset == 0:
                self._rotate(force=True)
            self._settle()
            if not (self.pending or self.cur or self.closing):
                break
            if not self._connected_once or self.budget.exhausted:
                break
            if self.cur is None and self.pending and not first:
                self.budget.sleep(max(self.backoff.wait_s(), 0.05))
            first = False
        for conn in self._conns():
            self.unconfirmed += conn.count
            conn.close()
        self.cur = None
        self.closing.clear()
        if self.n_pending:
            self.errors.error("closed_with_data", f"{self.n_pending} not written to "
                              f"{self.host}:{self.port} before close")
            while self.pending:
                self._release(0)

    # ------------------------------------------------------------------ writing
    def _conns(self) -> list[_Conn]:
        return list(self.closing) + ([self.cur] if self.cur is not None else [])

    def _due(self, conn: _Conn) -> bool:
        """Time to close ``conn`` orderly to confirm what it carries."""
        if conn.count == 0 or not conn.connected:
            return False
        return (conn.nbytes >= self.confirm_bytes or 2 * conn.kept_count >= self.limit
                or self.clock() - conn.since >= self.confirm_every)

    def _write(self, stop_when_due: bool = True) -> bool:
        """Write pending payloads on ``cur`` until none is left or (``stop_when_due``) a rotation is due.

        Returns False when blocked past the budget or when the connection failed.
        """
        conn = self.cur
        while self.pending:
            data, count, _ = self.pending[0]
            try:
                n = conn.sock.send(memoryview(data)[self.offset:])
            except BlockingIOError:
                if self.budget.wait(write=[conn.sock]):
                    continue
                if self.budget.exhausted:
                    self._stalled()
                    return False
                continue
            except OSError as exc:
                self._lost(conn, exc)
                return False
            self.offset += n
            if self.offset < len(data):
                continue
            self.pending.popleft()
            self.n_pending -= count
            self.offset = 0
            conn.kept.append((data, count))
            conn.kept_count += count
            conn.count += count
            conn.nbytes += len(data)
            self.transmitted += count
            if stop_when_due and self._due(conn):
                return True
        return True

    def _trim(self) -> int:
        """Release the oldest payloads past the bound; returns the counts released."""
        released = 0
        for conn in self._conns():                     # oldest connection first: kept payloads
            while self.buffered > self.limit and conn.kept:
                _, c = conn.kept.popleft()
                conn.kept_count -= c
                released += c
        while self.buffered > self.limit and len(self.pending) > (1 if self.offset else 0):
            released += self._release(1 if self.offset else 0)   # never a payload half written
        return released

    def _release(self, i: int) -> int:
        """Give up ``pending[i]``: dropped if never written, else unconfirmed; returns its count."""
        _, c, again = self.pending[i]
        del self.pending[i]
        self.n_pending -= c
        if again:
            self.unconfirmed += c
        else:
            self.dropped += c
        return c

    def _stalled(self) -> None:
        if not self._stall_logged:
            self._stall_logged = True
            self.errors.error("stalled", f"{self.host}:{self.port} made no progress for "
                              f"{self.budget.total:g} s in all; no longer waiting for it")

    # ------------------------------------------------------------------ connections
    def _connect(self, force: bool) -> bool:
        if not (force or self.backoff.ready()):
            return False
        try:
            if self._addr is None:
                self._addr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
            family, type_, proto, _, addr = self._addr
            s = socket.socket(family, type_, proto)
        except OSError as exc:
            self._fail(exc)
            return False
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        err = s.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self._fail(OSError(err, os.strerror(err)))
            return False
        self.cur = _Conn(s, self.clock())
        return self._finish_connect()

    def _finish_connect(self) -> bool:
        """Complete a non-blocking connect (waits within the budget and ``timeout``)."""
        conn = self.cur
        while True:
            _, w, _ = select.select([], [conn.sock], [], 0)
            if w:
                err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self.cur = None
                    conn.close()
                    self._fail(OSError(err, os.strerror(err)))
                    return False
                break
            if self.clock() - conn.since > self.timeout:
                self.cur = None
                conn.close()
                self._fail(socket.timeout("connect timed out"))
                return False
            if not self.budget.wait(write=[conn.sock]) and self.budget.exhausted:
                self._stalled()
                return False
        conn.connected = True
        conn.since = self.clock()
        if self._failed and self._connected_once:
            self.reconnects += 1
            log.info("exporter %s: reconnected to %s:%s", self.name, self.host, self.port)
        self._failed = False
        self._connected_once = True
        self.backoff.succeeded()
        return True

    def _peer_closed(self, conn: _Conn) -> bool:
        """True if the server closed (EOF, or a reset kept in ``conn.error``); its data is ignored."""
        if conn.error is not None:
            return True
        try:
            for _ in range(64):          # a server that talks is read, within bounds
                if not select.select([conn.sock], [], [], 0)[0]:
                    break
                if conn.sock.recv(65536) == b"":
                    conn.eof = True
                    return True
        except OSError as exc:
            conn.error = exc
            return True
        return conn.eof

    def _rotate(self, force: bool = False) -> bool:
        """Shut ``cur`` down for writing; its confirmation is checked on later flushes.

        At most ``_MAX_CLOSING`` connections await confirmation: past it the
        oldest is waited for (within the budget). Returns False (``cur`` kept)
        if there is no room and ``force`` is not set.
        """
        conn = self.cur
        if conn is None:
            return True
        if not conn.connected:
            self.cur = None
            conn.close()
            return True
        while len(self.closing) >= _MAX_CLOSING:
            if not self._settle_one(self.closing[0]) and not force:
                return False
            if force:
                break
        self.cur = None
        self.offset = 0                  # a half-written payload goes again whole on the next connection
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._lost(conn, exc)
            return True
        self.closing.append(conn)
        self._poll_closing()
        return True

    def _confirmation(self, conn: _Conn) -> tuple[bool | None, BaseException | None]:
        """``(True, None)`` confirmed, ``(False, exc)`` failed, ``(None, None)`` not known yet."""
        if not self._peer_closed(conn):
            return None, None
        state = _tcp_state(conn.sock)
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err and conn.error is None:
            conn.error = ConnectionResetError(err, os.strerror(err))
        if conn.error is not None:
            return False, conn.error
        if state is not None and state not in (_TCP_CLOSE, _TCP_TIME_WAIT):
            return None, None                          # our FIN (and data) not acknowledged yet
        return True, None

    def _poll_closing(self) -> None:
        """Settle, without waiting, the closing connections whose outcome is known."""
        for conn in list(self.closing):
            ok, exc = self._confirmation(conn)
            if ok is not None:
                self._settled(conn, ok, exc)

    def _settle_one(self, conn: _Conn) -> bool:
        """Wait (charged when nothing moves) for one closing connection; True once settled."""
        while True:
            ok, exc = self._confirmation(conn)
            if ok is not None:
                self._settled(conn, ok, exc)
                return True
            before = _outq(conn.sock)
            if conn.eof:                               # waiting for the ack of our FIN
                t = self.clock()
                time.sleep(min(0.01, self.budget.left))
                moved = _outq(conn.sock) < before
                if not moved:
                    self.budget.charge(self.clock() - t)
                if self.budget.exhausted:
                    return False
                continue
            t = self.clock()
            ready = select.select([conn.sock], [], [], min(_SLICE_S, self.budget.left))[0]
            if not ready and not (0 <= _outq(conn.sock) < before):
                self.budget.charge(self.clock() - t)
            if self.budget.exhausted and not ready:
                self._stalled()
                return False

    def _settle(self) -> None:
        """Wait within the budget for every closing connection."""
        for conn in list(self.closing):
            if conn in self.closing and not self._settle_one(conn):
                break

    def _settled(self, conn: _Conn, ok: bool, exc: BaseException | None) -> None:
        self.closing.remove(conn)
        conn.close()
        if ok:
            self.sent += conn.count
            return
        self.errors.error(_kind(exc), f"{self.host}:{self.port}: data not confirmed: {exc}")
        self._failed = True
        self._resend(conn)

    def _resend(self, conn: _Conn) -> None:
        """Queue the kept payloads of a failed connection again, ahead of newer ones."""
        self.unconfirmed += conn.count - conn.kept_count   # released by the bound: cannot be re-sent
        front = [(data, c, True) for data, c in conn.kept]
        if self.offset:                                  # keep the half-written payload first on cur
            head = self.pending.popleft()
            self.pending.extendleft(reversed(front))
            self.pending.appendleft(head)
        else:
            self.pending.extendleft(reversed(front))
        self.n_pending += conn.kept_count
        self.resent += conn.kept_count
        conn.kept.clear()
        conn.kept_count = 0
        conn.count = 0

    def _lost(self, conn: _Conn, exc: BaseException) -> None:
        """The current connection failed: resend what it carried, back off."""
        if conn is self.cur:
            self.offset = 0                            # a half-written payload goes again whole
        self._resend(conn)
        if conn is self.cur:
            self.cur = None
        conn.close()
        self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.errors.error(_kind(exc), f"{self.host}:{self.port}: {exc}")
        self._failed = True
        self.backoff.failed()


def _kind(exc: BaseException | None) -> str:
    return failure_kind(exc) if exc is not None else "unconfirmed"




#: options of every exporter with a :class:`TcpSender` (see :func:`tcp_sender`)
DELIVERY_OPTIONS = {
    "deliver_timeout": Option(5.0, duration, "most time in all the run waits on a server that makes "
                                             "no progress, close included (s)"),
    "confirm_every": Option(10.0, duration, "close the connection orderly this often to confirm "
                                            "what it carried (s)"),
    "confirm_bytes": Option(16_000_000, integer(1), "... or after this many bytes"),
}


def tcp_sender(options, *, name: str, errors: ErrorLog) -> TcpSender:
    """A :class:`TcpSender` from an exporter's options (host, port, buffer, timeout, DELIVERY_OPTIONS)."""
    return TcpSender(options.host, options.port, name=name, buffer=options.buffer, timeout=options.timeout,
                     deliver_timeout=options.deliver_timeout, confirm_bytes=options.confirm_bytes,
                     confirm_every=options.confirm_every, errors=errors)
