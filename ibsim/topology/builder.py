"""Builder: deterministic GUIDs and descriptions for the generators, and parameter checks.

GUIDs use the Mellanox OUI (00:02:c9): switch *i* gets
``0x0002c90302000000 + i``; CA *i* gets ``0x0002c90301000000 + 8 i`` and its
ports ``node GUID + port``, as on ConnectX HCAs. Host descriptions read
``node042 HCA-1``. Switches and HCAs carry the DeviceIDs of the generation of
the link speed (:data:`ibsim.topology.devices.GENERATED`: Switch-IB and
ConnectX-7 at EDR, InfiniScale IV and ConnectX-2 at QDR, ...).
"""

from __future__ import annotations

from numbers import Integral

from ..errors import TopologyError
from ..linkrate import DEFAULT_SPEED, DEFAULT_WIDTH, parse_speed, parse_width
from .devices import GENERATED
from .graph import Topology

__all__ = ["Builder", "SWITCH_GUID_BASE", "CA_GUID_BASE", "CA_GUID_STEP"]

SWITCH_GUID_BASE = 0x0002C90302000000
CA_GUID_BASE = 0x0002C90301000000
CA_GUID_STEP = 8          # leaves room for up to 7 port GUIDs per CA


class Builder:
    """Allocates GUIDs and descriptions while a generator builds a topology.

    Parameters
    ----------
    name : str
        Topology name.
    width, speed : str
        Default link width and speed.
    n_hosts : int
        Expected host count, only to choose the zero padding of ``nodeNNN``.
    """

    def __init__(self, name: str, width: str = DEFAULT_WIDTH, speed: str = DEFAULT_SPEED,
                 n_hosts: int = 0):
        self.topo = Topology(name)
        self.width = parse_width(width)
        self.speed = parse_speed(speed)
        #: DeviceIDs of the generation of ``speed`` (switch, HCA)
        self.devids = GENERATED[self.speed]
        self._n_switches = 0
        self._n_cas = 0
        self._host_digits = max(3, len(str(max(n_hosts, 1))))

    def switch(self, nports: int, desc: str) -> int:
        """Add a switch; return its GUID."""
        guid = SWITCH_GUID_BASE + self._n_switches
        self._n_switches += 1
        self.topo.add_switch(guid, nports, desc, devid=self.devids[0])
        return guid

    def host(self, nports: int = 1, desc: str | None = None) -> int:
        """Add a CA named ``node<NNN> HCA-1`` (numbered from 1); return its GUID."""
        if nports >= CA_GUID_STEP:
            raise TopologyError(f"generated CAs have at most {CA_GUID_STEP - 1} ports, got {nports}")
        guid = CA_GUID_BASE + CA_GUID_STEP * self._n_cas
        self._n_cas += 1
        if desc is None:
            desc = f"node{self._n_cas:0{self._host_digits}d} HCA-1"
        self.topo.add_ca(guid, nports, desc, devid=self.devids[1])
        return guid

    def link(self, a: int, pa: int, b: int, pb: int) -> None:
        """Cable two ports at the default width and speed."""
        self.topo.add_link(a, pa, b, pb, self.width, self.speed)

    def done(self) -> Topology:
        """Validate and return the topology."""
        return self.topo.validate()


def _check_radix(radix: int) -> None:
    if not isinstance(radix, int) or radix < 2 or radix % 2 or radix > 254:
        raise TopologyError(f"radix must be an even integer in 2..254, got {radix!r}")



MAX_GENERATED_CAS = (SWITCH_GUID_BASE - CA_GUID_BASE) // CA_GUID_STEP
MAX_GENERATED_SWITCHES = 1 << 24
MAX_SWITCH_PORTS = 254


def _int(gen: str, name: str, value, lo: int = 1, hi: int | None = None) -> int:
    """``value`` as an int in ``lo..hi``, else a TopologyError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TopologyError(f"{gen}: {name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise TopologyError(f"{gen}: {name}={value} is out of range; allowed: {allowed}")
    return value


def _ints(gen: str, name: str, value, lo: int = 1) -> tuple[int, ...]:
    """A sequence of ints (or text ``"18,36"`` / ``"4x4x4"``) as a tuple."""
    if isinstance(value, str):
        parts = [x.strip() for x in value.replace("x", ",").split(",") if x.strip()]
        try:
            value = [int(x) for x in parts]
        except ValueError:
            raise TopologyError(f"{gen}: {name}={value!r} must be a list of integers "
                                f"such as '18,36'") from None
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise TopologyError(f"{gen}: {name} must be a list of integers, got {value!r}") from None
    if not items:
        raise TopologyError(f"{gen}: {name} must not be empty")
    return tuple(_int(gen, f"{name}[{i}]", v, lo) for i, v in enumerate(items))


def _check_size(gen: str, n_switches: int, n_cas: int, max_ports: int) -> None:
    if max_ports > MAX_SWITCH_PORTS:
        raise TopologyError(f"{gen}: a switch would need {max_ports} ports; "
                            f"InfiniBand switches have at most {MAX_SWITCH_PORTS}")
    if n_cas > MAX_GENERATED_CAS:
        raise TopologyError(f"{gen}: {n_cas} CAs is more than the {MAX_GENERATED_CAS} "
                            f"the generated GUID range holds")
    if n_switches > MAX_GENERATED_SWITCHES:
        raise TopologyError(f"{gen}: {n_switches} switches is more than the "
                            f"{MAX_GENERATED_SWITCHES} the generated GUID range holds")


def _digits(n: int) -> int:
    """Zero padding of switch numbers: at least two digits (``leaf03``)."""
    return max(2, len(str(n)))


# --------------------------------------------------------------------- XGFT
