"""The C fast path answers exactly as the Python dispatcher, and the C loop serves the real tools.

``ibsim.mad._fastpath`` is optional at install time; where it is built (CI
builds it: ``tests/run.sh`` sets ``IBSIM_REQUIRE_FASTPATH=1``) these tests
run, and a missing build fails them instead of skipping.
"""

from __future__ import annotations

import dataclasses
import os
import random
from array import array
from pathlib import Path

import pytest

from ibsim.engine import Simulation
from ibsim.fabric import compile_fabric
from ibsim.mad import codec as C
from ibsim.mad.dispatch import Dispatcher
from ibsim.mad.server import fast_path_available
from ibsim.topology import fat_tree, read_topology
from tests.mad.conftest import needs_tools, serving, tool

if not fast_path_available():
    if os.environ.get("IBSIM_REQUIRE_FASTPATH") == "1":
        raise ImportError("ibsim.mad._fastpath is not built, and IBSIM_REQUIRE_FASTPATH=1")
    pytest.skip("ibsim.mad._fastpath is not built (no C compiler at install time)", allow_module_level=True)

from ibsim.mad import _fastpath  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GETS = [C.ATTR_NODE_INFO, C.ATTR_NODE_DESC, C.ATTR_PORT_INFO, C.ATTR_SWITCH_INFO, C.ATTR_LFT,
        C.ATTR_PKEY_TABLE, C.ATTR_MLNX_EXT_PORT_INFO]
OTHERS = [C.ATTR_GUID_INFO, C.ATTR_SL2VL, C.ATTR_VL_ARB, C.ATTR_MFT, C.ATTR_SM_INFO, 0x0033, 0x1234]


class Pair:
    """One simulation, its Python dispatcher and a C loop over the same tables (no sockets)."""

    def __init__(self, sim):
        self.sim = sim
        self.f = sim.fabric
        self.d = Dispatcher(sim)
        self.loop = _fastpath.Loop(self.d.clients.slots, sim.lock, lambda: None, sim)
        self.refresh()

    def refresh(self):
        """Register the tables again, as the server's loop does when the engine replaced its
        LFT or LID array."""
        st = self.sim.state
        self.d.view.sync()
        self.loop.tables(self.d.view.fast_tables())
        self.arrays = (st.lft, st.lid)

    def connect(self, node: str) -> int:
        reply, client, _ = self.d.control(
            C.pack_ctl(0, C.CTL_CONNECT, 44, C.pack_client_info(77, 0, 0, node.encode())),
            ("src",), lambda src, ident: f"in{ident}")
        assert C.unpack_ctl(reply)[2] == C.CTL_CONNECT, node
        return client.slot

    def compare(self, slot: int, frame: bytes):
        """C answer (or None) after checking it equals the dispatcher's, frame and counted links."""
        external = self.sim.routing == "opensm"
        with self.sim.lock:
            st = self.sim.state
            if st.lft is not self.arrays[0] or st.lid is not self.arrays[1]:
                self.refresh()
            fast = self.loop.answer(slot, frame, external)
            self.sim.mgmt_pending.clear()
            out = self.d.frame(slot, frame)
            counted = list(self.sim.mgmt_pending)
            self.sim.mgmt_pending.clear()
        if fast is None:
            # declined: Python must have refused it, bounced it, or answered what is Python's
            # alone (SwitchInfo under the embedded SM, a DR SMP with a LID-routed part)
            if len(out) == 1 and out[0][0] == slot:
                h = C.unpack_header(bytes(out[0][1]))
                ok_get = (h.status == 0 and h.mad_status == 0x8000 and h.method == 0x81
                          and C.unpack_header(frame).method == C.METHOD_GET and h.attr_id in GETS)
                python_only = (h.attr_id == C.ATTR_SWITCH_INFO and not external) or h.dlid != 0xFFFF
                assert not ok_get or python_only, h
            return None
        reply, egress = fast
        assert len(out) == 1 and out[0][0] == slot, (C.unpack_header(frame), out)
        got = bytes(out[0][1])
        assert got == reply, (C.unpack_header(frame), [(i, reply[i], got[i]) for i in range(288) if reply[i] != got[i]])
        assert egress == counted
        return reply


