"""Attached clients (umad2sim processes): slots, attach points, SM flags.

A client occupies a slot (its id goes into TID bits 48..63 of every request
it sends, so slots stay below 65536) and sits at one attach point: port 0
of a switch or the first port of a CA. At most one client per attach point
is the SM client (SET_ISSM); unsolicited MADs for that port go to it.
Pure bookkeeping: no sockets.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_SLOTS", "Client", "ClientTable"]

MAX_SLOTS = 65536


@dataclass
class Client:
    """One attached client.

    Attributes
    ----------
    slot : int
        Slot id (TID bits 48..63).
    ident : int
        The CONNECT ``id``: the pid (local mode) or the client's UDP data port.
    qp : int
        The CONNECT ``qp`` (0 from umad2sim).
    port : int
        Attach port index in the fabric.
    key : int
        :meth:`FabricView.attach_key` of the port (same for all ports of a switch).
    addr : object
        Where its data socket is: an abstract unix name or an (ip, port) pair.
    issm : bool
        Whether it is the SM client of its port.
    """

    slot: int
    ident: int
    qp: int
    port: int
    key: int
    addr: object
    issm: bool = False


class ClientTable:
    """Slots 0..max_clients-1 and who sits where.

    Parameters
    ----------
    view : FabricView
    max_clients : int
        Slot limit (umad2sim itself has none below 65536).
    """

    def __init__(self, view, max_clients: int = 256):
        if not 1 <= max_clients <= MAX_SLOTS:
            raise ValueError(f"max_clients must be 1..{MAX_SLOTS}, got {max_clients}")
        self.view = view
        self.max_clients = max_clients
        self.slots: list[Client | None] = []
        self._free: list[int] = []
        self.by_key: dict[int, list[int]] = {}
        self.sm_by_key: dict[int, int] = {}

    def __len__(self) -> int:
        return sum(c is not None for c in self.slots)

    def get(self, slot: int) -> Client | None:
        if 0 <= slot < len(self.slots):
            return self.slots[slot]
        return None

    def add(self, ident: int, qp: int, port: int, addr) -> Client | None:
        """Take the lowest free slot; None when all are taken."""
        if self._free:
            self._free.sort()
            slot = self._free.pop(0)
        elif len(self.slots) < self.max_clients:
            slot = len(self.slots)
            self.slots.append(None)
        else:
            return None
        key = self.view.attach_key(port)
        c = Client(slot, ident, qp, port, key, addr)
        self.slots[slot] = c
        self.by_key.setdefault(key, []).append(slot)
        return c

    def remove(self, slot: int) -> Client | None:
        """Free a slot (its SM role goes with it); returns the client it held."""
        c = self.get(slot)
        if c is None:
            return None
        self.slots[slot] = None
        self._free.append(slot)
        lst = self.by_key.get(c.key)
        if lst is not None:
            if slot in lst:
                lst.remove(slot)
            if not lst:
                del self.by_key[c.key]
        if self.sm_by_key.get(c.key) == slot:
            del self.sm_by_key[c.key]
        return c

    def set_sm(self, slot: int, on: bool) -> bool:
        """Make a client the SM client of its port (or not); False if another holds it."""
        c = self.get(slot)
        if c is None:
            return False
        cur = self.sm_by_key.get(c.key)
        if on:
            if cur is not None and cur != slot:
                return False
            self.sm_by_key[c.key] = slot
            c.issm = True
        else:
            if cur == slot:
                del self.sm_by_key[c.key]
            c.issm = False
        return True

    def sm_client_at(self, port: int) -> Client | None:
        """The SM client attached at the attach point that owns port index ``port``."""
        slot = self.sm_by_key.get(self.view.attach_key(port))
        return self.slots[slot] if slot is not None else None

    def has_sm(self) -> bool:
        return bool(self.sm_by_key)

    def at(self, port: int) -> list[Client]:
        """Clients attached at the attach point owning port index ``port``."""
        return [self.slots[s] for s in self.by_key.get(self.view.attach_key(port), ())]

    def clients(self) -> list[Client]:
        return [c for c in self.slots if c is not None]
