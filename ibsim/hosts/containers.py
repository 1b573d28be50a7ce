"""The Docker objects of a virtual cluster: one network, the host containers, Graphite.

Everything created carries the label ``org.ibsim.cluster=<cluster>`` and the
name prefix ``<cluster>-``; listing, stopping and removing only ever look at
objects with both, so an engine shared with other work is safe.

The network ``<cluster>-net`` is a user-defined, **internal** bridge with an
explicit subnet: containers reach each other and the gateway (where the MAD
server and the Slurm bridge listen) and nothing else. Addresses: the gateway
``.1``, Graphite ``.2``, the Slurm controller ``.3`` (hostname ``ctl``), hosts
from ``.10`` on. With Slurm, every container of the cluster mounts the
cluster's ``slurm.conf`` directory read-only at ``/etc/slurm`` and runs one
daemon in the foreground (``IBSIM_SLURM=controller``: slurmctld;
``host``: slurmd), whose log is the container's log.

Each host container runs image ``ibsim-host`` unprivileged (no capabilities
added, ``no-new-privileges``) with ``init`` (docker-init/tini as PID 1), its
hostname and network alias from the node description (``node042``), a tmpfs
at ``/sys/class`` and its own sysfs tree bound read-only at
``/sys/class/infiniband``, and the environment libumad2sim needs
(``IBSIM_SERVER_NAME``, ``IBSIM_SERVER_PORT``, ``SIM_HOST``). No Docker
socket is mounted.
"""

from __future__ import annotations

import ipaddress
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import HostError, ScenarioError
from .engine import LABEL, ROLE_LABEL, docker_errors

__all__ = ["HostSpec", "ContainerHosts", "pick_subnet", "check_subnet", "cluster_objects",
           "remove_cluster", "host_address", "GRAPHITE_OFFSET", "CONTROLLER_OFFSET", "HOST_OFFSET"]

log = logging.getLogger(__name__)

GRAPHITE_OFFSET = 2
CONTROLLER_OFFSET = 3
HOST_OFFSET = 10
_DEFAULT_POOL = [f"172.31.{i}.0/24" for i in range(240, 256)] + [f"10.213.{i}.0/24" for i in range(256)]


@dataclass(frozen=True)
class HostSpec:
    """One container host.

    Attributes
    ----------
    node : int
        Node index in the fabric (a CA).
    hostname : str
        Container hostname and network alias (``node042``).
    node_desc : str
        Node description (``SIM_HOST`` of its tools).
    node_guid : int
    address : str
        IPv4 address on the cluster network.
    """

    node: int
    hostname: str
    node_desc: str
    node_guid: int
    address: str


def host_address(subnet: str, offset: int) -> str:
    """The ``offset``-th address of ``subnet``."""
    return str(ipaddress.ip_network(subnet)[offset])


def _used_subnets(client) -> list[tuple[str, ipaddress.IPv4Network]]:
    used = []
    for net in client.networks.list():
        try:
            cfgs = (net.attrs.get("IPAM") or {}).get("Config") or []
        except Exception:  # noqa: BLE001 - a network that vanished meanwhile
            continue
        for c in cfgs:
            try:
                used.append((net.name, ipaddress.ip_network(c["Subnet"], strict=False)))
            except (KeyError, ValueError):
                pass
    try:
        with open("/proc/net/route") as fh:
            next(fh)
            for line in fh:
                f = line.split()
                dest, mask = int(f[1], 16), int(f[7], 16)
                if dest == 0:
                    continue
                a = ipaddress.IPv4Address(dest.to_bytes(4, "little"))
                m = ipaddress.IPv4Address(mask.to_bytes(4, "little"))
                used.append((f"host route via {f[0]}", ipaddress.ip_network(f"{a}/{m}", strict=False)))
    except (OSError, ValueError, StopIteration):
        pass
    return used


