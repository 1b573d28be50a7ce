"""The run directory on disk: checked and created before a run, ``metadata.json`` first and last.

:meth:`RunDir.prepare` runs before any simulation work. It refuses, with an
:class:`~ibsim.errors.OutputError` naming the path and the reason, a
directory that cannot hold a run: a file in its place, a path on a kernel
pseudo-filesystem (``/proc``, ``/sys``), one it may not create or write
(permission, read-only filesystem, no space), and a directory that is not
empty unless ``overwrite`` is given. With ``overwrite`` the files of the old
run are removed first (a directory holding anything else is still refused),
so no stale ``overview.png`` sits beside a new ``metadata.json``. Without an
explicit path a fresh ``<parent>/<name>-<UTC time>/`` is made (``-2``,
``-3`` ... when taken), so the default never reuses a directory.

``metadata.json`` says whether the run directory is complete. It is written
when the run starts (``"status": "running"``) and replaced last, when every
other file is written (``"complete"``, ``"interrupted"`` or ``"failed"``,
with ``"status_reason"``), both times atomically: a temporary file in the
directory, flushed to disk, renamed over it. So that a disk that fills
during the run still takes the final update, :meth:`RunDir.reserve` keeps a
reserve file (zeros, :data:`RESERVE_MIN_BYTES` or more) from the start and
:meth:`RunDir.release` frees it just before that update; when a file cannot
be written its partial copy is removed too. A ``metadata.json`` that still
says ``"running"`` after the process ended marks a run that was killed (or a
disk too full even for that). :func:`load_run` reads a run back.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError
from .jobs import read_jobs_csv
from .series import read_csv, read_series

__all__ = ["RunDir", "RunResult", "load_run", "run_dir_name", "write_json_atomic", "json_default",
           "RUN_FILES", "RUN_STATUSES", "RESERVE_MIN_BYTES"]

#: the files a run writes into its directory
RUN_FILES = ("metadata.json", "events.jsonl", "counters.csv", "series.parquet", "series.csv.gz",
             "fabric_series.csv", "overview.png", "summary.txt", "jobs.csv")
#: values of ``metadata.json``'s ``status``
RUN_STATUSES = ("running", "complete", "interrupted", "failed")
#: kernel interfaces, not storage: a run directory there is refused up front
_PSEUDO_FS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "debugfs", "tracefs",
                        "securityfs", "pstore", "bpf", "configfs", "efivarfs", "fusectl", "mqueue",
                        "binfmt_misc", "nsfs", "autofs", "rpc_pipefs", "selinuxfs"})
_TMP_SUFFIX = ".tmp"
_RESERVE = ".metadata.json.reserve" + _TMP_SUFFIX
#: smallest reserve kept for the final metadata.json [bytes]
RESERVE_MIN_BYTES = 64 * 1024


def run_dir_name(name: str, when: _dt.datetime | None = None) -> str:
    """``<name>-<UTC time>`` (``fat-tree-20240501T120000Z``)."""
    when = when or _dt.datetime.now(_dt.timezone.utc)
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "run"
    return f"{safe}-{when.strftime('%Y%m%dT%H%M%SZ')}"


def os_reason(exc: OSError) -> str:
    """``exc`` as a short reason: ``permission denied``, ``read-only file system`` ..."""
    text = (exc.strerror or str(exc)).strip()
    return text[:1].lower() + text[1:]


def json_default(obj):
    """JSON for numpy scalars and arrays, sets, tuples and dates (``json.dump(default=...)``)."""
    import numpy as np
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    return str(obj)


def write_json_atomic(path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically: a temporary file beside it, fsync, rename.

    Readers see the old file or the new one, never a part of either; when
    the write fails (e.g. ``ENOSPC``) the old file stays and the temporary
    one is removed.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, default=json_default)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def _fs_type(path: Path) -> str | None:
    """Filesystem type of the mount holding ``path`` (from ``/proc/self/mountinfo``), or None."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return None
    p = str(path)
    best, kind = "", None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mnt = fields[4].replace("\\040", " ")
        inside = p == mnt or p.startswith(mnt.rstrip("/") + "/")
        if inside and len(mnt) >= len(best):
            best, kind = mnt, right.split()[0]
    return kind


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (lexically; ``..`` is resolved first)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and not p.is_symlink() and p != p.parent:
        p = p.parent
    return p


def _is_ours(name: str) -> bool:
    """A file a run writes (or a temporary file of one)."""
    return name in RUN_FILES or (name.startswith(".") and name.endswith(_TMP_SUFFIX)
                                 and any(name.startswith(f".{f}.") for f in RUN_FILES))


