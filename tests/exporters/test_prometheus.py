"""Prometheus exporter: exposition parsed by prometheus_client, then scraped by the real Prometheus."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from exporters.prometheus import LABELS, METRICS, FabricCollector
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
    finally:
        srv.stop()
        stats = stage.close()
    assert stats["prometheus"]["sent"] >= 1 and stats["prometheus"]["errors"] == 0
