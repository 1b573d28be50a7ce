"""OpenSM PerfMgr event plugins of the monitoring benchmark: build, configure, check.

Two plugins, C sources shipped beside this module (``plugins/*.c``):

naive
    A re-creation of a 2014 design: everything synchronously inside
    ``report()`` (a regex per event, a new UDP socket per event that is never
    closed, values printed with ``%d``); sends PerfMgr's deltas.
batched
    ``report()`` only queues; the plugin's thread sends cumulative counters
    over one TCP connection to carbon (plaintext or pickle), reconnecting and
    re-sending after failures. PerfMgr's first reading of a port after its
    node came back (a new DB entry: the absolute counter) restarts that port's
    totals instead of being added to them.

:func:`build_plugin` compiles ``lib<library>.so`` with gcc (cached by a hash
of the sources, the flags and the OpenSM version); :func:`opensm_config`
gives the text of ``opensm.conf`` and the environment that load it;
:func:`wait_plugin_loaded` tells whether OpenSM did. Both plugins append
per-sweep statistics (JSON lines, see the benchmark's conventions) to the
file named by ``stats``; :func:`read_stats` reads it back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BenchError, UnknownNameError, lookup

__all__ = ["PLUGINS", "PluginSpec", "SOURCE_DIR", "build_plugin", "opensm_config", "opensm_version",
           "read_stats", "wait_plugin_loaded"]

#: where the C sources are (package data)
SOURCE_DIR = Path(__file__).with_name("plugins")
INCLUDE_DIR = Path("/usr/include/infiniband")
CFLAGS = ("-fPIC", "-shared", "-O2", "-pthread")
#: headers a build needs -> the Debian package that ships them
HEADER_PACKAGES = {"opensm/": "libopensm-dev", "iba/": "libopensm-dev", "complib/": "libopensm-dev",
                   "umad.h": "libibumad-dev", "infiniband/": "libibumad-dev"}


@dataclass(frozen=True)
class PluginSpec:
    """One event plugin.

    Attributes
    ----------
    source : str
        C file under :data:`SOURCE_DIR`.
    library : str
        OpenSM's ``event_plugin_name``: it loads ``lib<library>.so``.
    transport : str
        What it sends to carbon: ``"udp"`` (line protocol over UDP) or ``"tcp"``.
    values : str
        ``"delta"`` or ``"cumulative"``, as its statistics record it.
    """

    source: str
    library: str
    transport: str
    values: str


PLUGINS: dict[str, PluginSpec] = {
    "naive": PluginSpec("naive.c", "ibsim_naive", "udp", "delta"),
    "batched": PluginSpec("batched.c", "ibsim_batched", "tcp", "cumulative"),
}


def _spec(name: str) -> PluginSpec:
    try:
        return lookup(PLUGINS, name, "event plugin")
    except UnknownNameError as e:
        raise BenchError(str(e)) from None


def _header_version(include_dir: Path) -> str | None:
    try:
        text = (include_dir / "opensm" / "osm_version.h").read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r'^\s*#\s*define\s+OSM_VERSION\s+"([^"]+)"', text, re.MULTILINE)
    return m.group(1) if m else None


def opensm_version() -> str:
    """The installed OpenSM's version string (``"OpenSM 3.3.23"``), from ``opensm --version``.

    Raises
    ------
    BenchError
        opensm is not installed or prints no version.
    """
    exe = shutil.which("opensm")
    if not exe:
        raise BenchError("opensm not found: apt-get install opensm")
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise BenchError(f"opensm --version failed: {e}") from None
    m = re.search(r"^(OpenSM \S+)", out, re.MULTILINE)
    if not m:
        raise BenchError("opensm --version printed no 'OpenSM x.y.z' line")
    return m.group(1)


def _package_of(header: str) -> str:
    for key, pkg in HEADER_PACKAGES.items():
        if key in header:
            return pkg
    return "libopensm-dev"


def _compile_error(stderr: str, source: Path) -> BenchError:
    """One line from gcc's output: the missing header and its package, or the first error."""
    m = re.search(r"fatal error: ([^:\s]+): No such file or directory", stderr)
    if m:
        return BenchError(f"building OpenSM event plugin {source.name}: header {m.group(1)} not found: "
                          f"apt-get install {_package_of(m.group(1))}")
    first = next((ln.strip() for ln in stderr.splitlines() if "error" in ln), None)
    first = first or (stderr.strip().splitlines() or ["gcc failed"])[0]
    return BenchError(f"building OpenSM event plugin {source.name} failed: {first}")


