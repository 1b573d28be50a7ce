"""``python -m ibsim cluster up|status|exec|down``: compute hosts as containers on the live fabric.

``up SCENARIO`` runs the scenario in real time with its ``cluster:`` hosts as
Docker containers and prints what runs where; Ctrl-C, SIGTERM or SIGHUP
tears everything down and writes the run directory (exit code 130 after
Ctrl-C, 0 after SIGTERM, SIGHUP or ``--until``). The run directory is
checked and created before anything starts (exit code 2 when it cannot be
used or is not empty; ``--overwrite`` replaces a previous run in it). ``status`` lists the labelled containers;
``down [NAME]`` removes every container and network labelled for the
cluster (all ibsim clusters without NAME), also after a crash (exit code 1
when Docker refuses to remove a network, which it names). ``exec NAME
HOST CMD...`` runs a command in one of a cluster's containers (``ctl``: the
Slurm controller, e.g. ``sbatch``) and exits with its exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from ..errors import ScenarioError
from ..units import parse_duration

__all__ = ["add_parsers", "cmd_up", "cmd_status", "cmd_exec", "cmd_down"]


def add_parsers(sub) -> None:
    """Add the ``cluster`` subcommand to ``python -m ibsim``'s subparsers."""
    p = sub.add_parser("cluster", help="a virtual cluster: hosts as Docker containers on the live fabric",
                       description="Run a scenario's cluster: section as Docker containers coupled to the "
                                   "simulated fabric (see topologies/cluster-demo.yml).")
    csub = p.add_subparsers(dest="cluster_command", metavar="ACTION")
    csub.required = True
    up = csub.add_parser("up", help="start the cluster and run until Ctrl-C (or SIGTERM)")
    up.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file with a cluster: section")
    up.add_argument("--until", metavar="DURATION", help="stop and tear down after this simulated time")
    up.add_argument("--out", metavar="DIR", help="run directory to write, checked and created before "
                    "anything starts; it must be empty (default: a new <output>/<name>-<UTC time>/)")
    up.add_argument("--overwrite", action="store_true",
                    help="replace the previous run in a non-empty --out (its files are removed first)")
    up.add_argument("--no-plot", dest="plot", action="store_false", help="skip overview.png")
    up.add_argument("--json", action="store_true", help="print what runs where as JSON")
    up.set_defaults(func=cmd_up)
    st = csub.add_parser("status", help="list the labelled containers of ibsim clusters")
    st.add_argument("name", nargs="?", metavar="NAME", help="only this cluster")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=cmd_status)
    ex = csub.add_parser("exec", help="run a command in a container of a cluster (ctl: the Slurm controller)",
                         description="Run a command in a cluster's container, e.g. "
                                     "python -m ibsim cluster exec demo ctl sbatch -N 4 --wrap 'sleep 60'")
    ex.add_argument("name", metavar="NAME", help="the cluster")
    ex.add_argument("host", metavar="HOST", help="a host's hostname (node001), or ctl")
    ex.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD", help="the command and its arguments")
    ex.set_defaults(func=cmd_exec)
    dn = csub.add_parser("down", help="remove every container and network of a cluster")
    dn.add_argument("name", nargs="?", metavar="NAME", help="the cluster (default: every ibsim cluster)")
    dn.set_defaults(func=cmd_down)


def _print_status(st: dict) -> None:
    print(f"cluster {st['name']}: {len(st['hosts'])} hosts on {st['subnet']} (gateway {st['gateway']})")
    print(f"  MAD server      {st['mad_server']}  (tools in the hosts attach through libumad2sim)")
    if st["graphite"]:
        print(f"  Graphite        {st['graphite']}")
    if st["prometheus_targets"]:
        print(f"  Prometheus      file_sd targets: {st['prometheus_targets']}")
    print(f"  sysfs trees     {st['sysfs']}")
    sl = st.get("slurm")
    if sl:
        print(f"  Slurm           controller {sl['controller']} ({sl['address']}), partition {sl['partition']}, "
              f"job hooks to {sl['hook']}")
    for h in st["hosts"]:
        print(f"  {h['container']:<24} {h['address']:<15} {h['node_desc']} ({h['node_guid']})")
    print(f"try: docker exec {st['hosts'][0]['container']} perfquery" if st["hosts"] else "")
    if sl:
        n = min(4, len(st["hosts"]))
        print(f"submit: docker exec {sl['controller']} sbatch -N {n} --comment 'ibsim: pattern=all_to_all "
              f"load=0.6' --wrap 'sleep 60'")
        print(f"    or: python -m ibsim cluster exec {st['name']} ctl squeue")


