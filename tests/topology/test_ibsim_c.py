"""Integration with linux-rdma's C ibsim: our files served by it, discovered by the real ibnetdiscover.

Each test writes a topology with our writer, serves it with ``ibsim -s -n``
(own IBSIM_SOCKNAME, stopped by PID), runs ``ibnetdiscover`` through
libumad2sim and parses its output with our reader. What comes back must
equal what went in: nodes, GUIDs, port GUIDs, descriptions, vendid/devid,
system image GUIDs, enhanced port 0, preset LIDs/LMC and every link with
its ports, width and speed.

What genuinely cannot survive C ibsim 0.10 (so the topologies here avoid it):
NDR/XDR speeds (unknown to its comment parser: the port stays 4x SDR), CA port
GUIDs other than node GUID + port (it ignores the parentheses), routers'
rates and LIDs (it reads ibnetdiscover comments on Switch and Ca lines only),
and descriptions longer than 63 bytes (it keeps 63).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from ibsim.topology import Topology, fat_tree
from ibsim.topology.ibnetdiscover import parse_ibnetdiscover, read_ibnetdiscover, write_ibnetdiscover
from tests.conftest import UMAD2SIM, have_c_ibsim

pytestmark = [pytest.mark.requires_ibsim_c,
              pytest.mark.skipif(not have_c_ibsim(), reason="linux-rdma ibsim, libumad2sim or "
                                 "infiniband-diags not installed")]

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]
ALL_ATTRS = ("kind", "nports", "desc", "sysimgguid", "vendid", "devid", "port_guids", "lids",
             "lmc", "enhanced_port0")
DISCOVER_TIMEOUT = 60.0     # seconds, for the whole readiness loop
ATTEMPT_TIMEOUT = 20.0      # one ibnetdiscover run (umad2sim retries a refused connect every 2 s)


@contextmanager
def c_ibsim(netfile: Path, workdir: Path):
    """Serve ``netfile`` with the C ibsim on a socket name of its own; yield (process, name)."""
    sockname = f"ibsimpy-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    log_path = workdir / f"c-ibsim-{sockname}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([shutil.which("ibsim"), "-s", "-n", str(netfile)], cwd=workdir,
                                env={**os.environ, "IBSIM_SOCKNAME": sockname},
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc, sockname, log_path
        finally:
            if proc.poll() is None:
                proc.terminate()                 # this PID only: the ibsim we started
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def ibnetdiscover(proc, sockname: str, log_path: Path, workdir: Path, sim_host: str | None = None) -> str:
    """Run the real ibnetdiscover against the server, retrying until it answers."""
    env = {**os.environ, "IBSIM_SOCKNAME": sockname, "LD_PRELOAD": UMAD2SIM}
    env.pop("SIM_HOST", None)
    if sim_host:
        env["SIM_HOST"] = sim_host
    deadline = time.monotonic() + DISCOVER_TIMEOUT
    last = "no attempt"
    while True:
        if proc.poll() is not None:
            pytest.fail(f"C ibsim exited with status {proc.returncode} before answering:\n"
                        f"{log_path.read_text()}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"ibnetdiscover got no answer from the C ibsim within {DISCOVER_TIMEOUT} s; "
                        f"last attempt: {last}\nserver log:\n{log_path.read_text()}")
        try:
            r = subprocess.run([shutil.which("ibnetdiscover")], cwd=workdir, env=env,
                               capture_output=True, text=True,
                               timeout=min(ATTEMPT_TIMEOUT, remaining))
        except subprocess.TimeoutExpired:
            last = f"timed out after {min(ATTEMPT_TIMEOUT, remaining):.0f} s"
            continue
        if r.returncode == 0 and "# Topology file" in r.stdout:
            return r.stdout
        last = f"exit status {r.returncode}, stderr: {r.stderr.strip()[-500:]}"
        time.sleep(0.5)


def through_c_ibsim(topo_or_file, tmp_path: Path, sim_host: str | None = None) -> Topology:
    """Serve (our rendering of) a topology with the C ibsim; parse what ibnetdiscover sees."""
    if isinstance(topo_or_file, Topology):
        netfile = tmp_path / "fabric.topo"
        write_ibnetdiscover(topo_or_file, netfile)
    else:
        netfile = Path(topo_or_file)
    with c_ibsim(netfile, tmp_path) as (proc, sockname, log_path):
        out = ibnetdiscover(proc, sockname, log_path, tmp_path, sim_host)
    (tmp_path / "discovered.topo").write_text(out)
    return parse_ibnetdiscover(out, str(tmp_path / "discovered.topo"))


def assert_same(back: Topology, topo: Topology) -> None:
    assert back == topo                                            # default canonical()
    assert back.canonical(attrs=ALL_ATTRS) == topo.canonical(attrs=ALL_ATTRS)
    assert back.summary()["speeds"] == topo.summary()["speeds"]


def c_compatible_rich_topology() -> Topology:
    """Every width and every speed C ibsim 0.10 knows, LIDs, LMC, enhanced port 0, IDs."""
    t = Topology("rich")
    t.add_switch(0x0002C90300001000, 36, "MF0;switch-ib:SB7800/U1", enhanced_port0=True, lid=3)
    t.add_switch(0x0002C90300002000, 36, "MF0;switch-ib:SB7800/U1", vendid=0x119F, devid=0xCF08,
                 sysimgguid=0x0002C90300002003)
    t.add_ca(0x248A0703005ABB10, 1, "cn0001 mlx5_0", lids={1: 9}, lmc=2)
    t.add_ca(0x248A0703005ABB20, 1, "cn0002 mlx5_0", vendid=0, devid=0)
    t.add_ca(0x0002C90300D8A260, 2, "oss01 mlx4_0", devid=0x1003, sysimgguid=0x0002C90300D8A263)
    t.add_ca(0x248A0703005ABB30, 1, "cn0003 mlx5_0", lids={1: 17})
    sw1, sw2 = 0x0002C90300001000, 0x0002C90300002000
    t.add_link(sw1, 1, 0x248A0703005ABB10, 1)
    t.add_link(sw1, 2, 0x248A0703005ABB20, 1, width="1x", speed="QDR")
    t.add_link(sw2, 1, 0x0002C90300D8A260, 1, speed="HDR")      # its port 2 stays uncabled
    t.add_link(sw2, 2, 0x248A0703005ABB30, 1, speed="DDR")       # the degraded cable
    t.add_link(sw1, 31, sw2, 31, width="2x", speed="EDR")
    t.add_link(sw1, 32, sw2, 32, width="8x", speed="SDR")
    t.add_link(sw1, 33, sw2, 33, speed="FDR")
    t.add_link(sw1, 34, sw2, 34, width="12x", speed="FDR10")
    t.add_link(sw1, 35, sw2, 35)                                 # parallel cables
    t.add_link(sw1, 36, sw2, 36)
    return t


def test_fat_tree_8_2(tmp_path):
    topo = fat_tree(8, 2)
    assert_same(through_c_ibsim(topo, tmp_path), topo)


def test_tiny_topology(tiny_topology, tmp_path):
    assert_same(through_c_ibsim(tiny_topology, tmp_path), tiny_topology)


def test_every_width_speed_and_attribute(tmp_path):
    topo = c_compatible_rich_topology()
    back = through_c_ibsim(topo, tmp_path)
    assert_same(back, topo)
    assert back.node(0x0002C90300001000)["enhanced_port0"]
    assert back.node(0x248A0703005ABB10)["lids"] == {1: 9} and back.node(0x248A0703005ABB10)["lmc"] == 2


def test_shipped_cluster_dump_is_served_unchanged(tmp_path):
    path = REPO / "topologies" / "cluster-dump.topo"
    topo = read_ibnetdiscover(path)
    back = through_c_ibsim(path, tmp_path, sim_host="mgmt01 mlx5_0")
    assert_same(back, topo)
    assert "# Initiated from node" in (tmp_path / "discovered.topo").read_text()


def test_ibsim_dialect_reads_as_the_c_ibsim_serves_it(tmp_path):
    """GUID counters, w=/s=/e= masks, sticky speed=/extspeed=, devid/vendid scope, default remote port."""
    path = DATA / "ibsim-dialect.net"
    assert_same(through_c_ibsim(path, tmp_path), read_ibnetdiscover(path))
