"""Benchmark: our MAD server against linux-rdma's C ibsim, same fabric, same run.

    python benchmarks/mad.py --json                        # fat_tree(36, 2): 648 CAs, 54 switches
    python benchmarks/mad.py --radix 8 --levels 2 --json   # a quick run

Both servers serve the same ibnetdiscover file (our writer) from a cold
start (ports Init, no LIDs, no routes: ``serve --routing opensm`` for ours,
``ibsim -s -n`` for the C one), each in its own process on its own abstract
socket name. There are ``--rounds`` rounds on fresh processes, ours and the
C one interleaved, because a shared host's speed drifts by tens of percent
within minutes; medians are reported. Per server and round:

* ``ibnetdiscover`` (before any SM): wall time, ``--runs`` per round;
* raw MAD rate: one client (:class:`ibsim.testing.simclient.SimClient`, no
  umad2sim), one MAD in flight, directed-route NodeInfo over 4 hops, the
  client pinned to the first CPU and the server to the last (unpinned, the
  kernel sometimes puts both on one CPU, which is several times faster and
  makes the figure a lottery);
* OpenSM (``-d2``, private files) from start to SUBNET UP, from its log's
  own timestamps.

Prints one JSON object: ``ibnetdiscover_s``, ``ibnetdiscover_c_s``,
``ibnetdiscover_ratio``, ``opensm_up_s``, ``opensm_up_c_s``,
``opensm_up_ratio``, ``mads_per_s``, ``mads_per_s_c``, ``fast_path``
(whether our C loop was built; it is what ``serve`` uses) and the sizes.
``--python-loop`` adds ours with the pure-Python loop in the same rounds
(``*_py_s``, ``mads_per_s_py``); ``--traffic LOAD`` adds
``opensm_up_traffic_s``: OpenSM's bring-up on ours while an all-to-all over
every host runs (the C ibsim has no traffic to compare with).
Targets: both ratios <= 1.5.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _start_ours(net: Path, sock: str, workdir: Path, fast: bool = True) -> subprocess.Popen:
    log = open(workdir / f"ours-{sock}.log", "w")
    env = {**os.environ, "PYTHONPATH": str(REPO), "IBSIM_MAD_FASTPATH": "1" if fast else "0"}
    return subprocess.Popen([sys.executable, "-m", "ibsim", "serve", str(net), "--sockname", sock,
                             "--routing", "opensm"], cwd=workdir, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def _start_c(net: Path, sock: str, workdir: Path, fab) -> subprocess.Popen:
    log = open(workdir / f"c-{sock}.log", "w")
    cmd = ["ibsim", "-s", "-n", "-N", str(max(2048, 2 * fab.n_nodes)),
           "-S", str(max(256, 2 * fab.n_switches)), "-P", str(max(13312, 2 * fab.n_ports)), str(net)]
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["IBSIM_SOCKNAME"] = sock
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)


def _discover(sock: str, workdir: Path, runs: int) -> float:
    from ibsim.bench.ofed import run_tool
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = run_tool(["ibnetdiscover"], sockname=sock, cwd=workdir, timeout=120)
        dt = time.perf_counter() - t
        if r.returncode != 0 or "# Topology file" not in r.stdout:
            raise RuntimeError(f"ibnetdiscover failed on {sock}: {r.stderr[-400:]}")
        times.append(dt)
    return statistics.median(times)


@contextlib.contextmanager
def _pinned(pid: int | None):
    """Client on the first CPU, server on the last, while the MAD rate is measured.

    Unpinned, the kernel sometimes runs a client and its server on one CPU,
    where a round trip is several times cheaper than across two; which one
    happens varies from run to run and server to server. Pinned, every server
    is measured across two CPUs.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if pid is None or len(cpus) < 2:
        yield
        return
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]     # affinity is per thread
    try:
        for tid in tids:
            os.sched_setaffinity(tid, {cpus[-1]})
        os.sched_setaffinity(0, {cpus[0]})
        yield
    finally:
        os.sched_setaffinity(0, set(cpus))
        for tid in tids:
            try:
                os.sched_setaffinity(tid, set(cpus))
            except OSError:
                pass


