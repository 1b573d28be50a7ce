"""Slurm jobs -> traffic in the simulation, and Slurm's job and node events -> every exporter.

:class:`SlurmBridge` is an adapter: it learns what Slurm runs where and
sends commands to the :class:`~ibsim.engine.Simulation` (``start_job``,
``end_job``, ``note``); it never touches the fabric state.

Two sources, so that a lost datagram heals within one poll:

1. **the controller's hooks** (``PrologSlurmctld``/``EpilogSlurmctld``): one UDP
   datagram per job start and end, JSON ``{"v": 1, "event": "start"|"end",
   "env": {SLURM_*}}``, sent to the bridge's socket on the cluster network's
   gateway. It carries the job's id, name, user, node list, comment and
   restart count, and arrives 20-90 ms before ``squeue`` shows RUNNING;
2. **reconciliation**: every ``poll_s``, ``squeue --json`` and ``sinfo --json``
   in the controller container. A RUNNING job the bridge does not know
   starts; a known job that Slurm no longer runs ends. Node state changes
   (``idle`` -> ``down``, ``+drain``) become ``node_state`` events.

What a job sends comes from its comment (``ibsim: pattern=... load=...``,
:func:`~ibsim.hosts.slurmconf.parse_comment`) or the cluster's
``default_traffic``; a bad comment gives a ``job_error`` event and no traffic.

Events (``sim.note``; every exporter sees them):

===============  =============================================================
``job_start``    job_id, name, user, nodes, hosts, run, pattern/load/rate or traffic "none"
``job_error``    job_id, name, user, error (a comment that cannot be traffic)
``job_end``      job_id, name, user, nodes, run, state (COMPLETED, CANCELLED, ...), exit_code
``job_requeue``  job_id, name, user, nodes, run, state, reason
``node_state``   node, state (``down``, ``idle+drain``, ...), previous, reason (at the node;
                 when it goes down, drains or fails, or comes back)
===============  =============================================================
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

from ..errors import HostError, ScenarioError
from ..traffic import Job
from .slurmconf import compress_hostlist, expand_hostlist, parse_comment

__all__ = ["SlurmBridge", "SlurmRun", "parse_squeue", "parse_sinfo", "TERMINAL_STATES"]

log = logging.getLogger(__name__)

#: job states after which a job never runs again (squeue's ``job_state``)
TERMINAL_STATES = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                             "OUT_OF_MEMORY", "DEADLINE", "BOOT_FAIL", "SPECIAL_EXIT"})
#: states of a job that ran and will run again
_REQUEUED = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"})
#: a job the hooks announced may still show PENDING/CONFIGURING in squeue this long [s]
_GRACE_S = 10.0
#: an ended job whose final state squeue never settles is reported after this long [s]
_SETTLE_S = 30.0


@dataclass
class SlurmRun:
    """One run of a Slurm job (a requeued job runs again with ``run`` + 1).

    Attributes
    ----------
    job_id : int
    run : int
        Slurm's restart count.
    name, user, comment : str
    nodes : list of str
        Slurm node names (the host containers' hostnames).
    traffic : str or None
        Name of its traffic job in the simulation (None: it sends nothing).
    seen_wall : float
        When the bridge learnt that it runs (epoch s).
    started_wall : float or None
        Wall time of the tick at which its traffic started (epoch s).
    source : str
        ``hook`` or ``poll``: what told the bridge first.
    ended_wall : float or None
        When its end was seen (it waits for squeue's final state until then).
    """

    job_id: int
    run: int
    name: str
    user: str
    comment: str
    nodes: list
    traffic: str | None = None
    seen_wall: float = 0.0
    started_wall: float | None = None
    source: str = "hook"
    ended_wall: float | None = None
    end_hint: dict = field(default_factory=dict)

    @property
    def nodelist(self) -> str:
        return compress_hostlist(self.nodes)

    def details(self) -> dict:
        return {"job_id": self.job_id, "name": self.name, "user": self.user, "nodes": self.nodelist,
                "run": self.run}


def parse_squeue(text: str) -> dict[int, dict]:
    """``squeue --json`` (openapi v0.0.38, Slurm 22.05) -> ``{job_id: job}`` with the fields used.

    Each job: ``state``, ``name``, ``user``, ``comment``, ``nodes`` (expanded
    list), ``run`` (restart count), ``exit_code``, ``reason``.
    """
    doc = json.loads(text)
    out = {}
    for j in doc.get("jobs") or []:
        res = j.get("job_resources") or {}
        nodes = [n.get("nodename") for n in res.get("allocated_nodes") or [] if n.get("nodename")]
        if not nodes and j.get("nodes"):
            nodes = expand_hostlist(j["nodes"])
        out[int(j["job_id"])] = {
            "state": str(j.get("job_state") or "").upper(), "name": j.get("name") or "",
            "user": j.get("user_name") or str(j.get("user_id", "")), "comment": j.get("comment") or "",
            "nodes": nodes, "run": int(j.get("restart_cnt") or 0), "exit_code": j.get("exit_code"),
            "reason": j.get("state_reason") or ""}
    return out


def parse_sinfo(text: str) -> dict[str, dict]:
    """``sinfo --json`` (Slurm 22.05) -> ``{node: {"state": "idle+drain", "reason": ...}}``."""
    doc = json.loads(text)
    out = {}
    for n in doc.get("nodes") or []:
        flags = [str(f).lower() for f in n.get("state_flags") or []]
        out[n["name"]] = {"state": "+".join([str(n.get("state", "")).lower()] + flags),
                          "reason": n.get("reason") or ""}
    return out


def _troubled(state: str) -> bool:
    """A node state that says something is wrong (down, drain, fail, not responding)."""
    return any(w in state for w in ("down", "drain", "fail", "not_responding", "unknown"))


class SlurmBridge:
    """Follow a virtual cluster's Slurm and drive the simulation's traffic from its jobs.

    Parameters
    ----------
    sim : Simulation
        Receives ``start_job``, ``end_job`` and ``note`` (from the bridge's threads).
    hosts : dict
        Slurm node name -> node description of its CA (``"node001 HCA-1"``).
    listen : str
        Address of the hook socket (the cluster network's gateway).
    default_traffic : dict, optional
        Traffic of jobs without an ``ibsim:`` comment (validated keys).
    poll_s : float
        Seconds between two reconciliations [s].

    Attributes
    ----------
    port : int
        UDP port of the hook socket (after :meth:`bind`).
    runs : list of SlurmRun
        Every job run seen, in order.
    stats : dict
        ``datagrams``, ``bad_datagrams``, ``polls``, ``poll_errors``, ``poll_s_total``,
        ``started_by_poll``, ``ended_by_poll``.
    """

    def __init__(self, sim, hosts: dict, *, listen: str, default_traffic: dict | None = None,
                 poll_s: float = 2.0):
        self.sim = sim
        self.hosts = dict(hosts)
        self.listen = listen
        self.default_traffic = default_traffic
        self.poll_s = float(poll_s)
        self.port: int | None = None
        self.runs: list[SlurmRun] = []
        self._seen: set[tuple[int, int]] = set()        # (job id, run) of every run in ``runs``
        self.active: dict[int, SlurmRun] = {}          # job id -> its current run
        self.ending: dict[tuple, SlurmRun] = {}        # (job id, run) -> a run whose final state is awaited
        self.nodes: dict[str, dict] = {}
        self.stats = {"datagrams": 0, "bad_datagrams": 0, "polls": 0, "poll_errors": 0, "poll_s_total": 0.0,
                      "started_by_poll": 0, "ended_by_poll": 0}
        self._sock: socket.socket | None = None
        self._exec = None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closing = False
        self._threads: list[threading.Thread] = []
        self.last_poll_error: str | None = None

    # ------------------------------------------------------------ lifecycle
    def bind(self) -> int:
        """Open the hook socket on ``listen`` (an ephemeral port); returns the port."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # room for a burst of job starts (the kernel caps it at net.core.rmem_max)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind((self.listen, 0))
        except OSError as exc:
            s.close()
            raise HostError(f"cannot listen for Slurm's job hooks on {self.listen} ({exc.strerror})") from None
        s.settimeout(0.5)
        self._sock = s
        self.port = s.getsockname()[1]
        return self.port

    def start(self, exec_controller) -> "SlurmBridge":
        """Start listening and polling.

        ``exec_controller(argv) -> (exit code, stdout text)`` runs a command in the
        controller container.
        """
        if self._sock is None:
            self.bind()
        self._exec = exec_controller
        for target, name in ((self._listen_loop, "hooks"), (self._poll_loop, "poll")):
            t = threading.Thread(target=target, name=f"ibsim-slurm-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        """Stop the threads and close the socket (the simulation's jobs are left as they are)."""
        self._closing = True
        self._wake.set()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def poll_now(self) -> None:
        """Ask for a reconciliation now (it runs in the poll thread)."""
        self._wake.set()

    # ------------------------------------------------------------ the hooks
    def _listen_loop(self) -> None:
        while not self._closing:
            try:
                data, _ = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                self.on_datagram(data)
            except Exception:  # noqa: BLE001 - one bad datagram never stops the bridge
                log.exception("slurm hook datagram")

    def on_datagram(self, data: bytes, now: float | None = None) -> None:
        """Handle one hook datagram (also called by tests with crafted bytes)."""
        now = time.time() if now is None else now
        try:
            msg = json.loads(data)
            env = msg["env"]
            event = msg["event"]
            job_id = int(env["SLURM_JOB_ID"])
            if event not in ("start", "end"):
                raise ValueError(event)
        except (ValueError, KeyError, TypeError):
            with self._lock:
                self.stats["bad_datagrams"] += 1
            log.warning("ignored a malformed Slurm hook datagram (%d bytes)", len(data))
            return
        with self._lock:
            self.stats["datagrams"] += 1
            run = int(env.get("SLURM_JOB_RESTART_COUNT") or 0)
            if event == "start":
                try:
                    nodes = expand_hostlist(env.get("SLURM_JOB_NODELIST", ""))
                except ValueError:
                    nodes = []
                self._start(job_id, run, name=env.get("SLURM_JOB_NAME", ""), user=env.get("SLURM_JOB_USER", ""),
                            comment=env.get("SLURM_JOB_COMMENT", ""), nodes=nodes, source="hook", now=now)
            else:
                cur = self.active.get(job_id)
                if cur is not None and cur.run == run:
                    hint = {"exit_code": env.get("SLURM_JOB_EXIT_CODE2") or env.get("SLURM_JOB_EXIT_CODE")}
                    self._stop(cur, now, hint)
                    self.poll_now()                     # learn how it ended (end or requeue)

    # ------------------------------------------------------------ reconciliation
    def _poll_loop(self) -> None:
        while not self._closing:
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._closing:
                break
            self.poll()

    def poll(self) -> bool:
        """One reconciliation with ``squeue --json`` and ``sinfo --json``; False when it failed."""
        t0 = time.monotonic()
        sep = "=====ibsim-sinfo====="
        try:
            code, out = self._exec(["sh", "-c", f"squeue --json; echo {sep}; sinfo --json"])
            if code != 0 or sep not in out:
                raise HostError(f"squeue/sinfo exited {code}: {out.strip().splitlines()[-1:] or ['']}")
            q, _, s = out.partition(sep)
            jobs, nodes = parse_squeue(q), parse_sinfo(s)
        except Exception as exc:  # noqa: BLE001 - the controller may be starting or gone
            with self._lock:
                self.stats["poll_errors"] += 1
                self.last_poll_error = str(exc)[:200]
            log.debug("slurm poll failed: %s", exc)
            return False
        now = time.time()
        with self._lock:
            self.stats["polls"] += 1
            self.stats["poll_s_total"] += time.monotonic() - t0
            self.reconcile(jobs, nodes, now)
        return True

    def reconcile(self, jobs: dict, nodes: dict | None = None, now: float | None = None) -> None:
        """Apply one squeue/sinfo reading (parsed): start, end and classify jobs; node events."""
        now = time.time() if now is None else now
        with self._lock:
            if nodes is not None:                       # a node goes DOWN before its jobs are requeued
                self._node_events(nodes)
            for jid, j in jobs.items():
                if j["state"] == "RUNNING":
                    cur = self.active.get(jid)
                    if cur is not None and cur.run < j["run"]:
                        self._stop(cur, now, {})        # its end datagram was lost
                        cur = None
                    if cur is None and not self._known(jid, j["run"]):
                        self.stats["started_by_poll"] += 1
                        self._start(jid, j["run"], name=j["name"], user=j["user"], comment=j["comment"],
                                    nodes=j["nodes"], source="poll", now=now)
            for jid, cur in list(self.active.items()):
                j = jobs.get(jid)
                gone = (j is None or j["run"] > cur.run or j["state"] in TERMINAL_STATES
                        or (j["state"] not in ("RUNNING", "CONFIGURING", "COMPLETING")
                            and now - cur.seen_wall > _GRACE_S))
                if gone:
                    self.stats["ended_by_poll"] += 1
                    self._stop(cur, now, {})
            for (jid, _), cur in list(self.ending.items()):
                self._classify(cur, jobs.get(jid), now)

    def _known(self, job_id: int, run: int) -> bool:
        """This run of the job was started already (it may have ended meanwhile)."""
        return (job_id, run) in self._seen

    def _classify(self, r: SlurmRun, j: dict | None, now: float) -> None:
        """An ended run: ``job_requeue`` (it will run again), ``job_end`` (final), or wait."""
        if j is not None and (j["run"] > r.run or j["state"] in _REQUEUED):
            self._note("job_requeue", {**r.details(), "state": j["state"], "reason": j["reason"]})
        elif j is not None and j["state"] in TERMINAL_STATES:
            self._note("job_end", {**r.details(), "state": j["state"],
                                   "exit_code": r.end_hint.get("exit_code", j["exit_code"])})
        elif j is None or now - r.ended_wall > _SETTLE_S:
            self._note("job_end", {**r.details(), "state": j["state"] if j else "UNKNOWN",
                                   "exit_code": r.end_hint.get("exit_code")})
        else:
            return                                      # COMPLETING: ask again at the next poll
        del self.ending[(r.job_id, r.run)]

    def _node_events(self, nodes: dict) -> None:
        """``node_state`` when a node goes down, drains or fails, or comes back (not for idle <-> allocated)."""
        first = not self.nodes
        for name, st in nodes.items():
            prev = self.nodes.get(name)
            if not first and prev is not None and prev["state"] != st["state"] \
                    and (_troubled(prev["state"]) or _troubled(st["state"])):
                self._note("node_state", {"node": name, "state": st["state"],
                                          "previous": prev["state"] if prev else None, "reason": st["reason"]},
                           node_desc=self.hosts.get(name))
        self.nodes = dict(nodes)

    # ------------------------------------------------------------ jobs -> traffic
    def _note(self, kind: str, details: dict, node_desc: str | None = None) -> None:
        self.sim.note(kind, details, node_desc=node_desc)

    def _start(self, job_id: int, run: int, *, name: str, user: str, comment: str, nodes: list,
               source: str, now: float) -> None:
        if self._known(job_id, run):
            return
        prev = self.active.get(job_id)
        if prev is not None:                            # an older run never ended: it did now
            self._stop(prev, now, {})
        r = SlurmRun(job_id, run, name, user, comment, list(nodes), seen_wall=now, source=source)
        self.runs.append(r)
        self._seen.add((job_id, run))
        self.active[job_id] = r
        d = r.details()
        d["hosts"] = len(nodes)
        unknown = [n for n in nodes if n not in self.hosts]
        try:
            traffic = parse_comment(comment, self.default_traffic)
            if unknown:
                raise ScenarioError(f"nodes {compress_hostlist(unknown)} are not hosts of this cluster")
        except ScenarioError as exc:
            self._note("job_start", {**d, "traffic": "none"})
            self._note("job_error", {**r.details(), "error": exc.message})
            return
        if traffic is None or len(nodes) < 2:
            why = "no ibsim: comment and no default_traffic" if traffic is None else "one node: no fabric traffic"
            self._note("job_start", {**d, "traffic": "none", "why": why})
            return
        tname = f"slurm-{job_id}" + (f".{run}" if run else "")
        labels = {"job_id": str(job_id), "job_name": name, "user": user, "nodes": r.nodelist,
                  "source": "slurm"}
        try:
            job = Job(tname, traffic["pattern"], hosts=tuple(self.hosts[n] for n in nodes), load=traffic["load"],
                      rate=traffic["rate"], params=traffic["params"], labels=labels, announce=False)
            self.sim.start_job(job)
        except ScenarioError as exc:
            self._note("job_start", {**d, "traffic": "none"})
            self._note("job_error", {**r.details(), "error": exc.message})
            return
        r.traffic = tname
        self.sim.post(lambda sim, r=r: setattr(r, "started_wall", time.time()))
        self._note("job_start", {**d, "pattern": traffic["pattern"],
                                 **({"load": traffic["load"]} if traffic["load"] is not None
                                    else {"rate_gbps": round(traffic["rate"] * 8 / 1e9, 3)}),
                                 **{k: v for k, v in traffic["params"].items() if isinstance(v, (int, float, str))}})

    def _stop(self, r: SlurmRun, now: float, hint: dict) -> None:
        if self.active.get(r.job_id) is r:
            del self.active[r.job_id]
        if r.ended_wall is not None:
            return
        r.ended_wall = now
        r.end_hint = {k: v for k, v in hint.items() if v is not None}
        if r.traffic is not None:
            self.sim.end_job(r.traffic)
        self.ending[(r.job_id, r.run)] = r

    # ------------------------------------------------------------ reading
    def summary(self) -> dict:
        """Counts and latencies for the run directory and benchmarks."""
        with self._lock:
            lat = sorted((r.started_wall - r.seen_wall) * 1e3 for r in self.runs
                         if r.started_wall is not None)
            return {**self.stats, "hook_port": self.port, "runs": len(self.runs),
                    "running": len(self.active),
                    "hook_to_traffic_ms_median": round(lat[len(lat) // 2], 1) if lat else None}
