"""Recorder: sampling, the run directory, load_run; and the report helpers."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import math
import sys

import numpy as np
import pytest

from ibsim.engine.table import COUNTERS_CSV_COLUMNS
from ibsim.run.recorder import (FABRIC_SERIES_COLUMNS, SERIES_COUNTERS, Recorder, fabric_series,
                            load_run, run_dir_name)
from ibsim.run.report import incidents, node_names
from ibsim.scenario import Scenario

SCN = """\
name: rec
seed: 5
clock: {tick: 100ms, duration: 6s}
topology: {generate: fat-tree, radix: 4, levels: 2}
routing: {engine: ftree, sweep_delay: 1s}
traffic:
  - {name: a2a, pattern: all_to_all, hosts: all, load: 0.5, start: 0s, stop: 5s}
faults:
  - {at: 1s, flap: {link: "leaf1:3", period: 1s, count: 2}}
  - {at: 2s, ber: {link: "leaf2:4", rate: 1e-8}}
  - {at: 3s, unplug: "node005 HCA-1", for: 1s}
"""


@pytest.fixture
def sim():
    return Scenario.from_text(SCN, source="rec.yml", name="rec").build()


def read_csv(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_directory_is_complete(sim, tmp_path):
    rec = Recorder(sim, every="1s", duration=6)
    sim.run()
    res = rec.write(tmp_path / "run", wall_s=1.5)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    series = "series.parquet" if "series.parquet" in files else "series.csv.gz"
    plot = {"overview.png"} if importlib.util.find_spec("matplotlib") else set()   # else skipped
    assert files == {"metadata.json", "events.jsonl", "counters.csv", series, "fabric_series.csv",
                     "summary.txt", "jobs.csv"} | plot                  # the scenario's jobs ran
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta.get("overview") == (None if plot else "skipped: matplotlib is not installed")
    assert meta["seed"] == 5 and meta["ticks"] == 60 and meta["simulated_s"] == pytest.approx(6)
    assert meta["wall_s"] == 1.5 and meta["interrupted"] is False
    assert meta["scenario"]["name"] == "rec" and meta["scenario"]["content"]["seed"] == 5
    assert set(meta["versions"]) >= {"python", "numpy", "networkx", "ibsim"}
    assert meta["topology"]["cas"] == 8 and meta["stats"]["reroutes"] >= 1
    assert meta["sm_tables"] == {"pkeys": 0, "sl2vl": 0, "vlarb": 0, "mft": 0, "guid_info": 0, "mlnx_ext": 0}
    assert meta["series"]["samples"] == 7 and meta["series"]["every_s"] == pytest.approx(1.0)
    assert sorted(meta["files"]) == sorted(files)
    assert res.metadata["seed"] == 5
    # events
    lines = (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    assert len(lines) == len(sim.events) == meta["events"]
    assert [json.loads(x)["kind"] for x in lines] == [e.kind for e in sim.events]
    if plot:
        assert (tmp_path / "run" / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_counters_csv_is_the_final_state(sim, tmp_path):
    rec = Recorder(sim, every="1s", duration=6)
    sim.run()
    rec.write(tmp_path, plot=False)
    rows = read_csv(tmp_path / "counters.csv")
    table = sim.counters_table()
    assert list(rows[0]) == list(COUNTERS_CSV_COLUMNS) and len(rows) == len(table["port"])
    for name in ("port_xmit_data", "port_rcv_data", "symbol_error", "link_downed"):
        assert [int(r[name]) for r in rows] == [int(v) for v in table[name]]
    meta = json.loads((tmp_path / "metadata.json").read_text())
    for name in ("port_xmit_data", "symbol_error", "port_xmit_wait"):
        assert meta["totals"][name] == sum(int(r[name]) for r in rows)
    assert meta["totals"]["symbol_error"] > 0 and meta["totals"]["link_downed"] > 0


def test_series_last_sample_equals_counters(sim, tmp_path):
    rec = Recorder(sim, every="1s", duration=6)
    sim.run()
    rec.write(tmp_path, plot=False)
    run = load_run(tmp_path)
    ser = run.series
    cols = {k: np.asarray(ser[k]) for k in ser} if isinstance(ser, dict) else \
        {k: ser[k].to_numpy() for k in ser.columns}
    assert set(cols) == {"time_s", "node_guid", "port", "port_state", *SERIES_COUNTERS}
    n_ports = len(sim.counters_table()["port"])
    assert len(cols["time_s"]) == 7 * n_ports
    last = cols["time_s"] == cols["time_s"].max()
    final = {(r["node_guid"], int(r["port"])): int(r["port_xmit_data"])
             for r in read_csv(tmp_path / "counters.csv")}
    got = {(g, int(p)): int(v) for g, p, v in zip(cols["node_guid"][last], cols["port"][last],
                                                  cols["port_xmit_data"][last])}
    assert got == final
    # counters never decrease along the series
    order = np.lexsort((cols["time_s"], cols["port"], cols["node_guid"]))
    x = cols["port_xmit_data"][order].astype(np.int64).reshape(n_ports, 7)
    assert (np.diff(x, axis=1) >= 0).all()


def test_fabric_series(sim, tmp_path):
    rec = Recorder(sim, every="1s", duration=6)
    sim.run()
    data = rec.series()
    fs = fabric_series(data, sim.events)
    assert tuple(fs) == FABRIC_SERIES_COLUMNS
    assert fs["ca_xmit_gbps"][0] == 0 and fs["ca_xmit_gbps"][2] > 0      # rate over (t-1, t]
    assert fs["ca_xmit_gbps"][-1] == 0                                   # the job stopped at 5 s
    assert fs["events"].sum() == len(sim.events)
    assert fs["ports_not_active"].max() >= 2
    assert (np.diff(fs["symbol_error"].astype(np.int64)) >= 0).all()
    rec.write(tmp_path, plot=False)
    rows = read_csv(tmp_path / "fabric_series.csv")
    assert list(rows[0]) == list(FABRIC_SERIES_COLUMNS) and len(rows) == 7


def test_rows_stay_bounded(tmp_path):
    big = Scenario.from_text(SCN.replace("duration: 6s", "duration: 60s"), source="x.yml").build()
    n = int((big.fabric.peer_of_port >= 0).sum())
    rec = Recorder(big, every="100ms", duration=60, max_rows=20 * n)
    assert rec.every_s == pytest.approx(0.1) and rec.capacity == 20   # no interval chosen up front
    big.run(until="60s")
    t = rec.series().time_s
    assert 10 <= t.size <= 20 and t.size * n <= 20 * n                # within the budget, at least half
    assert t[0] == 0 and t[-1] == pytest.approx(60.0)                 # the first and the final state kept
    # each halving doubles the interval: 0.1 s * 2**k, and the kept samples sit on that grid
    k = math.log2(rec.every_s / 0.1)
    assert k == pytest.approx(round(k)) and rec.every_s >= 60 / 20
    assert np.allclose(np.diff(t)[:-1], rec.every_s)
    # a run far longer than planned stays in the budget too
    rec2 = Recorder(big, every="100ms", duration=1, max_rows=20 * n)
    big.run(until="120s")
    assert rec2.n_samples <= 20 and rec2.every_s > 0.1
    rec.write(tmp_path / "r", plot=False)
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert meta["series"]["samples"] <= 20 and meta["series"]["budget_rows"] == 20 * n


LONG = SCN.replace("duration: 6s", "duration: 100000s").replace(
    "  - {at: 3s, unplug: \"node005 HCA-1\", for: 1s}",
    "  - {at: 300500ms, unplug: \"node005 HCA-1\", for: 2s}").replace("stop: 5s", "stop: 400s")


def test_a_long_run_stopped_early_keeps_a_dense_series(tmp_path):
    """Planned for 100,000 s, stopped after 600 s: a sample every second, the unplug seen."""
    sim = Scenario.from_text(LONG, source="long.yml", name="long").build()
    rec = Recorder(sim, every="1s", duration=100_000)
    sim.run(until="600s")                      # stopped early (as by Ctrl-C or SIGTERM)
    res = rec.write(tmp_path / "r", interrupted=True, reason="SIGTERM at t=600 s")
    data = rec.series()
    assert data.time_s.size >= 600 and rec.every_s == pytest.approx(1.0)
    assert res.metadata["status"] == "interrupted" and res.metadata["series"]["samples"] >= 600
    rows = read_csv(tmp_path / "r" / "fabric_series.csv")
    assert len(rows) >= 600
    down = [float(r["time_s"]) for r in rows if int(r["ports_not_active"]) > 0 and float(r["time_s"]) > 100]
    assert down and 300 < min(down) <= 302 and max(down) <= 305     # the 2 s unplug at 300.5 s
    busy = [float(r["ca_xmit_gbps"]) for r in rows if 1 < float(r["time_s"]) <= 400]
    assert len(busy) >= 399 and min(busy) > 0                        # the traffic, second by second
    idle = [float(r["ca_xmit_gbps"]) for r in rows if float(r["time_s"]) > 402]
    assert idle and max(idle) == 0
    if importlib.util.find_spec("matplotlib"):
        png = (tmp_path / "r" / "overview.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_load_run_round_trip(sim, tmp_path):
    rec = Recorder(sim, every="1s")
    sim.run()
    out = rec.write(tmp_path / "r")
    run = load_run(tmp_path / "r")
    assert run.metadata == json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert len(run.events) == len(sim.events) and run.events[0]["kind"] == sim.events[0].kind
    assert run.summary == out.summary and "Top talkers" in run.summary
    pd = pytest.importorskip("pandas")
    assert isinstance(run.counters, pd.DataFrame) and isinstance(run.fabric_series, pd.DataFrame)
    assert int(run.counters["port_xmit_data"].sum()) == run.metadata["totals"]["port_xmit_data"]
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path)


def test_load_run_without_pandas(sim, tmp_path, monkeypatch):
    rec = Recorder(sim, every="1s")
    sim.run()
    rec.write(tmp_path, plot=False)
    monkeypatch.setitem(sys.modules, "pandas", None)       # import pandas -> ImportError
    run = load_run(tmp_path)
    assert isinstance(run.counters, dict) and isinstance(run.counters["port_xmit_data"][0], int)
    if not (tmp_path / "series.parquet").exists():
        assert isinstance(run.series, dict) and len(run.series["time_s"]) > 0


def test_write_without_pandas_uses_plain_csv(sim, tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    rec = Recorder(sim, every="1s")
    sim.run()
    res = rec.write(tmp_path, plot=False)
    assert isinstance(res.counters, dict)
    rows = read_csv(tmp_path / "series.csv.gz")
    assert len(rows) == 7 * len(sim.counters_table()["port"])


def test_parquet_when_pyarrow_is_installed(sim, tmp_path):
    pytest.importorskip("pyarrow")
    rec = Recorder(sim, every="1s")
    sim.run()
    rec.write(tmp_path, plot=False)
    assert (tmp_path / "series.parquet").exists() and not (tmp_path / "series.csv.gz").exists()


def test_default_run_dir_name(sim, tmp_path):
    import datetime as dt
    when = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert run_dir_name("fat tree", when) == "fat-tree-20240501T120000Z"
    rec = Recorder(sim)
    sim.run(until="1s")
    a = rec.write(rec.default_dir(tmp_path), plot=False).path
    b = rec.default_dir(tmp_path)
    assert a.parent == tmp_path and a.name.startswith("rec-") and b != a


def test_summary_lists_errors_and_events(sim, tmp_path):
    rec = Recorder(sim)
    sim.run()
    text = rec.write(tmp_path, plot=False).summary
    assert "symbol_error" in text and "link_downed" in text
    # the bit-error link (leaf2:4 - spine2:2) counts symbol errors at both ends
    table = text.split("Error counters")[1].split("\nEvents (")[0].splitlines()
    head = table[1].split()
    rows = {ln.split()[0]: dict(zip(head[1:], ln.split()[1:])) for ln in table[2:] if ln.strip()}
    assert int(rows["leaf2:4"]["symbol_error"].replace(",", "")) > 0
    assert int(rows["spine2:2"]["symbol_error"].replace(",", "")) > 0
    assert "Events (" in text and "link_down" in text


# ----------------------------------------------------------------- report
def ev(t, kind, a, pa, b, pb, reason):
    return {"time_s": t, "kind": kind, "node_guid": None, "node_desc": a, "port": pa,
            "peer_guid": None, "peer_desc": b, "peer_port": pb, "details": {"reason": reason}}


def test_incidents_group_a_flap_and_name_a_ca():
    events = []
    for i in range(5):
        events.append(ev(10 + 2 * i, "link_down", "leaf03", 19, "spine01", 3, "flap"))
        events.append(ev(11 + 2 * i, "link_up", "spine01", 3, "leaf03", 19, "flap"))
    events.append(ev(40, "link_down", "leaf03", 6, "node042 HCA-1", 1, "unplug"))
    events.sort(key=lambda e: e["time_s"])
    inc = incidents(events, end_s=120, gap_s=3, cas={"node042 HCA-1"})
    assert len(inc) == 2
    flap, unplug = inc
    assert (flap["start"], flap["end"], flap["downs"]) == (10, 19, 5)
    assert flap["label"] == "flap leaf03:19 ×5"
    assert unplug["end"] is None and unplug["label"] == "unplug node042 HCA-1"


def test_node_names_shorten_and_disambiguate():
    class F:
        node_desc = ["MF0;ib-spine01:MSB7800/U1", "SwitchIB Mellanox Technologies",
                     "SwitchIB Mellanox Technologies", "cn0001 mlx5_0"]
        node_guid = np.array([1, 2, 3, 4], dtype=np.uint64)
    names = list(node_names(F()))
    assert names == ["ib-spine01", "0x0000000000000002", "0x0000000000000003", "cn0001 mlx5_0"]


def test_timeline_shows_a_degraded_link_for_as_long_as_it_lasts():
    from ibsim.run.report import _timeline_items

    def fault(t, **details):
        e = ev(t, "fault", "leaf09", 23, "spine05", 9, "")
        e["details"] = {"fault": "degrade", **details}
        return e

    events = [fault(70, width="1x", speed=None), fault(95, width=None, speed=None),
              fault(100, width=None, speed="SDR")]
    items = [i for i in _timeline_items({"jobs": []}, events, 120, 3, {}, set()) if i["kind"] == "degrade"]
    assert [(i["start"], i["end"], i["label"]) for i in items] == [
        (70, 95, "trains at 1x leaf09:23"), (100, 120, "trains at SDR leaf09:23")]


# ------------------------------------------------------------ utilisation
SLOW = """\
name: slow
seed: 5
clock: {tick: 100ms, duration: 6s}
topology: {generate: fat-tree, radix: 4, levels: 2}
routing: {engine: ftree, sweep_delay: 1s}
traffic:
  - {name: a2a, pattern: all_to_all, hosts: all, load: 0.5, start: 0s}
