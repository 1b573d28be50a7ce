"""Benchmark: the Graphite exporter against graphyte, and end to end into a real carbon-cache.

    python benchmarks/exporters.py --json                       # fat_tree(36, 3): 71,604 ports x 21 counters
    python benchmarks/exporters.py --radix 8 --levels 2 --json  # a quick run

Part 1, same data, same run, to a loopback TCP sink in another process that
counts lines: ``graphite_points_per_s`` is our plaintext exporter (format
and send one snapshot of every port, ``ports: all``, until the sink has
counted every line; best of ``--repeat``), ``graphyte_points_per_s`` is
graphyte's asynchronous sender (``interval`` 0.1 s, a queue as large as the
snapshot, one ``send()`` per point with precomputed paths) until the sink has
every line; ``speedup_vs_graphyte`` is their ratio. ``format_points_per_s``
is the formatting alone.

Part 2 (skipped when carbon-cache or the whisper module is missing): the
same exporter into a private carbon-cache (Debian graphite-carbon) on
loopback, ``--carbon-radix``/``--carbon-levels`` fabric (default
fat_tree(8, 2): 128 cabled ports x 21 = 2,688 series) and ``--carbon-snapshots``
back-filled one-second snapshots. ``carbon_receive_points_per_s`` counts until
the last byte is accepted by carbon (TCP backpressure), and
``carbon_e2e_points_per_s`` until every point is readable in the whisper files;
``carbon_points_lost`` must be 0 and ``carbon_sent`` (confirmed by carbon)
equal ``carbon_points``. Targets: graphite_points_per_s >= 2e6,
speedup_vs_graphyte >= 10.

Delivery confirmation costs: ``graphite_points_per_s`` is measured with the
default rotation (an orderly close every 16 MB to confirm what carbon read),
``graphite_unrotated_points_per_s`` with rotation off (one connection, nothing
confirmed until the end); ``rotation_cost`` is 1 - their ratio.

Part 3 (``--no-stall`` skips it): the time a stalled server adds to a run.
``python -m ibsim run topologies/fat-tree.yml --fast`` alone
(``stall_run_s``), and with ``--graphite`` to a server that accepts and never
reads (``stall_blackhole_run_s``; bounded by the exporter's
``deliver_timeout``, 5 s), with the exporter's stats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This file is named like the package it measures: keep its own folder off the
# import path so that ``import exporters`` finds the package, not this script.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

SINK = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(512); srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ, "accept")
sel.register(sys.stdin, selectors.EVENT_READ, "cmd")
print(srv.getsockname()[1], flush=True)
count, target = 0, None
while True:
    for key, _ in sel.select():
        if key.data == "accept":
            c, _ = srv.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ, "conn")
        elif key.data == "cmd":
            line = sys.stdin.readline()
            if not line:
                sys.exit(0)
            target = int(line)              # cumulative: lines may arrive before the command
        else:
            try:
                b = key.fileobj.recv(1 << 20)
            except (BlockingIOError, ConnectionResetError):
                b = None
            if b:
                count += b.count(b"\n")
            elif b == b"":
                sel.unregister(key.fileobj); key.fileobj.close()
        if target is not None and count >= target:
            print(count, flush=True); target = None
"""


