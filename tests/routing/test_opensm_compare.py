"""Our minhop against the real OpenSM, run on linux-rdma's C ibsim.

The topology is written as an ibsim net file (with our GUIDs), served by
``ibsim -s -n`` on a private abstract socket name, and routed by ``opensm``
through the umad2sim preload. OpenSM's ``opensm-lfts.dump`` is translated
into our LID numbering through GUIDs, and every (switch, CA) hop count must
equal ours. Everything opensm writes (log, cache, dumps, the umad2sim sysfs
tree) stays in ``tmp_path``; processes are stopped by the PIDs started here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import numpy as np
import pytest

from ibsim.fabric import compile_fabric
from ibsim.routing import compute_lfts, lft_from_dump, read_lft_dump, route_metrics, walk
from ibsim.topology import fat_tree

UMAD2SIM = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so"
HAVE_OPENSM = bool(shutil.which("opensm") and shutil.which("ibsim") and os.path.exists(UMAD2SIM))
UP_TIMEOUT_S = 90.0

pytestmark = [
    pytest.mark.requires_opensm,
    pytest.mark.skipif(not HAVE_OPENSM, reason="needs opensm, linux-rdma ibsim and libumad2sim"),
]


def _wait_for_socket(name: str, proc: subprocess.Popen, timeout: float) -> None:
    """Wait until the C ibsim has bound its abstract control socket ``@name:ctl``."""
    want = f"@{name}:ctl@"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return
        try:
            with open("/proc/net/unix") as fh:
                if any(line.rstrip().endswith(want) for line in fh):
                    return
        except OSError:                    # no procfs: clients retry every 2 s anyway
            return
        time.sleep(0.05)


def _stop(proc: subprocess.Popen | None) -> None:
    """Terminate one process we started (by its PID), then kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _tail(path, n: int = 30) -> str:
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError:
        return "(no file)"


def run_opensm(topo, fab, tmp_path) -> str:
    """Route ``topo`` with the real OpenSM on the C ibsim; return its opensm-lfts.dump."""
    from ibsim.topology.readwrite import write_ibnetdiscover

    net = tmp_path / "fabric.net"
    write_ibnetdiscover(topo, net)
    run = tmp_path / "run"                     # umad2sim writes ./sys-<pid>/ here
    dumps, cache = tmp_path / "dump", tmp_path / "cache"
    for d in (run, dumps, cache):
        d.mkdir()
    conf = tmp_path / "opensm.conf"            # empty: ignore /etc/opensm/opensm.conf
    conf.write_text("")
    log = tmp_path / "opensm.log"
    sock = f"ibsimtest{os.getpid()}{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IBSIM_", "SIM_", "OSM_"))}
    env.pop("LD_PRELOAD", None)
    env["IBSIM_SOCKNAME"] = sock
    n = fab.n_nodes
    cmd_sim = ["ibsim", "-s", "-n", "-N", str(max(2048, 2 * n)), "-S", str(max(256, 2 * fab.n_switches)),
               "-P", str(max(13312, 2 * fab.n_ports)), str(net)]
    first_ca = fab.node_desc[fab.n_switches]   # nodes are switches first, then CAs
    osm_env = dict(env, LD_PRELOAD=UMAD2SIM, SIM_HOST=first_ca,
                   OSM_CACHE_DIR=str(cache), OSM_TMP_DIR=str(dumps))
    cmd_osm = ["opensm", "-F", str(conf), "-f", str(log), "-D", "0x43", "-d2",
               "--dump_files_dir", str(dumps), "-s", "0", "-R", "minhop"]
    sim = osm = None
    sim_out = open(tmp_path / "ibsim.out", "w")
    osm_out = open(tmp_path / "opensm.out", "w")
    try:
        sim = subprocess.Popen(cmd_sim, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                               stdout=sim_out, stderr=subprocess.STDOUT)
        _wait_for_socket(sock, sim, 30.0)
        assert sim.poll() is None, f"ibsim exited early:\n{_tail(tmp_path / 'ibsim.out')}"
        osm = subprocess.Popen(cmd_osm, cwd=run, env=osm_env, stdin=subprocess.DEVNULL,
                               stdout=osm_out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + UP_TIMEOUT_S
        while True:
            if log.exists() and "SUBNET UP" in log.read_text(errors="replace"):
                break
            if osm.poll() is not None:
                pytest.fail(f"opensm exited ({osm.returncode}) before SUBNET UP:\n{_tail(log)}"
                            f"\n{_tail(tmp_path / 'opensm.out')}")
            if time.monotonic() > deadline:
                pytest.fail(f"no SUBNET UP within {UP_TIMEOUT_S:.0f} s:\n{_tail(log)}")
            time.sleep(0.1)
        # the dump is written (and closed) before the SUBNET UP line
        return (dumps / "opensm-lfts.dump").read_text()
    finally:
        _stop(osm)
        _stop(sim)
        sim_out.close()
        osm_out.close()


@pytest.mark.parametrize("name", ["fat_tree(8,3)", "fat_tree(36,2)", "ring6", "tiny"])
def test_minhop_hop_counts_equal_opensm(name, tmp_path, rh, tiny_topology):
    topo = {"fat_tree(8,3)": lambda: fat_tree(8, 3), "fat_tree(36,2)": lambda: fat_tree(36, 2),
            "ring6": lambda: rh.ring(6), "tiny": lambda: tiny_topology}[name]()
    fab = compile_fabric(topo)
    text = run_opensm(topo, fab, tmp_path)
    theirs = read_lft_dump(text)
    assert set(theirs) == {int(g) for g in fab.node_guid[fab.node_of_switch]}, \
        "OpenSM saw other switch GUIDs than ours"
    osm = lft_from_dump(fab, text)
    ours = compute_lfts(fab, "minhop")
    lids = rh.ca_lids(fab)
    src = np.repeat(np.arange(fab.n_switches), lids.size)
    dst = np.tile(lids, fab.n_switches)
    a, b = walk(fab, osm, src, dst), walk(fab, ours, src, dst)
    assert (a.status == 0).all(), "OpenSM's tables do not reach every CA from every switch"
    assert (b.status == 0).all()
    assert np.array_equal(a.hops, b.hops)
    # same all-to-all quality: OpenSM's equalisation and ours spread LIDs alike
    mo, mu = route_metrics(fab, osm), route_metrics(fab, ours)
    assert mo["unreachable"] == mu["unreachable"] == 0
    assert mo["mean_hops"] == mu["mean_hops"]
    if name.startswith("fat_tree"):
        # on fat trees the tables come out identical (OpenSM 3.3.23); the
        # all-to-all link loads must at least agree
        assert mo["link_load"] == mu["link_load"]
