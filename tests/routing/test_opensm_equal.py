"""minhop and updn against the real OpenSM 3.3.23 attached to our MAD server: equal LFTs.

OpenSM keeps the LIDs it finds (ours, shuffled where the fabric says so) and
ignores the LFTs on its first sweep; its ``opensm-lfts.dump`` is translated
through GUIDs and must equal ``compute_lfts`` entry for entry, on fabrics
whose LIDs are in no order, with 4-6 parallel cables per switch pair, rings,
tori, dragonflies, random graphs and fat trees. updn gets the same roots
(OpenSM's ``-a`` root GUID file). Each OpenSM runs with private files under
``tmp_path`` and is stopped by its PID.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ibsim.bench.ofed import have_tools
from ibsim.fabric import compile_fabric
from ibsim.routing import compute_lfts, updn_order
from ibsim.topology import fat_tree, leaf_spine
from ibsim.topology.direct import dragonfly, torus
from ibsim.topology.readwrite import read_topology

pytestmark = [pytest.mark.requires_opensm,
              pytest.mark.skipif(not have_tools("opensm"), reason="needs opensm and libumad2sim")]

DATA = Path(__file__).resolve().parents[1] / "data"


def fabrics(rh):
    return {
        "edr-6-cables": lambda: rh.edr_cluster(0),
        "edr-6-cables-b": lambda: rh.edr_cluster(2),
        "edr-4-cables": lambda: rh.edr_cluster(3, cables=4, hosts=12),
        "leaf-spine-shuffled": lambda: rh.shuffle_lids(leaf_spine(4, 2, 4), 1),
        "realistic-dump": lambda: read_topology(DATA / "realistic-dump.topo"),
        "ring6": lambda: rh.ring(6),
        "torus3x3": lambda: torus((3, 3), 2),
        "dragonfly": lambda: dragonfly(4, 2, 2, 5),
        "random": lambda: rh.random_fabric(5, n=13, degree=5),
        "fat_tree(8,3)": lambda: fat_tree(8, 3),
    }


MINHOP = ["edr-6-cables", "edr-6-cables-b", "edr-4-cables", "leaf-spine-shuffled",
          "realistic-dump", "ring6", "torus3x3", "dragonfly", "random", "fat_tree(8,3)"]

#: updn fabrics and the indices (in sorted switch GUID order) of their roots
UPDN = {
    "edr-6-cables": None,            # the spines (detected), given to OpenSM too
    "torus3x3": [4],
    "dragonfly": [0, 17],
    "random": [5],                   # OpenSM's search lets one route turn down then up here
    "fat_tree(8,3)": None,
}


def check_equal(rh, tmp_path, topo, engine, roots=None):
    fab, lid, osm = rh.opensm_lfts(topo, tmp_path, engine, roots)
    assert np.array_equal(lid, fab.default_lid), "OpenSM changed our LIDs"
    ours = compute_lfts(fab, engine, lid=lid, roots=roots)
    w = min(ours.shape[1], osm.shape[1])
    assert not (osm[:, w:] != 255).any() and not (ours[:, w:] != 255).any()
    diff = np.argwhere(osm[:, :w] != ours[:, :w])
    assert diff.size == 0, (f"{len(diff)} LFT entries differ from OpenSM's, first (row, LID): "
                            f"{diff[:5].tolist()}")
    assert (ours[:, :w] != 255).sum() > fab.n_switches


@pytest.mark.parametrize("name", MINHOP)
def test_minhop_equals_opensm(rh, tmp_path, name):
    check_equal(rh, tmp_path, fabrics(rh)[name](), "minhop")


@pytest.mark.parametrize("name", list(UPDN))
def test_updn_equals_opensm_given_the_same_roots(rh, tmp_path, name):
    topo = fabrics(rh)[name]()
    fab = compile_fabric(topo)
    guids = fab.node_guid[fab.node_of_switch]
    if UPDN[name] is None:
        roots = [int(guids[r]) for r in updn_order(fab).roots]
    else:
        srt = np.sort(guids)
        roots = [int(srt[i]) for i in UPDN[name]]
    check_equal(rh, tmp_path, topo, "updn", roots)