def check_subnet(client, subnet: str, n_hosts: int) -> str:
    """Validate a cluster subnet; raises ScenarioError (bad, too small or clashing)."""
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise ScenarioError(f"{subnet!r} is not an IPv4 subnet like 172.31.240.0/24 ({exc})") from None
    if net.version != 4 or not net.is_private:
        raise ScenarioError(f"subnet {subnet} must be a private IPv4 network (e.g. 172.31.240.0/24)")
    if net.num_addresses < HOST_OFFSET + n_hosts + 1:
        raise ScenarioError(f"subnet {subnet} is too small for {n_hosts} hosts; use a /24")
    for name, other in _used_subnets(client):
        if net.overlaps(other):
            raise ScenarioError(f"subnet {subnet} clashes with {other} of {name!r}; choose another "
                                "cluster.network.subnet")
    return str(net)


def pick_subnet(client) -> str:
    """The first /24 of ibsim's pool (172.31.240-255.0, then 10.213.x.0) that nothing uses."""
    used = [n for _, n in _used_subnets(client)]
    for cand in _DEFAULT_POOL:
        net = ipaddress.ip_network(cand)
        if not any(net.overlaps(u) for u in used):
            return cand
    raise HostError("no free private /24 for the cluster network; give cluster.network.subnet")


def cluster_objects(client, cluster: str | None = None) -> dict:
    """Containers and networks labelled for ``cluster`` (any cluster when None).

    Returns
    -------
    dict
        ``{"containers": [...], "networks": [...]}`` of SDK objects whose
        name also starts with their cluster's prefix.
    """
    flt = {"label": f"{LABEL}={cluster}" if cluster else LABEL}
    cons = [c for c in client.containers.list(all=True, filters=flt)
            if c.name.startswith(c.labels.get(LABEL, "\0") + "-")]
    nets = [n for n in client.networks.list(filters=flt)
            if n.name.startswith((n.attrs.get("Labels") or {}).get(LABEL, "\0") + "-")]
    return {"containers": cons, "networks": nets}


def remove_cluster(client, cluster: str, *, threads: int = 8, retries: int = 5) -> dict:
    """Force-remove every container, then every network, of ``cluster``; returns what happened.

    A network Docker refuses to remove (``has active endpoints``: the engine
    may release a removed container's endpoint a moment later, or, after a
    race in the engine, never) is tried ``retries`` times, 0.3 s apart, and
    then left, named in ``"left"`` with the engine's reason; nothing is
    raised, so a teardown always finishes.

    Returns
    -------
    dict
        ``{"containers": n removed, "networks": n removed, "left": [(network, reason), ...]}``.
    """
    import time

    errors = docker_errors()
    objs = cluster_objects(client, cluster)

    def rm(c):
        try:
            c.remove(force=True)
        except errors.NotFound:
            pass

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(rm, objs["containers"]))
    removed, left = 0, []
    for n in objs["networks"]:
        for attempt in range(retries + 1):
            try:
                n.remove()
                removed += 1
                break
            except errors.NotFound:
                break
            except errors.APIError as exc:
                if attempt == retries:
                    reason = str(exc.explanation or exc).splitlines()[0][:200]
                    left.append((n.name, reason))
                    log.debug("network %s could not be removed: %s", n.name, reason)
                else:
                    time.sleep(0.3)
    return {"containers": len(objs["containers"]), "networks": removed, "left": left}


