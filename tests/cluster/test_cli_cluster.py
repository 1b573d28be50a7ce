"""``python -m ibsim cluster ...`` and ``images build`` as a user runs them: bad input, SIGTERM, down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibsim.hosts import cluster_objects, remove_cluster

ROOT = Path(__file__).resolve().parents[2]
BASE = """name: cli
clock: {tick: 100ms}
topology: {generate: fat-tree, radix: 4, levels: 2}
routing: {engine: ftree, sweep_delay: 1s}
"""


def ibsim(*args, env=None, **kw):
    e = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "ibsim", *args], env=e, capture_output=True, text=True,
                          cwd=ROOT, timeout=300, **kw)


def write(tmp_path, cluster: str) -> str:
    p = tmp_path / "c.yml"
    p.write_text(BASE + f"output: {tmp_path}/runs\ncluster:\n" + cluster)
    return str(p)


@pytest.mark.parametrize("cluster, what", [
    ("  name: ibsimtest-bad\n  hosts: ['leaf1']\n", "cluster.hosts[0]: 'leaf1' is not a CA"),
    ("  name: ibsimtest-bad\n  hosts: 20\n", "only 8 CAs"),
])
def test_bad_hosts_exit_2_one_line(tmp_path, docker_client, cluster, what):
    r = ibsim("cluster", "up", write(tmp_path, cluster))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and what in r.stderr and "c.yml:" in r.stderr
    assert cluster_objects(docker_client, "ibsimtest-bad") == {"containers": [], "networks": []}


def test_subnet_clash_exit_2(tmp_path, docker_client):
    net = docker_client.networks.create("ibsimtest-clash-net", internal=True,
                                        labels={"org.ibsim.cluster": "ibsimtest-clash"},
                                        ipam=__import__("docker").types.IPAMConfig(pool_configs=[
                                            __import__("docker").types.IPAMPool(subnet="172.31.251.0/24")]))
    try:
        r = ibsim("cluster", "up", write(tmp_path, "  name: ibsimtest-bad\n  network: {subnet: 172.31.251.0/24}\n"))
        assert r.returncode == 2, r.stderr
        assert "cluster.network.subnet" in r.stderr and "clashes with" in r.stderr
        assert r.stderr.count("\n") == 1
    finally:
        net.remove()
    assert cluster_objects(docker_client, "ibsimtest-bad") == {"containers": [], "networks": []}


def test_unusable_out_exit_2_before_docker(tmp_path):
    """The run directory is checked first: with Docker unreachable the --out error is what is reported."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "overview.png").write_text("old")
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    r = ibsim("cluster", "up", write(tmp_path, "  name: ibsimtest-bad\n"), "--out", str(tmp_path / "run"), env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"{tmp_path / 'run'}: is not empty" in r.stderr and "--overwrite" in r.stderr
    r = ibsim("cluster", "up", write(tmp_path, "  name: ibsimtest-bad\n"), "--out", "/proc/ibsim-run", env=env)
    assert r.returncode == 2 and "/proc/ibsim-run: is on the proc pseudo-filesystem" in r.stderr
    # a bring-up that fails later leaves no run directory behind
    r = ibsim("cluster", "up", write(tmp_path, "  name: ibsimtest-bad\n"), "--out", str(tmp_path / "new"), env=env)
    assert r.returncode == 1 and "Docker is not reachable" in r.stderr and not (tmp_path / "new").exists()


def test_docker_unreachable_exit_1(tmp_path):
    r = ibsim("cluster", "up", write(tmp_path, "  name: ibsimtest-bad\n"),
              env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    assert r.returncode == 1 and "Docker is not reachable" in r.stderr and r.stderr.count("\n") == 1


def test_image_not_buildable_exit_1(tmp_path, docker_client):
    r = ibsim("images", "build", "--only", "host", env={"IBSIM_IMAGES": str(tmp_path / "none")})
    assert r.returncode == 1 and "no build context for image 'host'" in r.stderr


def test_images_build_skips_unchanged(docker_client, host_image):
    r = ibsim("images", "build", "--only", "host")
    assert r.returncode == 0, r.stderr
    assert f"host\t{host_image}\tup to date" in r.stdout


def test_up_sigterm_tears_down_and_writes_run(tmp_path, docker_client, host_image):
    name = "ibsimtest-cli"
    scn = write(tmp_path, f"  name: {name}\n  hosts: 2\n  mad_port: 47500\n")
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "ibsim", "cluster", "up", scn, "--no-plot",
                             "--out", str(tmp_path / "run")], env=e, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(cluster_objects(docker_client, name)["containers"]) == 2:
                break
            time.sleep(0.2)
        time.sleep(1.5)
        st = ibsim("cluster", "status", name)
        assert f"{name}-node001" in st.stdout and "running" in st.stdout
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"{name}-node001" in out and "MAD server" in out and "run directory:" in out
        assert (tmp_path / "run" / "events.jsonl").exists()
        meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
        assert meta["status"] == "interrupted" and meta["status_reason"].startswith("SIGTERM at t=")
        assert cluster_objects(docker_client, name) == {"containers": [], "networks": []}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        remove_cluster(docker_client, name)


def test_down_removes_by_label(docker_client, host_image):
    name = "ibsimtest-down"
    docker_client.containers.run(host_image, name=f"{name}-x", labels={"org.ibsim.cluster": name},
                                 detach=True, init=True, network_mode="none")
    try:
        r = ibsim("cluster", "down", name)
        assert r.returncode == 0 and "removed 1 containers" in r.stdout
        assert cluster_objects(docker_client, name) == {"containers": [], "networks": []}
    finally:
        remove_cluster(docker_client, name)
