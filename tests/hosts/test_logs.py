"""Container log lines -> log events (the parser; the follower runs in tests/cluster)."""

from __future__ import annotations

import pytest

from ibsim.hosts.logs import parse_log_line


@pytest.mark.parametrize("line, host, program, level, message", [
    ("2026-11-29T08:12:54.723760727Z slurmd-node001: error: Node configuration differs from hardware",
     "node001", "slurmd", "error", "Node configuration differs from hardware"),
    ("2026-11-29T08:12:54Z slurmctld: sched: Allocate JobId=1 NodeList=node[001-002] #CPUs=2",
     "ctl", "slurmctld", "info", "sched: Allocate JobId=1 NodeList=node[001-002] #CPUs=2"),
    ("2026-11-29T08:12:55.5Z ibsim-nhc: drained node004: mlx5_0 port 1 is 1: DOWN",
     "node004", "ibsim-nhc", "info", "drained node004: mlx5_0 port 1 is 1: DOWN"),
    ("2026-11-29T08:12:55.5Z debug2: something", "node001", "slurmd", "debug", "something"),
    ("2026-11-29T08:12:55.5Z plain words without a program", "ctl", "slurmctld", "info",
     "plain words without a program"),
])
def test_lines(line, host, program, level, message):
    rec = parse_log_line(line, host, "slurmd" if host != "ctl" else "slurmctld")
    assert (rec["host"], rec["program"], rec["level"], rec["message"]) == (host, program, level, message)


def test_timestamps_keep_their_fraction():
    rec = parse_log_line("2026-11-29T08:12:54.723760727Z slurmd: x", "node001", "slurmd")
    assert rec["time"] == pytest.approx(1795939974.72376, abs=1e-5)
    assert parse_log_line("no timestamp: here", "h", "p")["time"] is None
    assert parse_log_line("2026-11-29T08:12:54Z   ", "h", "p") is None
