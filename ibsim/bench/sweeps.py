"""Tool sweeps: the monitoring benchmark's collector that runs infiniband-diags as exporters do.

Two modes, each a re-creation of a real exporter's way (facts:
``/work/shared/reference/monitoring-benchmark.md`` section 4):

``perfquery``
    per sweep ``ibnetdiscover --ports`` (switches, their GUIDs and cabled
    ports, the CA ports), then one ``perfquery -l -x -G <switch GUID>
    <port,port,...>`` per switch, at most ``concurrency`` running at once,
    each with a per-call timeout; with ``hca`` also one ``perfquery -x -G
    <CA port GUID> <port>`` per CA port. ibsim's PMA advertises
    PortCountersExtended without the additional error counters
    (CapabilityMask2 0), so ``-x`` yields the 8 data/packet counters.
``ibqueryerrors``
    per sweep one ``ibqueryerrors --verbose --details --suppress-common
    --data --report-port --switch --ca`` (infiniband-diags 44 accepts every
    one of these flags). It prints only ports with an error counter (or
    PortXmitWait) above its threshold (0 by default), with their nonzero data
    counters; the collector sends exactly what it prints. It needs an SA:
    without one it prints "No SM/SA found" (stderr) and exits 0, which is
    detected from the missing summary and counted as a failed sweep.

Counters go to carbon over one plaintext TCP connection as
``<prefix>.<node GUID>.p<port>.<counter>`` (cumulative absolute values,
timestamp = when the tool call returned). Node GUIDs: the tools print port
GUIDs (a CA's differs from its node GUID), so a port-to-node GUID map is
read from one plain ``ibnetdiscover`` on the first sweep and again only when
a sweep meets a port GUID it does not know (counted in ``resolve_calls``).

Each sweep writes one JSON line to the stats file (flushed), plus a final
line on exit. Run as ``python -m ibsim.bench.sweeps ...`` (see :func:`main`)
so its CPU and its children's can be read from ``/proc/PID/stat``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from ..errors import BenchError
from ..fabric.counters import COUNTERS
from .ofed import tool_env

__all__ = ["IQE_ARGS", "MODES", "CarbonLine", "IqeResult", "PortLink", "SweepContext", "ToolResult",
           "ToolRunner", "ca_ports", "main", "metric_lines", "parse_ibnetdiscover_guids",
           "parse_ibnetdiscover_ports", "parse_ibqueryerrors", "parse_perfquery", "run_sweeps",
           "switch_ports", "sweep_ibqueryerrors", "sweep_perfquery"]

#: perfquery / ibqueryerrors counter name -> ibsim's counter name
COUNTER_OF: dict[str, str] = {c.ib_name: c.name for c in COUNTERS}

#: guilbaults/infiniband-exporter's line
IQE_ARGS = ("ibqueryerrors", "--verbose", "--details", "--suppress-common", "--data", "--report-port",
            "--switch", "--ca")

ALL_PORTS = 255


# ------------------------------------------------------------------ parsers
@dataclass(frozen=True)
class PortLink:
    """One line of ``ibnetdiscover --ports``: a cabled port and its peer.

    ``kind`` is ``SW``, ``CA`` or ``RT``; GUIDs are the port GUIDs the tool prints.
    """

    kind: str
    lid: int
    port: int
    guid: int
    peer_kind: str
    peer_lid: int
    peer_port: int
    peer_guid: int
    desc: str
    peer_desc: str


_PORTS_LINE = re.compile(
    r"^(SW|CA|RT)\s+(\d+)\s+(\d+)\s+0x([0-9a-fA-F]+)\s.*?\s-\s+(SW|CA|RT)\s+(\d+)\s+(\d+)\s+"
    r"0x([0-9a-fA-F]+)\s+\(\s*'(.*)'\s+-\s+'(.*)'\s*\)")


def parse_ibnetdiscover_ports(text: str) -> list[PortLink]:
    """The cabled ports of ``ibnetdiscover --ports`` output, in the tool's order.

    Other lines (warnings, blanks, ports without a peer) are ignored.
    """
    out = []
    for line in text.splitlines():
        m = _PORTS_LINE.match(line.strip())
        if m:
            g = m.groups()
            out.append(PortLink(g[0], int(g[1]), int(g[2]), int(g[3], 16), g[4], int(g[5]), int(g[6]),
                                int(g[7], 16), g[8], g[9]))
    return out


def switch_ports(links) -> dict[int, tuple[int, ...]]:
    """Switch GUID -> its cabled port numbers (ascending), from :func:`parse_ibnetdiscover_ports`."""
    out: dict[int, set] = {}
    for ln in links:
        if ln.kind == "SW":
            out.setdefault(ln.guid, set()).add(ln.port)
    return {g: tuple(sorted(p)) for g, p in out.items()}


def ca_ports(links) -> dict[int, tuple[int, ...]]:
    """CA port GUID -> its cabled port numbers (a CA port seen from either end of a link)."""
    out: dict[int, set] = {}
    for ln in links:
        if ln.kind == "CA":
            out.setdefault(ln.guid, set()).add(ln.port)
        if ln.peer_kind == "CA":
            out.setdefault(ln.peer_guid, set()).add(ln.peer_port)
    return {g: tuple(sorted(p)) for g, p in out.items()}


_IBND_NODE = re.compile(r'^(Switch|Ca|Rt)\s+\d+\s+"[SHR]-([0-9a-fA-F]+)"')
_IBND_SWGUID = re.compile(r"^switchguid=0x([0-9a-fA-F]+)\(([0-9a-fA-F]+)\)")
_IBND_OWN = re.compile(r"^\[\d+\]\(([0-9a-fA-F]+)\)")
_IBND_PEER = re.compile(r'"[SHR]-([0-9a-fA-F]+)"\[\d+\](?:\(([0-9a-fA-F]+)\))?')


def parse_ibnetdiscover_guids(text: str) -> dict[int, int]:
    """Port GUID -> node GUID from plain ``ibnetdiscover`` (topology) output.

    Uses ``switchguid=0x<node>(<port 0>)``, a node's own port lines
    ``[p](<port GUID>)`` and the peer ends ``"H-<node>"[p](<port GUID>)``.
    """
    out: dict[int, int] = {}
    node = None
    for raw in text.splitlines():
        line = raw.strip()
        m = _IBND_SWGUID.match(line)
        if m:
            out[int(m.group(2), 16)] = int(m.group(1), 16)
            continue
        m = _IBND_NODE.match(line)
        if m:
            node = int(m.group(2), 16)
            out.setdefault(node, node)
            continue
        if not line.startswith("["):
            continue
        m = _IBND_OWN.match(line)
        if m and node is not None:
            out[int(m.group(1), 16)] = node
        m = _IBND_PEER.search(line)
        if m and m.group(2):
            out[int(m.group(2), 16)] = int(m.group(1), 16)
    return out


_PQ_HEAD = re.compile(r"^# Port (?:extended )?counters: Lid (\d+) port (\d+)")
_PQ_FIELD = re.compile(r"^(\w+):\.*(\d+)\s*$")


def parse_perfquery(text: str) -> list[tuple[int, int, dict[str, int]]]:
    """``[(lid, port, {ibsim counter name: value})]`` of perfquery output, one per block.

    Works for one port, ``-l`` loops and ``-x``; fields ibsim has no counter
    for (PortSelect, CounterSelect, QP1Dropped) are left out.
    """
    out = []
    cur = None
    for line in text.splitlines():
        m = _PQ_HEAD.match(line)
        if m:
            cur = {}
            out.append((int(m.group(1)), int(m.group(2)), cur))
            continue
        m = _PQ_FIELD.match(line.strip())
        if m and cur is not None and m.group(1) in COUNTER_OF:
            cur[COUNTER_OF[m.group(1)]] = int(m.group(2))
    return out


@dataclass
class IqeResult:
    """What one ``ibqueryerrors`` run reported."""

    #: ``(port GUID, port number, {ibsim counter name: value})`` per port printed
    ports: list = field(default_factory=list)
    #: the run reached its summary (the sweep happened)
    complete: bool = False
    #: "No SM/SA found" was printed
    no_sa: bool = False
    #: PMA queries that failed (summary line), ports checked (summary)
    pma_failures: int = 0
    ports_checked: int = 0


_IQE_PORT = re.compile(r"^GUID 0x([0-9a-fA-F]+) port (\d+):(.*)$")
_IQE_COUNTER = re.compile(r"\[(\w+) == (\d+)")
_IQE_SUMMARY = re.compile(r"^## Summary: (\d+) nodes checked")
_IQE_PORTS = re.compile(r"^##\s+(\d+) ports checked")
_IQE_PMA = re.compile(r"^##\s+(\d+) PMA query failures")


def parse_ibqueryerrors(text: str) -> IqeResult:
    """Parse ``ibqueryerrors`` output (stdout, stderr appended is fine).

    Per port line ``GUID 0x<port GUID> port <n>: [Name == value] ...`` the
    counters ibsim knows; ``port ALL`` lines (a switch's sum) and detail
    fields without an ibsim counter are left out.
    """
    res = IqeResult()
    for raw in text.splitlines():
        line = raw.strip()
        m = _IQE_PORT.match(line)
        if m:
            vals = {COUNTER_OF[n]: int(v) for n, v in _IQE_COUNTER.findall(m.group(3)) if n in COUNTER_OF}
            res.ports.append((int(m.group(1), 16), int(m.group(2)), vals))
            continue
        if _IQE_SUMMARY.match(line):
            res.complete = True
        elif (m := _IQE_PORTS.match(line)):
            res.ports_checked = int(m.group(1))
        elif (m := _IQE_PMA.match(line)):
            res.pma_failures = int(m.group(1))
        elif "No SM/SA found" in line:
            res.no_sa = True
    if res.no_sa:
        res.complete = False
    return res


# ------------------------------------------------------------------ tools and carbon
@dataclass
class ToolResult:
    """One tool call: ``ok`` (exit code accepted and not timed out), its output, when it returned."""

    args: tuple
    ok: bool
    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool
    returned: float          #: unix seconds
    wall_s: float


class ToolRunner:
    """Runs infiniband-diags tools against the server, each with a timeout (s), in ``cwd``."""

    def __init__(self, env: dict, cwd: str, timeout: float = 5.0):
        self.env, self.cwd, self.timeout = env, cwd, float(timeout)

    def run(self, args, ok_codes=(0,)) -> ToolResult:
        t = time.monotonic()
        try:
            r = subprocess.run(list(args), env=self.env, cwd=self.cwd, capture_output=True, text=True,
                               errors="replace", timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return ToolResult(tuple(args), False, out, "", None, True, time.time(), time.monotonic() - t)
        except OSError as exc:
            return ToolResult(tuple(args), False, "", str(exc), None, False, time.time(), time.monotonic() - t)
        return ToolResult(tuple(args), r.returncode in ok_codes, r.stdout, r.stderr, r.returncode, False,
                          time.time(), time.monotonic() - t)


def metric_lines(prefix: str, node_guid: int, port: int, values: dict, ts: int) -> list[str]:
    """Plaintext lines ``<prefix>.<guid>.p<port>.<counter> <value> <ts>`` of one port."""
    base = f"{prefix}.{node_guid:016x}.p{port:02d}."
    return [f"{base}{name} {int(v)} {ts}\n" for name, v in values.items()]


class CarbonLine:
    """One plaintext TCP connection to carbon; reconnects after a failure (that batch is dropped)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.addr = (host, int(port))
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.connects = 0

    def send(self, lines: list[str]) -> tuple[int, int]:
        """Send lines; returns (points sent, points dropped)."""
        if not lines:
            return 0, 0
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.addr, timeout=self.timeout)
                self.connects += 1
            self.sock.sendall("".join(lines).encode())
            return len(lines), 0
        except OSError:
            self.close()
            return 0, len(lines)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


