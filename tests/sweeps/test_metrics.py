"""The metrics row of a run: totals agree with the counters, jobs split their hosts' bytes."""

from __future__ import annotations

import math

import numpy as np

from ibsim import Scenario
from ibsim.fabric.counters import COUNTER_ROW
from ibsim.run import Recorder
from ibsim.sweeps import METRIC_COLUMNS, run_metrics
from ibsim.sweeps.metrics import _recovery

from .conftest import BASE


def _run(text: str):
    scn = Scenario.from_text(text)
    sim = scn.build()
    rec = Recorder(sim, every=scn.output.every_s, duration=scn.clock.duration_s)
    sim.run()
    return sim, rec.series()


def test_row_totals_match_the_counters_and_jobs_split_bytes():
    sim, data = _run(BASE.replace("\n  ", "\n").lstrip())
    row = run_metrics(sim, data)
    assert set(METRIC_COLUMNS) <= set(row)
    snap = sim.snapshot()
    f = sim.fabric
    ca = np.flatnonzero((~f.is_switch) & (f.peer_of_port >= 0))
    sent = int(snap.counters[COUNTER_ROW["port_xmit_data"], ca].sum()) * 4
    assert math.isclose(row["throughput_gbps"], sent * 8 / 6.0 / 1e9)
    # every byte a host sent belongs to a job (both jobs cover every sending host's intervals)
    assert math.isclose(row["job_a2a_bytes"] + row["job_shuffle_bytes"], sent, rel_tol=1e-9)
    assert row["job_shuffle_bytes"] > 0 and row["job_a2a_bytes"] > row["job_shuffle_bytes"]
    assert row["xmit_discards"] > 0 and row["link_downed"] > 0       # the link went down under load
    assert row["reroutes"] >= 1
    assert row["fault0_at_s"] == 2.0
    assert 0 < row["util_mean"] <= row["util_p99"] <= row["util_max"] <= 1.0
    assert all(isinstance(v, (int, float, str)) for v in row.values())


def test_recovery_is_the_first_sample_back_at_the_fraction():
    t = np.arange(10.0)
    rate = np.array([0, 100, 100, 100, 40, 60, 96, 100, 100, 100.0])
    assert _recovery(t, rate, 3.0, 0.95) == 3.0          # t=6: 96 >= 95
    assert _recovery(t, rate, 3.0, 1.0) == 4.0
    capped = np.where(t > 3, np.minimum(rate, 90), rate)
    assert math.isnan(_recovery(t, capped, 3.0, 1.0))                  # never back
    assert math.isnan(_recovery(t, rate, 9.5, 0.95))                   # no sample after
