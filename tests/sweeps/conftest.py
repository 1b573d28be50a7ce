"""Sweep files on tiny fabrics, and one LocalCluster (2 workers on 127.0.0.1) shared by the tests."""

from __future__ import annotations

import textwrap

import pytest

#: a base scenario on fat_tree(4, 2) (8 hosts); a link down at 2 s
BASE = """\
  seed: 3
  clock:
    tick: 100ms
    duration: 6s
  topology:
    generate: fat-tree
    radix: 4
    levels: 2
  routing:
    engine: minhop
    sweep_delay: 1s
  traffic:
    - {name: a2a, pattern: all_to_all, hosts: all, load: 0.5, start: 0s}
    - {name: shuffle, pattern: uniform, interval: 500ms, hosts: 6, load: 0.3, start: 1s, stop: 5s}
  faults:
    - {at: 2s, link_down: "leaf1:3"}
  output: {every: 100ms}
"""
#: line of the first key after ``"base:\n" + BASE`` in a sweep file
AFTER = BASE.count("\n") + 2

#: 2 engines x 3 loads x 2 seeds = 12 points
GRID12 = """\
name: grid12
base:
{base}grid:
  routing.engine: [minhop, updn]
  traffic[0].load: [0.3, 0.6, 0.9]
  seed: [1, 2]
"""

#: points long enough (~1 s of CPU each) that a worker can be killed while it runs one
SLOW = """\
name: slow
base:
  seed: 1
  clock: {tick: 10ms, duration: 8s}
  topology: {generate: fat-tree, radix: 8, levels: 3}
  routing: {engine: minhop, sweep_delay: 1s}
  traffic:
    - {name: u, pattern: uniform, interval: 10ms, hosts: all, load: 0.5}
  output: {every: 500ms}
grid:
  traffic[0].load: [0.2, 0.4, 0.6]
  seed: [1, 2]
"""


def write(tmp_path, text: str, name: str = "sweep.yml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


@pytest.fixture
def grid12(tmp_path):
    return write(tmp_path, GRID12.format(base=BASE))


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 single-threaded worker processes on 127.0.0.1, closed after the module."""
    pytest.importorskip("distributed", reason="pip install '.[sweep]' (dask, distributed)")
    from ibsim.sweeps import connect
    cl, cluster = connect(None, workers=2)
    yield cl
    cl.close()
    cluster.close()
