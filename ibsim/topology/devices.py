"""Device generations: what each InfiniBand device id supports (fastest speed, MTU).

:data:`DEVICES` maps the NodeInfo DeviceID of Mellanox/NVIDIA switches and
channel adapters to their generation: the fastest lane speed and the largest
MTU the silicon supports (4096 bytes from ConnectX and InfiniScale IV on,
2048 for InfiniHost, InfiniScale III and earlier). A device not listed
supports :data:`DEFAULT_MTU` (2048, what linux-rdma's C ibsim advertises)
and, for speed and width, what its cables show (:mod:`ibsim.fabric.devices`).
:data:`GENERATED` gives the generators a switch and an HCA of the generation
of the speed they cable at, so a generated QDR fabric is built of QDR-era
devices rather than of EDR switches with slow cables.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Device", "DEVICES", "DEFAULT_MTU", "DEVICE_WIDTH", "MTU_CODE", "GENERATED"]

#: IB MTU in bytes -> PortInfo MTUCap/NeighborMTU code
MTU_CODE: dict[int, int] = {256: 1, 512: 2, 1024: 3, 2048: 4, 4096: 5}
#: MTU of a device not in :data:`DEVICES`, bytes (linux-rdma ibsim's MTUCap)
DEFAULT_MTU = 2048
#: lanes of every listed device's ports (4x; a node's 8x/12x cables raise it)
DEVICE_WIDTH = 4


class Device(NamedTuple):
    """One device generation."""

    name: str
    speed: str          #: fastest lane speed (a :data:`ibsim.linkrate.SPEEDS` name)
    mtu: int            #: largest MTU, bytes


#: PCI device id (NodeInfo DeviceID) -> device generation
DEVICES: dict[int, Device] = {
    # switches
    0xA87C: Device("InfiniScale", "SDR", 2048),
    0xB924: Device("InfiniScale III", "DDR", 2048),
    0xBD34: Device("InfiniScale IV", "QDR", 4096),
    0xBD35: Device("InfiniScale IV", "QDR", 4096),
    0xBD36: Device("InfiniScale IV", "QDR", 4096),
    0xC738: Device("SwitchX", "FDR", 4096),
    0xCB20: Device("Switch-IB", "EDR", 4096),
    0xCF08: Device("Switch-IB 2", "EDR", 4096),
    0xD2F0: Device("Quantum", "HDR", 4096),
    0xD2F2: Device("Quantum-2", "NDR", 4096),
    0xD2F4: Device("Quantum-3", "XDR", 4096),
    # channel adapters
    0x5A44: Device("InfiniHost", "SDR", 2048),
    0x6274: Device("InfiniHost III Lx", "DDR", 2048),
    0x6278: Device("InfiniHost III Ex (Tavor mode)", "DDR", 2048),
    0x6282: Device("InfiniHost III Ex", "DDR", 2048),
    0x634A: Device("ConnectX", "DDR", 4096),
    0x6354: Device("ConnectX", "QDR", 4096),
    0x6732: Device("ConnectX-2", "DDR", 4096),
    0x673C: Device("ConnectX-2", "QDR", 4096),
    0x6746: Device("ConnectX-2", "QDR", 4096),
    0x1003: Device("ConnectX-3", "FDR", 4096),
    0x1007: Device("ConnectX-3 Pro", "FDR", 4096),
    0x1011: Device("Connect-IB", "FDR", 4096),
    0x1013: Device("ConnectX-4", "EDR", 4096),
    0x1014: Device("ConnectX-4 VF", "EDR", 4096),
    0x1017: Device("ConnectX-5", "EDR", 4096),
    0x1018: Device("ConnectX-5 VF", "EDR", 4096),
    0x1019: Device("ConnectX-5 Ex", "EDR", 4096),
    0x101B: Device("ConnectX-6", "HDR", 4096),
    0x101C: Device("ConnectX-6 VF", "HDR", 4096),
    0x1021: Device("ConnectX-7", "NDR", 4096),
    0x1023: Device("ConnectX-8", "XDR", 4096),
    0xA2D2: Device("BlueField", "EDR", 4096),
    0xA2D6: Device("BlueField-2", "HDR", 4096),
    0xA2DC: Device("BlueField-3", "NDR", 4096),
}


#: lane speed of a generated fabric -> (switch DeviceID, HCA DeviceID) of that generation
GENERATED: dict[str, tuple[int, int]] = {
    "SDR": (0xA87C, 0x5A44), "DDR": (0xB924, 0x6282), "QDR": (0xBD36, 0x673C),
    "FDR10": (0xC738, 0x1003), "FDR": (0xC738, 0x1003), "EDR": (0xCB20, 0x1021),
    "HDR": (0xD2F0, 0x1021), "NDR": (0xD2F2, 0x1021), "XDR": (0xD2F4, 0x1023),
}