faults:
  - {at: 0s, degrade: {link: "leaf1:3", width: 1x, speed: SDR}}
"""


def _summary_table(text, title):
    """Rows of one table of summary.txt: {port: {column: value}}."""
    block = text.split("\n" + title)[1].split("\n\n")[0].splitlines()[1:]
    head = [h.strip() for h in block[0].split("  ") if h.strip()]
    rows = {}
    for ln in block[1:]:
        cells = [c.strip() for c in ln.split("  ") if c.strip()]
        rows[cells[0]] = dict(zip(head[1:], cells[1:]))
    return rows


def test_summary_ranks_a_slow_saturated_link_by_utilisation(tmp_path):
    """A leaf-spine cable trained at 1x SDR carries few bytes at 100% of its capacity: it is
    not among the top talkers by bytes, and it heads the hottest links by utilisation."""
    sim = Scenario.from_text(SLOW, source="slow.yml", name="slow").build()
    rec = Recorder(sim, every="1s", duration=6)
    sim.run()
    text = rec.write(tmp_path, plot=False).summary
    talkers = _summary_table(text, "Top talkers")
    hot = _summary_table(text, "Hottest links")
    assert "leaf1:3" not in talkers and "spine1:1" not in talkers
    assert list(hot)[:2] == ["leaf1:3", "spine1:1"]
    for port in ("leaf1:3", "spine1:1"):
        assert hot[port]["capacity Gb/s"] == "2"                     # 1x SDR: 2 Gb/s of data
        assert hot[port]["peak %"] == "100.0" and hot[port]["mean %"] == "100.0"
    # a healthy host link at its job's load comes next, at its share of 100 Gb/s
    third = hot[list(hot)[2]]
    assert third["capacity Gb/s"] == "100" and third["peak %"] == "50.0"


def test_link_utilisation_per_interval_and_ranking():
    from ibsim.run.report import busiest_ports, hottest_ports, link_utilisation
    sim = Scenario.from_text(SLOW, source="slow.yml", name="slow").build()
    rec = Recorder(sim, every="1s", duration=6)
    sim.run()
    data = rec.series()
    u = link_utilisation(data)
    i = int(np.flatnonzero(data.ports == sim.fabric.find_port("leaf1:3"))[0])
    # down, then Init until the sweep at 1 s: nothing sent in (0, 1]; then full
    np.testing.assert_allclose(u["series"][:, i], [0, 0, 1, 1, 1, 1, 1], atol=1e-9)
    assert u["capacity"][i] == pytest.approx(2.5e8) and u["mean"][i] == pytest.approx(1.0)
    assert u["sent"][i] == pytest.approx(5 * 2.5e8, rel=1e-6)
    assert i in hottest_ports(data, 2) and i not in busiest_ports(data, 5)
    assert (u["series"] <= 1).all() and (u["series"] >= 0).all()


def test_overview_draws_the_hottest_links(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread
    sim = Scenario.from_text(SLOW, source="slow.yml", name="slow").build()
    rec = Recorder(sim, every="1s", duration=6)
    sim.run()
    rec.write(tmp_path)
    img = imread(tmp_path / "overview.png")
    h, w = img.shape[:2]
    assert w > 1000 and h > 1200                      # six panels, not five
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50                            # drawn, not blank
