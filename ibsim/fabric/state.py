"""Mutable fabric state as structure-of-arrays: port states, rates, LIDs, counters, LFTs.

Only the simulation (and, through it, a subnet manager's Sets) writes here;
everything else reads copies (snapshots).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import TopologyError
from .counters import COUNTERS, N_COUNTERS, legacy_view

if TYPE_CHECKING:  # pragma: no cover
    from .index import Fabric

__all__ = ["FabricState", "STATE", "PHYS", "DOWN", "INIT", "ARMED", "ACTIVE",
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


class FabricState:
    """The mutable arrays of a fabric (all ``n_ports`` long unless noted).

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
    lft : ndarray of uint8, shape (n_switches, lft_size)
        Linear forwarding tables, ``lft[switch, lid]`` = output port, 255 = none.
    """

    def __init__(self, fabric: "Fabric"):
        n = fabric.n_ports
        self._fabric = fabric
        self.port_state = np.full(n, DOWN, dtype=np.uint8)
        self.phys_state = np.full(n, POLLING, dtype=np.uint8)
        self.width = np.zeros(n, dtype=np.uint8)
        self.speed = np.zeros(n, dtype=np.uint8)
        self.capacity = np.zeros(n, dtype=np.float64)
        self.lid = np.zeros(n, dtype=np.uint16)
        self.lmc = 0
        self.counters = np.zeros((N_COUNTERS, n), dtype=np.uint64)
        self.lft = np.full((fabric.n_switches, 64), NO_ROUTE, dtype=np.uint8)
        #: bumped whenever link states or LFTs change (rates must be recomputed)
        self.version = 0

    # -------------------------------------------------------------- links
    def bring_up_all(self) -> None:
        """Train every cabled port to Active/LinkUp at its cable's rate; switch port 0 Active."""
        f = self._fabric
        cabled = f.peer_of_port >= 0
        self.set_ports_up(np.flatnonzero(cabled))
        port0 = f.is_switch & (f.port_num == 0)
        self.port_state[port0] = ACTIVE
        self.phys_state[port0] = LINKUP
        self.version += 1

    def set_ports_up(self, ports: np.ndarray, state: int = ACTIVE, width=None, speed=None) -> None:
        """Bring ports up (LinkUp, given port state) at their cable's width and speed, or at
        ``width`` (lanes) and ``speed`` (codes), arrays aligned with ``ports``, where given."""
        f = self._fabric
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

    def link_up_mask(self) -> np.ndarray:
        """Ports whose link carries traffic: Active here and at the peer."""
        f = self._fabric
        peer = f.peer_of_port
        ok = (self.port_state == ACTIVE) & (peer >= 0)
        ok &= self.port_state[np.where(peer >= 0, peer, 0)] == ACTIVE
        return ok

    # --------------------------------------------------------------- LIDs
    def assign_lids(self, preset: dict[int, int] | None = None) -> None:
        """Give every switch (port 0) and every cabled CA port a LID, LMC 0.

        Parameters
        ----------
        preset : dict, optional
            Port index -> LID to keep (e.g. from an ibnetdiscover dump);
            duplicates or LIDs outside 1..0xBFFF are ignored and reassigned.
        """
        f = self._fabric
        preset = preset or {}
        lid = np.zeros(f.n_ports, dtype=np.uint16)
        used: set[int] = set()
        # a switch is addressed through port 0; a CA through each cabled port
        targets = np.flatnonzero((f.is_switch & (f.port_num == 0)) | (~f.is_switch & (f.peer_of_port >= 0)))
        for p in targets:
            v = preset.get(int(p))
            if v and 1 <= v <= 0xBFFF and v not in used:
                lid[p] = v
                used.add(v)
        free = (x for x in range(1, 0xC000) if x not in used)
        for p in targets:
            if lid[p] == 0:
                try:
                    lid[p] = next(free)
                except StopIteration:
                    raise TopologyError("more than 49151 LIDs needed: the unicast LID space is full") from None
        sw_nodes = f.node_of_switch
        sw_lid = lid[f.first_port[sw_nodes]]
        lid_per_switch_port = np.repeat(sw_lid, (f.first_port[sw_nodes + 1] - f.first_port[sw_nodes]))
        lid[f.is_switch] = lid_per_switch_port
        self.lid = lid
        self.lmc = 0
        self.resize_lft()
        self.version += 1

    @property
    def max_lid(self) -> int:
        """Highest assigned LID."""
        return int(self.lid.max()) if self.lid.size else 0

    def lid_to_port(self) -> np.ndarray:
        """Array mapping LID -> port index (-1 for unused); switch LIDs map to port 0."""
        f = self._fabric
        out = np.full(self.max_lid + 1, -1, dtype=np.int64)
        targets = np.flatnonzero((f.is_switch & (f.port_num == 0)) | (~f.is_switch & (self.lid > 0)))
        out[self.lid[targets]] = targets
        out[0] = -1
        return out

    def resize_lft(self) -> None:
        """Make the LFT cover LIDs 0..max_lid (whole 64-entry blocks), keeping entries."""
        size = (self.max_lid // 64 + 1) * 64
        if self.lft.shape[1] != size:
            new = np.full((self._fabric.n_switches, size), NO_ROUTE, dtype=np.uint8)
            k = min(size, self.lft.shape[1])
            new[:, :k] = self.lft[:, :k]
            self.lft = new

    # ----------------------------------------------------------- counters
    def reset_counters(self, ports, rows) -> None:
        """Zero the given counter rows on the given ports (as ``perfquery -r``)."""
        rows = np.asarray(rows, dtype=np.intp)
        ports = np.asarray(ports, dtype=np.intp)
        if rows.size and ports.size:
            self.counters[np.ix_(rows, ports)] = 0

    def legacy_counters(self) -> np.ndarray:
        """PortCounters view: every row saturated at its legacy width (a copy)."""
        return legacy_view(self.counters)

    def nbytes(self, include_lft: bool = True) -> int:
        """Bytes held by the state arrays."""
        total = sum(v.nbytes for k, v in vars(self).items()
                    if isinstance(v, np.ndarray) and (include_lft or k != "lft"))
        return total

    def copy_counters(self) -> np.ndarray:
        """A copy of the counter storage (for snapshots)."""
        return self.counters.copy()

