"""The suite end to end on the quick fabric: phases, metrics, outputs, bad input."""

from __future__ import annotations

import csv
import json

import pytest

from ibsim.bench.approaches import APPROACHES, parse_approaches, read_stats
from ibsim.bench.live import SIZES, parse_sizes, port_key
from ibsim.bench.report import write_results
from ibsim.bench.suite import run_one
from ibsim.cli import main
from ibsim.errors import BenchError
from tests.bench.conftest import need_servers


@pytest.fixture(scope="module")
def direct_row(tmp_path_factory):
    need_servers()
    d = tmp_path_factory.mktemp("direct")
    return run_one(APPROACHES["direct"](), SIZES[32], d / "work", interval=2, sweeps=2), d


def test_direct_export_delivers_every_port_exactly(direct_row):
    row, d = direct_row
    assert "error" not in row, row.get("error")
    assert row["sweeps_measured"] == 2 and row["ports_expected"] == 128
    assert row["completeness"] == [1.0, 1.0]
    # the engine's counters after the freeze; only the SM's MADs since then may differ
    assert row["data_rel_err_max"] < 1e-6
    assert row["delivered_port_xmit_data"] == 1.0 and row["link_downed_exact"] == 1.0
    assert row["event_latency_counter_s"] is not None and row["event_latency_trap_s"] is None
    sweeps, final = read_stats(d / "work" / "stats.jsonl")
    assert final["values"] == "cumulative" and all(s["points"] == 128 * 21 for s in sweeps)
    assert not (d / "work" / "carbon" / "storage").exists()          # whisper files removed


def test_outputs_render_from_a_real_row(direct_row, tmp_path):
    row, _d = direct_row
    paths = write_results([row], tmp_path, meta={"interval_s": 2, "sweeps": 2, "seed": 7})
    doc = json.loads(paths["json"].read_text())
    assert doc["results"][0]["approach"] == "direct" and doc["results"][0]["completeness_min"] == 1.0
    md = paths["md"].read_text()
    assert "| direct | fat_tree(8,2) | 128 | 128 | 2 |" in md and "![sweep_duration](sweep_duration.png)" in md
    assert paths["csv"].read_text().splitlines()[0].startswith("approach,fabric,fabric_ports")
    for name in ("sweep_duration", "cpu_per_sweep", "completeness", "event_latency"):
        assert paths[name].stat().st_size > 5000


def test_names_sizes_and_series_keys():
    assert [a.name for a in parse_approaches("direct,perfmgr-batched")] == ["direct", "perfmgr-batched"]
    assert [s.cas for s in parse_sizes("648, 3456,11664")] == [648, 3456, 11664]
    assert SIZES[3456].label == "fat_tree(24,3)"
    assert port_key("ib.0x0002c90300000001.p03.port_xmit_data") == (0x0002c90300000001, 3, "port_xmit_data")
    assert port_key("ib.0002c90300000001.p36.link_downed") == (0x0002c90300000001, 36, "link_downed")
    assert port_key("ib.traps.trap128.lid5") is None
    with pytest.raises(BenchError, match="choose from"):
        parse_sizes("100")
    with pytest.raises(BenchError, match="did you mean 'direct'"):
        parse_approaches("directt")


@pytest.mark.parametrize("argv, text", [
    (["--approaches", "nope"], "unknown approach 'nope'"),
    (["--sizes", "12"], "no fabric of 12 CAs"),
    (["--interval", "fast"], "--interval"),
    (["--sweeps", "0"], "--sweeps: at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(argv, text, tmp_path, capsys):
    assert main(["bench", "monitoring", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0]
    assert not (tmp_path / "o").exists()


def test_node_exporter_in_container_hosts_scraped_by_prometheus(host_image, tmp_path):
    """Real containers, node_exporter and Prometheus: the hosts' own CA ports only, exactly."""
    need_servers()
    ap = APPROACHES["node-exporter"]()
    ap.hosts = 4
    row = run_one(ap, SIZES[32], tmp_path / "work", interval=2, sweeps=2)
    assert "error" not in row, row.get("error")
    assert row["ports_expected"] == 4 and row["fabric_ports"] == 128       # no switch ports seen
    assert row["completeness"] == [1.0, 1.0] and row["reported_ports_per_sweep"] == 4
    assert row["data_rel_err_max"] < 1e-6 and row["link_downed_exact"] == 1.0
    assert row["event_latency_counter_s"] is not None


def test_quick_mode_every_approach_against_real_servers(host_image, tmp_path):
    """``bench monitoring --quick``: every approach on fat_tree(8,2), real OpenSM/carbon/Prometheus."""
    need_servers("perfquery", "ibnetdiscover", "ibqueryerrors")
    out = tmp_path / "quick"
    assert main(["-q", "bench", "monitoring", "--quick", "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    rows = {r["approach"]: r for r in doc["results"]}
    assert set(rows) == set(APPROACHES)
    for name, r in rows.items():
        assert "error" not in r, (name, r.get("error"))
        # every port the approach is meant to report reached the monitoring system
        assert r["final_sweep_complete"] == 1.0 or name == "perfmgr-naive", (name, r)
    for name in ("perfmgr-batched", "sweep-perfquery", "sweep-perfquery-par", "node-exporter", "direct"):
        assert min(rows[name]["completeness"]) == 1.0, (name, rows[name]["completeness"])
    # the well-built plugin: PerfMgr's deltas, summed, equal the engine's counters; traps arrive
    b = rows["perfmgr-batched"]
    assert b["data_rel_err_max"] < 1e-6 and b["link_downed_exact"] == 1.0
    assert b["event_latency_trap_s"] is not None and b["opensm_fds_max"] < 64
    # the naive plugin leaks a descriptor per event: OpenSM's grow by about one per report
    n = rows["perfmgr-naive"]
    assert n["opensm_fds_max"] - n["opensm_fds_start"] >= 2 * 128
    # ... and sends over UDP: what carbon misses, the kernel dropped for a full receive buffer
    assert min(n["completeness"]) == 1.0 or n["udp_rcvbuf_errors"] > 0
    # ibqueryerrors prints only ports with errors or PortXmitWait; tool sweeps cost MADs
    assert rows["sweep-ibqueryerrors"]["reported_ports_per_sweep"] < 128
    assert rows["sweep-perfquery"]["perf_mads_per_sweep"] >= 128 and rows["direct"]["perf_mads_per_sweep"] == 0
    assert rows["node-exporter"]["ports_expected"] == 8
    md = (out / "report.md").read_text()
    for name in APPROACHES:
        assert f"| {name} | fat_tree(8,2) |" in md
    for png in ("sweep_duration", "cpu_per_sweep", "completeness", "event_latency"):
        assert (out / f"{png}.png").stat().st_size > 5000
    with open(out / "results.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert {r["approach"] for r in table} == set(APPROACHES) and all(r["fabric_ports"] == "128" for r in table)


def test_sigterm_stops_the_suite_and_leaves_nothing_running(tmp_path):
    """SIGTERM mid-run (what timeout and systemd send): exit like Ctrl-C, OpenSM and carbon gone."""
    need_servers()
    import os
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "ibsim", "bench", "monitoring", "--quick",
                             "--approaches", "direct", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        stats = out / "work" / "32" / "direct" / "stats.jsonl"
        deadline = time.monotonic() + 120
        while not (stats.exists() and stats.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stats.exists(), "the suite never reached its first sweep"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def ours():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/cwd").startswith(str(out)):
                    found.append(pid)
            except OSError:
                continue
        return found
    deadline = time.monotonic() + 30
    while ours() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ours() == []
