"""python -m ibsim run with --graphite and --logstash feeds real servers (carbon-cache, rsyslog)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_run_feeds_carbon_and_logstash_and_final_values_equal_counters_csv(tmp_path, carbon, rsyslog,
                                                                           helpers):
    whisper = pytest.importorskip("whisper", reason="pip install whisper (reads carbon's files back)")
    out = tmp_path / "run"
    p = subprocess.run(
        [sys.executable, "-m", "ibsim", "run", str(REPO / "topologies" / "small.yml"), "--until", "12s",
         "--out", str(out), "--quiet", "--no-plot",
         "--graphite", f"127.0.0.1:{carbon.ports['line']}",
         "--logstash", f"tcp://127.0.0.1:{rsyslog.tcp}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    meta = json.loads((out / "metadata.json").read_text())
    ex = meta["exporters"]
    assert ex["graphite"]["sent"] > 0 and ex["graphite"]["dropped"] == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = {e["kind"] for e in events}
    assert {"link_down", "link_up", "job_start"} <= kinds

    # every event reached the Logstash-style receiver, parsed, with its types
    helpers.wait_until(lambda: len(rsyslog.documents()) >= len(events), 30, "rsyslog to write the events")
    docs = rsyslog.documents()
    assert sorted(d["ib"]["kind"] for d in docs) == sorted(e["kind"] for e in events)
    down = next(d for d in docs if d["ib"]["kind"] == "link_down")
    assert down["@version"] == "1" and isinstance(down["host"], dict) and down["ib"]["trap"] == 128

    # the last point carbon holds for a port equals the final counters.csv row
    with open(out / "counters.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if r["node_guid"] and int(r["port_xmit_data"]) > 0)
    root = carbon.dir / "storage" / "whisper" / "ib"

    def final_matches():                     # carbon creates and fills the files asynchronously
        for fp in root.glob(f"*/p{int(row['port']):02d}/port_xmit_data.wsp"):
            (start, end, step), values = whisper.fetch(str(fp), 0)
            vals = [v for v in values if v is not None]
            if vals and vals[-1] == float(row["port_xmit_data"]):
                return True
        return False

    helpers.wait_until(final_matches, 60, "carbon to hold the final port_xmit_data", interval=0.5)