def dr_get(attr, path, mod=0, tid=1, **kw):
    mad = C.make_mad(C.CLASS_SMP_DR, C.METHOD_GET, attr, mod, tid=tid, hop_cnt=len(path) - 1,
                     path=bytes(path))
    return bytearray(C.pack_frame(mad, dlid=0xFFFF, slid=0xFFFF))


def random_path(f, start_port: int, rng: random.Random, hops: int) -> list[int]:
    """A directed route of up to ``hops`` hops that mostly follows cables (sometimes not)."""
    path = [0]
    cur = start_port
    for _ in range(hops):
        n = int(f.node_of_port[cur])
        if not f.node_is_switch[n] and len(path) > 1:
            break
        nports = int(f.node_nports[n])
        pn = rng.randint(1, nports) if rng.random() < 0.95 else rng.choice([0, nports + 1, 255])
        path.append(pn)
        if not 1 <= pn <= nports:
            break
        e = int(f.first_port[n]) + (pn if f.node_is_switch[n] else pn - 1)
        q = int(f.peer_of_port[e])
        if q < 0:
            break
        cur = q
    return path


def mutate(frame: bytearray, rng: random.Random) -> bytearray:
    """One header change that the fast path must decline (or answer as Python does)."""
    k = rng.randrange(8)
    if k == 0:
        frame[38] = 1                                   # hop pointer
    elif k == 1:
        frame[36] |= 0x80                               # D bit on a request
    elif k == 2:
        frame[34] = 3                                   # class version
    elif k == 3:
        frame[35] = C.METHOD_SET
    elif k == 4:
        frame[0:2] = b"\x00\x05"                        # carrier DLID not permissive
    elif k == 5:
        frame[64:66] = b"\x00\x01"                      # DrSLID not permissive
    elif k == 6:
        frame[32] = 2                                   # base version
    else:
        frame[39] = 64                                  # hop count past 63
    return frame


def exercise(pair: Pair, slots: list[int], rng: random.Random, n: int) -> tuple[int, int]:
    f = pair.f
    answered = 0
    for i in range(n):
        slot = rng.choice(slots)
        src = pair.d.clients.get(slot).port
        attr = rng.choice(GETS) if rng.random() < 0.85 else rng.choice(OTHERS)
        path = random_path(f, src, rng, rng.randint(0, 6))
        r = rng.random()
        top = int(f.node_nports.max()) + 2                # mostly valid port numbers, some not
        if attr == C.ATTR_PORT_INFO:
            mod = rng.randint(0, top) if r < 0.9 else rng.randint(0, 2**32 - 1)
        elif attr == C.ATTR_PKEY_TABLE:
            mod = (rng.randint(0, top) << 16) | rng.randint(0, 2) if r < 0.9 else rng.randint(0, 2**32 - 1)
        elif attr == C.ATTR_LFT:
            mod = rng.randint(0, 3) if r < 0.9 else rng.randint(0, 800)
        elif attr == C.ATTR_MLNX_EXT_PORT_INFO:
            mod = rng.randint(0, top)
        else:
            mod = rng.randint(0, 3)
        frame = dr_get(attr, path, mod, tid=(i << 8) | 1)
        if rng.random() < 0.1:
            frame = mutate(frame, rng)
        if pair.compare(slot, bytes(frame)) is not None:
            answered += 1
    return answered, n


def _program(pair: Pair, slot: int):
    """Populate P_Key, MLNX ExtendedPortInfo and LinearFDBTop through Sets, as an SM would."""
    f, d = pair.f, pair.d
    src = d.clients.get(slot).port
    for n in range(f.n_nodes):
        if not f.node_is_switch[n]:
            continue
        # a directed route to that switch: any path the Python view finds from the client
        for p in range(int(f.first_port[n]), int(f.first_port[n + 1])):
            d.view.pkeys[(p, 0)] = bytes.fromhex("ffff8001").ljust(64, b"\0")
            d.view.mlnx_ext[p] = bytes(range(64))
        d.view.fdb_top[int(f.switch_of_node[n])] = 3 + n
    d.view.pkeys[(src, 1)] = b"\x80\x02".ljust(64, b"\0")


