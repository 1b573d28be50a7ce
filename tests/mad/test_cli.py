"""``python -m ibsim serve``: a topology or a scenario, served until stopped (by PID)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ibsim.mad import codec as C
from ibsim.testing.simclient import SimClient
from ibsim.bench.ofed import stop_process, wait_for_unix_socket
from ibsim.topology import fat_tree, write_ibnetdiscover
from tests.mad.conftest import unique_sockname

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _serve(args, tmp_path):
    return subprocess.Popen([sys.executable, "-m", "ibsim", "serve", *args], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_serve_a_topology_file_until_terminated(tmp_path):
    net = tmp_path / "ft.topo"
    write_ibnetdiscover(fat_tree(4, 2), net)
    sock = unique_sockname("cli")
    proc = _serve([str(net), "--sockname", sock], tmp_path)
    try:
        assert wait_for_unix_socket(f"{sock}:ctl", 60, proc)
        with SimClient(sock, "node004 HCA-1") as c:
            st, data = c.smp(C.ATTR_NODE_INFO, path=[0])
            assert st == 0 and C.NODE_INFO.decode(data)["NodeType"] == 1
    finally:
        stop_process(proc)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert f"on @{sock}:ctl" in err


def test_serve_a_scenario_and_exit_at_end(tmp_path):
    scn = tmp_path / "s.yml"
    scn.write_text("name: t\nseed: 1\nclock: {tick: 100ms, duration: 1s}\n"
                   "topology: {generate: fat-tree, radix: 4, levels: 2}\n"
                   "traffic:\n  - {name: a, pattern: all_to_all, hosts: all, load: 0.5}\n")
    sock = unique_sockname("cli")
    proc = _serve([str(scn), "--sockname", sock, "--realtime", "5", "--exit-at-end"], tmp_path)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, err
    assert "serving 14 nodes" in err


def test_serve_rejects_a_bad_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ibsim", "serve", str(tmp_path / "nope.topo")],
                       env=ENV, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_run_with_mad_server_serves_live_counters_and_still_writes_results(tmp_path):
    import signal
    import time

    from ibsim.bench.ofed import have_tools, run_tool
    if not have_tools("perfquery"):
        import pytest
        pytest.skip("needs libumad2sim and infiniband-diags")
    sock = unique_sockname("run")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ibsim", "run", str(REPO / "topologies" / "small.yml"),
                             "--mad-server", "--sockname", sock, "--out", str(out), "--no-plot"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_unix_socket(f"{sock}:ctl", 60, proc)
        time.sleep(2.5)                           # real time: the all-to-all starts at 1 s

        def xmit_data():
            r = run_tool(["perfquery", "-x"], sockname=sock, sim_host="node001 HCA-1", cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            line = next(ln for ln in r.stdout.splitlines() if ln.startswith("PortXmitData:"))
            return int(line.split(":")[1].strip(". "))

        first = xmit_data()
        time.sleep(1.0)
        second = xmit_data()
        assert second > first > 0                 # counters move with the simulated traffic
        os.kill(proc.pid, signal.SIGINT)          # Ctrl-C: stop and write the results
        _, err = proc.communicate(timeout=60)
    finally:
        stop_process(proc)
    assert proc.returncode == 130, err
    assert "serving MADs" in err
    assert (out / "counters.csv").exists() and (out / "metadata.json").exists()
