"""A small protocol client (no umad2sim): for tests, benchmarks and scripts.

It speaks to any server of the wire protocol (ours or the C ibsim):
connects over the control socket, then sends 288-byte frames and reads the
answers. One request in flight at a time.

Examples
--------
>>> with SimClient("mysim") as c:                                  # doctest: +SKIP
...     st, data = c.smp(C.ATTR_NODE_INFO, path=[0, 1])
...     C.NODE_INFO.decode(data)["NodeGUID"]
"""

from __future__ import annotations

import itertools
import os
import socket

from ..mad import codec as C
from ..mad.server import abstract_name

__all__ = ["MadError", "SimClient"]

_seq = itertools.count(1)


class MadError(Exception):
    """The server answered with carrier status 110 or nothing at all."""


class SimClient:
    """One attached client.

    Parameters
    ----------
    sockname : str
        ``IBSIM_SOCKNAME`` of the server (local mode).
    node : str
        ``SIM_HOST``: node id, GUID or description ("" = default attach point).
    issm : bool
        Connect as the SM client of the port.
    udp : (host, port), optional
        Use UDP mode instead.
    timeout : float
        Seconds to wait for any answer.
    """

    def __init__(self, sockname: str = "sim", node: str = "", *, issm: bool = False,
                 udp: tuple[str, int] | None = None, timeout: float = 2.0):
        self.sockname = sockname
        self.udp = udp
        self.timeout = timeout
        self._tid = itertools.count(1)
        fam = socket.AF_INET if udp else socket.AF_UNIX
        self.ctl_sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.data_sock = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            if udp:
                self.ctl_sock.bind(("127.0.0.1", 0))
                self.ctl_sock.connect(udp)
                self.data_sock.bind(("127.0.0.1", 0))
                self.ident = self.data_sock.getsockname()[1]
            else:
                self.ident = ((os.getpid() & 0x3FFFFF) << 10 | next(_seq) & 0x3FF) & 0x7FFFFFFF
                self.ctl_sock.bind(abstract_name(f"{sockname}:ctl{self.ident}"))
                self.ctl_sock.connect(abstract_name(f"{sockname}:ctl"))
                self.data_sock.bind(abstract_name(f"{sockname}:in{self.ident}"))
            self.ctl_sock.settimeout(timeout)
            self.data_sock.settimeout(timeout)
            self.slot = 0
            typ, data = self.ctl(C.CTL_CONNECT, C.pack_client_info(self.ident, 0, int(issm), node.encode()))
            if typ != C.CTL_CONNECT:
                raise MadError(f"CONNECT refused (node {node!r})")
            self.slot, _, _, nodeid = C.unpack_client_info(data)
            self.node_id = nodeid.decode()
            if udp:
                self.data_sock.connect((udp[0], udp[1] + 1 + self.slot))
            else:
                self.data_sock.connect(abstract_name(f"{sockname}:out{self.slot}"))
        except BaseException:
            self.ctl_sock.close()
            self.data_sock.close()
            raise

    # ------------------------------------------------------------ control
    def ctl(self, typ: int, data: bytes = b"", length: int | None = None) -> tuple[int, bytes]:
        """Send a control message; (reply type, 64 reply data bytes)."""
        n = len(data) if length is None else length
        self.ctl_sock.send(C.pack_ctl(self.slot, typ, n, data))
        try:
            rep = self.ctl_sock.recv(256)
        except TimeoutError:
            raise MadError(f"no reply to control type {typ}") from None
        _, _, rtyp, _, rdata = C.unpack_ctl(rep)
        return rtyp, rdata

    def close(self) -> None:
        """DISCONNECT and close the sockets."""
        try:
            self.ctl(C.CTL_DISCONNECT)
        except (OSError, MadError):
            pass
        self.ctl_sock.close()
        self.data_sock.close()

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ frames
    def send(self, frame: bytes) -> None:
        self.data_sock.send(frame)

    def recv(self) -> bytes:
        try:
            return self.data_sock.recv(4096)
        except TimeoutError:
            raise MadError("no answer") from None

    def rpc(self, frame: bytes) -> bytes:
        """Send a frame, return the answer frame (raise MadError on status 110)."""
        self.send(frame)
        rep = self.recv()
        if C.CARRIER.unpack_from(rep, 0)[4] == C.SIM_TIMEOUT:
            raise MadError("status 110: not delivered or not answered")
        return rep

    def tid(self) -> int:
        return next(self._tid)

    def smp(self, attr: int, mod: int = 0, *, path=None, lid: int | None = None,
            method: int = C.METHOD_GET, data: bytes = b"") -> tuple[int, bytes]:
        """An SMP Get/Set, directed (``path``: ports, first entry 0) or to ``lid``.

        Returns (MAD status without the D bit, 64 data bytes).
        """
        if lid is None:
            path = list(path or [0])
            mad = C.make_mad(C.CLASS_SMP_DR, method, attr, mod, tid=self.tid(), data=data,
                             hop_cnt=len(path) - 1, path=bytes(path))
            frame = C.pack_frame(mad, dlid=C.PERMISSIVE_LID, slid=C.PERMISSIVE_LID)
        else:
            mad = C.make_mad(C.CLASS_SMP_LID, method, attr, mod, tid=self.tid(), data=data)
            frame = C.pack_frame(mad, dlid=lid)
        rep = self.rpc(frame)
        h = C.unpack_header(rep)
        return h.mad_status & 0x7FFF, rep[C.OFF_DATA:C.OFF_DATA + 64]

    def perf(self, lid: int, attr: int, data: bytes = b"", *, method: int = C.METHOD_GET,
             mod: int = 0) -> tuple[int, bytes]:
        """A PerfMgt MAD to ``lid`` (QP1); returns (status, 128 data bytes)."""
        mad = C.make_mad(C.CLASS_PERF, method, attr, mod, tid=self.tid(), data=data)
        rep = self.rpc(C.pack_frame(mad, dlid=lid, dqp=1, sqp=1))
        h = C.unpack_header(rep)
        return h.mad_status, rep[C.OFF_PERF_DATA:C.OFF_PERF_DATA + 128]
