"""What each node's silicon supports: fastest lane speed, widest width, largest MTU.

A port's capability is its device's, not its cable's: a cable that trained
at 4xDDR between two EDR switches leaves two ports that support EDR and run
at DDR (a *degraded* link). The device comes from the node's DeviceID
(:data:`ibsim.topology.devices.DEVICES`: Mellanox/NVIDIA PCI device ids by
generation); a node whose DeviceID is not listed supports what its fastest and widest cable
trained at (its other ports tell), or, with no cable at all, the fabric's
fastest cable (its generation). A listed device never supports less than
its own cables show, so a topology that cables a device faster than its
generation is taken at its word.

The MTU (PortInfo MTUCap) is the device's, or
:data:`~ibsim.topology.devices.DEFAULT_MTU` (2048) for a device not listed.
"""

from __future__ import annotations

import numpy as np

from ..linkrate import SPEEDS
from ..topology.devices import DEFAULT_MTU, DEVICE_WIDTH, DEVICES

__all__ = ["device_caps", "link_caps", "degraded_ports"]

_SPEED_ORDER = {name: i + 1 for i, name in enumerate(SPEEDS)}   # as ibsim.fabric.index.SPEED_NAMES


def device_caps(node_devid: np.ndarray, node_of_port: np.ndarray, cable_width: np.ndarray,
                cable_speed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node: the fastest speed code, the most lanes and the MTU (bytes) its device supports.

    Parameters
    ----------
    node_devid : ndarray of uint16, (n_nodes,)
    node_of_port : ndarray of int, (n_ports,)
    cable_width, cable_speed : ndarray of uint8, (n_ports,)
        Lanes and speed code each port's cable trains at (0: no cable).

    Returns
    -------
    (ndarray of uint8, ndarray of uint8, ndarray of uint16)
        Speed code (``ibsim.fabric.index.SPEED_NAMES``), lanes, MTU bytes; all (n_nodes,).
    """
    n = len(node_devid)
    node_speed = np.zeros(n, dtype=np.uint8)
    node_width = np.zeros(n, dtype=np.uint8)
    np.maximum.at(node_speed, node_of_port, cable_speed)
    np.maximum.at(node_width, node_of_port, cable_width)
    fabric_speed = int(cable_speed.max()) if cable_speed.size and cable_speed.max() else _SPEED_ORDER["EDR"]
    known = [DEVICES.get(int(d)) for d in node_devid]
    table_speed = np.array([_SPEED_ORDER[d.speed] if d else 0 for d in known], dtype=np.uint8)
    table_width = np.array([DEVICE_WIDTH if d else 0 for d in known], dtype=np.uint8)
    mtu = np.array([d.mtu if d else DEFAULT_MTU for d in known], dtype=np.uint16)
    speed = np.maximum(node_speed, table_speed)
    width = np.maximum(node_width, table_width)
    speed[speed == 0] = fabric_speed
    width[width == 0] = DEVICE_WIDTH
    return speed, width, mtu


def link_caps(fabric) -> tuple[np.ndarray, np.ndarray]:
    """What each cabled port's link could train at: the lesser device of its two ends.

    Returns
    -------
    (ndarray of uint8, ndarray of uint8)
        Lanes and speed code per port (0 where the port has no cable).
    """
    f = fabric
    peer = f.peer_of_port
    cabled = peer >= 0
    a, b = f.node_of_port, f.node_of_port[np.where(cabled, peer, 0)]
    width = np.where(cabled, np.minimum(f.node_width_cap[a], f.node_width_cap[b]), 0).astype(np.uint8)
    speed = np.where(cabled, np.minimum(f.node_speed_cap[a], f.node_speed_cap[b]), 0).astype(np.uint8)
    return width, speed


def degraded_ports(fabric, width: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Ports whose link is up below what both its ends' devices support.

    Parameters
    ----------
    fabric : FabricIndex
    width, speed : ndarray of uint8, (n_ports,)
        Trained lanes and speed code of every port (``FabricState.width``/``speed``; 0 = down).

    Returns
    -------
    ndarray of bool, (n_ports,)
    """
    cw, cs = link_caps(fabric)
    up = width > 0
    return up & ((width < cw) | (speed < cs))