# ------------------------------------------------------------------ sweeps
@dataclass
class SweepContext:
    """What the sweeps share: tools, carbon, options, the GUID map."""

    runner: ToolRunner
    carbon: CarbonLine
    prefix: str = "ib"
    concurrency: int = 1
    hca: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    #: port GUID -> node GUID
    guids: dict = field(default_factory=dict)


class _Sweep:
    """Counters of one sweep; becomes its stats line."""

    def __init__(self, ctx: SweepContext, k: int):
        self.ctx = ctx
        self.s = {"sweep": k, "t0": time.time(), "t1": None, "ok": True, "ports": 0, "points": 0,
                  "dropped": 0, "timeouts": 0, "tool_calls": 0, "tool_failures": 0, "tool_timeouts": 0,
                  "output_bytes": 0, "parse_s": 0.0, "send_s": 0.0, "resolve_calls": 0, "unresolved": 0}
        self.ports: set = set()
        self.resolved_once = False

    def tool(self, args, ok_codes=(0,)) -> ToolResult:
        return self.account(self.ctx.runner.run(args, ok_codes))

    def account(self, r: ToolResult) -> ToolResult:
        s = self.s
        s["tool_calls"] += 1
        s["output_bytes"] += len(r.stdout.encode()) + len(r.stderr.encode())
        if not r.ok:
            s["tool_failures"] += 1
            s["timeouts"] += 1
            s["tool_timeouts"] += int(r.timed_out)
        return r

    def resolve(self) -> None:
        """Refresh the port -> node GUID map with one plain ``ibnetdiscover``."""
        self.resolved_once = True
        self.s["resolve_calls"] += 1
        r = self.tool(["ibnetdiscover"])
        if r.ok:
            t = time.perf_counter()
            self.ctx.guids.update(parse_ibnetdiscover_guids(r.stdout))
            self.s["parse_s"] += time.perf_counter() - t

    def emit(self, ports, ts: float) -> None:
        """Send ``[(port GUID, port, values)]`` read at ``ts`` (unix s) under their node GUIDs."""
        ports = [x for x in ports if x[2]]
        if not self.resolved_once and any(g not in self.ctx.guids for g, _p, _v in ports):
            self.resolve()
        lines = []
        for g, p, v in ports:
            node = self.ctx.guids.get(g)
            if node is None:                       # not in the topology dump: keep the port GUID
                self.s["unresolved"] += 1
                node = g
            self.ports.add((node, p))
            lines += metric_lines(self.ctx.prefix, node, p, v, int(ts))
        t = time.perf_counter()
        sent, dropped = self.ctx.carbon.send(lines)
        self.s["send_s"] += time.perf_counter() - t
        self.s["points"] += sent
        self.s["dropped"] += dropped

    def fail(self) -> None:
        self.s["ok"] = False

    def done(self) -> dict:
        self.s["t1"] = time.time()
        self.s["ports"] = len(self.ports)
        self.s["parse_s"] = round(self.s["parse_s"], 6)
        self.s["send_s"] = round(self.s["send_s"], 6)
        return self.s


