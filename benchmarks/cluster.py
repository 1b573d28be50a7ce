"""Virtual cluster: bring-up and teardown time, sysfs refresh, Docker-event coupling latency, memory.

Runs on the real Docker engine (images built first when missing, which is
not timed). Everything it creates carries the label
``org.ibsim.cluster=ibsimbench`` and is removed at the end.

Keys printed with ``--json``: ``hosts`` (the larger size), ``up_s`` (per
size: seconds from ``Cluster.up()`` to every container running),
``down_s``, ``sysfs_refresh_ms`` (median time to refresh every host's tree
from one snapshot with traffic running, larger size), ``sysfs_files_per_refresh``,
``stop_to_link_down_ms`` and ``start_to_link_up_ms`` (median over
``--tries``: from the ``docker stop``/``docker start`` API call to the
engine's ``link_down``/``link_up`` event for that CA; link_up includes the
link training the simulation models), ``mem_per_host_mb`` (resident memory
of one container's processes, from the cgroup). Targets on a 2-core
machine: 32 hosts up in <= 30 s, ``sysfs_refresh_ms`` <= 20,
``stop_to_link_down_ms`` <= 500.

With Slurm (``--slurm-hosts``, default 16; 0 skips it), on a cluster of that
many hosts with ``slurm: true``:

- ``slurm_up_s``: seconds from ``Cluster.up()`` to every Slurm node idle;
- ``job_to_traffic_ms``: median (and ``_p95``) over ``--jobs`` two-node jobs
  submitted one at a time, from RUNNING to the tick at which the job's flows
  enter its hosts' counters. RUNNING is slurmctld's own ``sched: Allocate
  JobId=...`` log line (its Docker timestamp, ns); the tick's wall time is
  taken in the simulation's thread. Target <= 500 ms.
  ``hook_to_traffic_ms``: the same from the prolog's datagram arriving;
- ``jobs_per_min``: ``--burst`` two-node jobs (``--wrap true``) submitted at
  once; jobs whose start and end the bridge turned into events, per minute
  from the first submission to the last ``job_end``. This is Slurm's own
  pace here (its scheduler starts the queue once a second). ``burst_missed``:
  jobs without both events (0 expected); ``burst_started_by_poll``: starts
  whose datagram was lost and which the squeue poll healed;
- ``bridge_jobs_per_min``: what the coupling itself sustains, without Slurm:
  ``--bridge-jobs`` start datagrams (two-node jobs on a 128-CA fat tree)
  sent over UDP to a real bridge driving a simulation that runs at real
  time (at most 200 datagrams outstanding), then, once all run, their end
  datagrams; jobs per minute from the
  first datagram to the tick at which the last job's traffic ended,
  ``bridge_missed`` the jobs not both started and ended.

    python benchmarks/cluster.py --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAME = "ibsimbench"
SCENARIO = """name: bench
seed: 1
clock: {{tick: 50ms}}
topology: {{generate: fat-tree, radix: 8, levels: 2}}
routing: {{engine: ftree, sweep_delay: 0.2s}}
traffic:
  - {{name: a2a, pattern: all_to_all, hosts: all, load: 0.5}}
cluster: {{name: {name}, hosts: {hosts}, node_exporter: true, sysfs_every: 1s, mad_port: 47600}}
output: {out}
"""


def _cluster(tmp: Path, hosts: int):
    from ibsim import Cluster
    from ibsim.scenario import Scenario
    p = tmp / f"bench-{hosts}.yml"
    p.write_text(SCENARIO.format(name=NAME, hosts=hosts, out=tmp / "runs"))
    return Cluster(Scenario.from_file(p))


def _wait_event(sim, kind, guid, t0, timeout=10.0):
    got = threading.Event()
    when = {}

    def on(ev, port):
        if ev.kind == kind and guid in (ev.node_guid, ev.peer_guid) and not got.is_set():
            when["t"] = time.monotonic()
            got.set()

    sim.add_listener(on)
    try:
        ok = got.wait(timeout)
    finally:
        sim.remove_listener(on)
    return (when["t"] - t0) * 1e3 if ok else None


SLURM_SCENARIO = """name: bench-slurm
seed: 1
clock: {{tick: 50ms}}
topology: {{generate: fat-tree, radix: 8, levels: 2}}
routing: {{engine: ftree, sweep_delay: 0.2s}}
cluster: {{name: {name}, hosts: {hosts}, node_exporter: false, sysfs_every: 1s, mad_port: 47600,
          slurm: {{poll: 2s}}}}
