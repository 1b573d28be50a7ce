"""Loop.tables takes one FastTables, checks every field once, and names the field it refuses."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from ibsim.engine import Simulation
from ibsim.fabric import compile_fabric
from ibsim.mad import codec as C
from ibsim.mad.dispatch import Dispatcher
from ibsim.mad.fasttables import FastTables, field_names
from ibsim.mad.server import fast_path_available
from ibsim.topology import fat_tree

if not fast_path_available():
    if os.environ.get("IBSIM_REQUIRE_FASTPATH") == "1":
        raise ImportError("ibsim.mad._fastpath is not built, and IBSIM_REQUIRE_FASTPATH=1")
    pytest.skip("ibsim.mad._fastpath is not built (no C compiler at install time)", allow_module_level=True)

from ibsim.mad import _fastpath  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    d = Dispatcher(sim)
    loop = _fastpath.Loop(d.clients.slots, sim.lock, lambda: None, sim)
    reply, client, _ = d.control(C.pack_ctl(0, C.CTL_CONNECT, 44, C.pack_client_info(7, 0, 0, b"")),
                                 ("src",), lambda src, ident: f"in{ident}")
    return d, loop, client.slot


def _node_info_get():
    mad = C.make_mad(C.CLASS_SMP_DR, C.METHOD_GET, C.ATTR_NODE_INFO, 0, tid=1, hop_cnt=1, path=b"\0\1")
    return C.pack_frame(mad, dlid=0xFFFF, slid=0xFFFF)


def test_c_reads_the_fields_of_fast_tables():
    assert _fastpath.TABLE_FIELDS == field_names()
    assert len(field_names()) == 19


def test_the_view_builds_tables_the_c_side_accepts(setup):
    d, loop, slot = setup
    t = d.view.fast_tables()
    assert isinstance(t, FastTables)
    loop.tables(t)
    assert loop.answer(slot, _node_info_get(), False) is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.peer = None


def _i32(a):
    return np.array(a, dtype=np.int32)


def _bad(t):
    """(field, replacement, exception, message part) for corruptions the install must refuse."""
    n_ports, n_nodes = len(t.node_of_port), len(t.first_port)
    nop = _i32(t.node_of_port)
    nop[5] = n_nodes
    peer = _i32(t.peer)
    peer[3] = n_ports
    pn = _i32(t.port_num)
    pn[2] = 256
    first = _i32(t.first_port)
    first[-1] = n_ports
    nports = _i32(t.nports)
    nports[0] = 300
    isw = np.array(t.is_switch, dtype=np.uint8)
    isw[0] = 2
    row = _i32(t.switch_row)
    sw = int(np.flatnonzero(np.asarray(t.is_switch))[0])
    ca = int(np.flatnonzero(np.asarray(t.is_switch) == 0)[0])
    row_out = row.copy()
    row_out[sw] = len(t.fdb_top)
    row_ca = row.copy()
    row_ca[ca] = 0
    lft = np.asarray(t.lft)
    return [
        ("node_of_port", nop, ValueError, "is not a node"),
        ("peer", peer, ValueError, "is neither a port"),
        ("port_num", pn, ValueError, "is not a port number"),
        ("first_port", first, ValueError, "are not all in"),
        ("nports", nports, ValueError, "NumPorts"),
        ("is_switch", isw, ValueError, "is not 0 or 1"),
        ("switch_row", row_out, ValueError, "switch row"),
        ("switch_row", row_ca, ValueError, "a CA wants -1"),
        ("node_of_port", np.asarray(t.node_of_port, dtype=np.int64), TypeError, "int32 items"),
        ("lid", np.asarray(t.lid, dtype=np.int32), TypeError, "uint16 items"),
        ("phys", np.zeros(n_ports, dtype=np.float32), TypeError, "uint8 items"),
        ("peer", _i32(t.peer)[::2], TypeError, "not a C-contiguous buffer"),
        ("peer", _i32(np.asarray(t.peer)[:-1]), ValueError, "items for"),
        ("port_info", bytes(64 * n_ports - 1), ValueError, "items for"),
        ("node_desc", bytes(64 * (n_nodes + 1)), ValueError, "items for"),
        ("switch_info", bytes(64), ValueError, "switches"),
        ("lft", lft.reshape(-1), ValueError, "dimension"),
        ("lft", lft[:-1], ValueError, "rows for"),
        ("lft", np.asfortranarray(np.zeros((lft.shape[0], 3, 2), np.uint8))[:, :, 0], TypeError,
         "C-contiguous"),
        ("fdb_top", 7, TypeError, "not a C-contiguous buffer"),
        ("pkeys", [], TypeError, "dict wanted"),
        ("mlnx_fdr10", {}, TypeError, "set wanted"),
    ]


def test_a_corrupted_field_is_refused_by_name_and_the_old_tables_stay(setup):
    d, loop, slot = setup
    good = d.view.fast_tables()
    loop.tables(good)
    before = loop.answer(slot, _node_info_get(), False)
    assert before is not None
    for name, value, exc, part in _bad(good):
        with pytest.raises(exc, match=rf"FastTables\.{name}") as e:
            loop.tables(dataclasses.replace(good, **{name: value}))
        assert part in str(e.value), (name, str(e.value))
        assert loop.answer(slot, _node_info_get(), False) == before       # still installed, still right


def test_a_missing_field_names_it(setup):
    d, loop, _ = setup
    ns = {f: getattr(d.view.fast_tables(), f) for f in field_names() if f != "switch_info"}
    with pytest.raises(AttributeError, match="switch_info"):
        loop.tables(type("T", (), ns)())