def build_plugin(name: str, outdir, *, include_dir=INCLUDE_DIR, cc: str = "gcc") -> Path:
    """Compile event plugin ``name`` into ``outdir/<name>-<hash>/lib<library>.so``.

    The build is cached: the hash covers the sources, the flags, the include
    directory and the OpenSM version string, so a second call returns the
    existing library. The plugin's ``osm_version`` is the header's
    ``OSM_VERSION`` when it defines one, else ``opensm --version``'s.

    Parameters
    ----------
    name : str
        A key of :data:`PLUGINS`.
    outdir : path
        Where the build directories go.
    include_dir : path
        OpenSM's include root (``/usr/include/infiniband``).
    cc : str
        The compiler, found on ``PATH``.

    Returns
    -------
    Path
        The shared library; its directory goes on ``LD_LIBRARY_PATH``.

    Raises
    ------
    BenchError
        Unknown name, no compiler, a missing header (naming its Debian
        package), or a compile error (its first line).
    """
    spec = _spec(name)
    gcc = shutil.which(cc)
    if not gcc:
        raise BenchError(f"{cc} not found on PATH (needed to build the OpenSM event plugin {name!r}): "
                         "apt-get install gcc")
    include_dir = Path(include_dir)
    if not (include_dir / "opensm" / "osm_event_plugin.h").exists():
        raise BenchError(f"header opensm/osm_event_plugin.h not found under {include_dir}: "
                         "apt-get install libopensm-dev libibumad-dev")
    defines = []
    if _header_version(include_dir) is None:
        defines = [f'-DIBSIM_OSM_VERSION="{opensm_version()}"']
    source = SOURCE_DIR / spec.source
    flags = [f"-I{include_dir}", *CFLAGS, *defines]
    h = hashlib.sha256(" ".join([gcc, *flags]).encode())
    for f in sorted(SOURCE_DIR.glob("*.[ch]")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    build_dir = Path(outdir) / f"{name}-{h.hexdigest()[:12]}"
    lib = build_dir / f"lib{spec.library}.so"
    if lib.exists():
        return lib
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = build_dir / f".{lib.name}.{os.getpid()}.tmp"
    try:
        r = subprocess.run([gcc, *flags, "-o", str(tmp), str(source)], capture_output=True, text=True,
                           timeout=300, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        raise BenchError(f"building OpenSM event plugin {source.name}: {cc} failed to run: {e}") from None
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise _compile_error(r.stderr, source)
    tmp.replace(lib)
    return lib


def _carbon_port(spec: PluginSpec, carbon, proto: str) -> tuple[str, int]:
    """(host, port) of carbon's receiver the plugin sends to."""
    if isinstance(carbon, tuple):
        return carbon[0], int(carbon[1])
    ports = carbon.ports
    if spec.transport == "udp":
        if "udp" not in ports:
            raise BenchError("the naive plugin sends over UDP: start carbon with Carbon(..., udp=True)")
        return "127.0.0.1", ports["udp"]
    return "127.0.0.1", ports["pickle" if proto == "pickle" else "line"]


def opensm_config(name: str, *, carbon, stats, prefix: str = "ib", sweep_time_s: int = 10,
                  outdir=None, lib: Path | None = None, proto: str = "plaintext", gap_s: float | None = None,
                  queue: int = 200000, batch: int = 5000, flush_s: float = 10.0,
                  sweep_interval_s: int = 10, extra: dict | None = None) -> tuple[str, dict]:
    """OpenSM configuration that runs PerfMgr and loads event plugin ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`PLUGINS`.
    carbon : Carbon or (host, port)
        Where the plugin sends: a :class:`~ibsim.bench.carbon.Carbon` (its UDP
        port for ``naive``, which needs ``udp=True``; its line or pickle port for
        ``batched``), or an explicit address.
    stats : path
        The per-sweep statistics file (JSON lines) the plugin appends to.
    prefix : str
        First component of the metric names.
    sweep_time_s : int
        PerfMgr's sweep period (s).
    outdir : path, optional
        Build directory for :func:`build_plugin` (default: ``stats``'s directory);
        not used when ``lib`` is given.
    lib : Path, optional
        An already built library.
    proto : str
        ``"plaintext"`` or ``"pickle"`` (batched only).
    gap_s : float, optional
        Silence that ends a sweep in the statistics (s); default 40 % of ``sweep_time_s``.
    queue, batch : int
        Queue capacity and events per send (batched only).
    flush_s : float
        How long ``delete()`` waits for carbon when OpenSM stops (s, batched only).
    sweep_interval_s : int
        OpenSM's light sweep interval (s).
    extra : dict, optional
        More ``opensm.conf`` entries (``{"perfmgr_max_outstanding_queries": 500}``).

    Returns
    -------
    (str, dict)
        The text of ``opensm.conf`` and the environment to add (``LD_LIBRARY_PATH``),
        for :class:`~ibsim.bench.ofed.OpenSM`'s ``config=`` and ``env=``.
    """
    spec = _spec(name)
    if proto not in ("plaintext", "pickle"):
        raise BenchError(f"unknown carbon protocol {proto!r}; choose one of: pickle, plaintext")
    if proto == "pickle" and spec.transport == "udp":
        raise BenchError("the naive plugin sends plaintext over UDP only (proto='plaintext')")
    stats = Path(stats)
    if lib is None:
        lib = build_plugin(name, outdir if outdir is not None else stats.parent)
    host, port = _carbon_port(spec, carbon, proto)
    gap = gap_s if gap_s is not None else 0.4 * sweep_time_s
    options = [f"host={host}", f"port={port}", f"prefix={prefix}", f"stats={stats}", f"gap={gap:g}"]
    if spec.transport == "tcp":
        options += [f"proto={proto}", f"queue={queue}", f"batch={batch}", f"flush={flush_s:g}"]
    entries = {"perfmgr": "TRUE", "perfmgr_sweep_time_s": int(sweep_time_s),
               "sweep_interval": int(sweep_interval_s), "event_plugin_name": spec.library,
               "event_plugin_options": " ".join(options), **(extra or {})}
    text = "".join(f"{k} {v}\n" for k, v in entries.items())
    paths = [str(Path(lib).parent)]
    if os.environ.get("LD_LIBRARY_PATH"):
        paths.append(os.environ["LD_LIBRARY_PATH"])
    return text, {"LD_LIBRARY_PATH": os.pathsep.join(paths)}


#: what OpenSM logs when a plugin does not load
LOAD_ERRORS = ("ERR 1000: cannot load plugin", "Failed to open event plugin", "Error loading plugin")


def wait_plugin_loaded(osm, name: str, timeout: float = 60.0) -> None:
    """Wait until OpenSM (an :class:`~ibsim.bench.ofed.OpenSM`) has loaded plugin ``name``.

    Raises
    ------
    BenchError
        OpenSM logged that it could not load the plugin (with the reason it
        gave), exited, or said nothing within ``timeout`` s.
    """
    spec = _spec(name)
    loaded = f"ibsim event plugin {name} loaded"
    deadline = time.monotonic() + timeout
    while True:
        text = osm.log_text()
        if loaded in text:
            return
        bad = [ln.strip() for ln in text.splitlines() if any(e in ln for e in LOAD_ERRORS)
               or "ibsim " + name + " plugin:" in ln]
        if bad:
            raise BenchError(f"OpenSM did not load event plugin lib{spec.library}.so: "
                             + " / ".join(ln.split(" -> ", 1)[-1] for ln in bad[:3]))
        if osm.proc.poll() is not None:
            raise BenchError(f"OpenSM exited ({osm.proc.returncode}) before loading event plugin "
                             f"lib{spec.library}.so; see {osm.log}")
        if time.monotonic() > deadline:
            raise BenchError(f"OpenSM did not report loading event plugin lib{spec.library}.so within "
                             f"{timeout:g} s; see {osm.log}")
        time.sleep(0.05)
