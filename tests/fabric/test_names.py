"""node_names: one rule (description, else GUID) in two variants, cached beside the fabric."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from ibsim.fabric import compile_fabric
from ibsim.fabric import names as names_mod
from ibsim.fabric.names import node_names
from ibsim.topology import Topology


class Frozen:
    """A fabric stand-in that refuses attribute writes, as the frozen index will."""

    def __init__(self, desc, guid):
        object.__setattr__(self, "node_desc", tuple(desc))
        object.__setattr__(self, "node_guid", np.asarray(guid, dtype=np.uint64))

    def __setattr__(self, name, value):
        raise AttributeError(f"frozen: {name}")


DESC = ["MF0;ib-spine01:MSB7800/U1", "SwitchIB Mellanox Technologies",
        "SwitchIB Mellanox Technologies", "cn0001 mlx5_0", "", " a/b "]


def test_display_and_path_safe_share_the_guid_rule():
    f = Frozen(DESC, [1, 2, 3, 4, 5, 6])
    assert list(node_names(f)) == ["ib-spine01", "0x0000000000000002", "0x0000000000000003",
                                   "cn0001 mlx5_0", "0x0000000000000005", "a/b"]
    assert list(node_names(f, path_safe=True)) == [
        "MF0_ib-spine01_MSB7800_U1", "0x0000000000000002", "0x0000000000000003",
        "cn0001_mlx5_0", "0x0000000000000005", "a_b"]
    assert node_names(f).dtype == object and node_names(f, path_safe=True).dtype.kind == "U"


def test_names_are_cached_per_variant_without_writing_to_the_fabric():
    f = Frozen(DESC, [1, 2, 3, 4, 5, 6])
    show, safe = node_names(f), node_names(f, path_safe=True)
    assert node_names(f) is show and node_names(f, path_safe=True) is safe
    t = Topology("one")
    t.add_switch(0x10, 4, "sw")
    fab = compile_fabric(t.validate())
    before = set(vars(fab))
    node_names(fab, path_safe=True)
    assert set(vars(fab)) == before and fab in names_mod._CACHE
    ref = weakref.ref(fab)
    del fab
    gc.collect()
    assert ref() is None                                         # the cache does not keep it alive
