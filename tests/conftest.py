"""Shared fixtures and markers.

Guidelines: tests mirror the package (tests/topology, tests/fabric, ...);
servers are real and started on loopback by the test, stopped by PID; no test
asserts on wall-clock time (benchmarks do that).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from ibsim.fabric import compile_fabric
from ibsim.topology import Topology, fat_tree

UMAD2SIM = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so"


def missing_entry_points() -> list[str]:
    """Exporters pyproject.toml registers that the installed metadata does not list.

    Nonempty when ibsim is used from a source tree without being installed
    (``pip install -e .`` writes the ``ibsim.exporters`` entry points).
    """
    with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as fh:
        declared = tomllib.load(fh)["project"]["entry-points"]["ibsim.exporters"]
    found = {ep.name for ep in importlib.metadata.entry_points(group="ibsim.exporters")}
    return sorted(set(declared) - found)


def pytest_collection_modifyitems(config, items):
    """Skip ``requires_entry_points`` tests when the exporters are not registered."""
    missing = missing_entry_points()
    if not missing:
        return
    skip = pytest.mark.skip(reason="pip install -e . (no 'ibsim.exporters' entry points for "
                                   f"{', '.join(missing)})")
    for item in items:
        if item.get_closest_marker("requires_entry_points"):
            item.add_marker(skip)


def have_c_ibsim() -> bool:
    """linux-rdma's ibsim, libumad2sim and ibnetdiscover are installed."""
    return bool(shutil.which("ibsim") and shutil.which("ibnetdiscover") and os.path.exists(UMAD2SIM))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_topology() -> Topology:
    """2 switches joined by two parallel cables, 4 CAs (one 2-port with one port cabled)."""
    t = Topology("tiny")
    t.add_switch(0x100, 8, "sw1")
    t.add_switch(0x200, 8, "sw2")
    t.add_ca(0x1000, 1, "node01 HCA-1")
    t.add_ca(0x1010, 1, "node02 HCA-1")
    t.add_ca(0x1020, 2, "node03 HCA-1")
    t.add_ca(0x1030, 1, "node04 HCA-1")
    t.add_link(0x100, 1, 0x1000, 1)
    t.add_link(0x100, 2, 0x1010, 1)
    t.add_link(0x200, 1, 0x1020, 1)
    t.add_link(0x200, 2, 0x1030, 1, speed="DDR")
    t.add_link(0x100, 7, 0x200, 7)
    t.add_link(0x100, 8, 0x200, 8)
    return t


@pytest.fixture
def fat_tree_k4() -> Topology:
    return fat_tree(4, 2)


@pytest.fixture
def fabric(fat_tree_k4):
    return compile_fabric(fat_tree_k4)
