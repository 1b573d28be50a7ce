"""Cluster: a scenario's simulation with compute hosts as Docker containers.

:meth:`Cluster.up` composes, in this order (and undoes all of it on any
failure): the run directory, checked and created (when ``out`` is given);
the simulation built from the scenario; the images (built when
missing); the cluster network; every host's sysfs tree; the MAD server on
UDP at the network's gateway; Graphite (optional); with Slurm, its
``slurm.conf``, the bridge's hook socket on the gateway and the controller
container; the host containers, in parallel; the exporters and the
recorder; the Docker event coupling; the clock, in a thread, at real time;
and with Slurm the bridge (jobs -> traffic), the log follower (Slurm's logs
-> ``log`` events) and a wait until every node is idle. :meth:`Cluster.down` stops the clock,
removes every labelled container and the network, deletes the sysfs trees
and writes the run directory (as ``python -m ibsim run`` does).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import time
from pathlib import Path

from .. import export
from ..errors import HostError, ScenarioError
from ..hosts import ContainerHosts, DockerCoupling, HostSpec, SysfsTrees, docker_client
from ..hosts.containers import HOST_OFFSET, check_subnet, host_address, pick_subnet, remove_cluster
from ..hosts.images import build_image
from ..hosts.logs import LogFollower
from ..hosts.slurm import SlurmBridge
from ..hosts.slurmconf import CONTROLLER, slurm_conf
from ..scenario import Scenario
from ..scenario.cluster import resolve_hosts

__all__ = ["Cluster", "state_dir"]

log = logging.getLogger(__name__)


def state_dir(name: str) -> Path:
    """Where a cluster keeps its sysfs trees and Prometheus targets: ``/dev/shm/ibsim/cluster-<name>``.

    A tmpfs, because the trees are rewritten every second (a file rewrite
    there costs ~20 us, against ~1 ms on a disk-backed directory); the
    temporary directory when ``/dev/shm`` is not writable.
    """
    base = Path("/dev/shm/ibsim") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir()) / "ibsim"
    return base / f"cluster-{name}"


class Cluster:
    """A running virtual cluster (also ``ibsim.Cluster``).

    Parameters
    ----------
    scenario : Scenario, str or Path
        A scenario with a ``cluster:`` section (or its file).
    until : float, optional
        Simulated seconds after which the clock stops (default: the
        scenario's ``clock.duration``; without one, runs until :meth:`down`).
    realtime : float
        Simulated seconds per wall second.
    say : callable, optional
        Receives one line per step of :meth:`up` (progress for the CLI).
    out : str, Path or True, optional
        The run directory :meth:`down` writes, checked and created by
        :meth:`up` before anything starts (True: a fresh
        ``<output>/<name>-<UTC time>/``); its ``metadata.json`` says
        ``"running"`` until :meth:`down` writes the results. Default: none
        prepared; ``down(out)`` checks and creates its directory then.
    overwrite : bool
        Replace the previous run in a non-empty ``out``.

    Examples
    --------
    >>> import ibsim
    >>> with ibsim.Cluster("topologies/cluster-demo.yml") as c:     # doctest: +SKIP
    ...     c.exec("node001", "perfquery")
    """

    def __init__(self, scenario, *, until: float | None = None, realtime: float = 1.0, say=None,
                 out=None, overwrite: bool = False):
        scn = scenario if isinstance(scenario, Scenario) else Scenario.from_file(scenario)
        if scn.cluster is None:
            raise ScenarioError("the scenario has no 'cluster:' section (see topologies/cluster-demo.yml)",
                                source=scn.source)
        self.scenario = scn
        self.spec = scn.cluster
        self.name = self.spec.name
        self.until = until if until is not None else scn.clock.duration_s
        self.realtime = realtime
        self.say = say or (lambda line: log.info("%s", line))
        self.sim = None
        self.hosts: list[HostSpec] = []
        self.subnet = self.gateway = None
        self.graphite_address = None
        self.client = self.containers = self.trees = self.server = None
        self.coupling = self.stage = self.recorder = None
        self.targets_file = None
        self.slurm: SlurmBridge | None = None
        self.logs: LogFollower | None = None
        self.slurm_dir: Path | None = None
        self.controller_address = None
        self.slurm_up_s: float | None = None
        self._thread: threading.Thread | None = None
        self._wall0 = None
        self.result = None
        self.images: dict = {}
        self.out, self.overwrite = out, overwrite
        self.run_dir = None

    # ------------------------------------------------------------ bring-up
    def up(self) -> "Cluster":
        """Start everything; on any failure remove what was started and re-raise."""
        try:
            self._up()
        except BaseException:
            self._teardown(write=False)
            raise
        return self

    def _up(self) -> None:
        spec, scn = self.spec, self.scenario
        if self.out is not None and self.out is not False:
            from ..run import RunDir
            self.run_dir = RunDir.prepare(None if self.out is True else self.out, parent=scn.output.dir,
                                          name=scn.name, overwrite=self.overwrite)
        self._wall0 = time.monotonic()
        sim = self.sim = scn.build()
        placed = resolve_hosts(scn, sim.fabric)
        client = self.client = docker_client()
        stale = remove_cluster(client, self.name)["left"]     # leftovers of a crashed run
        if stale:
            net, why = stale[0]
            raise HostError(f"network {net} of an earlier run of cluster {self.name!r} cannot be removed "
                            f"({why}); restart the Docker daemon, or give the cluster another name "
                            "(cluster.name)")
        try:
            self.subnet = check_subnet(client, spec.subnet, len(placed)) if spec.subnet else pick_subnet(client)
        except ScenarioError as exc:
            raise scn._error(("cluster", "network", "subnet"), exc.message) from None
        self.gateway = host_address(self.subnet, 1)
        f = sim.fabric
        self.hosts = [HostSpec(n, h, f.node_desc[n], int(f.node_guid[n]), host_address(self.subnet, HOST_OFFSET + i))
                      for i, (n, h) in enumerate(placed)]
        for name in ("host",) + (("graphite",) if spec.graphite else ()):
            self.images[name], built = build_image(client, name, say=self.say)
        d = state_dir(self.name)
        self.containers = ContainerHosts(client, self.name, self.subnet)
        net = self.containers.create_network()
        self.trees = SysfsTrees(f, [(h.node, h.hostname) for h in self.hosts], d / "sys")
        self.trees.refresh(sim.snapshot())
        sim.observe(spec.sysfs_every_s, self.trees.refresh)
        from ..mad import start_mad_server
        self.server = start_mad_server(sim, udp=spec.mad_port, host=self.gateway)
        specs = list(scn.exporters)
        if spec.graphite:
            self.graphite_address = self.containers.start_graphite(self.images["graphite"])
            specs += [export.ExporterSpec("graphite", {"host": self.graphite_address, "port": 2003}),
                      export.ExporterSpec("graphite_events",
                                          {"url": f"http://{self.graphite_address}:8080/events/"})]
        if spec.slurm is not None:
            self._prepare_slurm(d / "slurm")
        self.say(f"starting {len(self.hosts)} host containers on {self.subnet}")
        self.containers.start_hosts(self.hosts, image=self.images["host"], trees=self.trees,
                                    mad_port=spec.mad_port, node_exporter=spec.node_exporter,
                                    slurm_dir=self.slurm_dir)
        if spec.node_exporter:
            self.targets_file = d / "prometheus-targets.json"
            groups = [{"targets": [f"{h.address}:9100"], "labels": {"ibsim_cluster": self.name,
                                                                     "host": h.hostname}}
                      for h in self.hosts]
            self.targets_file.write_text(json.dumps(groups, indent=1) + "\n")
        out = scn.output
        self.recorder = export_recorder(sim, out)
        if self.run_dir is not None:
            self.recorder.start(self.run_dir)         # metadata.json: "status": "running"
        if specs:
            self.stage = export.attach(sim, specs, every=out.every_s, until=self.until, realtime=self.realtime)
        ids = {self.containers.containers[h.hostname].id: f"0x{h.node_guid:016x}" for h in self.hosts}
        self.coupling = DockerCoupling(client, self.name, net.id, ids, sim.inject)
        since = time.time()
        self.coupling.sync()
        self.coupling.start(since=since - 1)
        self._thread = threading.Thread(target=self._run, name=f"ibsim-cluster-{self.name}", daemon=True)
        self._thread.start()
        if self.slurm is not None:
            self._start_slurm(since)

    def _prepare_slurm(self, conf_dir: Path) -> None:
        """slurm.conf, the bridge's hook socket, and the controller container."""
        sl = self.spec.slurm
        names = [h.hostname for h in self.hosts]
        if CONTROLLER in names:
            raise self.scenario._error(("cluster", "hosts"), f"a host may not be called {CONTROLLER!r} with "
                                       "slurm: it is the controller's hostname")
        conf_dir.mkdir(parents=True, exist_ok=True)
        self.slurm_dir = conf_dir
        (conf_dir / "slurm.conf").write_text(slurm_conf(self.name, names, slurmd_timeout=sl.slurmd_timeout_s,
                                                        health_check_s=sl.health_check_s,
                                                        partition=sl.partition))
        self.slurm = SlurmBridge(self.sim, {h.hostname: h.node_desc for h in self.hosts}, listen=self.gateway,
                                 default_traffic=sl.default_traffic, poll_s=sl.poll_s)
        port = self.slurm.bind()
        (conf_dir / "ibsim-hook.conf").write_text(f"{self.gateway} {port}\n")
        self.say(f"starting the Slurm controller {self.containers.container_name(CONTROLLER)}")
        self.controller_address = self.containers.start_controller(self.images["host"], conf_dir)

    def _start_slurm(self, since: float, timeout: float = 120.0) -> None:
        """Follow the logs, start the bridge, and wait until every node is idle."""
        follow = {CONTROLLER: (self.container(CONTROLLER), "slurmctld")}
        follow.update({h.hostname: (self.container(h.hostname), "slurmd") for h in self.hosts})
        self.logs = LogFollower(follow, self.sim.note, since=since - 1).start()
        self.slurm.start(lambda argv: self.exec(CONTROLLER, *argv))
        self.say(f"waiting for Slurm: {len(self.hosts)} nodes to be idle")
        deadline = time.monotonic() + timeout
        idle = 0
        while time.monotonic() < deadline:
            if self.slurm.poll():                       # the bridge's own squeue/sinfo reading
                idle = sum(1 for st in self.slurm.nodes.values() if st["state"] == "idle")
                if idle == len(self.hosts):
                    self.slurm_up_s = time.monotonic() - self._wall0
                    self.say(f"Slurm is up: {idle} nodes idle after {self.slurm_up_s:.1f} s")
                    return
            time.sleep(0.25)
        raise HostError(f"Slurm did not come up: {idle} of {len(self.hosts)} nodes idle after {timeout:g} s "
                        f"(see: docker logs {self.containers.container_name(CONTROLLER)})")

    def _run(self) -> None:
        try:
            self.sim.run(self.until if self.until is not None else math.inf, realtime=self.realtime)
        except Exception:  # noqa: BLE001 - reported by down()
            log.exception("the simulation stopped")

    # ------------------------------------------------------------ use
    @property
    def running(self) -> bool:
        """The clock is running."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the clock to stop (``until`` reached or :meth:`down`); True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def host(self, hostname: str) -> HostSpec:
        """The :class:`HostSpec` of a hostname."""
        for h in self.hosts:
            if h.hostname == hostname:
                return h
        raise KeyError(f"no host {hostname!r}; hosts: {', '.join(h.hostname for h in self.hosts)}")

    def container(self, hostname: str):
        """The SDK container of a host (or ``"graphite"``)."""
        return self.containers.containers[hostname]

    def exec(self, hostname: str, *cmd: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run ``cmd`` in a host's container; returns ``(exit code, output)``."""
        argv = list(cmd) if len(cmd) != 1 else ["sh", "-c", cmd[0]]
        r = self.container(hostname).exec_run(argv, demux=False)
        return r.exit_code, (r.output or b"").decode(errors="replace")

    def refresh_sysfs(self):
        """Refresh every host's sysfs tree now; returns the snapshot written."""
        snap = self.sim.snapshot()
        self.trees.refresh(snap)
        return snap

    def status(self) -> dict:
        """What runs where: hosts, addresses, the MAD server, Graphite, the targets file."""
        return {"name": self.name, "subnet": self.subnet, "gateway": self.gateway,
                "mad_server": f"{self.gateway}:{self.spec.mad_port}/udp",
                "graphite": f"http://{self.graphite_address}:8080/" if self.graphite_address else None,
                "prometheus_targets": str(self.targets_file) if self.targets_file else None,
                "sysfs": str(self.trees.root) if self.trees else None,
                "slurm": ({"controller": self.containers.container_name(CONTROLLER),
                           "address": self.controller_address, "hook": f"{self.gateway}:{self.slurm.port}/udp",
                           "up_s": self.slurm_up_s, "partition": self.spec.slurm.partition}
                          if self.slurm is not None else None),
                "time_s": self.sim.time_s if self.sim else None,
                "hosts": [{"hostname": h.hostname, "container": self.containers.container_name(h.hostname),
                           "address": h.address, "node_desc": h.node_desc,
                           "node_guid": f"0x{h.node_guid:016x}"} for h in self.hosts]}

    # ------------------------------------------------------------ teardown
    def down(self, out=None, *, plot: bool = True, write: bool = True, reason: str | None = None):
        """Stop the clock, remove the containers and the network, write the run directory.

        ``reason`` says why a run that had not reached ``until`` stopped
        (``status_reason`` in ``metadata.json``, e.g. ``"SIGTERM"``).

        Returns
        -------
        RunResult or None
            The run directory (None when ``write`` is False or nothing ran).
        """
        return self._teardown(out=out, plot=plot, write=write, reason=reason)

    def _teardown(self, out=None, plot: bool = True, write: bool = True, reason: str | None = None):
        interrupted = self.running
        if self.sim is not None:
            self.sim.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.coupling is not None:
            self.coupling.close()
        slurm = None
        if self.slurm is not None:
            self.slurm.close()
            slurm = self.slurm.summary()
        if self.logs is not None:
            self.logs.close()
            if slurm is not None:
                slurm["log_lines"] = self.logs.lines
        stats = {}
        if self.stage is not None:
            stats = self.stage.close()
            self.stage = None
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.client is not None:
            for net, why in remove_cluster(self.client, self.name)["left"]:
                log.warning("network %s is left: %s (restart the Docker daemon to free it)", net, why)
        if self.trees is not None:
            self.trees.remove()
        d = state_dir(self.name)
        if self.targets_file is not None:
            self.targets_file.unlink(missing_ok=True)
        if self.slurm_dir is not None:
            for p in self.slurm_dir.glob("*"):
                p.unlink(missing_ok=True)
            try:
                self.slurm_dir.rmdir()
            except OSError:
                pass
        try:
            d.rmdir()
        except OSError:
            pass
        if write and self.recorder is not None and self.result is None:
            extra = {"cluster": self.status()} | ({"exporters": stats} if stats else {}) \
                | ({"slurm": slurm} if slurm is not None else {})
            if out is not None and self.run_dir is not None and Path(out) != self.run_dir.path:
                self.run_dir.discard()                # down(out) names another directory
                self.run_dir = None
            why = f"{reason or 'stopped by down()'} at t={self.sim.time_s:g} s" if interrupted else None
            self.result = self.recorder.write(out, wall_s=time.monotonic() - self._wall0,
                                              interrupted=interrupted, reason=why, plot=plot,
                                              extra=extra, overwrite=self.overwrite)
        elif self.run_dir is not None and self.result is None:
            self.run_dir.discard()                    # nothing written: leave no run directory
        self.run_dir = None
        self.recorder = None
        return self.result

    def __enter__(self) -> "Cluster":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down(write=self.run_dir is not None)      # the run directory asked for with out=


def export_recorder(sim, out):
    """The run-directory recorder of a cluster run (``out``: the scenario's OutputSpec)."""
    from ..run import Recorder
    return Recorder(sim, every=out.every_s, max_rows=out.max_rows)
