"""The containers' logs (slurmctld, slurmd, the IB health check) -> ``log`` events.

:class:`LogFollower` follows ``docker logs --follow --timestamps`` of each
container it is given, one thread per container, and turns every line into
``sim.note("log", {"host", "program", "level", "message"}, wall_time=...)``:
the Logstash exporter then carries the cluster's logs beside the fabric's
and the jobs' events. A container that stops is followed again when it
runs again, from the last line seen (no line twice, none lost while the
daemon keeps them).

Slurm's daemons in the foreground write ``slurmctld: error: ...`` and
``slurmd-node001: ...``; the health check writes ``ibsim-nhc: ...``. The
word before the first colon is the program (a ``-<host>`` suffix dropped),
the next ``error:``/``warning:``/``debug:``/``fatal:`` the level (default
``info``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import threading
import time

from .engine import close_streams, docker_errors

__all__ = ["LogFollower", "parse_log_line"]

log = logging.getLogger(__name__)

_PROGRAM = re.compile(r"^([A-Za-z][\w.\-]*):\s+(.*)$")
_LEVEL = re.compile(r"^(error|warning|debug\d?|fatal|verbose|info):\s*(.*)$", re.IGNORECASE)
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$")


def _epoch(ts: str) -> float | None:
    m = _TS.match(ts)
    if m is None:
        return None
    base = _dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def parse_log_line(line: str, host: str, default_program: str) -> dict | None:
    """One ``docker logs --timestamps`` line -> ``{"time", "host", "program", "level", "message"}``.

    ``time`` is epoch seconds (None when the line has no timestamp). Empty
    lines give None.
    """
    ts, _, rest = line.partition(" ")
    t = _epoch(ts)
    if t is None:
        rest, t = line, None
    rest = rest.rstrip("\r\n")
    if not rest.strip():
        return None
    program, msg = default_program, rest
    m = _PROGRAM.match(rest)
    if m is not None and not _LEVEL.match(rest):
        program, msg = m.group(1), m.group(2)
        if program.endswith("-" + host):
            program = program[: -len(host) - 1]
    level = "info"
    lm = _LEVEL.match(msg)
    if lm is not None:
        level = lm.group(1).lower().rstrip("0123456789")
        msg = lm.group(2)
    return {"time": t, "host": host, "program": program, "level": level, "message": msg.strip()}


class LogFollower:
    """Follow containers' logs into ``note("log", ...)``.

    Parameters
    ----------
    containers : dict
        Hostname -> (SDK container, default program name).
    note : callable
        ``note(kind, details, *, node_desc=None, wall_time=None)``, e.g. ``Simulation.note``.
    since : float, optional
        Epoch seconds of the first line to take (default: now).

    Attributes
    ----------
    lines : int
        Lines turned into events so far.
    """

    def __init__(self, containers: dict, note, *, since: float | None = None):
        self.containers = dict(containers)
        self.note = note
        self.since = time.time() if since is None else float(since)
        self.lines = 0
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._streams: dict[str, object] = {}
        self._lock = threading.Lock()

    def start(self) -> "LogFollower":
        for host, (container, program) in self.containers.items():
            t = threading.Thread(target=self._follow, args=(host, container, program), daemon=True,
                                 name=f"ibsim-logs-{host}")
            t.start()
            self._threads.append(t)
        return self

    def _follow(self, host: str, container, program: str) -> None:
        errors = docker_errors()
        last = self.since
        while not self._closing:
            try:
                container.reload()
                if container.status != "running":
                    time.sleep(0.5)
                    continue
                stream = container.logs(stream=True, follow=True, timestamps=True, since=last)
            except errors.NotFound:
                return
            except Exception as exc:  # noqa: BLE001 - the engine may be busy; try again
                log.debug("logs of %s: %s", host, exc)
                time.sleep(1.0)
                continue
            with self._lock:
                self._streams[host] = stream
            buf = b""
            resume = last                       # lines up to here were taken by an earlier stream
            try:
                for chunk in stream:
                    if self._closing:
                        break
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for raw in lines:
                        rec = parse_log_line(raw.decode(errors="replace"), host, program)
                        if rec is None or (rec["time"] is not None and rec["time"] <= resume):
                            continue
                        if rec["time"] is not None:
                            last = rec["time"]
                        t = rec.pop("time")
                        self.note("log", rec, wall_time=t)
                        self.lines += 1
            except Exception as exc:  # noqa: BLE001 - the stream ends when the container stops
                if not self._closing:
                    log.debug("log stream of %s ended: %s", host, exc)
            finally:
                with self._lock:
                    self._streams.pop(host, None)
            if not self._closing:
                time.sleep(0.5)

    def close(self) -> None:
        """Stop following (before the containers are removed)."""
        self._closing = True
        with self._lock:
            streams = list(self._streams.values())
        close_streams(streams, self._threads)
        self._threads.clear()