def _mad_rate(sock: str, n: int, fab, pid: int | None = None) -> float:
    from ibsim.mad import codec as C
    from ibsim.testing.simclient import SimClient
    # from the first switch (default attach point): down to a CA needs a leaf; take
    # a 4-hop directed route switch -> peer -> peer -> peer -> peer along port numbers
    path = _four_hop_path(fab)
    with SimClient(sock) as c:
        mad = C.make_mad(C.CLASS_SMP_DR, C.METHOD_GET, C.ATTR_NODE_INFO, 0, tid=1, hop_cnt=len(path) - 1,
                         path=bytes(path))
        frame = C.pack_frame(mad, dlid=0xFFFF, slid=0xFFFF)
        c.rpc(frame)                                  # one to check the path
        send, recv = c.data_sock.send, c.data_sock.recv
        with _pinned(pid):
            t = time.perf_counter()
            for _ in range(n):
                send(frame)
                recv(512)
            return n / (time.perf_counter() - t)


def _four_hop_path(fab) -> list[int]:
    """Ports of a directed route of up to 4 hops from the first switch, staying on switches."""
    path = [0]
    node = 0
    for _ in range(4):
        ports = fab.ports_of_node(node)
        nxt = None
        for p in ports:
            q = int(fab.peer_of_port[p])
            if q >= 0 and fab.is_switch[q] and int(fab.node_of_port[q]) != node:
                nxt = (int(fab.port_num[p]), int(fab.node_of_port[q]))
                break
        if nxt is None:
            break
        path.append(nxt[0])
        node = nxt[1]
    return path


def _opensm(sock: str, workdir: Path, sim_host: str, timeout: float) -> float:
    from ibsim.bench.ofed import OpenSM
    with OpenSM(workdir, sockname=sock, sim_host=sim_host) as osm:
        osm.wait_up(timeout=timeout)
        span = osm.up_span_s()
    return span


def _start(server: str, net: Path, fab, workdir: Path):
    sock = f"bench{server}{os.getpid()}{uuid.uuid4().hex[:6]}"
    if server == "c":
        proc = _start_c(net, sock, workdir, fab)
    else:
        proc = _start_ours(net, sock, workdir, fast=server == "ours")
    return sock, proc


def bench(net: Path, fab, workdir: Path, args, servers=("ours", "c")) -> dict:
    """Interleaved rounds on fresh (cold) servers; medians per server."""
    from ibsim.bench.ofed import stop_process, wait_for_unix_socket
    res: dict[str, dict[str, list]] = {s: {"ibnetdiscover_s": [], "mads_per_s": [], "opensm_up_s": []}
                                       for s in servers}
    sim_host = fab.node_desc[fab.n_switches]
    for r in range(args.rounds):
        started = {}
        try:
            for srv in servers:
                started[srv] = _start(srv, net, fab, workdir)
            for srv, (sock, proc) in started.items():
                if not wait_for_unix_socket(f"{sock}:ctl", timeout=300, proc=proc):
                    raise RuntimeError(f"{srv} server did not come up (see {workdir})")
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for _ in range(args.runs):
                for srv in order:
                    res[srv]["ibnetdiscover_s"].append(_discover(started[srv][0], workdir, 1))
            for srv in order:
                res[srv]["mads_per_s"].append(_mad_rate(started[srv][0], args.mads, fab, started[srv][1].pid))
            for srv in order:
                res[srv]["opensm_up_s"].append(
                    _opensm(started[srv][0], workdir / f"osm-{srv}-{r}", sim_host, args.timeout))
        finally:
            for sock, proc in started.values():
                stop_process(proc)
    return {s: {k: statistics.median(v) for k, v in d.items()} for s, d in res.items()}


