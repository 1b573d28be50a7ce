"""Each container host's own ``/sys/class/infiniband``, written from snapshots.

Layout (kernel formats, ``Documentation/ABI/stable/sysfs-class-infiniband``)
---------------------------------------------------------------------------
One directory per host, ``<root>/<hostname>/``, bind-mounted read-only at
``/sys/class/infiniband`` in that host's container (over a tmpfs at
``/sys/class``). It holds one device, :data:`DEVICE` (``mlx5_0``: the name a
ConnectX HCA gets from the mlx5 driver), for the host's CA::

    mlx5_0/node_type        1: CA
    mlx5_0/node_guid        0002:c903:0000:0011   (16-bit groups of the node GUID)
    mlx5_0/sys_image_guid   same format
    mlx5_0/node_desc        node042 HCA-1
    mlx5_0/fw_ver           16.35.2000
    mlx5_0/hca_type         MT4119                (MT + PCI device id in decimal)
    mlx5_0/board_id         MT_0000000010
    mlx5_0/hw_rev           0
    mlx5_0/ports/N/state           4: ACTIVE      (1: DOWN, 2: INIT, 3: ARMED)
    mlx5_0/ports/N/phys_state      5: LinkUp      (2: Polling, 3: Disabled, ...)
    mlx5_0/ports/N/rate            100 Gb/sec (4X EDR)   (a Down port: 10 Gb/sec (4X SDR))
    mlx5_0/ports/N/lid             0x1a
    mlx5_0/ports/N/lid_mask_count  0
    mlx5_0/ports/N/sm_lid          0x0           (the embedded SM has no LID)
    mlx5_0/ports/N/sm_sl           0
    mlx5_0/ports/N/cap_mask        0x0040c048
    mlx5_0/ports/N/link_layer      InfiniBand
    mlx5_0/ports/N/gids/0          fe80:0000:0000:0000:<port GUID groups>
    mlx5_0/ports/N/pkeys/0         0xffff
    mlx5_0/ports/N/counters/*      the 21 counters of the kernel's "ext" set, decimal

Counters: data and packet counters are the 64-bit PortCountersExtended values
(``port_xmit_data``/``port_rcv_data`` in 4-octet words, as the kernel reports
them; node_exporter multiplies by 4); the error counters and
``port_xmit_wait`` saturate at their PortCounters widths, as the kernel reads
them from PortCounters.

Refresh
-------
:meth:`SysfsTrees.refresh` takes one snapshot and makes one vectorised pass:
it gathers the host ports' counters and port attributes into one
``(rows, host ports)`` array, compares it with what was written last, and
rewrites only the files whose value changed, each by writing a temporary
file in ``<root>/.staging`` and renaming it over the old one (readers never
see a partial file). Directories are created once and never replaced, so the
bind mounts stay valid.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np

from ..fabric.counters import COUNTERS, LEGACY_MAX, N_COUNTERS

__all__ = ["DEVICE", "SysfsTrees", "rate_text", "guid_text", "STATE_TEXT", "PHYS_TEXT"]

#: the device name every host's CA has
DEVICE = "mlx5_0"
#: kernel ``state`` text by PortState
STATE_TEXT = {0: "0: NOP", 1: "1: DOWN", 2: "2: INIT", 3: "3: ARMED", 4: "4: ACTIVE", 5: "5: ACTIVE_DEFER"}
#: kernel ``phys_state`` text by PortPhysicalState
PHYS_TEXT = {1: "1: Sleep", 2: "2: Polling", 3: "3: Disabled", 4: "4: PortConfigurationTraining",
             5: "5: LinkUp", 6: "6: LinkErrorRecovery", 7: "7: Phy Test"}
#: per-lane signalling rate in tenths of Gb/s, by speed code (``ibsim.fabric.index.SPEED_NAMES``)
_LANE_DECI = (0, 25, 50, 100, 100, 140, 250, 500, 1000, 2000)
_SPEED_TEXT = ("", "SDR", "DDR", "QDR", "FDR10", "FDR", "EDR", "HDR", "NDR", "XDR")
#: PortInfo CapabilityMask of a CA port (what the MAD server answers)
CAP_MASK_CA = 0x0040C048
_FW_VER = "16.35.2000"
_BOARD_ID = "MT_0000000010"

# rows of the refresh array: the counters, then the port attributes
_ROW_STATE, _ROW_PHYS, _ROW_WIDTH, _ROW_SPEED, _ROW_LID = range(N_COUNTERS, N_COUNTERS + 5)
_N_ROWS = N_COUNTERS + 5
#: a counter row saturates at its PortCounters width in sysfs unless PortCountersExtended has it
_CAP = np.array([np.uint64(2**64 - 1) if c.ext_select_bit is not None else LEGACY_MAX[i]
                 for i, c in enumerate(COUNTERS)], dtype=np.uint64)


def guid_text(guid: int) -> str:
    """``0x0002c90300000011`` -> ``0002:c903:0000:0011`` (sysfs GUID format)."""
    h = f"{int(guid):016x}"
    return ":".join(h[i:i + 4] for i in range(0, 16, 4))


def rate_text(width: int, speed: int) -> str:
    """Kernel ``rate`` text for a width in lanes and a speed code.

    A port that is down (width or speed 0) shows ``10 Gb/sec (4X SDR)``, the
    reset value of the active width and speed.

    Examples
    --------
    >>> rate_text(4, 6)
    '100 Gb/sec (4X EDR)'
    >>> rate_text(1, 1)
    '2.5 Gb/sec (1X SDR)'
    """
    if not width or not speed:
        width, speed = 4, 1
    deci = _LANE_DECI[speed] * width
    frac = ".5" if deci % 10 == 5 else ""
    return f"{deci // 10}{frac} Gb/sec ({width}X {_SPEED_TEXT[speed]})"


class SysfsTrees:
    """The sysfs trees of a cluster's container hosts, one directory per host.

    Parameters
    ----------
    fabric : FabricIndex
        The compiled fabric.
    hosts : sequence of (int, str)
        ``(node index, hostname)`` of each container host (a CA).
    root : str or Path
        Directory that holds ``<hostname>/`` for each host (created).
    sm_lid : int
        Value of every port's ``sm_lid``.

    Attributes
    ----------
    ports : ndarray of int64
        Port indices of every host port, hosts in order, ports in order.
    last : ndarray of uint64, (rows, len(ports))
        What was written last (counter rows in ``COUNTERS`` order, then state,
        phys_state, width, speed, lid).
    """

    def __init__(self, fabric, hosts, root, *, sm_lid: int = 0):
        self.fabric = fabric
        self.root = Path(root)
        self.hosts = [(int(n), str(h)) for n, h in hosts]
        self._staging = self.root / ".staging"
        self._staging.mkdir(parents=True, exist_ok=True)
        self._seq = 0
        ports, port_dirs = [], []
        for node, host in self.hosts:
            dev = self.root / host / DEVICE
            self._static_device(dev, node)
            for p in fabric.ports_of_node(node):
                pd = dev / "ports" / str(int(fabric.port_num[p]))
                self._static_port(pd, int(p), sm_lid)
                ports.append(int(p))
                port_dirs.append(str(pd))
        self.ports = np.array(ports, dtype=np.int64)
        self._port_dirs = port_dirs
        self._files = [[f"{d}/counters/{c.name}" for d in port_dirs] for c in COUNTERS]
        self.last = np.full((_N_ROWS, len(ports)), np.uint64(2**64 - 1), dtype=np.uint64)
        self.refreshes = 0
        self._lock = threading.Lock()

    def host_dir(self, host: str) -> Path:
        """The directory to bind at ``/sys/class/infiniband`` in ``host``'s container."""
        return self.root / host

    # ------------------------------------------------------------ writing
    def _put(self, path: str, text: str) -> None:
        self._seq += 1
        tmp = f"{self._staging}/{self._seq}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def _static_device(self, dev: Path, node: int) -> None:
        f = self.fabric
        (dev / "ports").mkdir(parents=True, exist_ok=True)
        files = {"node_type": "1: CA", "node_guid": guid_text(f.node_guid[node]),
                 "sys_image_guid": guid_text(f.node_sysimgguid[node] or f.node_guid[node]),
                 "node_desc": f.node_desc[node][:64], "fw_ver": _FW_VER,
                 "hca_type": f"MT{int(f.node_devid[node])}", "board_id": _BOARD_ID, "hw_rev": "0"}
        for name, text in files.items():
            self._put(str(dev / name), text)

    def _static_port(self, pd: Path, p: int, sm_lid: int) -> None:
        for sub in ("counters", "gids", "pkeys"):
            (pd / sub).mkdir(parents=True, exist_ok=True)
        files = {"lid_mask_count": "0", "sm_lid": f"0x{sm_lid:x}", "sm_sl": "0",
                 "cap_mask": f"0x{CAP_MASK_CA:08x}", "link_layer": "InfiniBand",
                 "gids/0": "fe80:0000:0000:0000:" + guid_text(self.fabric.port_guid[p]),
                 "pkeys/0": "0xffff"}
        for name, text in files.items():
            self._put(str(pd / name), text)

    # ------------------------------------------------------------ refresh
    def values(self, snap) -> np.ndarray:
        """The ``(rows, host ports)`` array :meth:`refresh` writes for ``snap`` (see :attr:`last`)."""
        P = self.ports
        v = np.empty((_N_ROWS, len(P)), dtype=np.uint64)
        np.minimum(snap.counters[:, P], _CAP[:, None], out=v[:N_COUNTERS])
        v[_ROW_STATE] = snap.port_state[P]
        v[_ROW_PHYS] = snap.phys_state[P]
        v[_ROW_WIDTH] = snap.width[P]
        v[_ROW_SPEED] = snap.speed[P]
        v[_ROW_LID] = snap.lid[P]
        return v

    def refresh(self, snap) -> int:
        """Bring every host's tree up to ``snap``; returns the number of files rewritten.

        Safe to call from several threads (the simulation's observer and an API call).
        """
        with self._lock:
            return self._refresh(snap)

    def _refresh(self, snap) -> int:
        v = self.values(snap)
        rows, cols = np.nonzero(v != self.last)
        if rows.size == 0:
            self.refreshes += 1
            return 0
        n = 0
        rate_cols = set()
        vals = v[rows, cols].tolist()
        for r, c, x in zip(rows.tolist(), cols.tolist(), vals):
            if r < N_COUNTERS:
                self._put(self._files[r][c], str(x))
            elif r == _ROW_STATE:
                self._put(self._port_dirs[c] + "/state", STATE_TEXT.get(x, f"{x}: <unknown>"))
            elif r == _ROW_PHYS:
                self._put(self._port_dirs[c] + "/phys_state", PHYS_TEXT.get(x, f"{x}: <unknown>"))
            elif r == _ROW_LID:
                self._put(self._port_dirs[c] + "/lid", f"0x{x:x}")
            else:
                rate_cols.add(c)
                continue
            n += 1
        for c in rate_cols:
            self._put(self._port_dirs[c] + "/rate", rate_text(int(v[_ROW_WIDTH, c]), int(v[_ROW_SPEED, c])))
            n += 1
        self.last = v
        self.refreshes += 1
        return n

    def remove(self) -> None:
        """Delete every tree (after the containers that mount them are gone)."""
        shutil.rmtree(self.root, ignore_errors=True)