class ContainerHosts:
    """Create, start and remove one cluster's network and containers.

    Parameters
    ----------
    client : docker.DockerClient
    cluster : str
        Cluster name: label value and name prefix.
    subnet : str
        The cluster network (checked with :func:`check_subnet`).
    """

    def __init__(self, client, cluster: str, subnet: str):
        self.client = client
        self.cluster = cluster
        self.subnet = subnet
        self.gateway = host_address(subnet, 1)
        self.network_name = f"{cluster}-net"
        self.network = None
        self.containers: dict[str, object] = {}     # hostname (or "graphite") -> Container

    def labels(self, role: str, **extra) -> dict:
        """The labels of an object with ``role``."""
        return {LABEL: self.cluster, ROLE_LABEL: role, **{f"org.ibsim.{k}": str(v) for k, v in extra.items()}}

    def create_network(self):
        """Create ``<cluster>-net`` (internal bridge, explicit subnet and gateway)."""
        docker = _sdk_types()
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=self.subnet,
                                                                           gateway=self.gateway)])
        errors = docker_errors()
        try:
            self.network = self.client.networks.create(
                self.network_name, driver="bridge", ipam=ipam, internal=True,
                labels=self.labels("network"), check_duplicate=True)
        except errors.APIError as exc:
            raise HostError(f"cannot create network {self.network_name} ({self.subnet}): "
                            f"{exc.explanation or exc}") from None
        return self.network

    def container_name(self, hostname: str) -> str:
        """``<cluster>-<hostname>``."""
        return f"{self.cluster}-{hostname}"

    def _create(self, *, image: str, hostname: str, address: str, env: dict, labels: dict,
                mounts=(), tmpfs=None) -> object:
        api = self.client.api
        host_config = api.create_host_config(
            init=True, tmpfs=tmpfs or {}, binds=[f"{src}:{dst}:ro" for src, dst in mounts],
            security_opt=["no-new-privileges"], restart_policy={"Name": "no"})
        net_config = api.create_networking_config({
            self.network_name: api.create_endpoint_config(ipv4_address=address, aliases=[hostname])})
        name = self.container_name(hostname)
        errors = docker_errors()
        try:
            cid = api.create_container(image, name=name, hostname=hostname, environment=env, labels=labels,
                                       host_config=host_config, networking_config=net_config,
                                       detach=True)["Id"]
            self.containers[hostname] = self.client.containers.get(cid)
            api.start(cid)
        except errors.APIError as exc:
            raise HostError(f"cannot start container {name}: {exc.explanation or exc}") from None
        return self.containers[hostname]

    def start_hosts(self, hosts, *, image: str, trees, mad_port: int, node_exporter: bool,
                    slurm_dir=None, threads: int = 8) -> None:
        """Create and start the host containers, ``threads`` at a time.

        Parameters
        ----------
        hosts : sequence of HostSpec
        image : str
            Tag of the host image.
        trees : SysfsTrees
            Provides each host's directory for ``/sys/class/infiniband``.
        mad_port : int
            UDP port of the MAD server on the gateway.
        node_exporter : bool
            Run node_exporter's infiniband collector on port 9100.
        slurm_dir : Path, optional
            The directory of ``slurm.conf``: the hosts run slurmd (and munged).
        """
        def one(h: HostSpec):
            env = {"IBSIM_SERVER_NAME": self.gateway, "IBSIM_SERVER_PORT": str(mad_port),
                   "SIM_HOST": h.node_desc, "IBSIM_ADDRESS": h.address,
                   "IBSIM_NODE_EXPORTER": "1" if node_exporter else "0"}
            mounts = [(str(trees.host_dir(h.hostname)), "/sys/class/infiniband")]
            if slurm_dir is not None:
                env["IBSIM_SLURM"] = "host"
                mounts.append((str(slurm_dir), "/etc/slurm"))
            return self._create(image=image, hostname=h.hostname, address=h.address, env=env,
                                labels=self.labels("host", node_guid=f"0x{h.node_guid:016x}",
                                                   node_desc=h.node_desc),
                                tmpfs={"/sys/class": "size=64k,mode=0755"}, mounts=mounts)

        with ThreadPoolExecutor(max(1, threads)) as pool:
            futures = [pool.submit(one, h) for h in hosts]
            errs = [f.exception() for f in futures if f.exception() is not None]
        if errs:
            raise errs[0]

    def start_graphite(self, image: str) -> str:
        """Start the Graphite container at ``.2``; returns its address."""
        addr = host_address(self.subnet, GRAPHITE_OFFSET)
        self._create(image=image, hostname="graphite", address=addr, env={"IBSIM_ADDRESS": addr},
                     labels=self.labels("graphite"))
        return addr

    def start_controller(self, image: str, slurm_dir) -> str:
        """Start the Slurm controller ``<cluster>-ctl`` (hostname ``ctl``) at ``.3``; returns its address."""
        addr = host_address(self.subnet, CONTROLLER_OFFSET)
        self._create(image=image, hostname="ctl", address=addr,
                     env={"IBSIM_ADDRESS": addr, "IBSIM_SLURM": "controller"},
                     labels=self.labels("controller"), mounts=[(str(slurm_dir), "/etc/slurm")])
        return addr

    def remove(self, threads: int = 8) -> dict:
        """Remove everything labelled for this cluster (containers first, then the network)."""
        self.containers.clear()
        self.network = None
        return remove_cluster(self.client, self.cluster, threads=threads)


def _sdk_types():
    import docker
    return docker