class RunDir:
    """A run directory that was checked and created for a run (see the module docstring).

    Attributes
    ----------
    path : Path
        The directory.
    created : list of Path
        Directories :meth:`prepare` created (deepest last), removed again by
        :meth:`discard`.
    """

    def __init__(self, path, created=()):
        self.path = Path(path)
        self.created = list(created)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ---------------------------------------------------------- preparing
    @classmethod
    def prepare(cls, out=None, *, parent="runs", name: str = "run", overwrite: bool = False) -> "RunDir":
        """Check and create a run directory, before any simulation work.

        Parameters
        ----------
        out : str or Path, optional
            The run directory. It may exist only when empty, or, with
            ``overwrite``, when it holds only a run's files (they are removed).
            Default: a fresh ``<parent>/<name>-<UTC time>/``.
        parent : str or Path
            Parent of the default run directory.
        name : str
            Scenario name of the default run directory.
        overwrite : bool
            Replace the run in a non-empty ``out``.

        Raises
        ------
        OutputError
            Naming the path and why it cannot hold the run (exit code 2).
        """
        if out is None:
            parent = Path(parent)
            cls._check_location(parent, parent)
            created = cls._make(parent, parent)
            while True:
                stamp = run_dir_name(name)
                path, i = parent / stamp, 2
                try:
                    while path.exists():
                        path, i = parent / f"{stamp}-{i}", i + 1
                    path.mkdir()
                    break
                except FileExistsError:          # taken by a concurrent run meanwhile: next name
                    continue
                except OSError as exc:
                    cls._undo(created)
                    raise OutputError(path, f"cannot create the run directory: {os_reason(exc)}") from None
            rd = cls(path, created + [path])
        else:
            path = Path(out)
            cls._check_location(path, path)
            if path.is_dir():
                cls._clear(path, overwrite)
            rd = cls(path, cls._make(path, path))
        rd._probe()
        return rd

    @staticmethod
    def _check_location(path: Path, shown: Path) -> None:
        """A file in the way, or a pseudo-filesystem: refused before anything is created."""
        anc = _existing_ancestor(path)
        if anc.exists() and not anc.is_dir():
            where = "it is a file" if anc == Path(os.path.abspath(path)) else f"{anc} is a file"
            raise OutputError(shown, f"cannot be a run directory: {where}, not a directory")
        kind = _fs_type(anc.resolve())
        if kind in _PSEUDO_FS:
            raise OutputError(shown, f"is on the {kind} pseudo-filesystem (kernel interfaces, not "
                                     f"storage); choose a directory on a disk")

    @staticmethod
    def _make(path: Path, shown: Path) -> list[Path]:
        """mkdir -p ``path``; returns the directories created (deepest last)."""
        missing = []
        p = Path(os.path.abspath(path))
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            RunDir._undo(list(reversed(missing)))
            where = "" if exc.filename in (None, str(path)) else f" {exc.filename}"
            raise OutputError(shown, f"cannot create{where}: {os_reason(exc)}") from None
        return list(reversed(missing))

    @staticmethod
    def _clear(path: Path, overwrite: bool) -> None:
        """Refuse a non-empty directory, or with ``overwrite`` remove the old run's files."""
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise OutputError(path, f"cannot list the directory: {os_reason(exc)}") from None
        if not names:
            return
        if not overwrite:
            shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
            raise OutputError(path, f"is not empty ({shown}); pass --overwrite to replace the run in "
                                    f"it, or choose another directory")
        foreign = [n for n in names if not _is_ours(n) or not (path / n).is_file()]
        if foreign:
            shown = ", ".join(repr(n) for n in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise OutputError(path, f"holds files that are not a run's ({shown}); --overwrite replaces "
                                    f"only a previous run: choose another directory")
        for n in names:
            try:
                (path / n).unlink()
            except OSError as exc:
                raise OutputError(path / n, f"cannot remove the old run's file: {os_reason(exc)}") from None

    def _probe(self) -> None:
        """Can the run write here? Writing the reserve (see :meth:`reserve`) tells, space included."""
        try:
            self.reserve(RESERVE_MIN_BYTES)
        except OSError as exc:
            self.discard()
            raise OutputError(self.path, f"cannot write into it: {os_reason(exc)}") from None

    # ---------------------------------------------------------- writing
    def write_metadata(self, meta: dict) -> None:
        """Replace ``metadata.json`` atomically (see :func:`write_json_atomic`)."""
        write_json_atomic(self.path / "metadata.json", meta)

    def reserve(self, nbytes: int) -> None:
        """Write a reserve file of ``nbytes`` zeros (allocated, not sparse) for the final update.

        Raises OSError (e.g. ENOSPC) when the disk cannot hold it.
        """
        try:
            with open(self.path / _RESERVE, "wb") as fh:
                block = bytes(min(nbytes, 1 << 16))
                left = nbytes
                while left > 0:
                    left -= fh.write(block[:left])
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Free the reserve (before the final ``metadata.json``); no error when there is none."""
        try:
            (self.path / _RESERVE).unlink(missing_ok=True)
        except OSError:
            pass

    def discard(self) -> None:
        """Remove what this run left (its files, the directories :meth:`prepare` created).

        For a run that never started (the scenario failed to build, a port
        was taken ...); files that are not a run's are kept.
        """
        try:
            for n in os.listdir(self.path):
                if _is_ours(n):
                    (self.path / n).unlink(missing_ok=True)
        except OSError:
            pass
        self._undo(self.created)
        self.created = []

    @staticmethod
    def _undo(created) -> None:
        for d in reversed(list(created)):
            try:
                d.rmdir()
            except OSError:
                break


# -------------------------------------------------------------- reading
@dataclass
class RunResult:
    """A run directory read back (or just written).

    Attributes
    ----------
    path : Path
    metadata : dict
        ``metadata.json``.
    events : list of dict
        ``events.jsonl``.
    counters : pandas.DataFrame or dict of lists
        ``counters.csv`` (a dict of columns when pandas is missing).
    fabric_series : pandas.DataFrame or dict of lists
        ``fabric_series.csv``.
    series : pandas.DataFrame or dict of lists, optional
        The long series (read on first access when loaded from disk).
    summary : str
        ``summary.txt``.
    jobs : list of dict
        ``jobs.csv`` rows (see :mod:`ibsim.run.jobs`); empty without jobs.
    """

    path: Path
    metadata: dict
    events: list
    counters: object
    fabric_series: object
    _series: object = field(default=None, repr=False)
    summary: str = ""
    jobs: list = field(default_factory=list)

    @property
    def series(self):
        """The per-port time series (Parquet or ``series.csv.gz``), loaded lazily."""
        if self._series is None:
            self._series = read_series(Path(self.path))
        return self._series

    @property
    def status(self) -> str:
        """``complete``, ``interrupted``, ``failed`` or ``running`` (see :data:`RUN_STATUSES`)."""
        m = self.metadata
        return m.get("status") or ("interrupted" if m.get("interrupted") else "complete")

    def __repr__(self) -> str:
        m = self.metadata
        return (f"<RunResult {str(self.path)!r}: {self.status}, {m.get('simulated_s')} s simulated, "
                f"{len(self.events)} events>")


def load_run(path) -> RunResult:
    """Read a run directory written by :class:`~ibsim.run.Recorder` (or ``python -m ibsim run``).

    Parameters
    ----------
    path : str or Path
        The run directory.

    Returns
    -------
    RunResult
        ``metadata`` (dict; ``status`` says whether the run is complete),
        ``events`` (list of dict), ``counters`` and ``fabric_series`` (pandas
        DataFrames when pandas imports, else dicts of columns), ``jobs``
        (``jobs.csv`` rows, empty without it) and ``series`` (loaded on first
        access). Files a failed run did not write are None.

    Raises
    ------
    FileNotFoundError
        When ``path`` has no ``metadata.json``.
    """
    p = Path(path)
    if not (p / "metadata.json").is_file():
        raise FileNotFoundError(f"{str(p)!r} is not an ibsim run directory (no metadata.json)")
    meta = json.loads((p / "metadata.json").read_text(encoding="utf-8"))
    events = []
    ev_file = p / "events.jsonl"
    if ev_file.exists():
        with open(ev_file, encoding="utf-8") as fh:
            events = [json.loads(line) for line in fh if line.strip()]
    counters = read_csv(p / "counters.csv") if (p / "counters.csv").exists() else None
    fser = read_csv(p / "fabric_series.csv") if (p / "fabric_series.csv").exists() else None
    summary = (p / "summary.txt").read_text(encoding="utf-8") if (p / "summary.txt").exists() else ""
    jobs = read_jobs_csv(p / "jobs.csv") if (p / "jobs.csv").exists() else []
    return RunResult(p, meta, events, counters, fser, None, summary, jobs)
