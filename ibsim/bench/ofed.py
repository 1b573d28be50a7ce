"""Running the real OFED tools against a server: environment, processes, OpenSM.

Used by the monitoring benchmark (:mod:`ibsim.bench`), the tests,
``benchmarks/mad.py`` and scripts. Every
process is started here with its own environment (``LD_PRELOAD`` of
libumad2sim, ``IBSIM_SOCKNAME`` or the UDP variables, ``SIM_HOST``), in a
working directory of the caller's choosing (umad2sim writes ``./sys-<pid>``
there), and stopped by its PID. Nothing is ever killed by name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

__all__ = [
    "UMAD2SIM",
    "OpenSM",
    "have_tools",
    "log_span_s",
    "run_tool",
    "stop_process",
    "tool_env",
    "wait_for_unix_socket",
]

UMAD2SIM = os.environ.get("IBSIM_UMAD2SIM", "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so")


def have_tools(*names: str) -> bool:
    """libumad2sim is installed and every named program is on PATH."""
    return os.path.exists(UMAD2SIM) and all(shutil.which(n) for n in names)


def tool_env(sockname: str | None = None, *, udp: tuple[str, int] | None = None,
             sim_host: str | None = None, base: dict | None = None) -> dict:
    """Environment for a client: the preload plus where the server is."""
    env = {k: v for k, v in (base if base is not None else os.environ).items()
           if not k.startswith(("IBSIM_", "SIM_", "OSM_")) and k != "LD_PRELOAD"}
    env["LD_PRELOAD"] = UMAD2SIM
    if udp is not None:
        env["IBSIM_SERVER_NAME"] = udp[0]
        env["IBSIM_SERVER_PORT"] = str(udp[1])
    if sockname is not None:
        env["IBSIM_SOCKNAME"] = sockname
    if sim_host:
        env["SIM_HOST"] = sim_host
    return env


def run_tool(args, *, sockname: str | None = None, udp=None, sim_host: str | None = None,
             cwd=None, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run one tool (``["perfquery", "-x", "5", "1"]``) to completion; text output captured."""
    return subprocess.run(list(args), env=tool_env(sockname, udp=udp, sim_host=sim_host),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Terminate one process we started (by its PID), kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def wait_for_unix_socket(name: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> bool:
    """Wait until an abstract unix socket ``@name`` is bound (reads /proc/net/unix)."""
    want = f"@{name}@"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with open("/proc/net/unix") as fh:
                if any(line.rstrip().endswith(want) for line in fh):
                    return True
        except OSError:
            return True
        time.sleep(0.02)
    return False


_LOG_TIME = re.compile(r"^\w{3} +\d+ (\d\d):(\d\d):(\d\d) (\d{6}) ")


def _stamp(line: str) -> float | None:
    m = _LOG_TIME.match(line)
    if not m:
        return None
    h, mi, s, us = (int(x) for x in m.groups())
    return h * 3600 + mi * 60 + s + us / 1e6


def log_span_s(text: str, until: str = "SUBNET UP") -> float | None:
    """Seconds from an OpenSM log's first timestamp to the first line containing ``until``."""
    first = None
    for line in text.splitlines():
        t = _stamp(line)
        if t is None:
            continue
        if first is None:
            first = t
        if until in line:
            return (t - first) % 86400
    return None


class OpenSM:
    """One OpenSM process attached through umad2sim, with private files.

    Parameters
    ----------
    workdir : path
        Everything goes under it: the log, cache and dump directories, an
        empty config file, and umad2sim's ``sys-<pid>`` tree.
    sockname, udp : where the server is
    sim_host : str
        Node OpenSM sits on (a CA, by id, GUID or description).
    routing : str
        OpenSM's ``-R`` engine.
    extra : list of str
        More OpenSM options.
    config : str
        Text of OpenSM's config file (``-F``), e.g. ``"perfmgr TRUE\n"``; empty by default.
    env : dict, optional
        More environment variables (``LD_LIBRARY_PATH`` for an event plugin).
    """

    def __init__(self, workdir, *, sockname: str | None = None, udp=None, sim_host: str | None = None,
                 routing: str = "minhop", extra=(), config: str = "", env: dict | None = None):
        self.dir = Path(workdir)
        self.run_dir = self.dir / "run"
        self.dump_dir = self.dir / "dump"
        for d in (self.run_dir, self.dump_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "opensm.log"
        conf = self.dir / "opensm.conf"
        conf.write_text(config)
        extra_env = env or {}
        env = tool_env(sockname, udp=udp, sim_host=sim_host)
        env.update(extra_env)
        env["OSM_CACHE_DIR"] = str(self.dump_dir)
        env["OSM_TMP_DIR"] = str(self.dump_dir)
        self.cmd = ["opensm", "-F", str(conf), "-f", str(self.log), "-d2", "-D", "0x43",
                    "--dump_files_dir", str(self.dump_dir), "-R", routing, *extra]
        self._out = open(self.dir / "opensm.out", "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=self.run_dir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def count(self, text: str) -> int:
        """How often ``text`` occurs in the log so far."""
        return self.log_text().count(text)

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 60.0) -> float:
        """Wait until ``text`` has appeared ``count`` times; wall seconds since start.

        Raises
        ------
        RuntimeError
            When OpenSM exits first or the time runs out (with the log's tail).
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.count(text) >= count:
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                raise RuntimeError(f"opensm exited ({self.proc.returncode}) before {text!r}:\n"
                                   + self.tail())
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {text!r} x{count} from opensm within {timeout:.0f} s:\n" + self.tail())
            time.sleep(0.02)

    def wait_up(self, timeout: float = 60.0, count: int = 1) -> float:
        """Wait for SUBNET UP; wall seconds from launch."""
        return self.wait_for("SUBNET UP", count=count, timeout=timeout)

    def up_span_s(self) -> float | None:
        """OpenSM start to SUBNET UP from the log's own timestamps."""
        return log_span_s(self.log_text())

    def tail(self, n: int = 30) -> str:
        return "".join(self.log_text().splitlines(True)[-n:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s (an event plugin's ``delete()`` runs in between)."""
        stop_process(self.proc, timeout=timeout)
        self._out.close()

    def __enter__(self) -> OpenSM:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
