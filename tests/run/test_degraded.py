"""A run lists its degraded links: metadata, summary.txt and the overview's timeline."""

from __future__ import annotations

import json

import pytest

from ibsim.run.recorder import Recorder
from ibsim.run.report import _timeline_items
from ibsim.scenario import Scenario
from ibsim.topology import write_topology
from tests.fabric.test_devices import ddr_isl_topology

SCN = """\
name: deg
seed: 7
clock: {{tick: 100ms, duration: 4s}}
topology: {{file: {topo}}}
traffic:
  - {{name: a2a, pattern: all_to_all, hosts: all, load: 0.5, start: 0s}}
faults:
  - {{at: 2s, degrade: {{link: "{slow}", width: 1x}}}}
"""


@pytest.fixture
def run(tmp_path):
    t = ddr_isl_topology()
    topo = tmp_path / "ddr.topo"
    write_topology(t, topo)
    sim = Scenario.from_text(SCN.format(topo=topo, slow="node001 HCA-1:1"), source="deg.yml").build()
    rec = Recorder(sim, every="1s", duration=4)
    sim.run()
    return sim, rec.write(tmp_path / "run", wall_s=1.0, plot=False)


def test_metadata_and_summary_list_the_ddr_cable_and_the_degraded_host_link(run):
    sim, res = run
    meta = json.loads((res.path / "metadata.json").read_text())
    links = meta["degraded_links"]
    assert len(links) == 2
    ddr, host = sorted(links, key=lambda d: d["since_s"])
    assert ddr["trained"] == "4xDDR" and ddr["supported"] == "4xEDR" and ddr["since_s"] == 0
    assert {ddr["port"].split(":")[0], ddr["peer"].split(":")[0]} <= {n for n in sim.fabric.node_desc}
    assert host["trained"] == "1xEDR" and 2.0 <= host["since_s"] <= 3.0      # first sample after the fault
    assert "node001" in host["port"] + host["peer"]
    summary = (res.path / "summary.txt").read_text()
    assert "Degraded links (2: up below what both ends support)" in summary
    row = next(ln for ln in summary.splitlines() if ddr["port"] in ln and "4xDDR" in ln)
    assert "4xEDR" in row


def test_overview_timeline_marks_a_degraded_cable_from_the_start(run):
    sim, res = run
    meta = res.metadata
    items = [i for i in _timeline_items(meta, [], 4.0, 0.5, {}, set()) if i["kind"] == "degrade"]
    labels = [i["label"] for i in items]
    assert any(lb.startswith("degraded 4xDDR (could be 4xEDR)") for lb in labels), labels
    assert min(i["start"] for i in items) == 0
