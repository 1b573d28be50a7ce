"""``python -m ibsim run SCENARIO``: run a scenario and record it.

Attached to the parser of :mod:`ibsim.cli` by :func:`add_parsers`. The run
directory is checked and created before any simulation work (an unusable or
non-empty one: exit code 2, naming it; ``--overwrite`` replaces a previous
run in it) and its ``metadata.json`` says ``"status": "running"`` until the
results are written. Shows a progress bar on a terminal (stderr, ``\\r``
updates) and plain log lines otherwise (about every 10 % of the run).
SIGINT (Ctrl-C), SIGTERM (``timeout``, systemd, ``docker stop``) and SIGHUP
(the terminal closed) stop the run cleanly at the next tick and the results
are still written, ``"status": "interrupted"``; the exit code is then 128 +
the signal's number (130, 143, 129). A second signal aborts without writing
the results (``metadata.json`` says ``"failed"``). Errors are raised as
:class:`~ibsim.errors.IbsimError` and printed by ``cli.main``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import time

from .. import export
from ..errors import ScenarioError
from ..units import format_duration, parse_duration

__all__ = ["add_parsers", "cmd_run", "Progress"]


class Progress:
    """Progress reporting: a ``\\r`` bar on a terminal, log lines every ~10 % otherwise.

    Parameters
    ----------
    end_s : float
        Simulated end time [s].
    stream : file
        Where to write (stderr).
    tty : bool, optional
        Force bar (True) or log lines (False); default: ``stream.isatty()``.
    min_interval : float
        Seconds between two bar redraws [s].
    """

    def __init__(self, end_s: float, stream=None, *, tty: bool | None = None,
                 min_interval: float = 0.1):
        self.stream = stream if stream is not None else sys.stderr
        self.end_s = float(end_s)
        self.tty = self.stream.isatty() if tty is None else tty
        self.min_interval = min_interval
        self._wall0 = time.monotonic()
        self._ticks0 = None
        self._last = -math.inf
        self._next_pct = 10
        self._drawn = False

    def _rate(self, sim) -> float:
        dt = time.monotonic() - self._wall0
        return (sim.ticks - self._ticks0) / dt if dt > 0 else 0.0

    def __call__(self, sim) -> None:
        if self._ticks0 is None:
            self._ticks0 = sim.ticks - 1
        t = sim.time_s
        frac = min(t / self.end_s, 1.0) if self.end_s > 0 else 1.0
        if self.tty:
            now = time.monotonic()
            if now - self._last < self.min_interval and frac < 1.0:
                return
            self._last = now
            width = 28
            fill = int(round(frac * width))
            bar = "#" * fill + "-" * (width - fill)
            self.stream.write(f"\r[{bar}] {t:8.1f}/{self.end_s:g} s {frac * 100:3.0f}%  "
                              f"{self._rate(sim):8,.0f} ticks/s  {len(sim.events):5d} events ")
            self.stream.flush()
            self._drawn = True
        else:
            pct = frac * 100
            if pct + 1e-9 >= self._next_pct:
                while self._next_pct <= pct + 1e-9:
                    self._next_pct += 10
                self.stream.write(f"ibsim: t={t:.1f}/{self.end_s:g} s ({pct:.0f}%), "
                                  f"{self._rate(sim):,.0f} ticks/s, {len(sim.events)} events\n")
                self.stream.flush()

    def clear(self) -> None:
        """Blank the bar's line (before a log message); it is redrawn on the next update."""
        if self.tty and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._last = -math.inf

    def close(self) -> None:
        """End the bar's line."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


class _ClearBar(logging.Filter):
    """A log filter that blanks the progress bar before a message is printed."""

    def __init__(self, progress: Progress):
        super().__init__()
        self.progress = progress

    def filter(self, record) -> bool:
        self.progress.clear()
        return True


#: signals that stop a run like Ctrl-C: the results are written, exit code 128 + the signal's number
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _StopOnSignals:
    """While active, the first of :data:`STOP_SIGNALS` asks the simulation to stop (the results
    are then written); a second one raises KeyboardInterrupt (abort without writing them).

    A signal that arrives before the simulation is attached stops it before its first tick.
    Signals the process ignores (``nohup`` ignores SIGHUP) stay ignored.
    """

    def __init__(self):
        self.sim = None
        self.signum: int | None = None
        self._old: dict = {}

    @property
    def hit(self) -> bool:
        """A stop signal arrived."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """Name of the signal that stopped the run (``SIGTERM``)."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def attach(self, sim) -> None:
        """Stop ``sim`` on the next signal (or now, when one already came)."""
        self.sim = sim
        if self.hit:
            sim.stop()

    def _handler(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.signum = signum
        if self.sim is not None:
            self.sim.stop()

    def __enter__(self):
        for s in STOP_SIGNALS:
            try:
                if signal.getsignal(s) is signal.SIG_IGN:
                    continue
                self._old[s] = signal.signal(s, self._handler)
            except ValueError:      # not the main thread: Ctrl-C raises KeyboardInterrupt
                break
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
        return False


@contextlib.contextmanager
def _bar_aware_logging(progress: Progress | None):
    """While the bar is shown, log records first blank its line."""
    handlers = logging.getLogger().handlers if progress is not None and progress.tty else []
    filt = _ClearBar(progress) if handlers else None
    for h in handlers:
        h.addFilter(filt)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(filt)


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return x


def _duration(text: str) -> float:
    try:
        s = parse_duration(text)
    except ScenarioError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    if s <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return s


def _seed(text: str) -> int:
    try:
        n = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return n


def add_parsers(sub) -> None:
    """Add the ``run`` subcommand to ``python -m ibsim``'s subparsers."""
    p = sub.add_parser(
        "run", help="run a scenario and record it (counters, events, series, plot)",
        description="Run a scenario file and write a run directory: metadata.json, events.jsonl, "
                    "counters.csv, the sampled series, fabric_series.csv, overview.png and "
                    "summary.txt. Ctrl-C, SIGTERM or SIGHUP stops early and still writes the results "
                    "(exit code 128 + the signal's number); metadata.json's status says whether the "
                    "run is complete.")
    p.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file (see topologies/)")
    p.add_argument("--until", type=_duration, metavar="DURATION",
                   help="simulated end time, e.g. 30s (default: the scenario's clock.duration)")
    p.add_argument("--seed", type=_seed, metavar="N", help="seed (default: the scenario's)")
    p.add_argument("--out", metavar="DIR",
                   help="run directory to write, checked and created before the run; it must be empty "
                        "(default: a new <output>/<name>-<UTC time>/)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the previous run in a non-empty --out (its files are removed first)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--fast", action="store_true",
                      help="run as fast as possible (ignore the scenario's realtime)")
    pace.add_argument("--realtime", type=_positive_float, metavar="FACTOR",
                      help="pace at FACTOR simulated seconds per wall second")
    p.add_argument("--topology", metavar="FILE",
                   help="topology file replacing the scenario's topology")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress and no summary; print only the run directory")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="skip overview.png")
    export.add_cli_arguments(p)
    mad = p.add_argument_group("management plane (linux-rdma ibsim protocol, for OpenSM and infiniband-diags)")
    mad.add_argument("--mad-server", action="store_true",
                     help="serve MADs while simulating (scenario: mad_server:); paces at real time "
                          "unless --fast or --realtime is given")
    mad.add_argument("--sockname", metavar="NAME",
                     help="IBSIM_SOCKNAME of the clients (default: $IBSIM_SOCKNAME or 'sim')")
    mad.add_argument("--udp", type=int, metavar="PORT",
                     help="serve over UDP from this base port instead (IBSIM_SERVER_NAME/IBSIM_SERVER_PORT)")
    p.set_defaults(func=cmd_run)
    p.error = _usage_error


def _usage_error(message: str):
    """Usage errors as one line, like every other ibsim error (exit code 2)."""
    sys.stderr.write(f"ibsim: error: run: {message} (see: python -m ibsim run --help)\n")
    sys.exit(2)


def _mad_options(args, scn) -> dict | None:
    """MAD server options from the command line and the scenario, or None."""
    opts = dict(scn.mad_server) if scn.mad_server is not None else None
    if args.mad_server or args.sockname or args.udp:
        opts = opts or {}
        if args.sockname:
            opts["sockname"] = args.sockname
        if args.udp:
            opts["udp"] = args.udp
    return opts


def cmd_run(args) -> int:
    """Run the scenario of ``args``; returns 0, or 128 + the signal's number when stopped by one."""
    from ..run import RunDir
    from ..scenario import Scenario

    scn = Scenario.from_file(args.scenario)
    mad_opts = _mad_options(args, scn)
    realtime = ... if not (args.fast or args.realtime) else (None if args.fast else args.realtime)
    if mad_opts is not None and realtime is ... and scn.clock.realtime is None:
        realtime = 1.0                  # serving tools: simulated time passes like real time
    scn = scn.with_overrides(seed=args.seed, until=args.until, realtime=realtime,
                             topology_file=args.topology)
    end = scn.clock.duration_s
    if end is None:
        raise ScenarioError("the scenario has no clock.duration; pass --until (e.g. --until 30s)",
                            source=args.scenario)
    with _StopOnSignals() as guard:
        # before any simulation work: an unusable or non-empty run directory is exit code 2
        rd = RunDir.prepare(args.out, parent=scn.output.dir, name=scn.name,
                            overwrite=getattr(args, "overwrite", False))
        return _run(args, scn, end, mad_opts, rd, guard)


def _run(args, scn, end: float, mad_opts, rd, guard) -> int:
    """Build, run and record into the prepared run directory ``rd``."""
    from ..run import Recorder

    quiet = bool(getattr(args, "quiet", False))
    wall0 = time.monotonic()
    server = stage = None
    try:
        sim = scn.build()
        out = scn.output
        rec = Recorder(sim, every=out.every_s, max_rows=out.max_rows)
        rec.start(rd)                         # metadata.json: "status": "running"
        if mad_opts is not None:
            from ..mad import start_mad_server
            server = start_mad_server(sim, **mad_opts)
        specs = export.specs_from_cli(args) + list(scn.exporters)
        stage = export.attach(sim, specs, every=out.every_s, until=end, realtime=scn.clock.realtime) \
            if specs else None
    except BaseException:
        if server is not None:
            server.close()
        rd.discard()                          # nothing ran: leave no run directory behind
        raise
    guard.attach(sim)
    err = sys.stderr
    if not quiet:
        if server is not None:
            if server.udp is not None:
                where = f"IBSIM_SERVER_NAME={server.host} IBSIM_SERVER_PORT={server.udp}"
            else:
                where = f"IBSIM_SOCKNAME={server.base}"
            err.write(f"ibsim: serving MADs: LD_PRELOAD=libumad2sim.so {where} <tool>\n")
        s = sim.topology.summary()
        pace = "as fast as possible" if scn.clock.realtime is None else \
            f"at {scn.clock.realtime:g}x real time"
        err.write(f"ibsim: running {scn.name}: {s['switches']} switches, {s['cas']} CAs, "
                  f"{len(scn.traffic)} jobs, {len(scn.faults)} faults; seed {sim.seed}; "
                  f"until {format_duration(end)} {pace} (Ctrl-C stops and writes the results)\n")
        err.flush()
    progress = None if quiet else Progress(end, err)
    try:
        with _bar_aware_logging(progress):
            try:
                if not guard.hit:
                    sim.run(end, realtime=scn.clock.realtime, progress=progress)
            except KeyboardInterrupt:
                if guard.hit:             # a second signal: abort without writing the results
                    raise
                guard.signum = signal.SIGINT   # no handler (not the main thread): still write
            finally:
                if progress is not None:
                    progress.close()
                exporter_stats = stage.close() if stage is not None else {}
                if server is not None:
                    server.close()
        interrupted = guard.hit
        reason = f"{guard.name} at t={sim.time_s:g} s" if interrupted else None
        if interrupted:
            err.write(f"ibsim: interrupted at t={sim.time_s:g} s ({guard.name}); writing the results\n")
        result = rec.write(wall_s=time.monotonic() - wall0, interrupted=interrupted, reason=reason,
                           plot=getattr(args, "plot", True),
                           extra={"exporters": exporter_stats} if exporter_stats else None)
    except KeyboardInterrupt:
        # metadata.json says why, unless the final one is written already
        rec.fail(f"aborted by a second signal at t={sim.time_s:g} s (after {guard.name}); "
                 f"results not written")
        raise
    except BaseException as exc:
        rec.fail(f"stopped at t={sim.time_s:g} s: {type(exc).__name__}: {exc}")
        raise
    # after SIGHUP the terminal may be gone: the results are written, the printing is best effort
    with contextlib.suppress(OSError) if guard.signum == signal.SIGHUP else contextlib.nullcontext():
        _print_result(result, exporter_stats, quiet)
    return 128 + guard.signum if interrupted else 0


def _print_result(result, exporter_stats: dict, quiet: bool) -> None:
    path = str(result.path)
    if quiet:
        print(path)
    else:
        print(result.summary, end="")
        from ..export import summary_line
        for label, st in exporter_stats.items():
            print(summary_line(label, st))
        print(f"\nrun directory: {path}" + (os.sep if not path.endswith(os.sep) else ""))
    sys.stdout.flush()