def sweep_perfquery(ctx: SweepContext, k: int) -> dict:
    """One sweep the treydock/infiniband_exporter way; returns its stats line (a dict)."""
    sw = _Sweep(ctx, k)
    r = sw.tool(["ibnetdiscover", "--ports"])
    t = time.perf_counter()
    links = parse_ibnetdiscover_ports(r.stdout) if r.ok else []
    switches = switch_ports(links)
    cas = ca_ports(links) if ctx.hca else {}
    sw.s["parse_s"] += time.perf_counter() - t
    sw.s["switches"] = len(switches)
    if not switches:
        sw.fail()
        return sw.done()
    calls = [(g, ps, ["perfquery", "-l", "-x", "-G", f"0x{g:016x}", ",".join(map(str, ps))])
             for g, ps in switches.items()]
    calls += [(g, (p,), ["perfquery", "-x", "-G", f"0x{g:016x}", str(p)]) for g, ps in cas.items() for p in ps]
    pool = ThreadPoolExecutor(max_workers=max(1, ctx.concurrency))
    read = 0
    try:
        futs = {pool.submit(_maybe_run, ctx, args): (g, ps) for g, ps, args in calls}
        for fut in as_completed(futs):
            r = fut.result()
            if r is None:                                   # stopped before it ran
                continue
            sw.account(r)
            if not r.ok:
                continue
            read += 1
            g, ps = futs[fut]
            t = time.perf_counter()
            blocks = parse_perfquery(r.stdout)
            sw.s["parse_s"] += time.perf_counter() - t
            wanted = set(ps)
            sw.emit([(g, port, vals) for _lid, port, vals in blocks if port in wanted], r.returned)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if read == 0:                                       # not one counter read succeeded
        sw.fail()
    if ctx.stop.is_set():
        sw.s["interrupted"] = True
    return sw.done()


