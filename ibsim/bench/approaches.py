"""The monitoring approaches the suite compares, one registry.

Every approach watches the same :class:`~ibsim.bench.live.LiveFabric` and
delivers what it collects to a private carbon-cache (or, for node_exporter,
to a private Prometheus) under the names of :func:`ibsim.bench.live.port_key`.
Each writes one statistics line per sweep (JSON lines, ``stats.jsonl``):
``t0``/``t1`` (unix s), ``ports``, ``points``, ``dropped``, ``timeouts``.

======================  =====================================================================
name                    what runs
======================  =====================================================================
perfmgr-naive           OpenSM PerfMgr + the 2014 plugin design: a UDP socket per event,
                        formatted and sent inside ``report()``, never closed
perfmgr-batched         OpenSM PerfMgr + a well-built plugin: bounded queue, own thread,
                        one TCP connection, batches, cumulative values, traps as series
sweep-perfquery         ``ibnetdiscover --ports`` + ``perfquery -l -x -G`` per switch and
                        ``perfquery -x`` per CA port, one at a time (data and packet
                        counters: ibsim's PortCountersExtended has no error fields)
sweep-perfquery-par     the same with 4 tool calls at once
sweep-ibqueryerrors     one ``ibqueryerrors --data ...`` per sweep (needs OpenSM's SA; prints
                        only ports with an error counter or PortXmitWait above 0)
node-exporter           node_exporter in container hosts, scraped by Prometheus (CA ports
                        of the containerised hosts only)
direct                  ibsim's own Graphite exporter: the engine's counters, no MADs
======================  =====================================================================
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ..errors import BenchError
from .procs import cpu_seconds, thread_cpu_seconds

__all__ = ["APPROACHES", "Approach", "Context", "read_stats", "parse_approaches"]

PREFIX = "ib"


class Context:
    """What an approach gets: the live fabric, carbon, its directory and the suite's options."""

    def __init__(self, *, live, carbon, workdir: Path, interval: float, prometheus=None, options=None):
        self.live = live
        self.carbon = carbon
        self.dir = Path(workdir)
        self.interval = interval
        self.prometheus = prometheus
        self.options = options or {}
        self.stats_path = self.dir / "stats.jsonl"


def read_stats(path) -> tuple[list[dict], dict | None]:
    """Sweep lines and the final line of a statistics file (a torn last line is ignored)."""
    sweeps, final = [], None
    try:
        text = Path(path).read_text()
    except OSError:
        return [], None
    for line in text.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d.get("final"):
            final = d
        elif "t0" in d:
            sweeps.append(d)
    return sweeps, final


class Approach:
    """Base: an approach that needs nothing from OpenSM and runs no process."""

    name = ""
    description = ""
    #: "cumulative" (absolute counter values) or "delta" (PerfMgr's differences as they come)
    values = "cumulative"
    #: OpenSM runs PerfMgr for this approach
    perfmgr = False
    #: carbon also listens for UDP lines
    carbon_udp = False
    #: the approach sends traps as series
    traps = False
    #: the approach collects link_downed (the counter path of the event latency)
    link_downed = True
    #: the metric names use "0x" before the GUID
    guid_style = "plain"

    def check(self) -> None:
        """Raise :class:`BenchError` (one line) when something this approach needs is missing."""

    def opensm_config(self, ctx: Context) -> tuple[str, dict]:
        """OpenSM's config file text and extra environment."""
        return "", {}

    def make_live(self, ctx: Context, size, *, seed: int, load: float, opensm_config: str, opensm_env: dict):
        """The live fabric this approach watches (container hosts bring their own)."""
        from .live import LiveFabric
        return LiveFabric(size, ctx.dir, seed=seed, load=load, opensm_config=opensm_config,
                          opensm_env=opensm_env)

    def close_live(self, ctx: Context) -> None:
        """Remove what :meth:`make_live` started besides the live fabric."""

    def sink(self, ctx: Context):
        """Where the approach's points are read back (``.points(names, since)``): carbon."""
        return ctx.carbon

    def start(self, ctx: Context) -> None:
        """Start collecting (OpenSM is up)."""

    def cpu(self, ctx: Context) -> dict:
        """``{process: CPU seconds}`` of this approach's monitoring processes now."""
        return {}

    def expected_ports(self, ctx: Context):
        """Port indices this approach is expected to report (default: every cabled port)."""
        return ctx.live.cabled

    def expected_final(self, ctx: Context, truth):
        """Ports the approach must report in the sweep after the freeze, given the engine's
        counters ``truth`` [counter, port] (default: :meth:`expected_ports`)."""
        return self.expected_ports(ctx)

    def stop(self, ctx: Context) -> None:
        """Stop collecting; the statistics file is complete afterwards."""

    def extra(self, ctx: Context) -> dict:
        """More result keys, after :meth:`stop`."""
        return {}


