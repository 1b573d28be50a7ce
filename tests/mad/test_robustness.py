"""Nothing a client sends takes the server down, leaks memory, or stalls the other clients.

The fuzzing server runs as its own process (``python -m ibsim serve``) so
its resident set size can be read from /proc; it is stopped by its PID.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ibsim.mad import codec as C
from ibsim.testing.simclient import MadError, SimClient
from ibsim.bench.ofed import stop_process, wait_for_unix_socket
from ibsim.mad.server import abstract_name, fast_path_available
from ibsim.topology import fat_tree, parse_ibnetdiscover, write_ibnetdiscover
from ibsim.traffic import Job
from tests.mad.conftest import HAVE_TOOLS, make_sim, serving, tool, unique_sockname

REPO = Path(__file__).resolve().parents[2]
#: the C loop (when built) and the Python loop
LOOPS = [True, False] if fast_path_available() else [False]
ATTRS = [C.ATTR_NODE_INFO, C.ATTR_NODE_DESC, C.ATTR_PORT_INFO, C.ATTR_SWITCH_INFO, C.ATTR_LFT,
         C.ATTR_MFT, C.ATTR_PKEY_TABLE, C.ATTR_SL2VL, C.ATTR_VL_ARB, C.ATTR_GUID_INFO, C.ATTR_SM_INFO,
         C.ATTR_NOTICE, C.ATTR_MLNX_EXT_PORT_INFO, 0x0031, 0x0033, 0xFFFF]
PERF_ATTRS = [C.ATTR_CLASS_PORT_INFO, C.ATTR_PORT_COUNTERS, C.ATTR_PORT_COUNTERS_EXT, 0x0010, 0x0015,
              0x001F, 0x7777]


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fuzz_frame(rng: random.Random, max_lid: int) -> bytes:
    kind = rng.random()
    if kind < 0.1:                                             # garbage of any size
        return rng.randbytes(rng.choice([0, 1, 31, 80, 200, 287, 289, 512, rng.randrange(600)]))
    hops = rng.choice([0, 1, 2, 3, 4, rng.randrange(64), rng.randrange(64, 256)])
    path = bytes([0] + [rng.choice([1, 2, 3, 4, 0, 5, 255, rng.randrange(256)]) for _ in range(min(hops, 63))])
    method = rng.choice([C.METHOD_GET] * 6 + [C.METHOD_SET, C.METHOD_SEND, C.METHOD_TRAP,
                                              C.METHOD_TRAP_REPRESS, 0x81, 0x7F, 0])
    mod = rng.choice([0, 1, 2, 3, 4, 5, 0xFF, 767, 768, 0x10001, 0x40000, rng.randrange(2**32)])
    data = rng.randbytes(64)
    if kind < 0.6:
        attr = rng.choice(ATTRS)
        if attr == C.ATTR_PORT_INFO and method == C.METHOD_SET:
            data = data[:32] + b"\0\0" + data[34:]             # no state or phys state changes
        mad = bytearray(C.make_mad(C.CLASS_SMP_DR, method, attr, mod, tid=rng.randrange(2**64),
                                   data=data, hop_cnt=hops & 0xFF, path=path))
        frame = bytearray(C.pack_frame(bytes(mad), dlid=0xFFFF, slid=0xFFFF))
    else:
        cls = rng.choice([C.CLASS_SMP_LID, C.CLASS_PERF, C.CLASS_PERF, C.CLASS_SA, 0x32, 0x21, 0x07])
        attr = rng.choice(PERF_ATTRS if cls == C.CLASS_PERF else ATTRS)
        if cls == C.CLASS_SMP_LID and attr == C.ATTR_PORT_INFO and method == C.METHOD_SET:
            data = data[:32] + b"\0\0" + data[34:]
        mad = C.make_mad(cls, method, attr, mod, tid=rng.randrange(2**64), data=data)
        dlid = rng.choice([0, 1, 2, max_lid, max_lid + 1, 0xBFFF, 0xC000, 0xFFFE, rng.randrange(max_lid + 5)])
        frame = bytearray(C.pack_frame(mad, dlid=dlid, dqp=rng.choice([0, 1, 2, 7]), sqp=1))
    for _ in range(rng.choice([0, 0, 1, 2, 4])):               # header mutations
        frame[rng.randrange(32, 96)] = rng.randrange(256)
    if rng.random() < 0.05:
        frame[32] = rng.choice([0, 2, 255])                    # base version
    if rng.random() < 0.05:
        frame[34] = rng.choice([3, 9, 255])                    # class version
    return bytes(frame)


def _fuzz_ctl(rng: random.Random, slot: int) -> bytes:
    typ = rng.choice(list(range(12)) + [99, 2**31])
    msg = C.pack_ctl(rng.choice([slot, slot, 9, 10, 11, 255, 65535, 2**31]), typ,
                     rng.randrange(100), rng.randbytes(64),
                     magic=C.CTL_MAGIC if rng.random() < 0.8 else rng.randrange(2**32))
    if typ == C.CTL_CONNECT:
        msg = msg[:16] + C.pack_client_info(rng.randrange(2**31), 0, rng.randrange(3),
                                            rng.choice([b"", b"nosuch", rng.randbytes(31)])).ljust(64, b"\0")
    if typ in (C.CTL_DISCONNECT, C.CTL_SET_ISSM):
        msg = C.pack_ctl(999, typ, 4, b"\1")                   # never our own slot
    if rng.random() < 0.2:
        msg = msg[:rng.randrange(80)]                          # truncated
    return msg


def _spray(sockname: str, n: int, seed: int, max_lid: int) -> dict:
    rng = random.Random(seed)
    counts = {"sent": 0, "answers": 0}
    with SimClient(sockname, timeout=2.0) as c:
        c.data_sock.setblocking(False)
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ctl.bind(abstract_name(f"{sockname}:ctl{os.getpid()}x{seed}"))
        ctl.connect(abstract_name(f"{sockname}:ctl"))
        ctl.setblocking(False)
        try:
            for i in range(n):
                if i % 10 == 9:
                    ctl.setblocking(True)
                    ctl.send(_fuzz_ctl(rng, c.slot))
                    ctl.setblocking(False)
                else:
                    c.data_sock.setblocking(True)
                    c.data_sock.send(_fuzz_frame(rng, max_lid))
                    c.data_sock.setblocking(False)
                counts["sent"] += 1
                for s in (c.data_sock, ctl):
                    while True:
                        try:
                            s.recv(4096)
                            counts["answers"] += 1
                        except (BlockingIOError, ConnectionRefusedError):
                            break
            c.data_sock.setblocking(True)
        finally:
            ctl.close()
    return counts


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TOOLS, reason="needs libumad2sim and infiniband-diags")
@pytest.mark.requires_ibsim_c
def test_twenty_thousand_hostile_frames(tmp_path):
    topo = fat_tree(4, 2)
    net = tmp_path / "fabric.topo"
    write_ibnetdiscover(topo, net)
    sock = unique_sockname("fuzz")
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ibsim", "serve", str(net), "--sockname", sock],
                            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert wait_for_unix_socket(f"{sock}:ctl", 60, proc), (tmp_path / "serve.log").read_text()
        max_lid = 14
        _spray(sock, 2000, 1, max_lid)                         # warm up caches and tables
        rss0 = _rss_kb(proc.pid)
        a = _spray(sock, 10000, 2, max_lid)
        rss1 = _rss_kb(proc.pid)
        b = _spray(sock, 10000, 3, max_lid)
        rss2 = _rss_kb(proc.pid)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        assert a["answers"] > 1000 and b["answers"] > 1000
        assert rss2 - rss1 < 8 * 1024, (rss0, rss1, rss2)      # the second 10k do not grow it
        assert rss2 - rss0 < 32 * 1024, (rss0, rss1, rss2)
        out = tool(sock, "ibnetdiscover", cwd=tmp_path).stdout
        assert parse_ibnetdiscover(out, "<after fuzz>") == topo
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        stop_process(proc)
        log.close()


@pytest.mark.parametrize("fast", LOOPS)
def test_fuzz_in_process_leaves_the_server_answering(fast):
    """A quicker in-process run (no tools needed): the dispatcher survives every frame."""
    sim = make_sim(fat_tree(4, 2))
    with serving(sim, fast=fast) as (srv, sock):
        _spray(sock, 3000, 7, 14)
        with SimClient(sock) as c:
            st, data = c.smp(C.ATTR_NODE_INFO, path=[0, 1])
            assert st == 0 and C.NODE_INFO.decode(data)["NodeType"] == 1
        assert srv._thread.is_alive()


@pytest.mark.parametrize("fast", LOOPS)
def test_a_stalled_client_does_not_stall_the_others(fast):
    sim = make_sim(fat_tree(4, 2))
    with serving(sim, fast=fast) as (srv, sock):
        stalled = SimClient(sock)
        frame = C.pack_frame(C.make_mad(C.CLASS_SMP_DR, 1, C.ATTR_NODE_INFO, hop_cnt=1, path=b"\0\1"),
                             dlid=0xFFFF, slid=0xFFFF)
        stalled.data_sock.settimeout(0.5)
        for _ in range(3000):                                  # never reads its answers
            try:
                stalled.data_sock.send(frame)
            except (TimeoutError, BlockingIOError):
                break
        with SimClient(sock, timeout=2.0) as good:
            t = time.monotonic()
            for _ in range(200):
                assert good.smp(C.ATTR_NODE_INFO, path=[0, 1])[0] == 0
            assert time.monotonic() - t < 10
        stalled.close()


@pytest.mark.parametrize("fast", LOOPS)
def test_a_vanished_client_loses_its_slot_and_its_requests_bounce(fast):
    sim = make_sim(fat_tree(4, 2))
    with serving(sim, fast=fast) as (srv, sock):
        sm = SimClient(sock, "node001 HCA-1", issm=True)
        sm_slot = sm.slot
        sm.ctl_sock.close()
        sm.data_sock.close()                                   # gone, without DISCONNECT
        with SimClient(sock, "node002 HCA-1") as c:
            lid = int(sim.state.lid[sim.fabric.find_port("node001 HCA-1:1")])
            mad = C.make_mad(C.CLASS_SA, C.METHOD_GET, 0x11, tid=5)
            with pytest.raises(MadError):                      # forwarded, receiver dead: 110
                c.rpc(C.pack_frame(mad, dlid=lid, dqp=1, sqp=1))
            deadline = time.monotonic() + 5
            while srv.dispatcher.clients.get(sm_slot) is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert srv.dispatcher.clients.get(sm_slot) is None
            with pytest.raises(MadError):                      # no SM any more: 110 at once
                c.rpc(C.pack_frame(mad, dlid=lid, dqp=1, sqp=1))


@pytest.mark.parametrize("fast", LOOPS)
def test_many_clients_at_once(fast):
    sim = make_sim(fat_tree(4, 2))
    with serving(sim, fast=fast) as (srv, sock):
        errors = []

        def worker(i):
            try:
                with SimClient(sock, f"node00{1 + i % 8} HCA-1") as c:
                    for _ in range(50):
                        assert c.smp(C.ATTR_NODE_INFO, path=[0])[0] == 0
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert len(srv.dispatcher.clients) == 0


@pytest.mark.parametrize("fast", LOOPS)
def test_slots_of_clients_that_died_without_disconnect_are_reclaimed(fast):
    sim = make_sim(fat_tree(4, 2))
    with serving(sim, max_clients=4, fast=fast) as (srv, sock):
        ghosts = [SimClient(sock) for _ in range(4)]
        for g in ghosts:                                       # crash: no DISCONNECT
            g.ctl_sock.close()
            g.data_sock.close()
        with SimClient(sock) as c:                             # would be the 5th slot
            assert c.smp(C.ATTR_NODE_INFO, path=[0])[0] == 0
        assert len(srv.dispatcher.clients) == 0


@pytest.mark.parametrize("fast", LOOPS)
def test_mads_are_answered_while_the_engine_reallocates(fast):
    """A long reallocation (slowed down here to 1.5 s) runs outside the lock: MADs still flow."""
    sim = make_sim(fat_tree(4, 2))
    sim.add_job(Job("a2a", "all_to_all", load=0.5))
    compute = sim.rates.compute
    started = threading.Event()

    def slow_compute(inputs, route=None):
        started.set()
        time.sleep(1.5)
        return compute(inputs, route)

    sim.rates.compute = slow_compute
    with serving(sim, fast=fast) as (srv, sock), SimClient(sock, "node003 HCA-1", timeout=1.0) as c:
        ticker = threading.Thread(target=sim.step)
        ticker.start()
        assert started.wait(5)
        t = time.monotonic()
        for _ in range(50):
            assert c.smp(C.ATTR_NODE_INFO, path=[0, 1])[0] == 0
        lid = int(sim.state.lid[sim.fabric.find_port("node003 HCA-1:1")])
        mad = C.make_mad(C.CLASS_PERF, C.METHOD_GET, C.ATTR_PORT_COUNTERS, tid=9, data=b"\0\1")
        c.rpc(C.pack_frame(mad, dlid=lid, dqp=1, sqp=1))  # PerfMgt takes the lock too
        assert time.monotonic() - t < 1.0 and ticker.is_alive()
        ticker.join(5)
    assert sim.stats["reallocations"] >= 1 and sim.xmit_rate.sum() > 0


def test_mads_are_answered_while_the_embedded_sm_reroutes(monkeypatch):
    """The sweep's routing step (slowed down here to 1.5 s) runs outside the lock too."""
    from ibsim.engine import sm
    sim = make_sim(fat_tree(4, 2), sweep_delay=0.1)
    started = threading.Event()
    real = sm.compute_lfts

    def slow_lfts(*a, **kw):
        started.set()
        time.sleep(1.5)
        return real(*a, **kw)

    monkeypatch.setattr(sm, "compute_lfts", slow_lfts)
    sim.inject("link_down", "leaf1:3")
    sim.step()                                                   # the fault; the sweep is due next
    before = sim.stats["reroutes"]
    with serving(sim) as (srv, sock), SimClient(sock, "node003 HCA-1", timeout=1.0) as c:
        ticker = threading.Thread(target=lambda: [sim.step() for _ in range(3)])
        ticker.start()
        assert started.wait(5)
        t = time.monotonic()
        for _ in range(50):
            assert c.smp(C.ATTR_NODE_INFO, path=[0, 1])[0] == 0
        assert time.monotonic() - t < 1.0 and ticker.is_alive()
        ticker.join(10)
    assert sim.stats["reroutes"] == before + 1
    assert [e for e in sim.events if e.kind == "reroute"][-1].details["reason"] == "sweep"