def _maybe_run(ctx: SweepContext, args) -> ToolResult | None:
    if ctx.stop.is_set():
        return None
    return ctx.runner.run(args)


def sweep_ibqueryerrors(ctx: SweepContext, k: int) -> dict:
    """One sweep the guilbaults/infiniband-exporter way; returns its stats line (a dict).

    ``ibqueryerrors`` exits 1 when it found ports with errors and 0 when it
    found none or had no SA: success is its summary, not its exit code.
    """
    sw = _Sweep(ctx, k)
    r = sw.tool(list(IQE_ARGS), ok_codes=(0, 1))
    t = time.perf_counter()
    res = parse_ibqueryerrors(r.stdout + "\n" + r.stderr)
    sw.s["parse_s"] += time.perf_counter() - t
    sw.s["pma_failures"] = res.pma_failures
    sw.s["ports_checked"] = res.ports_checked
    sw.s["no_sa"] = res.no_sa
    sw.s["timeouts"] += res.pma_failures
    if not (r.ok and res.complete):
        if r.ok:                        # exit 0 without a sweep ("No SM/SA found"): a failure
            sw.s["tool_failures"] += 1
            sw.s["timeouts"] += 1
        sw.fail()
        return sw.done()
    sw.emit(res.ports, r.returned)
    return sw.done()


