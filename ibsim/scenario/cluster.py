"""The ``cluster:`` section: which CAs become container hosts, and how they are run.

::

    cluster:
      name: demo                  # name prefix and label org.ibsim.cluster=demo of everything created
      hosts: 16                   # a count (the first CAs by description), all, or a list of CAs
      network: {subnet: 172.31.240.0/24}   # optional; default: a free private /24
      node_exporter: true         # node_exporter's infiniband collector on port 9100 of each host
      graphite: true              # run the Graphite image and point the Graphite exporters at it
      sysfs_every: 1s             # refresh interval of the hosts' /sys/class/infiniband
      mad_port: 47100             # UDP port of the MAD server on the network's gateway
      slurm: true                 # a controller container (slurmctld) and slurmd in every host;
                                  # or a mapping:
      # slurm:
      #   default_traffic: {pattern: all_to_all, load: 0.5}   # jobs without an "ibsim:" comment
      #   poll: 2s                # squeue --json reconciliation interval
      #   slurmd_timeout: 10s     # SlurmdTimeout: a silent node is DOWN after this
      #   health_check: 5s        # HealthCheckInterval of the IB port check (off: none)
      #   partition: compute

Syntax is checked when the scenario is read; the hosts against the fabric
when it is built (:func:`resolve_hosts`), each error naming the file, the
line and the key path.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..errors import ScenarioError

__all__ = ["ClusterSpec", "SlurmSpec", "parse_cluster", "resolve_hosts", "hostname_of", "CLUSTER_KEYS",
           "SLURM_KEYS"]

CLUSTER_KEYS = ("name", "hosts", "network", "node_exporter", "graphite", "sysfs_every", "mad_port", "slurm")
SLURM_KEYS = ("default_traffic", "poll", "slurmd_timeout", "health_check", "partition")


@dataclass(frozen=True)
class SlurmSpec:
    """A validated ``cluster.slurm`` section.

    Attributes
    ----------
    default_traffic : dict or None
        Traffic of jobs without an ``ibsim:`` comment (``pattern``, ``load``
        or ``rate``, the pattern's parameters); None: such jobs send nothing.
    poll_s : float
        Seconds between two ``squeue --json`` reconciliations [s].
    slurmd_timeout_s : int
        Slurm's ``SlurmdTimeout`` [s].
    health_check_s : int
        ``HealthCheckInterval`` of the IB port health check [s]; 0: none.
    partition : str
    """

    default_traffic: dict | None = None
    poll_s: float = 2.0
    slurmd_timeout_s: int = 10
    health_check_s: int = 5
    partition: str = "compute"


def parse_slurm(ck, value, path: tuple) -> SlurmSpec | None:
    """Validate ``cluster.slurm`` (true, false or a mapping)."""
    if value is None or value is False:
        return None
    if value is True:
        return SlurmSpec()
    d = ck.mapping(value, path, SLURM_KEYS, what=" or true/false")
    traffic = None
    if d.get("default_traffic") is not None:
        from ..hosts.slurmconf import traffic_keys
        tp = path + ("default_traffic",)
        raw = d["default_traffic"]
        if not isinstance(raw, dict):
            raise ck.error(tp, "expected a mapping like {pattern: all_to_all, load: 0.5}")
        try:
            traffic = traffic_keys(dict(raw), where="default_traffic")
        except ScenarioError as exc:
            raise ck.error(tp, exc.message.removeprefix("default_traffic").lstrip(" :")) from None
    poll = ck.duration(d["poll"], path + ("poll",), positive=True) if "poll" in d else 2.0
    timeout = 10
    if "slurmd_timeout" in d:
        timeout = ck.duration(d["slurmd_timeout"], path + ("slurmd_timeout",), positive=True)
        if timeout != int(timeout) or timeout < 2:
            raise ck.error(path + ("slurmd_timeout",), f"SlurmdTimeout is whole seconds >= 2, got {timeout:g} s")
    health = 5
    if "health_check" in d:
        hv = d["health_check"]
        health = 0 if hv in (False, "off", 0) else ck.duration(hv, path + ("health_check",), positive=True)
        if health != int(health):
            raise ck.error(path + ("health_check",), f"HealthCheckInterval is whole seconds, got {health:g} s")
    part = ck.string(d.get("partition", "compute"), path + ("partition",))
    if not re.match(r"^[A-Za-z0-9_-]{1,40}$", part):
        raise ck.error(path + ("partition",), f"partition name {part!r} must be 1-40 of A-Z, a-z, 0-9, '_', '-'")
    return SlurmSpec(default_traffic=traffic, poll_s=poll, slurmd_timeout_s=int(timeout),
                     health_check_s=int(health), partition=part)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


@dataclass(frozen=True)
class ClusterSpec:
    """A validated ``cluster:`` section.

    Attributes
    ----------
    name : str
        Label value and name prefix of every Docker object.
    hosts : str, int or tuple of str
        ``"all"``, a count, or node descriptions/GUIDs.
    subnet : str or None
        Cluster network (None: a free private /24 is picked).
    node_exporter : bool
    graphite : bool
    sysfs_every_s : float
        Seconds between two refreshes of the hosts' sysfs trees [s].
    mad_port : int
        UDP base port of the MAD server on the gateway.
    slurm : SlurmSpec or None
        Slurm (a controller container, slurmd in every host), or none.
    """

    name: str
    hosts: object = "all"
    subnet: str | None = None
    node_exporter: bool = True
    graphite: bool = False
    sysfs_every_s: float = 1.0
    mad_port: int = 47100
    slurm: SlurmSpec | None = None


def _flag(ck, d: dict, key: str, default: bool) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise ck.error(("cluster", key), f"expected true or false, got {v!r}")
    return v


def parse_cluster(ck, value, *, default_name: str = "ibsim") -> ClusterSpec | None:
    """Validate the ``cluster:`` value (``ck``: the schema's checker); None when absent."""
    if value is None:
        return None
    path = ("cluster",)
    d = ck.mapping(value, path, CLUSTER_KEYS)
    name = ck.string(d.get("name", default_name), path + ("name",)).lower()
    if not _NAME.match(name):
        raise ck.error(path + ("name",), f"cluster name {name!r} must be 1-40 of a-z, 0-9, '.', '_', '-' "
                       "(it prefixes container names)")
    hosts = d.get("hosts", "all")
    hp = path + ("hosts",)
    if hosts == "all":
        pass
    elif isinstance(hosts, bool) or not isinstance(hosts, (int, list)):
        raise ck.error(hp, f"expected 'all', a count or a list of CAs, got {hosts!r}")
    elif isinstance(hosts, int):
        if not 1 <= hosts <= 240:
            raise ck.error(hp, f"a cluster has 1 to 240 container hosts, got {hosts}")
    else:
        if not hosts:
            raise ck.error(hp, "the list of hosts is empty")
        hosts = tuple(ck.string(h, hp + (i,)) for i, h in enumerate(hosts))
    subnet = None
    if d.get("network") is not None:
        np_ = path + ("network",)
        net = ck.mapping(d["network"], np_, ("subnet",))
        if "subnet" in net:
            text = ck.string(net["subnet"], np_ + ("subnet",))
            try:
                n = ipaddress.ip_network(text, strict=True)
            except ValueError as exc:
                raise ck.error(np_ + ("subnet",), f"{text!r} is not a subnet like 172.31.240.0/24 ({exc})") \
                    from None
            if n.version != 4 or not n.is_private or n.prefixlen > 24:
                raise ck.error(np_ + ("subnet",), f"expected a private IPv4 subnet of /24 or larger, got {text}")
            subnet = str(n)
    every = ck.duration(d["sysfs_every"], path + ("sysfs_every",), positive=True) if "sysfs_every" in d else 1.0
    port = 47100
    if "mad_port" in d:
        port = ck.integer(d["mad_port"], path + ("mad_port",), lo=1024)
        if port > 65535 - 300:
            raise ck.error(path + ("mad_port",), f"must leave room for the client slots (<= 65235), got {port}")
    return ClusterSpec(name=name, hosts=hosts, subnet=subnet,
                       node_exporter=_flag(ck, d, "node_exporter", True),
                       graphite=_flag(ck, d, "graphite", False), sysfs_every_s=every, mad_port=port,
                       slurm=parse_slurm(ck, d.get("slurm"), path + ("slurm",)))


def hostname_of(desc: str) -> str:
    """Hostname from a node description: its first word, lower case (``"node042 HCA-1"`` -> ``node042``)."""
    word = (desc.split() or [""])[0].lower()
    word = re.sub(r"[^a-z0-9-]", "-", word).strip("-")
    return word[:63]


def _natural(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def resolve_hosts(scenario, fabric) -> list[tuple[int, str]]:
    """``(node index, hostname)`` of the container hosts of ``scenario.cluster`` in ``fabric``.

    A count takes the first CAs by description (natural order). Raises
    ScenarioError naming ``cluster.hosts`` for a node that is not a CA, more
    hosts than CAs, or two hosts with the same hostname.
    """
    spec = scenario.cluster
    cas = [n for n in range(fabric.n_nodes) if int(fabric.node_type[n]) == 1]
    cas.sort(key=lambda n: _natural(fabric.node_desc[n]))
    hp = ("cluster", "hosts")
    if spec.hosts == "all":
        chosen = cas
    elif isinstance(spec.hosts, int):
        if spec.hosts > len(cas):
            raise scenario._error(hp, f"{spec.hosts} hosts asked for, but the fabric has only {len(cas)} CAs")
        chosen = cas[:spec.hosts]
    else:
        chosen = []
        for i, name in enumerate(spec.hosts):
            try:
                n = fabric.find_node(name)
            except Exception as exc:  # noqa: BLE001 - TopologyError/KeyError: not in the fabric
                raise scenario._error(hp + (i,), f"{name!r} is not a node of the fabric "
                                      f"({getattr(exc, 'message', exc)})") from None
            if int(fabric.node_type[n]) != 1:
                raise scenario._error(hp + (i,), f"{name!r} is not a CA (only CAs become container hosts)")
            if n in chosen:
                raise scenario._error(hp + (i,), f"{name!r} is listed twice")
            chosen.append(n)
    if len(chosen) > 240:
        raise scenario._error(hp, f"{len(chosen)} hosts; a cluster has at most 240 (give a count)")
    out, seen = [], {}
    for n in chosen:
        h = hostname_of(fabric.node_desc[n]) or f"host{int(fabric.node_guid[n]) & 0xffff:04x}"
        if h in seen:
            h = f"{h}-{int(fabric.node_guid[n]) & 0xffff:04x}"
        seen[h] = n
        out.append((n, h))
    return out
