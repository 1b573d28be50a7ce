"""The scenario's cluster: section: strict validation, hosts resolved against the fabric."""

from __future__ import annotations

import pytest

from ibsim.errors import ScenarioError
from ibsim.scenario import Scenario
from ibsim.scenario.cluster import hostname_of, resolve_hosts

BASE = "topology: {generate: fat-tree, radix: 4, levels: 2}\n"


def scn(cluster: str) -> Scenario:
    return Scenario.from_text(BASE + "cluster:\n" + cluster, source="c.yml")


def test_defaults_and_values():
    s = scn("  name: Demo\n  hosts: 4\n  network: {subnet: 172.31.241.0/24}\n  sysfs_every: 500ms\n")
    c = s.cluster
    assert (c.name, c.hosts, c.subnet, c.node_exporter, c.graphite, c.sysfs_every_s) == \
        ("demo", 4, "172.31.241.0/24", True, False, 0.5)
    assert Scenario.from_text(BASE, source="c.yml").cluster is None


@pytest.mark.parametrize("body, where, what", [
    ("  name: x\n  hostz: 4\n", "c.yml:4: cluster.hostz", "did you mean 'hosts'"),
    ("  hosts: yes\n", "c.yml:3: cluster.hosts", "expected 'all'"),
    ("  hosts: 0\n", "c.yml:3: cluster.hosts", "1 to 240"),
    ("  network: {subnet: 8.8.8.0/24}\n", "c.yml:3: cluster.network.subnet", "private IPv4"),
    ("  network: {subnet: 172.31.240.1/24}\n", "c.yml:3: cluster.network.subnet", "not a subnet"),
    ("  name: 'a b'\n", "c.yml:3: cluster.name", "must be 1-40"),
    ("  graphite: 1\n", "cluster.graphite", "true or false"),
    ("  sysfs_every: -1s\n", "cluster.sysfs_every", ""),
])
def test_bad_syntax_names_file_line_and_key(body, where, what):
    with pytest.raises(ScenarioError) as e:
        scn(body)
    assert where in str(e.value) and what in str(e.value)
    assert e.value.exit_code == 2


def test_hosts_resolved_against_the_fabric():
    s = scn("  hosts: 3\n")
    placed = resolve_hosts(s, s.build().fabric)
    assert [h for _, h in placed] == ["node001", "node002", "node003"]
    s = scn("  hosts: ['node007 HCA-1', 'node002 HCA-1']\n")
    assert [h for _, h in resolve_hosts(s, s.build().fabric)] == ["node007", "node002"]


@pytest.mark.parametrize("hosts, what", [
    ("9", "only 8 CAs"),
    ("['leaf1']", "is not a CA"),
    ("['node099 HCA-1']", "is not a node of the fabric"),
])
def test_bad_hosts(hosts, what):
    s = scn(f"  hosts: {hosts}\n")
    with pytest.raises(ScenarioError) as e:
        resolve_hosts(s, s.build().fabric)
    assert "c.yml:3: cluster.hosts" in str(e.value) and what in str(e.value)


def test_hostname_of():
    assert hostname_of("node042 HCA-1") == "node042"
    assert hostname_of("Big_Node.7 mlx5_0") == "big-node-7"


def test_slurm_true_and_its_mapping():
    assert scn("  hosts: 4\n").cluster.slurm is None
    assert scn("  hosts: 4\n  slurm: false\n").cluster.slurm is None
    s = scn("  hosts: 4\n  slurm: true\n").cluster.slurm
    assert (s.default_traffic, s.poll_s, s.slurmd_timeout_s, s.health_check_s, s.partition) == \
        (None, 2.0, 10, 5, "compute")
    s = scn("  hosts: 4\n  slurm:\n    default_traffic: {pattern: incast, targets: 2, rate: 10Gbps}\n"
            "    poll: 500ms\n    slurmd_timeout: 20s\n    health_check: off\n    partition: batch\n").cluster.slurm
    assert s.default_traffic == {"pattern": "incast", "load": None, "rate": 1.25e9, "params": {"targets": 2}}
    assert (s.poll_s, s.slurmd_timeout_s, s.health_check_s, s.partition) == (0.5, 20, 0, "batch")


@pytest.mark.parametrize("body, where, what", [
    ("  slurm: 1\n", "c.yml:4: cluster.slurm", "expected a mapping or true/false"),
    ("  slurm: {pol: 1s}\n", "cluster.slurm.pol", "did you mean 'poll'"),
    ("  slurm: {default_traffic: {pattern: nope, load: 0.5}}\n", "cluster.slurm.default_traffic",
     "unknown traffic pattern 'nope'"),
    ("  slurm: {default_traffic: {pattern: all_to_all}}\n", "cluster.slurm.default_traffic", "give load"),
    ("  slurm: {default_traffic: {pattern: all_to_all, load: 0.5, hosts: 4}}\n",
     "cluster.slurm.default_traffic", "set by Slurm"),
    ("  slurm: {default_traffic: all_to_all}\n", "cluster.slurm.default_traffic", "expected a mapping"),
    ("  slurm: {slurmd_timeout: 1s}\n", "cluster.slurm.slurmd_timeout", "whole seconds >= 2"),
    ("  slurm: {health_check: 2.5s}\n", "cluster.slurm.health_check", "whole seconds"),
    ("  slurm: {poll: 0s}\n", "cluster.slurm.poll", ""),
    ("  slurm: {partition: 'a b'}\n", "cluster.slurm.partition", "partition name"),
])
def test_bad_slurm_sections_name_the_key(body, where, what):
    with pytest.raises(ScenarioError) as e:
        scn("  hosts: 4\n" + body)
    assert where in str(e.value) and what in str(e.value) and "\n" not in str(e.value)