MODES = {"perfquery": sweep_perfquery, "ibqueryerrors": sweep_ibqueryerrors}

_TOTALS = ("ports", "points", "dropped", "timeouts", "tool_calls", "tool_failures", "tool_timeouts",
           "output_bytes", "parse_s", "send_s", "resolve_calls", "unresolved")


def run_sweeps(ctx: SweepContext, mode: str, stats_file, *, interval: float, sweeps: int | None = None,
               until: float | None = None) -> dict:
    """Sweep every ``interval`` s until ``sweeps`` are done, ``until`` (unix s) or ``ctx.stop``.

    Sweeps start on a fixed grid ``start + j * interval``; one that overruns
    delays the next, which then starts at once (``late_s`` > 0) and the grid
    slots that passed meanwhile are counted as ``skipped``. Writes one JSON
    line per sweep to ``stats_file`` (an open text file, flushed) and returns
    the final line (also written).
    """
    fn = MODES[mode]
    base = time.time()
    slot = 0
    k = 0
    tot = {key: 0 for key in _TOTALS}
    tot.update(sweeps=0, failed_sweeps=0, late_sweeps=0, skipped_slots=0, sweep_s_max=0.0)
    while not ctx.stop.is_set() and (sweeps is None or k < sweeps):
        due = base + slot * interval
        now = time.time()
        if until is not None and max(now, due) >= until:
            if due > now:
                ctx.stop.wait(max(0.0, until - now))
            break
        overran = k > 0 and now > due            # the previous sweep ended after this one was due
        if due > now:
            if ctx.stop.wait(due - now):
                break
            now = time.time()
        skipped = int(math.floor((now - due) / interval)) if overran else 0
        slot += skipped
        late = now - (base + slot * interval) if overran else 0.0
        s = fn(ctx, k)
        s["slot"] = slot
        s["late"] = overran
        s["late_s"] = round(late, 6)
        s["skipped"] = skipped
        s["duration_s"] = round(s["t1"] - s["t0"], 6)
        stats_file.write(json.dumps(s) + "\n")
        stats_file.flush()
        for key in _TOTALS:
            tot[key] += s[key]
        tot["sweeps"] += 1
        tot["failed_sweeps"] += int(not s["ok"])
        tot["late_sweeps"] += int(overran)
        tot["skipped_slots"] += skipped
        tot["sweep_s_max"] = max(tot["sweep_s_max"], s["duration_s"])
        k += 1
        slot += 1
    final = {"final": True, "mode": mode, "values": "cumulative", "t_end": time.time(), **tot,
             "parse_s": round(tot["parse_s"], 6), "send_s": round(tot["send_s"], 6),
             "carbon_connects": ctx.carbon.connects}
    stats_file.write(json.dumps(final) + "\n")
    stats_file.flush()
    return final


