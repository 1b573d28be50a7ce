"""A cluster network Docker will not remove: teardown finishes, the next up says why in one line."""

from __future__ import annotations

import pytest

from ibsim import Cluster
from ibsim.errors import HostError
from ibsim.hosts import LABEL, remove_cluster
from ibsim.scenario import Scenario

STALE, OTHER = "ibsimtest-stale", "ibsimtest-holder"


@pytest.fixture
def held_network(docker_client, host_image):
    """``ibsimtest-stale-net`` with an endpoint of a container of another (test) cluster."""
    net = docker_client.networks.create(f"{STALE}-net", driver="bridge", internal=True, labels={LABEL: STALE})
    try:
        docker_client.containers.run(host_image, ["sleep", "120"], detach=True, init=True,
                                              name=f"{OTHER}-x", labels={LABEL: OTHER}, network=net.name)
        yield net
    finally:
        remove_cluster(docker_client, OTHER)
        remove_cluster(docker_client, STALE)


def test_a_network_that_cannot_go_is_reported_not_raised(docker_client, held_network):
    res = remove_cluster(docker_client, STALE, retries=1)
    assert res["networks"] == 0 and res["left"][0][0] == f"{STALE}-net"
    assert "active endpoints" in res["left"][0][1]


def test_cli_down_says_what_is_left_and_exits_1(held_network):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "ibsim", "cluster", "down", STALE], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert f"cluster {STALE}: network {STALE}-net is left:" in r.stdout and "restart the Docker daemon" in r.stdout


def test_up_names_the_stale_network_and_what_to_do(docker_client, held_network, tmp_path):
    p = tmp_path / "s.yml"
    p.write_text("topology: {generate: fat-tree, radix: 4, levels: 2}\n"
                 f"cluster: {{name: {STALE}, hosts: 2, node_exporter: false, mad_port: 47800}}\n")
    with pytest.raises(HostError) as exc:
        Cluster(Scenario.from_file(p)).up()
    msg = str(exc.value)
    assert f"network {STALE}-net" in msg and "restart the Docker daemon" in msg and "\n" not in msg