class Sink:
    """A line-counting TCP sink in its own process (so it does not share our GIL)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", SINK], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.seen = 0                       # lines counted by the sink at the last wait()

    def expect(self, n: int) -> None:
        """Ask to be told when ``n`` more lines have arrived (the target is cumulative)."""
        self.proc.stdin.write(f"{self.seen + n}\n")
        self.proc.stdin.flush()

    def wait(self) -> int:
        """Block until the expected lines are in; returns how many arrived since the last wait."""
        got = int(self.proc.stdout.readline())
        new, self.seen = got - self.seen, got
        return new

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def make_snapshot(fabric, rng, tick: int, wall_time: float):
    from ibsim.engine import Snapshot
    from ibsim.fabric import FabricState
    st = FabricState(fabric)
    n = fabric.n_ports
    counters = rng.integers(0, 2**40, size=st.counters.shape, dtype=np.uint64)
    return Snapshot(float(tick), tick, wall_time, fabric, counters, st.port_state, st.phys_state,
                    st.width, st.speed, st.lid, np.zeros(n), np.zeros(n), ())


def bench_ours(fabric, snaps, sink, repeat: int) -> dict:
    """Our exporter with the default rotation, then with rotation off."""
    out = _bench_send(fabric, snaps, sink, repeat, {})
    off = _bench_send(fabric, snaps, sink, repeat, {"confirm_bytes": 10**15, "confirm_every": 10**9})
    out["graphite_unrotated_points_per_s"] = off["graphite_points_per_s"]
    out["rotation_cost"] = 1.0 - out["graphite_points_per_s"] / off["graphite_points_per_s"]
    return out


def _bench_send(fabric, snaps, sink, repeat: int, options: dict) -> dict:
    from exporters.graphite import build_paths, counter_values, format_plaintext
    from ibsim.export import COUNTER_NAMES, build_exporter, selected_ports
    exp = build_exporter("graphite", {"port": sink.port, "ports": "all", "buffer": 10**8, "jobs": False,
                                      **options})
    exp.open()
    n_points = fabric.n_ports * len(COUNTER_NAMES)
    sink.expect(n_points)
    exp.write(snaps[0])                                # builds the path cache; not timed
    assert sink.wait() == n_points
    best = math.inf
    for snap in snaps[1:repeat + 1]:
        sink.expect(n_points)
        t = time.perf_counter()
        exp.write(snap)
        got = sink.wait()
        best = min(best, time.perf_counter() - t)
        assert got == n_points, got
    exp.close()
    stats = exp.stats()
    ports = selected_ports(fabric, "all")
    paths = build_paths(fabric, "ib.<node>.<port>.<counter>", COUNTER_NAMES, ports)
    fmt = math.inf
    for snap in snaps[1:repeat + 1]:
        t = time.perf_counter()
        format_plaintext(counter_values(snap, COUNTER_NAMES, ports), paths, int(snap.wall_time))
        fmt = min(fmt, time.perf_counter() - t)
    return {"points": n_points, "graphite_s": best, "graphite_points_per_s": n_points / best,
            "format_points_per_s": n_points / fmt, "graphite_dropped": stats["dropped"],
            "graphite_sent": stats["sent"], "graphite_unconfirmed": stats["unconfirmed"]}


def bench_graphyte(fabric, snap, sink) -> dict:
    import graphyte
    from exporters.graphite import build_paths, counter_values
    from ibsim.export import COUNTER_NAMES, selected_ports
    ports = selected_ports(fabric, "all")
    paths = [p.decode() for row in build_paths(fabric, "ib.<node>.<port>.<counter>", COUNTER_NAMES, ports)
             for p in row.tolist()]
    values = counter_values(snap, COUNTER_NAMES, ports).ravel().tolist()
    n = len(paths)
    ts = int(snap.wall_time)
    sender = graphyte.Sender("127.0.0.1", sink.port, interval=0.1, queue_size=n + 10)
    sink.expect(n)
    t = time.perf_counter()
    send = sender.send
    for p, v in zip(paths, values):
        send(p, v, ts)
    queued = time.perf_counter() - t
    got = sink.wait()
    total = time.perf_counter() - t
    sender.stop()
    return {"graphyte_s": total, "graphyte_points_per_s": n / total, "graphyte_send_loop_s": queued,
            "graphyte_received": got, "graphyte_options": {"interval": 0.1, "queue_size": n + 10,
                                                          "batch_size": 1000}}


def bench_carbon(radix: int, levels: int, n_snaps: int) -> dict:
    exe = shutil.which("carbon-cache")
    try:
        import whisper
    except ImportError:
        whisper = None
    if not exe or whisper is None:
        return {"carbon_skipped": "needs carbon-cache (apt-get install graphite-carbon) and "
                                  "pip install whisper"}
    from ibsim import compile_fabric, fat_tree
    from ibsim.bench.carbon import free_port, write_carbon_config
    from ibsim.engine import Simulation
    from ibsim.export import COUNTER_NAMES, TimeMap, build_exporter, node_names, selected_ports
    from ibsim.traffic import Job
    sim = Simulation(compile_fabric(fat_tree(radix, levels)), seed=1, routing="ftree")
    sim.add_job(Job("a2a", "all_to_all", load=0.5))
    raw = []
    sim.observe(1.0, raw.append)
    sim.run(until=n_snaps)
    tm = TimeMap.for_run(time.time(), until=float(n_snaps))
    snaps = [dataclasses.replace(s, wall_time=tm(s.time_s)) for s in raw[:n_snaps]]
    f = sim.fabric
    ports = selected_ports(f, "cabled")
    n_points = len(snaps) * ports.size * len(COUNTER_NAMES)
    with tempfile.TemporaryDirectory(prefix="ibsim-carbon-") as tmp:
        d = Path(tmp)
        ports_cfg = {"line": free_port(), "pickle": free_port(), "query": free_port()}
        conf = write_carbon_config(d, ports_cfg)
        with open(d / "carbon.log", "wb") as log:
            proc = subprocess.Popen([exe, f"--config={conf}", "--debug", "start"], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", ports_cfg["line"]), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        return {"carbon_skipped": "carbon-cache did not start"}
                    time.sleep(0.1)
            exp = build_exporter("graphite", {"port": ports_cfg["line"], "buffer": 10**8, "jobs": False})
            exp.open()
            t = time.perf_counter()
            for s in snaps:
                exp.write(s)
            exp.close()
            recv_s = time.perf_counter() - t
            sent = exp.stats()["sent"]
            names = node_names(f)
            files = [d / "storage" / "whisper" / "ib" / str(names[f.node_of_port[p]])
                     / f"p{int(f.port_num[p]):02d}" / f"{c}.wsp" for p in ports for c in COUNTER_NAMES]
            t0, t1 = int(snaps[0].wall_time), int(snaps[-1].wall_time)

            def points(fp: Path, since: int) -> list:
                """Stored values of one series; none while carbon has created the file but
                not yet written its header."""
                try:
                    return whisper.fetch(str(fp), since, t1)[1] if fp.exists() else []
                except whisper.CorruptWhisperFile:
                    return []

            def stored() -> int:
                return sum(v is not None for fp in files for v in points(fp, t0 - 1))
            deadline = time.monotonic() + 600
            n_stored = 0
            while time.monotonic() < deadline:
                # cheap check first: the last point of the last series
                tail = points(files[-1], t1 - 1)
                if tail and tail[-1] is not None:
                    n_stored = stored()
                    if n_stored >= n_points:
                        break
                time.sleep(0.2)
            e2e_s = time.perf_counter() - t
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"carbon_fabric": f"fat_tree({radix}, {levels})", "carbon_series": ports.size * len(COUNTER_NAMES),
            "carbon_snapshots": len(snaps), "carbon_points": n_points, "carbon_sent": sent,
            "carbon_receive_points_per_s": n_points / recv_s, "carbon_e2e_points_per_s": n_points / e2e_s,
            "carbon_points_stored": n_stored, "carbon_points_lost": n_points - n_stored}


BLACKHOLE = r"""
import socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64)
print(srv.getsockname()[1], flush=True)
held = []
while True:
    held.append(srv.accept()[0])             # accepted, never read