def cmd_up(args) -> int:
    """Bring the cluster up, wait for Ctrl-C/SIGTERM/--until, tear down, write the run directory."""
    from ..cluster import Cluster

    until = None
    if args.until:
        until = parse_duration(args.until)
        if until <= 0:
            raise ScenarioError(f"--until must be positive, got {args.until!r}")
    stop = threading.Event()
    how = {"signal": None}

    def on_signal(signum, frame):
        how["signal"] = signum
        stop.set()
        if not up_done.is_set():
            raise KeyboardInterrupt            # during up(): Cluster.up tears down what it started

    up_done = threading.Event()
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def say(line: str) -> None:
        sys.stderr.write(f"ibsim: {line}\n")
        sys.stderr.flush()

    try:
        cluster = Cluster(args.scenario, until=until, say=say, out=args.out or True,
                          overwrite=getattr(args, "overwrite", False))
        cluster.up()
        up_done.set()
        st = cluster.status()
        if args.json:
            print(json.dumps(st, indent=1))
        else:
            _print_status(st)
            say("running; Ctrl-C (or SIGTERM) tears the cluster down and writes the run directory")
        sys.stdout.flush()
        while not stop.wait(0.5) and cluster.running:
            pass
    finally:
        for s in old:                          # teardown is not interrupted
            signal.signal(s, signal.SIG_IGN)
        try:
            why = signal.Signals(how["signal"]).name if how["signal"] else None
            result = cluster.down(plot=args.plot, reason=why) if up_done.is_set() else None
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    if result is not None:
        path = str(result.path)
        print(f"run directory: {path}" + ("" if path.endswith(os.sep) else os.sep))
    return 130 if how["signal"] == signal.SIGINT else 0


def cmd_status(args) -> int:
    """List labelled containers (any cluster, or ``args.name``)."""
    from ..hosts import LABEL, cluster_objects, docker_client
    objs = cluster_objects(docker_client(), args.name)
    rows = []
    for c in objs["containers"]:
        nets = c.attrs.get("NetworkSettings", {}).get("Networks") or {}
        addr = ",".join(v.get("IPAddress") or "-" for v in nets.values()) or "-"
        rows.append({"cluster": c.labels.get(LABEL), "container": c.name, "status": c.status,
                     "address": addr, "role": c.labels.get("org.ibsim.role", ""),
                     "node_desc": c.labels.get("org.ibsim.node_desc", "")})
    nets = [{"cluster": (n.attrs.get("Labels") or {}).get(LABEL), "network": n.name} for n in objs["networks"]]
    if args.json:
        print(json.dumps({"containers": rows, "networks": nets}, indent=1))
        return 0
    if not rows and not nets:
        print("no ibsim cluster is running" + (f" under the name {args.name!r}" if args.name else ""))
        return 0
    for n in nets:
        print(f"cluster {n['cluster']}: network {n['network']}")
    for r in sorted(rows, key=lambda r: (r["cluster"], r["container"])):
        print(f"  {r['container']:<24} {r['status']:<8} {r['address']:<15} {r['role']:<8} {r['node_desc']}")
    return 0


def cmd_exec(args) -> int:
    """Run ``args.command`` in container ``<name>-<host>``; print its output; its exit code."""
    from ..errors import HostError
    from ..hosts import cluster_objects, docker_client
    if not args.command:
        raise ScenarioError("cluster exec: give a command, e.g. cluster exec demo ctl squeue")
    cname = f"{args.name}-{args.host}"
    cons = [c for c in cluster_objects(docker_client(), args.name)["containers"] if c.name == cname]
    if not cons:
        raise HostError(f"no container {cname} of an ibsim cluster {args.name!r} (python -m ibsim cluster status)")
    if cons[0].status != "running":
        raise HostError(f"container {cname} is {cons[0].status}, not running")
    r = cons[0].exec_run(list(args.command), demux=True)
    out, err = r.output if isinstance(r.output, tuple) else (r.output, None)
    if out:
        sys.stdout.write(out.decode(errors="replace"))
        sys.stdout.flush()
    if err:
        sys.stderr.write(err.decode(errors="replace"))
    return int(r.exit_code or 0)


def cmd_down(args) -> int:
    """Remove every labelled container and network of a cluster (or of all ibsim clusters)."""
    import shutil

    from ..cluster import state_dir
    from ..hosts import LABEL, cluster_objects, docker_client, remove_cluster
    client = docker_client()
    names = [args.name] if args.name else sorted(
        {c.labels.get(LABEL) for c in cluster_objects(client)["containers"]}
        | {(n.attrs.get("Labels") or {}).get(LABEL) for n in cluster_objects(client)["networks"]})
    if not names:
        print("no ibsim cluster to remove")
    left = 0
    for name in names:
        n = remove_cluster(client, name)
        shutil.rmtree(state_dir(name), ignore_errors=True)
        print(f"cluster {name}: removed {n['containers']} containers, {n['networks']} networks")
        for net, why in n["left"]:
            print(f"cluster {name}: network {net} is left: {why} (restart the Docker daemon to free it)")
        left += len(n["left"])
    return 1 if left else 0
