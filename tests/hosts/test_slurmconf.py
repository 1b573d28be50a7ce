"""Slurm's host lists, slurm.conf and job-comment traffic (no Docker)."""

from __future__ import annotations

import pytest

from ibsim.errors import ScenarioError
from ibsim.hosts.slurmconf import compress_hostlist, expand_hostlist, parse_comment, slurm_conf, traffic_keys


@pytest.mark.parametrize("text, names", [
    ("node001", ["node001"]),
    ("node[001-003]", ["node001", "node002", "node003"]),
    ("node[001-002,007],gpu1", ["node001", "node002", "node007", "gpu1"]),
    ("n[8-10]", ["n8", "n9", "n10"]),
    ("rack[1-2]-n[01-02]", ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]),
    ("", []),
])
def test_expand_hostlist(text, names):
    assert expand_hostlist(text) == names


@pytest.mark.parametrize("bad", ["node[001-003", "node001]", "node[3-1]", "node[a-b]"])
def test_expand_hostlist_rejects_malformed_lists(bad):
    with pytest.raises(ValueError):
        expand_hostlist(bad)


@pytest.mark.parametrize("names", [
    ["node001", "node002", "node003", "node007"],
    ["node001", "gpu1", "node002"],
    ["n8", "n9", "n10", "n11"],
    ["node099", "node100", "node101"],
    ["ctl"],
])
def test_compress_round_trips(names):
    text = compress_hostlist(names)
    assert sorted(expand_hostlist(text)) == sorted(names)
    assert len(text) <= len(",".join(names))


def test_compress_joins_consecutive_numbers():
    assert compress_hostlist([f"node{i:03d}" for i in range(1, 17)]) == "node[001-016]"
    assert compress_hostlist(["node001", "node002", "node004"]) == "node[001-002,004]"


def test_slurm_conf_has_the_nodes_hooks_and_health_check():
    conf = slurm_conf("demo", ["node001", "node002", "node003"], slurmd_timeout=12, health_check_s=3,
                      partition="batch")
    lines = dict(line.split("=", 1) for line in conf.splitlines() if line and not line.startswith("#")
                 and not line.startswith(("NodeName", "PartitionName")))
    assert lines["SlurmctldHost"] == "ctl" and lines["SlurmdTimeout"] == "12"
    assert lines["ProctrackType"] == "proctrack/linuxproc" and lines["TaskPlugin"] == "task/none"
    assert lines["PrologSlurmctld"].endswith("slurm-prolog") and lines["EpilogSlurmctld"].endswith("slurm-epilog")
    assert lines["HealthCheckInterval"] == "3" and lines["HealthCheckProgram"].endswith("ib-health")
    assert "NodeName=node[001-003] CPUs=1 State=UNKNOWN" in conf
    assert "PartitionName=batch Nodes=ALL Default=YES" in conf
    assert "HealthCheck" not in slurm_conf("demo", ["node001"], health_check_s=0)


def test_comment_to_traffic():
    assert parse_comment("ibsim: pattern=all_to_all load=0.6") == \
        {"pattern": "all_to_all", "load": 0.6, "rate": None, "params": {}}
    t = parse_comment("ibsim: pattern=incast targets=2 rate=20Gbps")
    assert t["rate"] == 2.5e9 and t["params"] == {"targets": 2}
    assert parse_comment("IBSIM: pattern=stencil dims=[2,2] load=.5")["params"] == {"dims": (2, 2)}


def test_no_comment_uses_the_default_or_nothing():
    assert parse_comment(None) is None
    assert parse_comment("a plain comment") is None
    default = traffic_keys({"pattern": "shift", "k": 2, "load": 0.3})
    assert parse_comment("", default) == default
    # the comment overrides the default; another pattern drops the default's pattern parameters
    assert parse_comment("ibsim: load=0.9", default) == {**default, "load": 0.9}
    assert parse_comment("ibsim: pattern=all_to_all", default)["params"] == {}
    assert parse_comment("ibsim: rate=10Gbps", default)["load"] is None


@pytest.mark.parametrize("comment, words", [
    ("ibsim: pattern=nope load=0.5", "unknown traffic pattern 'nope'"),
    ("ibsim: pattern=all_to_all", "give load"),
    ("ibsim: pattern=all_to_all load=3", "<= 1"),
    ("ibsim: pattern=all_to_all load=0.5 rate=1Gbps", "not both"),
    ("ibsim: pattern=shift load=0.5 targets=3", "belongs to incast"),
    ("ibsim: pattern=all_to_all load=0.5 hosts=4", "set by Slurm"),
    ("ibsim: pattern=all_to_all load=0.5 load=0.2", "given twice"),
    ("ibsim: all_to_all", "expected key=value"),
    ("ibsim:", "names no traffic"),
    ("ibsim: pattern='all_to_all", "comment"),
])
def test_bad_comments_say_what_is_wrong(comment, words):
    with pytest.raises(ScenarioError) as exc:
        parse_comment(comment)
    assert words in exc.value.message and "\n" not in exc.value.message