# ---------------------------------------------------------------------- PerfMgr plugins
class PerfMgrPlugin(Approach):
    perfmgr = True
    plugin = ""

    @staticmethod
    def build_dir() -> Path:
        """Where the plugins are built (cached by a hash of their sources)."""
        import tempfile
        return Path(tempfile.gettempdir()) / f"ibsim-bench-plugins-{os.getuid()}"

    def check(self) -> None:
        from .plugins import build_plugin
        build_plugin(self.plugin, self.build_dir())      # gcc and the headers, or one line

    def opensm_config(self, ctx: Context) -> tuple[str, dict]:
        from .plugins import opensm_config
        return opensm_config(self.plugin, carbon=ctx.carbon, stats=ctx.stats_path, prefix=PREFIX,
                             sweep_time_s=max(int(ctx.interval), 1), outdir=self.build_dir())

    def start(self, ctx: Context) -> None:
        from .plugins import wait_plugin_loaded
        wait_plugin_loaded(ctx.live.opensm, self.plugin)

    def cpu(self, ctx: Context) -> dict:
        sm = ctx.live.opensm
        v = cpu_seconds(sm.proc.pid) if sm is not None else None
        return {"opensm": v} if v is not None else {}

    def stop(self, ctx: Context) -> None:
        sm = ctx.live.opensm
        # PerfMgr's MADs that timed out ("evicting entry ... mgmt class 0x4")
        self.mad_timeouts = sm.log_text().count("ERR 5401")
        sm.stop(timeout=40)                      # delete() flushes and writes the final line
        ctx.live.opensm = None

    def extra(self, ctx: Context) -> dict:
        return {"perfmgr_mad_timeouts": getattr(self, "mad_timeouts", None)}


class NaivePlugin(PerfMgrPlugin):
    name = "perfmgr-naive"
    description = "OpenSM PerfMgr + naive event plugin (UDP socket per event, inside report())"
    plugin = "naive"
    values = "delta"
    carbon_udp = True


class BatchedPlugin(PerfMgrPlugin):
    name = "perfmgr-batched"
    description = "OpenSM PerfMgr + well-built event plugin (queue, own thread, one TCP connection)"
    plugin = "batched"
    traps = True