output: {out}
"""


def _slurm(tmp: Path, hosts: int, jobs: int, burst: int) -> dict:
    """slurm_up_s, job_to_traffic_ms and jobs_per_min on a Slurm cluster of ``hosts`` hosts."""
    import re

    from ibsim import Cluster
    from ibsim.scenario import Scenario
    p = tmp / "bench-slurm.yml"
    p.write_text(SLURM_SCENARIO.format(name=NAME, hosts=hosts, out=tmp / "runs"))
    c = Cluster(Scenario.from_file(p))
    alloc: dict[int, float] = {}
    pat = re.compile(r"(?:sched: Allocate|sched/backfill: _start_job: Started) JobId=(\d+)")

    def on(ev, port):
        if ev.kind == "log" and ev.details.get("program") == "slurmctld":
            m = pat.search(ev.details.get("message", ""))
            if m:
                alloc.setdefault(int(m.group(1)), ev.wall_time)

    t0 = time.monotonic()
    out: dict = {}
    try:
        c.up()
        c.sim.add_listener(on)
        out["slurm_hosts"] = hosts
        out["slurm_up_s"] = round(time.monotonic() - t0, 2)

        def submit(*args):
            code, text = c.exec("ctl", "sbatch", "--parsable", *args)
            if code != 0:
                raise RuntimeError(f"sbatch failed: {text.strip()}")
            return int(text.strip().split(";")[0])

        def ended(jid):
            return any(e.kind == "job_end" and e.details.get("job_id") == jid for e in list(c.sim.events))

        lat, hook = [], []
        for _ in range(jobs):
            jid = submit("-N", "2", "--comment", "ibsim: pattern=all_to_all load=0.5", "--wrap", "sleep 0.5")
            deadline = time.monotonic() + 30
            while not ended(jid) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)                              # the allocate line may trail the job's end
            run = next((r for r in c.slurm.runs if r.job_id == jid), None)
            if run is not None and run.started_wall is not None:
                hook.append((run.started_wall - run.seen_wall) * 1e3)
                if jid in alloc:
                    lat.append((run.started_wall - alloc[jid]) * 1e3)
        lat.sort()
        out["job_to_traffic_ms"] = round(statistics.median(lat), 1) if lat else None
        out["job_to_traffic_ms_p95"] = round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None
        out["job_to_traffic_samples"] = len(lat)
        out["hook_to_traffic_ms"] = round(statistics.median(hook), 1) if hook else None
        polls0 = c.slurm.stats["started_by_poll"]
        t = time.monotonic()
        ids = [submit("-N", "2", "--wrap", "true") for _ in range(burst)]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not all(ended(j) for j in ids):
            time.sleep(0.1)
        elapsed = time.monotonic() - t
        evs = list(c.sim.events)
        done = [j for j in ids if any(e.kind == "job_start" and e.details.get("job_id") == j for e in evs)
                and any(e.kind == "job_end" and e.details.get("job_id") == j for e in evs)]
        out["jobs_per_min"] = round(len(done) / elapsed * 60, 1)
        out["burst"] = burst
        out["burst_missed"] = burst - len(done)
        out["burst_started_by_poll"] = c.slurm.stats["started_by_poll"] - polls0
        out["slurm_poll_ms"] = round(c.slurm.stats["poll_s_total"] / max(1, c.slurm.stats["polls"]) * 1e3, 1)
    finally:
        c.down(write=False)
    return out


def _bridge_capacity(n_jobs: int) -> dict:
    """bridge_jobs_per_min: start/end datagrams through a real SlurmBridge into a real-time simulation."""
    import socket

    from ibsim import compile_fabric, fat_tree
    from ibsim.engine import Simulation
    from ibsim.errors import HostError
    from ibsim.hosts.slurm import SlurmBridge
    fabric = compile_fabric(fat_tree(8, 2))
    cas = [fabric.node_desc[n] for n in range(fabric.n_nodes) if int(fabric.node_type[n]) == 1]
    hosts = {d.split()[0]: d for d in cas}
    names = list(hosts)
    sim = Simulation(fabric, tick=0.05, seed=1, routing="ftree", sweep_delay=0)
    br = SlurmBridge(sim, hosts, listen="127.0.0.1", poll_s=3600)

    def no_controller(argv):
        raise HostError("no controller in this measurement")

    port = br.bind()
    br.start(no_controller)
    th = threading.Thread(target=sim.run, kwargs={"until": 3600, "realtime": 1.0}, daemon=True)
    th.start()

    def dgram(event, jid):
        a, b = names[(2 * jid) % len(names)], names[(2 * jid + 1) % len(names)]
        env = {"SLURM_JOB_ID": str(jid), "SLURM_JOB_NODELIST": f"{a},{b}", "SLURM_JOB_NAME": "bench",
               "SLURM_JOB_USER": "bench", "SLURM_JOB_COMMENT": "ibsim: pattern=shift k=1 load=0.5",
               "SLURM_JOB_RESTART_COUNT": "0"}
        return json.dumps({"v": 1, "event": event, "env": env}).encode()

    def wait(pred):
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not pred():
            time.sleep(0.02)

    sent = [0]
    t0 = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for phase, pred in (("start", lambda: len(sim.job_stats()) >= n_jobs),
                            ("end", lambda: all(not st.running for st in sim.job_stats()))):
            for jid in range(1, n_jobs + 1):
                # closed loop: at most 200 datagrams in the socket, so what is measured is the
                # bridge's pace, not the kernel dropping what its receive buffer cannot hold
                while sent[0] - br.stats["datagrams"] - br.stats["bad_datagrams"] > 200:
                    time.sleep(0.0005)
                s.sendto(dgram(phase, jid), ("127.0.0.1", port))
                sent[0] += 1
            wait(pred)
    stats = sim.job_stats()
    done = sum(1 for st in stats if not st.running)
    elapsed = time.monotonic() - t0
    sim.stop()
    th.join(timeout=30)
    br.close()
    return {"bridge_jobs": n_jobs, "bridge_jobs_per_min": round(done / elapsed * 60),
            "bridge_missed": n_jobs - done, "bridge_datagrams": br.stats["datagrams"]}


def _mem_mb(container) -> float:
    stats = container.stats(stream=False)
    m = stats.get("memory_stats", {})
    usage = m.get("usage", 0) - (m.get("stats", {}) or {}).get("cache", 0)
    return usage / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="8,32", help="host counts to bring up (comma-separated, <= 32)")
    ap.add_argument("--tries", type=int, default=10, help="docker stop/start pairs")
    ap.add_argument("--refreshes", type=int, default=20, help="sysfs refreshes timed")
    ap.add_argument("--slurm-hosts", type=int, default=16, help="hosts of the Slurm cluster (0: skip Slurm)")
    ap.add_argument("--jobs", type=int, default=20, help="jobs timed one at a time for job_to_traffic_ms")
    ap.add_argument("--burst", type=int, default=40, help="jobs submitted at once for jobs_per_min")
    ap.add_argument("--bridge-jobs", type=int, default=2000, help="jobs sent straight to the bridge (0: skip)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args()
    import tempfile

    from ibsim.hosts import docker_client, remove_cluster
    from ibsim.hosts.images import build_image
    client = docker_client()
    build_image(client, "host")
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict = {"hosts": max(sizes), "up_s": {}, "down_s": {}}
    with tempfile.TemporaryDirectory(prefix="ibsim-bench-cluster-") as td:
        tmp = Path(td)
        try:
            for n in sizes:
                c = _cluster(tmp, n)
                t0 = time.monotonic()
                c.up()
                out["up_s"][str(n)] = round(time.monotonic() - t0, 2)
                if n == max(sizes):
                    time.sleep(2.0)                       # traffic flowing, counters moving
                    times, files = [], []
                    for _ in range(args.refreshes):
                        snap = c.sim.snapshot()
                        t = time.perf_counter()
                        files.append(c.trees.refresh(snap))
                        times.append((time.perf_counter() - t) * 1e3)
                        time.sleep(0.1)
                    out["sysfs_refresh_ms"] = round(statistics.median(times), 2)
                    out["sysfs_files_per_refresh"] = int(statistics.median(files))
                    h = c.hosts[-1]
                    con = c.container(h.hostname)
                    out["mem_per_host_mb"] = round(statistics.mean(_mem_mb(c.container(x.hostname))
                                                                   for x in c.hosts[:4]), 1)
                    downs, ups = [], []
                    for _ in range(args.tries):
                        t = time.monotonic()
                        th = threading.Thread(target=con.stop, kwargs={"timeout": 2})
                        th.start()
                        downs.append(_wait_event(c.sim, "link_down", h.node_guid, t))
                        th.join()
                        t = time.monotonic()
                        th = threading.Thread(target=con.start)
                        th.start()
                        ups.append(_wait_event(c.sim, "link_up", h.node_guid, t))
                        th.join()
                        time.sleep(0.3)
                    ok_d = [x for x in downs if x is not None]
                    ok_u = [x for x in ups if x is not None]
                    out["stop_to_link_down_ms"] = round(statistics.median(ok_d), 1) if ok_d else None
                    out["start_to_link_up_ms"] = round(statistics.median(ok_u), 1) if ok_u else None
                    out["coupling_missed"] = len(downs) - len(ok_d) + len(ups) - len(ok_u)
                t0 = time.monotonic()
                c.down(write=False)
                out["down_s"][str(n)] = round(time.monotonic() - t0, 2)
            if args.slurm_hosts:
                out.update(_slurm(tmp, args.slurm_hosts, args.jobs, args.burst))
            if args.bridge_jobs:
                out.update(_bridge_capacity(args.bridge_jobs))
        finally:
            remove_cluster(client, NAME)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for k, v in out.items():
            print(f"{k:24} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