"""


def bench_stall(topology: str) -> dict:
    """Wall time of a fast run alone and with --graphite to a server that never reads."""
    repo = _HERE.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    hole = subprocess.Popen([sys.executable, "-c", BLACKHOLE], stdout=subprocess.PIPE, text=True)
    try:
        port = int(hole.stdout.readline())
        out = {}
        with tempfile.TemporaryDirectory(prefix="ibsim-stall-") as tmp:
            for key, extra in (("stall_run_s", []),
                               ("stall_blackhole_run_s", ["--graphite", f"127.0.0.1:{port}"])):
                run_dir = Path(tmp) / key
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "ibsim", "run", topology,
                                "--fast", "--quiet", "--no-plot", "--out", str(run_dir), *extra],
                               check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                out[key] = time.perf_counter() - t
            st = json.loads((Path(tmp) / "stall_blackhole_run_s" / "metadata.json").read_text())
            out["stall_blackhole_stats"] = {k: v for k, v in st["exporters"]["graphite"].items()
                                            if k != "delivery"}
    finally:
        hole.kill()
        hole.wait(10)
    out["stall_added_s"] = out["stall_blackhole_run_s"] - out["stall_run_s"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--radix", type=int, default=36)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--carbon-radix", type=int, default=8)
    ap.add_argument("--carbon-levels", type=int, default=2)
    ap.add_argument("--carbon-snapshots", type=int, default=300)
    ap.add_argument("--no-carbon", action="store_true")
    ap.add_argument("--no-stall", action="store_true")
    ap.add_argument("--stall-topology", default=str(_HERE.parent / "topologies" / "fat-tree.yml"),
                    help="the scenario run in part 3 (default: topologies/fat-tree.yml)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from ibsim import compile_fabric, fat_tree
    fabric = compile_fabric(fat_tree(args.radix, args.levels))
    rng = np.random.default_rng(1)
    now = int(time.time())
    snaps = [make_snapshot(fabric, rng, k + 1, now - 100 + k) for k in range(args.repeat + 1)]
    out = {"fabric": f"fat_tree({args.radix}, {args.levels})", "ports": fabric.n_ports}
    sink = Sink()
    try:
        out.update(bench_ours(fabric, snaps, sink, args.repeat))
        out.update(bench_graphyte(fabric, snaps[1], sink))
    finally:
        sink.close()
    out["speedup_vs_graphyte"] = out["graphite_points_per_s"] / out["graphyte_points_per_s"]
    if not args.no_carbon:
        out.update(bench_carbon(args.carbon_radix, args.carbon_levels, args.carbon_snapshots))
    if not args.no_stall:
        out.update(bench_stall(args.stall_topology))
    out["targets_met"] = out["graphite_points_per_s"] >= 2e6 and out["speedup_vs_graphyte"] >= 10
    if args.json:
        print(json.dumps(out, indent=1, default=float))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
