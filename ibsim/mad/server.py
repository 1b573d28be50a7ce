"""Sockets and the server thread; all protocol decisions live in :mod:`ibsim.mad.dispatch`.

Local mode (default): datagram sockets in the Linux abstract namespace,
``@BASE:ctl`` for control and ``@BASE:out<i>`` per client slot, where
``BASE`` is the socket name (``IBSIM_SOCKNAME``, default ``sim``). The
trailing NUL is part of every name, as libumad2sim binds them. A client's
data socket is ``@BASE:in<pid>``.

UDP mode: the control socket on ``host:PORT`` and slot *i* on
``host:PORT+1+i``; ``host`` is 127.0.0.1 unless told otherwise. A client's
data socket is (its IP, the port it sent as CONNECT id).

One thread runs an epoll loop over the control socket, the slot sockets
and a wake-up pipe (traps queued by the simulation's tick thread). When the
C extension :mod:`ibsim.mad._fastpath` is built (``pip install`` compiles
it where a C compiler exists), that loop waits and reads in C with the GIL
released and answers directed-route SMP Gets of NodeInfo, NodeDescription,
PortInfo, SwitchInfo and LFT blocks itself, exactly as the dispatcher would;
every other frame goes to the dispatcher. Otherwise the loop is Python. Every
socket is non-blocking: a client that stops reading loses its frames
instead of stalling the others, and a client that has gone away
(``ECONNREFUSED``) loses its slot. Slot sockets are bound on first use and
kept, so more than ten clients work.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import threading
import time

from .dispatch import Dispatcher

try:
    from . import _fastpath
except ImportError:                  # no C compiler at install time: the Python loop serves
    _fastpath = None

__all__ = ["MadServer", "abstract_name", "fast_path_available", "start_mad_server"]

log = logging.getLogger(__name__)

_BATCH = 16                       # datagrams read from one socket per readiness event
_DEAD = (errno.ECONNREFUSED, errno.ENOTCONN, errno.ENOENT, errno.ECONNRESET)


def fast_path_available() -> bool:
    """Whether the C loop and fast path (:mod:`ibsim.mad._fastpath`) are built."""
    return _fastpath is not None


def abstract_name(text: str) -> bytes:
    """An abstract unix socket address as umad2sim spells it: NUL + text + NUL."""
    return b"\0" + text.encode() + b"\0"


class MadServer:
    """Serve a simulation's fabric to umad2sim clients (OpenSM, infiniband-diags).

    Parameters
    ----------
    sim : Simulation
        The live simulation (its lock guards every fabric access).
    sockname : str, optional
        Base of the abstract socket names (default ``$IBSIM_SOCKNAME`` or ``sim``).
    udp : int, optional
        Serve over UDP from this base port instead of unix sockets.
    host : str
        UDP bind address (loopback by default; the protocol has no authentication).
    max_clients : int
        Client slots (each one socket, bound when first used).
    spin_s : float
        Seconds to keep polling without sleeping after traffic (0: always
        sleep in epoll). Spinning shortens a lone client's round trip but
        burns a core that OpenSM and the tick loop need on a small machine:
        on 2 cores it made ``ibnetdiscover`` ~10 % faster and OpenSM's
        bring-up ~15 % slower, so it is off by default. Python loop only.
    fast : bool, optional
        Use the C loop and fast path (default: when built, unless the
        environment sets ``IBSIM_MAD_FASTPATH=0``). ``True`` when it is not
        built raises :class:`ImportError`.
    """

    def __init__(self, sim, *, sockname: str | None = None, udp: int | None = None,
                 host: str = "127.0.0.1", max_clients: int = 256, spin_s: float = 0.0,
                 fast: bool | None = None):
        if fast and _fastpath is None:
            raise ImportError("ibsim.mad._fastpath is not built (reinstall ibsim where a C compiler exists)")
        if fast is None:
            fast = _fastpath is not None and os.environ.get("IBSIM_MAD_FASTPATH", "1") != "0"
        self.fast = bool(fast)
        self.sim = sim
        self.base = sockname if sockname is not None else os.environ.get("IBSIM_SOCKNAME", "sim")
        self.udp = udp
        self.host = host
        if udp is not None and udp + max_clients >= 65536:
            max_clients = max(1, 65535 - udp)
        self.dispatcher = Dispatcher(sim, max_clients=max_clients)
        self._slots: dict[int, socket.socket] = {}
        self._fd_slot: dict[int, int] = {}
        self._closing = False
        #: seconds to keep polling (not sleeping) after traffic; 0 disables
        self.spin_s = spin_s
        self._thread: threading.Thread | None = None
        self._ep = select.epoll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        try:
            self._ctl = self._socket()
            self._ctl.bind(self._ctl_addr())
        except OSError:
            self._cleanup()
            raise
        self._loop = None
        if self.fast:
            d = self.dispatcher
            self._loop = _fastpath.Loop(d.clients.slots, sim.lock, self._fast_sync, sim)
            self._loop.add_fd(self._ctl.fileno(), -1)
            self._loop.add_fd(self._wake_r, -1)
        else:
            self._ep.register(self._ctl.fileno(), select.EPOLLIN)
            self._ep.register(self._wake_r, select.EPOLLIN)
        self.dispatcher.wakeup = self._wake
        self.dispatcher.reclaim = self._reclaim

    # ------------------------------------------------------------ addresses
    def _socket(self) -> socket.socket:
        fam = socket.AF_INET if self.udp is not None else socket.AF_UNIX
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setblocking(False)
        return s

    def _ctl_addr(self):
        if self.udp is not None:
            return (self.host, self.udp)
        return abstract_name(f"{self.base}:ctl")

    def _slot_addr(self, slot: int):
        if self.udp is not None:
            return (self.host, self.udp + 1 + slot)
        return abstract_name(f"{self.base}:out{slot}")

    def _client_addr(self, src, ident: int):
        if self.udp is not None:
            if not 0 < ident < 65536:
                raise ValueError(f"bad UDP port {ident}")
            return (src[0], ident)
        return abstract_name(f"{self.base}:in{ident}")

    @property
    def address(self) -> str:
        """Human-readable control address."""
        if self.udp is not None:
            return f"udp {self.host}:{self.udp}"
        return f"@{self.base}:ctl"

    # ------------------------------------------------------------ lifecycle
    def start(self) -> MadServer:
        """Start the server thread (returns self)."""
        if self._thread is None:
            run = self._run_fast if self._loop is not None else self._run
            self._thread = threading.Thread(target=run, name=f"ibsim-mad-{self.base}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close every socket (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._cleanup()

    def _cleanup(self) -> None:
        self.dispatcher.close()
        for s in list(self._slots.values()):
            s.close()
        self._slots.clear()
        self._fd_slot.clear()
        if getattr(self, "_loop", None) is not None:
            self._loop.close()
        if getattr(self, "_ctl", None) is not None:
            self._ctl.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._ep.close()

    def __enter__(self) -> MadServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    # ------------------------------------------------------------ loop
    def _run(self) -> None:
        ep = self._ep
        spin = self.spin_s
        clock = time.perf_counter
        busy_until = 0.0
        while not self._closing:
            try:
                events = ep.poll(0) if spin else None
                # after traffic, poll without sleeping for a moment: a client waiting
                # for our answer sends its next request within microseconds
                while not events and clock() < busy_until:
                    events = ep.poll(0)
                if not events:
                    events = ep.poll(1.0)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                if self._closing:
                    break
                raise
            for fd, _mask in events:
                if not self._on_ready(fd):
                    break
            if spin:
                busy_until = clock() + spin

    def _fast_sync(self) -> None:
        """Called by the C loop, lock held, when the engine replaced its LFT or LID array."""
        v = self.dispatcher.view
        v.sync()
        self._loop.tables(v.fast_tables())

    def _run_fast(self) -> None:
        loop = self._loop
        stats = self.dispatcher.stats
        while not self._closing:
            try:
                slow, ready, dead, answered, dropped = loop.run(1000)
            except InterruptedError:
                continue
            except Exception:
                if self._closing:
                    break
                log.exception("MAD server: C loop failed; going on")
                time.sleep(0.01)
                continue
            if answered:
                stats["frames"] += answered
                stats["answered"] += answered
            if dropped:
                stats["dropped"] += dropped
            for slot in dead:
                self._dead(slot)
            for slot, buf in slow:
                if not self._guarded(self._serve_frame, slot, buf):
                    return
            for fd in ready:
                if not self._on_ready(fd):
                    return

    def _guarded(self, fn, *args) -> bool:
        """Run one piece of service; an error is logged, never fatal. False: closing after it."""
        try:
            fn(*args)
        except Exception:
            if self._closing:
                return False
            log.exception("MAD server: error in %s%r", fn.__name__, args[:1])
        return True

    def _on_ready(self, fd: int) -> bool:
        """Serve a readable fd: control socket, wake-up pipe or a slot socket (Python loop)."""
        if fd == self._ctl.fileno():
            return self._guarded(self._on_control)
        if fd == self._wake_r:
            return self._guarded(self._on_wake)
        slot = self._fd_slot.get(fd)
        return True if slot is None else self._guarded(self._on_data, slot)

    def _serve_frame(self, slot: int, buf: bytes) -> None:
        out = self.dispatcher.frame(slot, buf)
        if out:
            self._send(out, slot)

    def _on_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        if not self._closing:
            self._send(self.dispatcher.pending())

    def _on_control(self) -> None:
        d = self.dispatcher
        try:
            buf, src = self._ctl.recvfrom(4096)
        except OSError:                                     # EAGAIN, or an ICMP error (UDP)
            return
        reply, client, frames = d.control(buf, src, self._client_addr)
        if reply is not None:
            if client is not None and not self._attach(client):
                d.drop_client(client.slot)
                reply = bytearray(reply)
                reply[8:12] = b"\0\0\0\0"                  # type 0: ERROR
                reply = bytes(reply)
            try:
                self._ctl.sendto(reply, src)
            except OSError as exc:
                log.debug("control reply to %r failed: %s", src, exc)
                if client is not None:
                    d.drop_client(client.slot)
        self._send(frames)

    def _attach(self, client) -> bool:
        """Bind (first time) and connect the slot's socket to the client's data socket."""
        s = self._slots.get(client.slot)
        try:
            if s is None:
                s = self._socket()
                try:
                    s.bind(self._slot_addr(client.slot))
                except OSError:
                    s.close()
                    raise
                self._slots[client.slot] = s
                self._fd_slot[s.fileno()] = client.slot
                if self._loop is not None:
                    self._loop.add_fd(s.fileno(), client.slot)
                else:
                    self._ep.register(s.fileno(), select.EPOLLIN)
            else:
                self._drain(s)
            s.connect(client.addr)
        except OSError as exc:
            log.warning("cannot attach client %d at %r: %s", client.slot, client.addr, exc)
            return False
        return True

    @staticmethod
    def _drain(s: socket.socket) -> None:
        """Discard what a slot's previous owner left queued."""
        for _ in range(1024):
            try:
                s.recv(4096)
            except OSError:
                return

    def _on_data(self, slot: int) -> None:
        # Read what is queued (up to _BATCH datagrams), answering each at once so the
        # client can work on one answer while we compute the next.
        s = self._slots[slot]
        for _ in range(_BATCH):
            try:
                buf = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _DEAD:
                    self._dead(slot)
                return
            self._serve_frame(slot, buf)

    def _send(self, frames, sender: int | None = None) -> None:
        for slot, frame in frames:
            s = self._slots.get(slot)
            if s is None:
                continue
            try:
                s.send(frame)
            except BlockingIOError:
                self.dispatcher.stats["dropped"] += 1      # the client is not reading
            except OSError as exc:
                if exc.errno not in _DEAD:
                    log.debug("send to client %d failed: %s", slot, exc)
                    continue
                self._dead(slot)
                if sender is not None and slot != sender:  # forwarded to a dead client: 110
                    bounce = self.dispatcher.undeliverable(frame)
                    if bounce is not None:
                        self._send(((sender, bounce),))

    def _reclaim(self) -> None:
        """Free the slots of clients whose data socket is gone (local mode can tell)."""
        if self.udp is not None:
            return
        for c in self.dispatcher.clients.clients():
            s = self._slots.get(c.slot)
            if s is None:
                continue
            try:
                s.connect(c.addr)                           # refused once the name is gone
            except OSError:
                self._dead(c.slot)

    def _dead(self, slot: int) -> None:
        if self.dispatcher.clients.get(slot) is not None:
            log.info("client %d seems to be dead; slot freed", slot)
            self.dispatcher.drop_client(slot)


def start_mad_server(sim, sockname: str | None = None, udp: int | None = None, *,
                     host: str = "127.0.0.1", max_clients: int = 256, fast: bool | None = None) -> MadServer:
    """Serve ``sim`` to umad2sim clients in a background thread; ``.close()`` stops it.

    Parameters
    ----------
    sim : Simulation
        The live simulation. Run its ticks in another thread (``sim.run``);
        the server takes ``sim.lock`` around every access.
    sockname : str, optional
        ``IBSIM_SOCKNAME`` of the clients (default: that variable, or ``sim``).
    udp : int, optional
        Base UDP port (clients set ``IBSIM_SERVER_NAME``/``IBSIM_SERVER_PORT``).
    host : str
        UDP bind address (default loopback).
    fast : bool, optional
        C loop and fast path (default: when built).

    Examples
    --------
    >>> from ibsim import Simulation, compile_fabric, fat_tree
    >>> srv = start_mad_server(Simulation(compile_fabric(fat_tree(4, 2))), sockname="doc")  # doctest: +SKIP
    >>> srv.close()                                                                       # doctest: +SKIP
    """
    return MadServer(sim, sockname=sockname, udp=udp, host=host, max_clients=max_clients, fast=fast).start()