def test_fast_path_answers_like_the_dispatcher_on_a_fat_tree():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    pair = Pair(sim)
    slots = [pair.connect(x) for x in ("", "node001 HCA-1", "node006 HCA-1", "spine2")]
    rng = random.Random(5)
    a, n = exercise(pair, slots, rng, 3000)
    assert a > 0.3 * n              # the rest are errors and bounces (checked in compare)
    _program(pair, slots[1])
    sim.set_external_sm(True)                            # SwitchInfo from LinearFDBTop, fast
    a2, n2 = exercise(pair, slots, rng, 3000)
    assert a2 > a * 0.9


def test_fast_path_follows_link_changes_and_replaced_arrays():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    pair = Pair(sim)
    slots = [pair.connect("node001 HCA-1"), pair.connect("leaf3")]
    rng = random.Random(9)
    sim.inject("link_down", "leaf1:3")
    sim.inject("link_down", "node004 HCA-1:1")
    sim.step()
    pair.refresh()
    exercise(pair, slots, rng, 2000)
    # a link down: the DR path across it is refused by both (Python bounces it with 110)
    reply = pair.compare(slots[0], bytes(dr_get(C.ATTR_NODE_INFO, [0, 1, 3])))
    assert reply is None
    for _ in range(200):
        sim.step()                                       # sweep: reroute replaces the LFT array
    pair.refresh()
    exercise(pair, slots, rng, 2000)


def test_fast_path_on_a_real_cluster_dump():
    """Real ibnetdiscover output: a 2-port HCA with one port cabled, a DDR cable, parallel cables."""
    sim = Simulation(compile_fabric(read_topology(REPO / "topologies" / "cluster-dump.topo")), seed=1,
                     routing="opensm")
    pair = Pair(sim)
    f = sim.fabric
    names = [f.node_desc[n] for n in range(0, f.n_nodes, max(1, f.n_nodes // 6))]
    slots = [pair.connect(x) for x in names]
    a, n = exercise(pair, slots, random.Random(13), 4000)
    assert a > 0.15 * n


def test_slot_without_a_client_and_bad_sizes_are_declined():
    sim = Simulation(compile_fabric(fat_tree(4, 2)), seed=1)
    pair = Pair(sim)
    frame = bytes(dr_get(C.ATTR_NODE_INFO, [0]))
    assert pair.loop.answer(3, frame, False) is None          # no client in slot 3
    slot = pair.connect("node002 HCA-1")
    assert pair.loop.answer(slot, frame[:200], False) is None
    assert pair.loop.answer(slot, frame + b"\0", False) is None
    assert pair.loop.answer(slot, frame, False) is not None
    with pytest.raises(ValueError, match="FastTables.lid"):
        pair.loop.tables(dataclasses.replace(pair.d.view.fast_tables(), lid=array("H", [0, 0, 0])))


def _with_tools(fn):
    for mark in needs_tools:
        fn = mark(fn)
    return fn


@_with_tools
def test_c_and_python_loops_serve_the_same_discovery(tmp_path):
    outs = {}
    for fast in (True, False):
        sim = Simulation(compile_fabric(fat_tree(8, 2)), seed=1)
        with serving(sim, fast=fast) as (srv, sock):
            assert srv.fast is fast
            out = tool(sock, "ibnetdiscover", cwd=tmp_path).stdout
            stats = dict(srv.dispatcher.stats)
        outs[fast] = [x for x in out.splitlines() if not x.startswith("#")]
        assert stats["answered"] >= 200 and stats["bounced"] == 0 and stats["frames"] == stats["answered"]
    assert outs[True] == outs[False] and len(outs[True]) > 100