# ---------------------------------------------------------------------- tool sweeps
class ToolSweep(Approach):
    mode = "perfquery"
    concurrency = 1

    def check(self) -> None:
        from .ofed import have_tools
        tools = ("ibnetdiscover", "perfquery") if self.mode == "perfquery" else ("ibqueryerrors",)
        if not have_tools(*tools):
            raise BenchError(f"{self.name} needs {', '.join(tools)} and libumad2sim: "
                             "apt-get install infiniband-diags libumad2sim0")

    def start(self, ctx: Context) -> None:
        cmd = [sys.executable, "-m", "ibsim.bench.sweeps", "--mode", self.mode,
               "--concurrency", str(self.concurrency), "--interval", str(ctx.interval),
               "--carbon", f"127.0.0.1:{ctx.carbon.ports['line']}", "--prefix", PREFIX,
               "--stats", str(ctx.stats_path), "--sim-host", ctx.live.sm_node, *ctx.live.tool_args(),
               "--until", str(int(time.time()) + 7 * 86400),       # stopped by SIGTERM
               # treydock's per-call default; one ibqueryerrors call covers the whole fabric
               "--timeout", str(5 if self.mode == "perfquery" else max(5, 3 * ctx.interval))]
        if self.mode == "perfquery":
            cmd.append("--hca")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self._log = open(ctx.dir / "collector.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=ctx.dir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def cpu(self, ctx: Context) -> dict:
        v = cpu_seconds(self.proc.pid, children=True)
        return {"collector": v} if v is not None else {}

    def stop(self, ctx: Context) -> None:
        from .ofed import stop_process
        stop_process(self.proc, timeout=30)
        self._log.close()


class PerfquerySweep(ToolSweep):
    name = "sweep-perfquery"
    link_downed = False                # perfquery -x: ibsim's PortCountersExtended has no error fields
    description = "ibnetdiscover --ports + perfquery -l -x -G per switch, perfquery -x per CA (1 at a time)"


class PerfqueryParallel(ToolSweep):
    name = "sweep-perfquery-par"
    description = "the same sweep with 4 perfquery calls at once"
    concurrency = 4


class IbqueryerrorsSweep(ToolSweep):
    name = "sweep-ibqueryerrors"
    description = "one ibqueryerrors --data sweep (rediscovers the fabric; needs OpenSM's SA)"
    mode = "ibqueryerrors"

    def expected_final(self, ctx: Context, truth):
        """What ibqueryerrors prints: ports with an error counter or PortXmitWait above 0
        (``--suppress-common`` leaves out PortRcvSwitchRelayErrors)."""
        import numpy as np

        from ..fabric import COUNTER_ROW, COUNTERS
        rows = [COUNTER_ROW[c.name] for c in COUNTERS if c.bits is not None and c.name not in (
            "port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets",
            "port_rcv_switch_relay_errors")] + [COUNTER_ROW["port_xmit_wait"]]
        ports = np.asarray(self.expected_ports(ctx))
        return ports[(truth[np.ix_(sorted(set(rows)), ports)] > 0).any(axis=0)]


# ---------------------------------------------------------------------- direct export
class _Timed:
    """Wraps an exporter: one statistics line per ``write`` (the direct approach's sweep)."""

    def __init__(self, exporter, stats_path: Path, n_ports: int):
        self.exporter = exporter
        self.name = getattr(exporter, "name", "graphite")
        self.unit = getattr(exporter, "unit", "points")
        self._fh = open(stats_path, "a")
        self._k = 0
        self._n_ports = n_ports

    def open(self):
        return self.exporter.open()

    def _moved(self) -> int:
        """Points written to the network so far (confirmation comes later, at a connection's close)."""
        t = getattr(self.exporter, "transport", None)
        moved = getattr(t, "transmitted", None)
        return moved if moved is not None else self.exporter.stats().get("sent", 0)

    def write(self, snap) -> None:
        before = self._moved()
        t0 = time.time()
        self.exporter.write(snap)
        t1 = time.time()
        st = self.exporter.stats()
        self._k += 1
        # "stamp": the instant the values are of (the snapshot's), which may precede t0
        self._fh.write(json.dumps({"sweep": self._k, "t0": t0, "t1": t1, "stamp": snap.wall_time,
                                   "ports": self._n_ports,
                                   "points": self._moved() - before, "dropped": st.get("dropped", 0),
                                   "timeouts": 0}) + "\n")
        self._fh.flush()

    def stats(self) -> dict:
        return self.exporter.stats()

    def close(self) -> None:
        try:
            self.exporter.close()
        finally:
            self._fh.write(json.dumps({"final": True, "values": "cumulative", "sweeps": self._k}) + "\n")
            self._fh.close()


class Direct(Approach):
    name = "direct"
    description = "ibsim's Graphite exporter: the engine's counters, no MADs (upper bound)"
    guid_style = "0x"

    def start(self, ctx: Context) -> None:
        from ..export import attach, build_exporter
        live = ctx.live
        exp = build_exporter("graphite", {"host": "127.0.0.1", "port": ctx.carbon.ports["line"],
                                          "template": f"{PREFIX}.<guid>.<port>.<counter>",
                                          "ports": "cabled", "jobs": False})
        self.timed = _Timed(exp, ctx.stats_path, int(live.cabled.size))
        self.stage = attach(live.sim, [self.timed], every=ctx.interval, realtime=1.0)
        self._thread = next(iter(self.stage))._thread

    def cpu(self, ctx: Context) -> dict:
        tid = getattr(self._thread, "native_id", None)
        v = thread_cpu_seconds(tid) if tid else None
        return {"export-thread": v} if v is not None else {}

    def stop(self, ctx: Context) -> None:
        self.stage.close()


# ---------------------------------------------------------------------- per-host collectors
class NodeExporter(Approach):
    """node_exporter's infiniband collector in container hosts, scraped by a real Prometheus.

    Only the containerised hosts' own CA ports can be seen (no switch ports):
    ``ports_expected`` is their number, ``fabric_ports`` shows what is missed.
    """

    name = "node-exporter"
    description = "node_exporter in container hosts scraped by Prometheus (their CA ports only)"
    guid_style = "plain"
    #: container hosts (per-host cost = CPU / hosts)
    hosts = 8

    def check(self) -> None:
        import shutil
        if not shutil.which("prometheus"):
            raise BenchError("node-exporter needs prometheus: apt-get install prometheus")
        from ..hosts import docker_client
        docker_client()                                 # a HostError naming what to do if Docker is away

    def make_live(self, ctx: Context, size, *, seed: int, load: float, opensm_config: str, opensm_env: dict):
        import socket as _socket

        from ..cluster import Cluster
        from .carbon import free_port
        from .live import LiveFabric, scenario
        k = min(self.hosts, size.cas)
        mad_port = free_port(_socket.SOCK_DGRAM)
        scn = scenario(size, seed=seed, load=load, output=str(ctx.dir / "run"),
                       cluster={"name": f"ibsimbench{os.getpid()}", "hosts": k, "node_exporter": True,
                                "graphite": False, "sysfs_every": "1s", "mad_port": mad_port})
        self.cluster = Cluster(scn).up()
        try:
            return LiveFabric(size, ctx.dir, sim=self.cluster.sim, udp=(self.cluster.gateway, mad_port),
                              server=self.cluster.server, opensm_config=opensm_config, opensm_env=opensm_env)
        except BaseException:
            self.close_live(ctx)
            raise

    def close_live(self, ctx: Context) -> None:
        c = getattr(self, "cluster", None)
        if c is not None:
            c.down(write=False)
            self.cluster = None

    def start(self, ctx: Context) -> None:
        from .prometheus import Prometheus, PrometheusSink
        c = self.cluster
        self.prom = Prometheus(ctx.dir / "prometheus", c.targets_file, interval=ctx.interval)
        self._sink = PrometheusSink(self.prom, {h.node_guid: f"{h.address}:9100" for h in c.hosts})
        self._pids = []
        for h in c.hosts:
            try:
                ct = c.container(h.hostname)
                ct.reload()
                self._pids.append(int(ct.attrs["State"]["Pid"]))
            except Exception:                           # noqa: BLE001 - a host that died is a result
                continue
        import threading
        self._stop = threading.Event()
        self._rounds = threading.Thread(target=self._write_rounds, args=(ctx,), daemon=True,
                                        name="ibsim-bench-scrapes")
        self._rounds.start()

    def _write_rounds(self, ctx: Context) -> None:
        """One statistics line per scrape round (every target scraped once since the last line)."""
        last: dict = {}
        k = 0
        with open(ctx.stats_path, "a") as fh:
            while not self._stop.wait(0.5):
                try:
                    ts = {r["metric"]["instance"]: float(r["value"][1]) for r in
                          self.prom.query('timestamp(scrape_duration_seconds{job="ibsim"})')}
                    if not ts or any(ts[i] <= last.get(i, 0.0) for i in ts) or len(ts) < len(self._sink.by_instance):
                        continue
                    dur = {r["metric"]["instance"]: float(r["value"][1]) for r in
                           self.prom.query('scrape_duration_seconds{job="ibsim"}')}
                    up = self.prom.query('sum(up{job="ibsim"})')
                    pts = self.prom.query('sum(scrape_samples_scraped{job="ibsim"})')
                except (OSError, ValueError, KeyError):
                    continue
                k += 1
                fh.write(json.dumps({"sweep": k, "t0": min(ts.values()),
                                     "t1": max(ts[i] + dur.get(i, 0.0) for i in ts),
                                     "duration_s": max(dur.values(), default=0.0),
                                     "ports": int(float(up[0]["value"][1])) if up else 0,
                                     "points": int(float(pts[0]["value"][1])) if pts else 0,
                                     "dropped": 0, "timeouts": len(ts) - (int(float(up[0]["value"][1])) if up else 0)})
                         + "\n")
                fh.flush()
                last = ts
            fh.write(json.dumps({"final": True, "values": "cumulative", "sweeps": k,
                                 "hosts": len(self._sink.by_instance)}) + "\n")

    def cpu(self, ctx: Context) -> dict:
        from .procs import tree_pids
        out = {}
        v = cpu_seconds(self.prom.proc.pid, children=False)
        if v is not None:
            out["prometheus"] = v
        for pid in self._pids:
            for p in tree_pids(pid):
                v = cpu_seconds(p, children=False)
                if v is not None:
                    out[f"host-{p}"] = v
        return out

    def expected_ports(self, ctx: Context):
        import numpy as np
        f = ctx.live.fabric
        return np.array(sorted(int(p) for h in self.cluster.hosts for p in f.ports_of_node(h.node)
                               if f.peer_of_port[p] >= 0))

    def sink(self, ctx: Context):
        return self._sink

    def stop(self, ctx: Context) -> None:
        self._stop.set()
        self._rounds.join(10)
        self.prom.stop()


#: the approaches by name, in the suite's order
APPROACHES: dict[str, type[Approach]] = {a.name: a for a in (
    NaivePlugin, BatchedPlugin, PerfquerySweep, PerfqueryParallel, IbqueryerrorsSweep, NodeExporter, Direct)}


def parse_approaches(text) -> list[Approach]:
    """``"direct,perfmgr-batched"`` (or ``all``) -> approach objects; unknown names list the valid ones."""
    if text in (None, "", "all"):
        names = list(APPROACHES)
    else:
        names = [n.strip() for n in str(text).split(",") if n.strip()]
    out = []
    for n in names:
        if n not in APPROACHES:
            from ..errors import suggest
            hint = suggest(n, APPROACHES)
            raise BenchError(f"--approaches: unknown approach {n!r}; choose from {', '.join(APPROACHES)}"
                             + (f" (did you mean {hint!r}?)" if hint else ""))
        out.append(APPROACHES[n]())
    if not out:
        raise BenchError("--approaches: no approach given")
    return out
