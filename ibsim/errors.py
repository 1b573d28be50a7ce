"""One error hierarchy for the whole library, and the name lookup helper.

The library raises these; only :mod:`ibsim.cli` prints them and picks exit
codes.
"""

from __future__ import annotations

import difflib
from typing import Mapping, TypeVar

__all__ = [
    "IbsimError",
    "ScenarioError",
    "UnknownNameError",
    "TopologyError",
    "FileFormatError",
    "RoutingError",
    "ExporterError",
    "HostError",
    "BenchError",
    "OutputError",
    "SweepError",
    "lookup",
    "suggest",
    "format_path",
]

V = TypeVar("V")


class IbsimError(Exception):
    """Root of every error ibsim raises on purpose."""

    #: exit code the CLI uses for this kind of error (2 = bad input or usage)
    exit_code = 1


class ScenarioError(IbsimError, ValueError):
    """A scenario, option or argument is invalid.

    Parameters
    ----------
    message : str
        What was found and what was expected.
    source : str, optional
        File the value came from.
    path : str, optional
        Key path inside the file (``traffic[0].load``).
    line : int, optional
        1-based line number inside ``source``.
    """

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None,
                 path: str | None = None, line: int | None = None):
        self.message = message
        self.source = source
        self.path = path
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.source:
            where = str(self.source)
            if self.line:
                where += f":{self.line}"
            where += ": "
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"


class UnknownNameError(ScenarioError, LookupError):
    """A name that is not in a registry (routing engine, generator, ...)."""


class TopologyError(IbsimError, ValueError):
    """A topology is inconsistent (port cabled twice, duplicate GUID, ...)."""

    exit_code = 2


class FileFormatError(TopologyError):
    """A topology file cannot be parsed; names the file and the line.

    Parameters
    ----------
    message : str
        What was found and what was expected.
    source : str
        File name (or ``<string>``).
    line : int, optional
        1-based line number.
    """

    def __init__(self, message: str, *, source: str = "<string>", line: int | None = None):
        self.message = message
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line else str(source)
        super().__init__(f"{where}: {message}")


class RoutingError(IbsimError):
    """A routing engine cannot route this fabric (e.g. ``ftree`` on a non fat tree)."""

    exit_code = 2


class ExporterError(IbsimError):
    """An exporter cannot be built or opened (bad option, missing extra, port in use).

    Runtime transport failures (a server down, a connection reset) are not
    raised: the export stage logs them once per kind and keeps the run going.
    """

    exit_code = 2


class HostError(IbsimError):
    """Container hosts cannot be run: Docker not reachable, an image missing and not
    buildable, a container that does not start (exit code 1)."""

    exit_code = 1


class BenchError(IbsimError):
    """The monitoring benchmark cannot run as asked: an unknown approach or fabric size,
    a missing compiler, header or server binary (exit code 2).

    An approach that cannot keep up at a size is a result, never this error.
    """

    exit_code = 2


class OutputError(IbsimError):
    """A run directory cannot be used or written.

    Raised before the run when the directory cannot be created or written
    (a file in its place, a read-only or pseudo filesystem, no permission) or
    is not empty (exit code 2: choose another one or pass ``--overwrite``);
    raised after the run when writing its results failed (exit code 1; its
    ``metadata.json`` then says ``"status": "failed"`` or still ``"running"``).

    Parameters
    ----------
    path : str or Path
        The run directory (or the file) concerned.
    reason : str
        Why it cannot be used, and what to do.
    exit_code : int
        2 (before the run) or 1 (writing the results failed).
    """

    def __init__(self, path, reason: str, *, exit_code: int = 2):
        self.path = str(path)
        self.reason = reason
        self.exit_code = exit_code
        super().__init__(f"{self.path}: {reason}")


class SweepError(IbsimError):
    """A sweep cannot run: its Dask scheduler does not answer, Dask is not installed, or its
    output directory already holds results (exit code 1). A point that fails is a row, never this.
    """

    exit_code = 1


def format_path(path: tuple) -> str:
    """The one key-path format of messages: ``("traffic", 0, "load")`` -> ``"traffic[0].load"``.

    ``""`` for the root.
    """
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else str(key)
    return out


def suggest(name: str, choices) -> str | None:
    """Return the choice closest to ``name``, or None when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return close[0] if close else None


def lookup(registry: Mapping[str, V], name: str, kind: str) -> V:
    """Look ``name`` up in a plain-dict registry.

    Raises
    ------
    UnknownNameError
        Listing the valid choices and the nearest match, e.g. ``unknown routing
        engine 'upnd'; choose one of: ftree, minhop, updn (did you mean 'updn'?)``.
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        choices = sorted(registry)
        hint = suggest(name, choices)
        msg = f"unknown {kind} {name!r}; choose one of: {', '.join(choices)}"
        if hint:
            msg += f" (did you mean {hint!r}?)"
        raise UnknownNameError(msg) from None
