"""Docker events -> the simulated fabric: a stopped host is an unplugged CA.

:class:`DockerCoupling` follows two event streams of the engine: container
events filtered by the cluster's label, and network events of the cluster
network. Per host it keeps three facts (running, paused, connected); the CA
is plugged exactly when the container runs, is not paused and is connected
to the cluster network. When that changes it calls
``inject("unplug", node)`` or ``inject("replug", node)`` (the simulation
applies it at its next tick boundary: LinkDowned on both ends, trap 128,
``link_down``/``link_up`` events to every exporter).

============================  ==========
container ``start``           running
container ``die``             not running (``docker stop``/``kill``, exit, OOM)
container ``pause``           paused
container ``unpause``         not paused
network ``disconnect``        not connected (may arrive twice; idempotent)
network ``connect``           connected
============================  ==========
"""

from __future__ import annotations

import logging
import threading
import time

from .engine import LABEL, close_streams, docker_errors

__all__ = ["DockerCoupling", "HostFacts"]

log = logging.getLogger(__name__)


class HostFacts:
    """What the engine says about one host container."""

    __slots__ = ("target", "running", "paused", "connected")

    def __init__(self, target: str, running: bool = True, paused: bool = False, connected: bool = True):
        self.target = target
        self.running = running
        self.paused = paused
        self.connected = connected

    @property
    def plugged(self) -> bool:
        """The CA should be plugged into the fabric."""
        return self.running and not self.paused and self.connected


class DockerCoupling:
    """Unplug and replug CAs as their containers stop, start, pause or leave the network.

    Parameters
    ----------
    client : docker.DockerClient
    cluster : str
        The cluster's label value.
    network_id : str
        ID of the cluster network.
    targets : dict
        Container ID -> fault target of its CA (the node GUID as ``0x...``).
    inject : callable
        ``inject(kind, target)``, e.g. ``Simulation.inject``.

    Attributes
    ----------
    log : list of (float, str, str, str)
        ``(wall time, container ID, event, plug action or "")`` for every event seen.
    """

    def __init__(self, client, cluster: str, network_id: str, targets: dict, inject):
        self.client = client
        self.cluster = cluster
        self.network_id = network_id
        self.inject = inject
        self.hosts = {cid: HostFacts(t) for cid, t in targets.items()}
        self.log: list[tuple] = []
        self._lock = threading.Lock()
        self._streams: list = []
        self._threads: list[threading.Thread] = []
        self._closing = False

    def sync(self) -> None:
        """Read every host container's state now and unplug those that are not plugged."""
        errors = docker_errors()
        for cid, facts in self.hosts.items():
            try:
                c = self.client.containers.get(cid)
                st = c.attrs["State"]
                nets = c.attrs["NetworkSettings"]["Networks"] or {}
                running, paused = bool(st.get("Running")), bool(st.get("Paused"))
                connected = any(v.get("NetworkID") == self.network_id for v in nets.values())
            except errors.NotFound:
                running, paused, connected = False, False, False
            self._update(cid, "sync", running=running, paused=paused, connected=connected)

    def start(self, since: float | None = None) -> "DockerCoupling":
        """Start following the event streams (from ``since``, epoch seconds; default now)."""
        since = int(since if since is not None else time.time())
        specs = [({"label": f"{LABEL}={self.cluster}", "type": "container"}, "container"),
                 ({"type": "network", "network": self.network_id}, "network")]
        for filters, what in specs:
            stream = self.client.events(decode=True, filters=filters, since=since)
            self._streams.append(stream)
            t = threading.Thread(target=self._follow, args=(stream, what), daemon=True,
                                 name=f"ibsim-docker-{what}-events")
            t.start()
            self._threads.append(t)
        return self

    def _follow(self, stream, what: str) -> None:
        try:
            for ev in stream:
                if self._closing:
                    break
                try:
                    self._on_event(ev, what)
                except Exception:  # noqa: BLE001 - one bad event never stops the coupling
                    log.exception("docker event %r", ev)
        except Exception as exc:  # noqa: BLE001 - the stream closes on shutdown
            if not self._closing:
                log.warning("docker %s event stream ended: %s", what, exc)

    def _on_event(self, ev: dict, what: str) -> None:
        action = str(ev.get("Action") or ev.get("status") or "")
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        if what == "container":
            cid = (ev.get("Actor") or {}).get("ID") or ev.get("id")
            changes = {"start": {"running": True, "paused": False}, "die": {"running": False},
                       "pause": {"paused": True}, "unpause": {"paused": False}}.get(action)
        else:
            cid = attrs.get("container")
            changes = {"disconnect": {"connected": False}, "connect": {"connected": True}}.get(action)
        if changes is None or cid not in self.hosts:
            return
        self._update(cid, f"{what} {action}", **changes)

    def _update(self, cid: str, why: str, **changes) -> None:
        with self._lock:
            facts = self.hosts[cid]
            before = facts.plugged
            for k, v in changes.items():
                setattr(facts, k, v)
            after = facts.plugged
            act = "" if after == before else ("replug" if after else "unplug")
            self.log.append((time.time(), cid, why, act))
        if act:
            log.info("container %s: %s -> %s %s", cid[:12], why, act, facts.target)
            self.inject(act, facts.target)

    def close(self) -> None:
        """Stop following the events (before the cluster's containers are removed)."""
        self._closing = True
        close_streams(self._streams, self._threads)
        self._streams.clear()
        self._threads.clear()