def bench_traffic(net: Path, fab, workdir: Path, args) -> float:
    """OpenSM start to SUBNET UP on ours while an all-to-all over every host runs
    (``serve`` of a scenario with ``routing: {engine: opensm}``)."""
    from ibsim.bench.ofed import stop_process, wait_for_unix_socket
    scn = workdir / "traffic.yml"
    scn.write_text(f"name: bench\nclock: {{tick: 100ms, duration: 1h}}\ntopology: {{file: {net.name}}}\n"
                   f"routing: {{engine: opensm}}\ntraffic:\n"
                   f"  - {{name: a2a, pattern: all_to_all, hosts: all, load: {args.traffic}}}\n")
    sock = f"benchtraffic{os.getpid()}{uuid.uuid4().hex[:6]}"
    log = open(workdir / f"ours-{sock}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ibsim", "serve", str(scn), "--sockname", sock],
                            cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        if not wait_for_unix_socket(f"{sock}:ctl", timeout=600, proc=proc):
            raise RuntimeError(f"the server with traffic did not come up (see {workdir})")
        return _opensm(sock, workdir / "osm-traffic", fab.node_desc[fab.n_switches], args.timeout)
    finally:
        stop_process(proc)
        log.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--radix", type=int, default=36)
    ap.add_argument("--levels", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds on fresh servers, ours and C interleaved (medians are reported)")
    ap.add_argument("--runs", type=int, default=3, help="ibnetdiscover runs per round")
    ap.add_argument("--mads", type=int, default=20000, help="MADs for the raw rate")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for SUBNET UP")
    ap.add_argument("--no-c", action="store_true", help="skip the C ibsim")
    ap.add_argument("--python-loop", action="store_true",
                    help="also run ours with the pure-Python loop (IBSIM_MAD_FASTPATH=0): *_py keys")
    ap.add_argument("--traffic", type=float, default=None, metavar="LOAD",
                    help="also time OpenSM's bring-up on ours under an all-to-all at this load "
                         "(opensm_up_traffic_s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from ibsim import compile_fabric, fat_tree
    from ibsim.bench.ofed import have_tools
    from ibsim.mad.server import fast_path_available
    from ibsim.topology import write_ibnetdiscover

    if not have_tools("ibnetdiscover", "opensm"):
        print(json.dumps({"error": "needs libumad2sim, ibnetdiscover and opensm"}))
        return 1
    topo = fat_tree(args.radix, args.levels)
    fab = compile_fabric(topo)
    res = {"radix": args.radix, "levels": args.levels, "cas": fab.n_nodes - fab.n_switches,
           "switches": fab.n_switches}
    with tempfile.TemporaryDirectory(prefix="ibsim-mad-bench-") as tmp:
        tmp = Path(tmp)
        net = tmp / "fabric.topo"
        write_ibnetdiscover(topo, net)
        servers = ("ours",) if args.no_c or not shutil.which("ibsim") else ("ours", "c")
        if args.python_loop:
            servers = ("ours", "py") + servers[1:]
        out = bench(net, fab, tmp, args, servers)
        res.update(out["ours"])
        res["fast_path"] = fast_path_available()
        if "py" in out:
            names = {"ibnetdiscover_s": "ibnetdiscover_py_s", "opensm_up_s": "opensm_up_py_s",
                     "mads_per_s": "mads_per_s_py"}
            for k, v in out["py"].items():
                res[names[k]] = v
        if "c" in out:
            c = out["c"]
            names = {"ibnetdiscover_s": "ibnetdiscover_c_s", "opensm_up_s": "opensm_up_c_s",
                     "mads_per_s": "mads_per_s_c"}
            for k, v in c.items():
                res[names[k]] = v
            res["ibnetdiscover_ratio"] = round(res["ibnetdiscover_s"] / res["ibnetdiscover_c_s"], 3)
            res["opensm_up_ratio"] = round(res["opensm_up_s"] / res["opensm_up_c_s"], 3)
        if args.traffic is not None:
            res["traffic_load"] = args.traffic
            res["opensm_up_traffic_s"] = bench_traffic(net, fab, tmp, args)
    for k, v in list(res.items()):
        if isinstance(v, float):
            res[k] = round(v, 4) if v < 1000 else round(v)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:22s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