# ------------------------------------------------------------------ entry point
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BenchError(f"ibsim.bench.sweeps: {message}")


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _positive(kind):
    def conv(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return v
    return conv


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m ibsim.bench.sweeps",
                description="Sweep the fabric with infiniband-diags as real exporters do; send to carbon.")
    p.add_argument("--mode", required=True, choices=sorted(MODES))
    p.add_argument("--concurrency", type=_positive(int), default=1, help="perfquery calls at once")
    p.add_argument("--hca", action="store_true", help="perfquery mode: also every CA port")
    p.add_argument("--interval", type=_positive(float), required=True, help="seconds between sweeps")
    end = p.add_mutually_exclusive_group(required=True)
    end.add_argument("--sweeps", type=_positive(int), help="stop after this many sweeps")
    end.add_argument("--until", type=_positive(float), help="stop at this unix time (s)")
    p.add_argument("--carbon", type=_hostport, required=True, help="carbon line receiver HOST:PORT")
    p.add_argument("--proto", choices=["plaintext"], default="plaintext")
    p.add_argument("--prefix", default="ib")
    p.add_argument("--stats", required=True, help="JSON lines file, one line per sweep")
    srv = p.add_mutually_exclusive_group(required=True)
    srv.add_argument("--sockname", help="IBSIM_SOCKNAME of the MAD server")
    srv.add_argument("--udp", type=_hostport, help="MAD server's UDP HOST:PORT")
    p.add_argument("--sim-host", help="node the tools sit on (a CA)")
    p.add_argument("--timeout", type=_positive(float), default=5.0, help="per tool call (s)")
    return p


def main(argv=None) -> int:
    """Entry point of ``python -m ibsim.bench.sweeps``; bad arguments: one line on stderr, exit 2."""
    try:
        opts = build_parser().parse_args(argv)
        if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", opts.prefix):
            raise BenchError(f"ibsim.bench.sweeps: --prefix {opts.prefix!r} is not a dotted metric prefix")
        stats = open(opts.stats, "w")
    except (BenchError, OSError) as exc:
        print(str(exc).splitlines()[0] if str(exc) else "ibsim.bench.sweeps: error", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workdir = tempfile.mkdtemp(prefix="ibsim-sweeps-")
    env = tool_env(opts.sockname, udp=opts.udp, sim_host=opts.sim_host)
    carbon = CarbonLine(*opts.carbon)
    ctx = SweepContext(ToolRunner(env, workdir, opts.timeout), carbon, prefix=opts.prefix,
                       concurrency=opts.concurrency, hca=opts.hca, stop=stop)
    try:
        with stats:
            run_sweeps(ctx, opts.mode, stats, interval=opts.interval, sweeps=opts.sweeps, until=opts.until)
    finally:
        carbon.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
