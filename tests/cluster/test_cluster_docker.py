"""A 4-host cluster on the real Docker engine: sysfs, node_exporter, OFED tools, coupling, teardown."""

from __future__ import annotations

import re
import threading
import time
import urllib.request

import pytest

from ibsim.fabric import COUNTER_ROW
from ibsim.hosts import cluster_objects
from ibsim.hosts.sysfs import DEVICE
from tests.cluster.conftest import running_cluster

NAME = "ibsimtest-docker"
SCENARIO = f"""
name: ct
seed: 1
clock: {{tick: 100ms}}
topology: {{generate: fat-tree, radix: 4, levels: 2}}
routing: {{engine: ftree, sweep_delay: 1s}}
traffic:
  - {{name: pair, pattern: permutation, hosts: ['node001 HCA-1', 'node002 HCA-1'], load: 0.5}}
cluster: {{name: {NAME}, hosts: 4, node_exporter: true, sysfs_every: 1h, mad_port: 47400}}
"""


@pytest.fixture(scope="module")
def cluster(docker_client, host_image, tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster")
    (d / "c.yml").write_text(SCENARIO + f"output: {d}/runs\n")
    with running_cluster(docker_client, d / "c.yml", NAME) as c:
        yield c


class Events:
    """Engine events as they happen (a listener on the simulation)."""

    def __init__(self, sim):
        self.items = []
        self.cond = threading.Condition()
        sim.add_listener(self._on)

    def _on(self, ev, port):
        with self.cond:
            self.items.append(ev)
            self.cond.notify_all()

    def wait(self, kind, guid, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.items:
                    if ev.kind == kind and guid in (ev.node_guid, ev.peer_guid):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def _port(c, hostname):
    return int(c.sim.fabric.ports_of_node(c.host(hostname).node)[0])


def test_sysfs_in_container_equals_engine(cluster):
    snap = cluster.refresh_sysfs()
    for hostname in ("node001", "node003"):
        p = _port(cluster, hostname)
        rc, out = cluster.exec(hostname, f"cd /sys/class/infiniband/{DEVICE}/ports/1/counters && "
                                         "for f in *; do echo $f $(cat $f); done")
        assert rc == 0, out
        seen = dict(line.split() for line in out.splitlines())
        for name, row in COUNTER_ROW.items():
            assert int(seen[name]) == min(int(snap.counters[row, p]), int(cluster.trees.last[row].max())), name
        assert int(seen["port_xmit_data"]) == int(snap.counters[COUNTER_ROW["port_xmit_data"], p])
    rc, out = cluster.exec("node001", "cat /sys/class/infiniband/mlx5_0/node_guid; ibstat")
    assert rc == 0
    guid = cluster.host("node001").node_guid
    assert f"Node GUID: 0x{guid:016x}" in out and "State: Active" in out and "CA 'mlx5_0'" in out
    rc, out = cluster.exec("node001", "touch /sys/class/infiniband/mlx5_0/node_desc")
    assert rc != 0                                               # read-only


def test_node_exporter_equals_engine(cluster):
    snap = cluster.refresh_sysfs()
    h = cluster.host("node002")
    p = _port(cluster, "node002")
    text = ""
    for _ in range(50):
        try:
            text = urllib.request.urlopen(f"http://{h.address}:9100/metrics", timeout=5).read().decode()
            break
        except OSError:
            time.sleep(0.2)
    m = dict(re.findall(r'^(node_infiniband_\w+)\{device="mlx5_0",port="1"\} (\S+)$', text, re.M))
    assert 'node_scrape_collector_success{collector="infiniband"} 1' in text
    assert float(m["node_infiniband_port_data_transmitted_bytes_total"]) == \
        4 * int(snap.counters[COUNTER_ROW["port_xmit_data"], p])
    assert float(m["node_infiniband_port_packets_received_total"]) == \
        int(snap.counters[COUNTER_ROW["port_rcv_packets"], p])
    assert m["node_infiniband_state_id"] == "4" and float(m["node_infiniband_rate_bytes_per_second"]) == 1.25e10


def test_perfquery_in_container_shows_own_port(cluster):
    p = _port(cluster, "node001")
    guid = cluster.host("node001").node_guid
    before = cluster.sim.snapshot()
    rc, out = cluster.exec("node001", "perfquery -x")
    after = cluster.sim.snapshot()
    assert rc == 0, out
    assert f"H-{guid:016x}" in out                               # attached as its own node
    assert f"Lid {int(after.lid[p])} port 1" in out
    got = int(re.search(r"PortXmitData:\.*(\d+)", out).group(1))
    row = COUNTER_ROW["port_xmit_data"]
    assert int(before.counters[row, p]) <= got <= int(after.counters[row, p])
    assert got > 0


def test_docker_stop_unplugs_and_start_replugs(cluster, docker_client):
    ev = Events(cluster.sim)
    h = cluster.host("node004")
    p = _port(cluster, "node004")
    f = cluster.sim.fabric
    peer = int(f.peer_of_port[p])
    sw = int(f.node_of_port[peer])
    sw_lid, sw_port = int(cluster.sim.snapshot().lid[f.first_port[sw]]), int(f.port_num[peer])
    cluster.container("node004").stop(timeout=2)
    assert ev.wait("link_down", h.node_guid) is not None
    rc, out = cluster.exec("node001", f"smpquery portinfo {sw_lid} {sw_port}")
    assert rc == 0, out
    assert re.search(r"LinkState:\.*Down", out), out
    cluster.container("node004").start()
    assert ev.wait("link_up", h.node_guid, timeout=15) is not None


def test_pause_and_disconnect_unplug(cluster, docker_client):
    h = cluster.host("node003")
    con = cluster.container("node003")
    ev = Events(cluster.sim)
    con.pause()
    try:
        assert ev.wait("link_down", h.node_guid) is not None
    finally:
        con.unpause()
    assert ev.wait("link_up", h.node_guid, timeout=15) is not None


def test_unplug_fault_shows_down_inside(cluster):
    ev = Events(cluster.sim)
    h = cluster.host("node002")
    cluster.sim.inject("unplug", h.node_desc, for_="2s")
    assert ev.wait("link_down", h.node_guid) is not None
    cluster.refresh_sysfs()
    rc, out = cluster.exec("node002", "cat /sys/class/infiniband/mlx5_0/ports/1/state; ibstat")
    assert out.startswith("1: DOWN") and "State: Down" in out, out
    assert ev.wait("link_up", h.node_guid, timeout=15) is not None


def test_down_leaves_nothing_labelled(cluster, docker_client):
    root = cluster.trees.root
    cluster.down(write=False)
    objs = cluster_objects(docker_client, NAME)
    assert objs == {"containers": [], "networks": []}
    assert not root.exists()
