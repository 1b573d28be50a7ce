"""Live fabric state as structure-of-arrays: port states, rates, LIDs, counters, LFTs.

A :class:`FabricState` is owned by one :class:`~ibsim.engine.Simulation`,
which alone writes it; everything else reads copies (snapshots). It keeps no
reference to the :class:`~ibsim.fabric.index.FabricIndex`: methods that need
the cabling take the index as their first argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .counters import N_COUNTERS
from .index import lft_width, lid_to_port

if TYPE_CHECKING:  # pragma: no cover
    from .index import FabricIndex

__all__ = ["FabricState", "SmaTables", "STATE", "PHYS", "DOWN", "INIT", "ARMED", "ACTIVE",
           "SLEEP", "POLLING", "DISABLED", "LINKUP", "NO_ROUTE"]

# PortInfo PortState (IBA 14.2.5.6)
DOWN, INIT, ARMED, ACTIVE = 1, 2, 3, 4
STATE = {DOWN: "Down", INIT: "Init", ARMED: "Armed", ACTIVE: "Active"}
# PortInfo PortPhysicalState
SLEEP, POLLING, DISABLED, TRAINING, LINKUP, ERROR_RECOVERY, PHY_TEST = 1, 2, 3, 4, 5, 6, 7
PHYS = {SLEEP: "Sleep", POLLING: "Polling", DISABLED: "Disabled",
        TRAINING: "PortConfigurationTraining", LINKUP: "LinkUp",
        ERROR_RECOVERY: "LinkErrorRecovery", PHY_TEST: "PhyTest"}

#: LFT entry meaning "no route" (IBA: 255 drops the packet)
NO_ROUTE = 255


@dataclass
class SmaTables:
    """SMA attribute blocks a subnet manager set (through ``Simulation.sm_set_block``), 64-byte wire format.

    Until an SM sets a block, the SMA answers its default (the MAD server
    knows the defaults); only what an SM wrote is kept here.

    Attributes
    ----------
    pkeys : dict
        P_KeyTable blocks, ``(port, block) -> bytes`` (a switch's port 0 for its own table).
    sl2vl : dict
        SLtoVLMappingTable, ``(output port, input port number) -> bytes`` (CAs: ``(port, 0)``).
    vlarb : dict
        VLArbitrationTable, ``(port, block 1..4) -> bytes``.
    mft : dict
        MulticastForwardingTable blocks, ``(switch port 0, block, position) -> bytes``.
    guid_info : dict
        GUIDInfo blocks, ``(port, block) -> bytes``.
    mlnx_ext : dict
        Mellanox ExtendedPortInfo, ``port -> bytes``.
    fdb_top : ndarray of int32, (n_switches,)
        SwitchInfo LinearFDBTop per switch row, as the SM set it.
    life_time : ndarray of uint8, (n_switches,)
        SwitchInfo LifeTimeValue per switch row (5 bits), as the SM set it.
    """

    pkeys: dict = field(default_factory=dict)
    sl2vl: dict = field(default_factory=dict)
    vlarb: dict = field(default_factory=dict)
    mft: dict = field(default_factory=dict)
    guid_info: dict = field(default_factory=dict)
    mlnx_ext: dict = field(default_factory=dict)
    fdb_top: np.ndarray = None
    life_time: np.ndarray = None

    #: the block tables (dicts) by name
    BLOCKS = ("pkeys", "sl2vl", "vlarb", "mft", "guid_info", "mlnx_ext")

    def copy(self) -> "SmaTables":
        """A copy (new dicts and arrays; the bytes values are immutable and shared)."""
        return SmaTables(**{k: dict(getattr(self, k)) for k in self.BLOCKS},
                         fdb_top=self.fdb_top.copy(), life_time=self.life_time.copy())

    def counts(self) -> dict[str, int]:
        """Entries an SM set, per table."""
        return {k: len(getattr(self, k)) for k in self.BLOCKS}


class FabricState:
    """The mutable arrays of a fabric (all ``n_ports`` long unless noted).

    A new state is the fabric as the embedded subnet manager leaves it at
    the start: every cabled port Active/LinkUp at its cable's rate, switch
    port 0 Active, the index's default LIDs, empty LFTs (no routes yet).

    Parameters
    ----------
    fabric : FabricIndex
        Sizes and initial values come from it; no reference is kept.

    Attributes
    ----------
    port_state : ndarray of uint8
        1 Down, 2 Init, 3 Armed, 4 Active.
    phys_state : ndarray of uint8
        1 Sleep, 2 Polling, 3 Disabled, 4 Training, 5 LinkUp, ...
    width : ndarray of uint8
        Active width in lanes (0 when the link is down).
    speed : ndarray of uint8
        Active speed code (index into :data:`ibsim.fabric.index.SPEED_NAMES`, 0 when down).
    capacity : ndarray of float64
        Data capacity in bytes/s (0 when down).
    lid : ndarray of uint16
        Port LID; a switch's ports all carry its port-0 LID. 0 = unassigned.
    counters : ndarray of uint64, shape (n_counters, n_ports)
        Rows in :data:`ibsim.fabric.counters.COUNTERS` order.
    cleared : ndarray of uint64, shape (n_counters, n_ports), or None
        What resets (PerfMgt Sets, ``perfquery -R``) took away, allocated at the
        first reset: ``counters + cleared`` is what each port counted since the
        start (saturated values stay saturated).
    lft : ndarray of uint8, shape (n_switches, lft_size)
        Linear forwarding tables, ``lft[switch, lid]`` = output port, 255 = none.
    sma : SmaTables
        Attribute blocks a subnet manager set (P_Key, SL2VL, VLArb, MFT,
        GUIDInfo, SwitchInfo LinearFDBTop and LifeTimeValue).
    version : int
        Bumped whenever link states, LIDs or LFTs change.
    """

    def __init__(self, fabric: "FabricIndex"):
        f = fabric
        n = f.n_ports
        self.port_state = np.full(n, DOWN, dtype=np.uint8)
        self.phys_state = np.full(n, POLLING, dtype=np.uint8)
        self.width = np.zeros(n, dtype=np.uint8)
        self.speed = np.zeros(n, dtype=np.uint8)
        self.capacity = np.zeros(n, dtype=np.float64)
        self.lid = f.default_lid.copy()
        self.lmc = 0
        self.counters = np.zeros((N_COUNTERS, n), dtype=np.uint64)
        self.cleared = None
        self.lft = np.full((f.n_switches, lft_width(self.lid)), NO_ROUTE, dtype=np.uint8)
        self.sma = SmaTables(fdb_top=np.full(f.n_switches, self.max_lid, dtype=np.int32),
                             life_time=np.zeros(f.n_switches, dtype=np.uint8))
        self.version = 0
        self.set_ports_up(f, np.flatnonzero(f.peer_of_port >= 0))
        port0 = f.is_switch & (f.port_num == 0)
        self.port_state[port0] = ACTIVE
        self.phys_state[port0] = LINKUP

    # -------------------------------------------------------------- links
    def set_ports_up(self, fabric: "FabricIndex", ports: np.ndarray, state: int = ACTIVE,
                     width=None, speed=None) -> None:
        """Bring ports up (LinkUp, given port state) at their cable's width and speed, or at
        ``width`` (lanes) and ``speed`` (codes), arrays aligned with ``ports``, where given."""
        f = fabric
        ports = np.asarray(ports, dtype=np.int64)
        self.port_state[ports] = state
        self.phys_state[ports] = LINKUP
        self.width[ports] = f.cable_width[ports] if width is None else width
        self.speed[ports] = f.cable_speed[ports] if speed is None else speed
        self.capacity[ports] = f.capacity_bytes(self.width[ports], self.speed[ports])
        self.version += 1

    def set_ports_down(self, ports: np.ndarray, phys: int = POLLING) -> None:
        """Take ports Down (physical state Polling, or Disabled); width/speed/capacity 0."""
        ports = np.asarray(ports, dtype=np.int64)
        self.port_state[ports] = DOWN
        self.phys_state[ports] = phys
        self.width[ports] = 0
        self.speed[ports] = 0
        self.capacity[ports] = 0.0
        self.version += 1

    def link_up_mask(self, fabric: "FabricIndex") -> np.ndarray:
        """Ports whose link carries traffic: Active here and at the peer."""
        peer = fabric.peer_of_port
        ok = (self.port_state == ACTIVE) & (peer >= 0)
        ok &= self.port_state[np.where(peer >= 0, peer, 0)] == ACTIVE
        return ok

    # --------------------------------------------------------------- LIDs
    @property
    def max_lid(self) -> int:
        """Highest assigned LID."""
        return int(self.lid.max()) if self.lid.size else 0

    def lid_to_port(self, fabric: "FabricIndex") -> np.ndarray:
        """Array mapping LID -> port index (-1 for unused); switch LIDs map to port 0."""
        return lid_to_port(fabric, self.lid)

    def grow_lft(self, entries: int) -> None:
        """Widen the LFTs (whole 64-entry blocks, 255 = no route) to hold ``entries`` LIDs."""
        if self.lft.shape[1] < entries:
            new = np.full((self.lft.shape[0], -(-entries // 64) * 64), NO_ROUTE, dtype=np.uint8)
            new[:, :self.lft.shape[1]] = self.lft
            self.lft = new

    # ----------------------------------------------------------- counters
    def reset_counters(self, ports, rows) -> None:
        """Zero the given counter rows on the given ports (as ``perfquery -r``); the values
        taken away add to :attr:`cleared`."""
        rows = np.asarray(rows, dtype=np.intp)
        ports = np.asarray(ports, dtype=np.intp)
        if rows.size and ports.size:
            sel = np.ix_(rows, ports)
            if self.cleared is None:
                self.cleared = np.zeros_like(self.counters)
            self.cleared[sel] += self.counters[sel]
            self.counters[sel] = 0

    def nbytes(self, include_lft: bool = True) -> int:
        """Bytes held by the state arrays."""
        return sum(v.nbytes for k, v in vars(self).items()
                   if isinstance(v, np.ndarray) and (include_lft or k != "lft"))
