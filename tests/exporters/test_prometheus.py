"""Prometheus exporter: exposition parsed by prometheus_client, then scraped by the real Prometheus."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from exporters.prometheus import JOB_METRICS, LABELS, METRICS, FabricCollector
from ibsim.export import COUNTERS, ExporterSpec, attach, build_exporter, node_names, selected_ports
from ibsim.fabric import compile_fabric

parser = pytest.importorskip("prometheus_client.parser", reason="pip install prometheus-client")


def _samples(text: str) -> dict:
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = (fam.type, s.value)
    return out


@pytest.fixture
def tiny(tiny_topology, helpers):
    f = compile_fabric(tiny_topology)
    return f, helpers.fixed_snapshot(f)


def test_exposition_has_node_exporter_names_units_and_port_labels(tiny):
    f, snap = tiny
    col = FabricCollector()
    col.update(snap)
    got = _samples(col.render().decode())
    ports = selected_ports(f, "cabled")
    names = node_names(f)
    assert len(got) == len(METRICS) * ports.size + 1
    for p in ports:
        n = f.node_of_port[p]
        q = f.peer_of_port[p]
        labels = tuple(sorted({"device": str(names[n]), "port": str(int(f.port_num[p])),
                               "node_guid": f"0x{int(f.node_guid[n]):016x}", "node_desc": f.node_desc[n],
                               "peer_guid": f"0x{int(f.node_guid[f.node_of_port[q]]):016x}",
                               "peer_port": str(int(f.port_num[q]))}.items()))
        for r, c in enumerate(COUNTERS):
            name = "node_infiniband_" + c.metric
            scale = 4 if c.unit == "4-octet words" else 1
            typ, value = got[(name, labels)]
            assert typ == "counter" and value == int(snap.counters[r, p]) * scale % 2**64
        assert got[("node_infiniband_state_id", labels)] == ("gauge", float(snap.port_state[p]))
    key = ("node_infiniband_port_data_transmitted_bytes_total",
           (("device", "sw1"), ("node_desc", "sw1"), ("node_guid", "0x0000000000000100"),
            ("peer_guid", "0x0000000000001000"), ("peer_port", "1"), ("port", "1")))
    assert got[key][1] == float(int(snap.counters[12, 1]) * 4)
    assert got[("ibsim_simulated_time_seconds", ())] == ("gauge", 10.0)


def test_fast_renderer_equals_prometheus_client_exposition(tiny):
    from prometheus_client import CollectorRegistry, generate_latest
    f, snap = tiny
    snap.counters[12, -1] = 123456789                  # floats in the client path: stay below 2**53
    col = FabricCollector()
    col.update(snap)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(col)
    assert _samples(generate_latest(reg).decode()) == _samples(col.render().decode())
    assert tuple(next(iter(reg.collect())).samples[0].labels) == LABELS


@pytest.mark.requires_entry_points
def test_http_endpoint_on_any_free_port(tiny):
    f, snap = tiny
    exp = build_exporter("prometheus", {"port": 0})
    exp.open()
    try:
        assert exp.port > 0 and exp.url == f"http://127.0.0.1:{exp.port}/metrics"
        with urllib.request.urlopen(exp.url, timeout=10) as r:
            assert r.read() == b""                       # nothing written yet
        exp.write(snap)
        with urllib.request.urlopen(exp.url, timeout=10) as r:
            ctype, body = r.headers["Content-Type"], r.read()
        assert ctype.startswith("text/plain; version=0.0.4")
        assert len(_samples(body.decode())) == len(METRICS) * selected_ports(f, "cabled").size + 1
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(exp.url.replace("/metrics", "/nope"), timeout=10)
        st = exp.stats()
        # sent counts complete responses; the last one served the snapshot written
        assert st["sent"] == 2 and st["last_scrape_time_s"] == snap.time_s and st["unconfirmed"] == 0
        assert st["delivery"].startswith("pull")
    finally:
        exp.close()


PROM_CONF = """global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: ibsim
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def _query(base: str, q: str):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())["data"]["result"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.requires_entry_points
@pytest.mark.slow
def test_real_prometheus_scrapes_the_final_counters(prometheus_server_binary, helpers, tmp_path):
    sim = helpers.small_sim()
    stage = attach(sim, [ExporterSpec("prometheus", {"port": 0})], every=1.0, until=6.0)
    exp = stage.handles[0].exporter
    sim.run(until=6.0)
    d = tmp_path / "prometheus"
    (d / "data").mkdir(parents=True)
    (d / "prometheus.yml").write_text(PROM_CONF.format(port=exp.port))
    port = helpers.free_port()
    srv = helpers.start([prometheus_server_binary, f"--config.file={d}/prometheus.yml",
                         f"--storage.tsdb.path={d}/data", f"--web.listen-address=127.0.0.1:{port}"],
                        d, "prometheus")
    try:
        base = f"http://127.0.0.1:{port}"
        f = sim.fabric
        p = f.find_port("leaf1:3")
        want = float(int(sim.state.counters[12, p]) * 4)
        q = 'node_infiniband_port_data_transmitted_bytes_total{node_desc="leaf1",port="3"}'

        def scraped():
            res = _query(base, q)
            return res if res and float(res[0]["value"][1]) == want else None
        res = helpers.wait_until(scraped, 60, "Prometheus to scrape the endpoint", interval=0.5,
                                 proc=srv.proc, log=srv.log)
        m = res[0]["metric"]
        assert m["job"] == "ibsim" and m["device"] == "leaf1" and m["peer_guid"].startswith("0x")
        assert _query(base, "up")[0]["value"][1] == "1"
        n = _query(base, "count(node_infiniband_link_downed_total)")
        assert int(n[0]["value"][1]) == selected_ports(f, "cabled").size
        downs = _query(base, 'node_infiniband_link_downed_total{node_desc="leaf1",port="3"}')
        assert float(downs[0]["value"][1]) == float(sim.state.counters[2, p]) >= 1
        a2a, perm = sim.job_stats()
        got = _query(base, 'ibsim_job_xmit_bytes_total{job_id="a2a"}')
        assert got[0]["metric"]["job_name"] == "a2a" and float(got[0]["value"][1]) == float(a2a.xmit_bytes) > 0
        got = _query(base, 'ibsim_job_share{job_id="perm"}')       # ended at 5 s: still served
        assert float(got[0]["value"][1]) == pytest.approx(perm.share) and not perm.running
    finally:
        srv.stop()
        stats = stage.close()
    assert stats["prometheus"]["sent"] >= 1 and stats["prometheus"]["errors"] == 0


def _jobs():
    from ibsim.engine import JobStat
    return (JobStat("cfd", "12", {"job_id": "12", "job_name": "cfd", "user": "alice"}, "shift",
                    ("node01 HCA-1", "node02 HCA-1"), 1.0, None, True, 4096, 2048, 7, 0.25),
            JobStat("bg", "bg", {}, "all_to_all", ("a", "b", "c"), 0.0, 3.0, False, 800, 800, 0, 0.75))


def test_job_series_are_labelled_and_ended_jobs_stay(tiny):
    import dataclasses
    f, snap = tiny
    col = FabricCollector()
    col.update(dataclasses.replace(snap, jobs=_jobs()))
    col.update(snap)                                   # a later snapshot without them: still served
    got = _samples(col.render().decode())
    cfd = (("job_id", "12"), ("job_name", "cfd"), ("user", "alice"))
    bg = (("job_id", "bg"), ("job_name", "bg"), ("user", ""))
    assert got[("ibsim_job_xmit_bytes_total", cfd)] == ("counter", 4096.0)
    assert got[("ibsim_job_rcv_bytes_total", cfd)] == ("counter", 2048.0)
    assert got[("ibsim_job_xmit_wait_total", cfd)] == ("counter", 7.0)
    assert got[("ibsim_job_share", cfd)] == ("gauge", 0.25)
    assert got[("ibsim_job_hosts", bg)] == ("gauge", 3.0)
    assert got[("ibsim_job_share", bg)] == ("gauge", 0.75)
    assert len([k for k in got if k[0].startswith("ibsim_job_")]) == 2 * len(JOB_METRICS)
    # a requeued job (same labels) is served once, with its latest run
    rerun = dataclasses.replace(_jobs()[0], start_s=5.0, xmit_bytes=8)
    col.update(dataclasses.replace(snap, jobs=(_jobs()[0], rerun)))
    assert _samples(col.render().decode())[("ibsim_job_xmit_bytes_total", cfd)] == ("counter", 8.0)
    from prometheus_client import CollectorRegistry, generate_latest
    reg = CollectorRegistry(auto_describe=False)
    reg.register(col)
    snap.counters[12, -1] = 123456789                  # floats in the client path: stay below 2**53
    assert _samples(generate_latest(reg).decode()) == _samples(col.render().decode())


@pytest.mark.requires_entry_points
def test_endpoint_serves_the_jobs_of_a_simulation():
    from ibsim.engine import Simulation
    from ibsim.topology import single_switch
    from ibsim.traffic import Job
    sim = Simulation(compile_fabric(single_switch(8)), seed=5)
    stage = attach(sim, [ExporterSpec("prometheus", {"port": 0})], every=0.5, until=2.0)
    exp = stage.handles[0].exporter
    try:
        sim.run(until=0.5)
        sim.start_job(Job("cfd", "shift", hosts=["node001 HCA-1", "node002 HCA-1"], load=0.5,
                          labels={"job_id": "12", "job_name": "cfd", "user": "alice"}))
        sim.run(until=2.0)
        with urllib.request.urlopen(exp.url, timeout=10) as r:
            got = _samples(r.read().decode())
    finally:
        stage.close()
    st, = sim.job_stats()
    labels = (("job_id", "12"), ("job_name", "cfd"), ("user", "alice"))
    assert got[("ibsim_job_xmit_bytes_total", labels)] == ("counter", float(st.xmit_bytes)) and st.xmit_bytes > 0
    assert got[("ibsim_job_share", labels)] == ("gauge", 1.0)
    assert got[("ibsim_job_hosts", labels)] == ("gauge", 2.0)
