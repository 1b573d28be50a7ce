"""The README's Slurm story, end to end: jobs, a failed node, an IB fault, and what the monitoring shows.

Brings ``topologies/cluster-demo.yml`` up (16 Slurm container hosts, Graphite)
and plays, in real time (t = simulated seconds since the start):

====  ============================================================================
 10   ``sbatch -N 8 -J cfd --comment "ibsim: pattern=all_to_all load=0.6"`` (100 s)
 15   ``sbatch -N 4 -J io --comment "ibsim: pattern=incast targets=1 rate=40Gbps"`` (70 s)
 20   ``sbatch -N 2 -J small`` (40 s; no comment: the default ring all-reduce)
 40   ``docker stop`` the second node of ``io``: link down; Slurm marks it DOWN after
      SlurmdTimeout and requeues ``io``, whose traffic restarts on other nodes
 60   (scenario) ``node004 HCA-1`` unplugged for 30 s: the IB health check drains node004
100   ``docker start`` the stopped node
120   (scenario) the uplink ``leaf2:5`` flaps
====  ============================================================================

and at ``--until`` (default 170 s) takes it down into ``--out``: the run
directory (``overview.png`` with the jobs on the timeline, ``jobs.csv``,
``summary.txt``) plus ``graphite.png``, graphite-web's own rendering of the
per-job traffic (``ib.jobs.<id>.xmit_bytes``) with the job and link events
drawn over it. Prints the run directory and the events as JSON with ``--json``.

    python benchmarks/slurm_story.py --out runs/slurm-story
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run directory to write (must not exist or be empty)")
    ap.add_argument("--until", type=float, default=170.0, help="simulated seconds to run (>= 110)")
    ap.add_argument("--name", default="demo", help="cluster name (prefix of the containers; default demo)")
    ap.add_argument("--json", action="store_true", help="print the job and fault events as JSON")
    args = ap.parse_args()
    if args.until < 110:
        ap.error("--until must be at least 110 s (the story's last step is at 100 s)")

    import dataclasses

    from ibsim import Cluster
    from ibsim.scenario import Scenario
    scn = Scenario.from_file(ROOT / "topologies" / "cluster-demo.yml")
    scn = dataclasses.replace(scn, cluster=dataclasses.replace(scn.cluster, name=args.name))
    c = Cluster(scn, out=args.out, until=args.until,
                say=lambda line: print(f"story: {line}", file=sys.stderr))

    def at(t):
        """Wait for simulated time t; False when the run ends first (a short --until)."""
        while c.sim.time_s < t and c.running:
            time.sleep(0.05)
        return c.sim.time_s >= t

    def sbatch(*a):
        code, out = c.exec("ctl", "sbatch", "--parsable", *a)
        if code != 0:
            raise RuntimeError(out)
        print(f"story: t={c.sim.time_s:.0f}s sbatch {' '.join(a)} -> job {out.strip()}", file=sys.stderr)
        return int(out.strip())

    c.up()
    try:
        at(10)
        sbatch("-N", "8", "-J", "cfd", "--comment", "ibsim: pattern=all_to_all load=0.6", "--wrap", "sleep 100")
        at(15)
        io = sbatch("-N", "4", "-J", "io", "--comment", "ibsim: pattern=incast targets=1 rate=40Gbps",
                    "--wrap", "sleep 70")
        at(20)
        sbatch("-N", "2", "-J", "small", "--wrap", "sleep 40")
        if not at(40):
            raise SystemExit("story: --until must be at least 110 s")
        from ibsim.hosts.slurmconf import expand_hostlist
        start = next(e for e in c.sim.events if e.kind == "job_start" and e.details.get("job_id") == io)
        victim = expand_hostlist(start.details["nodes"])[1]
        print(f"story: t={c.sim.time_s:.0f}s docker stop {c.containers.container_name(victim)}", file=sys.stderr)
        c.container(victim).stop(timeout=1)
        at(100)
        print(f"story: t={c.sim.time_s:.0f}s docker start {c.containers.container_name(victim)}", file=sys.stderr)
        c.container(victim).start()
        at(args.until - 3)
        png = _render(c, args.until + 10)
        c.wait(timeout=60)                           # the clock reaches --until: a complete run
    finally:
        res = c.down()
    graphite = None
    if png:
        graphite = str(Path(res.path) / "graphite.png")
        Path(graphite).write_bytes(png)
    keep = ("job_start", "job_end", "job_requeue", "job_error", "node_state", "link_down", "link_up")
    evs = [e.to_dict() for e in c.sim.events if e.kind in keep]
    if args.json:
        print(json.dumps({"run_dir": str(res.path), "graphite_png": graphite, "events": evs}, indent=1))
    else:
        for e in evs:
            print(f"t={e['time_s']:7.1f}s {e['kind']:<12} {e['node_desc'] or ''} {e['details']}")
        print(f"run directory: {res.path}")
    return 0


def _render(c, span_s: float) -> bytes | None:
    """graphite-web's PNG of the per-job traffic with the job and link events, or None."""
    if not c.graphite_address:
        return None
    q = [("target", "aliasByNode(scale(nonNegativeDerivative(ib.jobs.*.xmit_bytes),8e-9),2)"),
         ("target", "alias(drawAsInfinite(events('job_start')),'job start')"),
         ("target", "alias(drawAsInfinite(events('job_requeue')),'job requeue')"),
         ("target", "alias(drawAsInfinite(events('link_down')),'link down')"),
         ("from", f"-{int(span_s)}s"), ("width", "1000"), ("height", "420"), ("title", "Gb/s sent per Slurm job"),
         ("vtitle", "Gb/s"), ("format", "png")]
    url = f"http://{c.graphite_address}:8080/render?" + urllib.parse.urlencode(q)
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.read()
    except OSError as exc:
        print(f"story: graphite-web render failed: {exc}", file=sys.stderr)
        return None


if __name__ == "__main__":
    sys.exit(main())
