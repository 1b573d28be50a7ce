"""What runs on a worker: one point -> one row.

:func:`run_point` is a plain function of a picklable :class:`PointTask`, so
any Dask worker (or the calling process) runs it. It validates the point's
scenario again, builds and runs it as fast as possible with a
:class:`~ibsim.run.Recorder`, and returns the row: the point's columns, its
metrics (:func:`~ibsim.sweeps.metrics.run_metrics`), ``status`` and ``error``,
``wall_s``, ``cpu_s`` (this process's CPU seconds for the point) and ``worker``. Bad input (a value the scenario checker or the
fabric rejects, a routing engine that cannot route the fabric) is a row with
``status: error``; anything else raises, so Dask retries the point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import IbsimError

__all__ = ["PointTask", "run_point", "point_columns", "NONDETERMINISTIC"]

#: row columns that differ between two runs of the same point
NONDETERMINISTIC = ("wall_s", "cpu_s", "worker")


@dataclass(frozen=True)
class PointTask:
    """Everything a worker needs to run one point (picklable).

    Attributes
    ----------
    point : Point
    source : str
        The sweep file (for error messages).
    base_dir : str
        Directory of the base scenario's relative topology files.
    name : str
        Sweep name (run directories are ``<name>-<point id>``).
    recovery : float
        See :func:`~ibsim.sweeps.metrics.run_metrics`.
    run_dir : str or None
        Where to write the point's run directory (None: not written).
    topology_file : str or None
        The point's topology file (absolute), when it has one.
    topology_text : str or None
        Its content, for workers that cannot read that path.
    """

    point: object
    source: str
    base_dir: str
    name: str
    recovery: float = 0.95
    run_dir: str | None = None
    topology_file: str | None = None
    topology_text: str | None = None


def point_columns(point) -> dict:
    """The columns naming a point: ``point``, ``point_id``, its labels and seed."""
    row = {"point": int(point.index), "point_id": point.id}
    row.update(point.labels)
    row["seed"] = int(point.data["seed"]) if isinstance(point.data.get("seed"), int) else point.data.get("seed")
    return row


def _error_row(point, message: str, wall: float = 0.0) -> dict:
    row = point_columns(point)
    row.update(status="error", error=message, wall_s=round(wall, 3), worker=_worker_name())
    return row


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _file_missing(task: PointTask) -> bool:
    """The point's topology file is not on this machine, but its text came with the task."""
    return task.topology_file is not None and task.topology_text is not None \
        and not Path(task.topology_file).is_file()


def _scenario(task: PointTask, tmp: str | None):
    """The point's scenario; a topology file missing here is written from the task into ``tmp``."""
    from .spec import scenario_of
    point = task.point
    if tmp is not None:
        # a worker on another machine: the topology file travels with the task
        path = Path(tmp) / Path(task.topology_file).name
        path.write_text(task.topology_text, encoding="utf-8")
        data = dict(point.data, topology={"file": str(path)})
        point = dataclasses.replace(point, data=data)
    return scenario_of(point, task.source, task.base_dir, task.name)


def run_point(task: PointTask) -> dict:
    """Run one point and return its row (see the module docstring).

    Raises
    ------
    Exception
        Anything but bad input (:class:`~ibsim.errors.IbsimError`), so that
        Dask retries the point.
    """
    from ..run import Recorder
    from .metrics import run_metrics
    point = task.point
    wall0, cpu0 = time.monotonic(), time.process_time()
    if point.error is not None:
        return _error_row(point, point.error)
    try:
        with (tempfile.TemporaryDirectory(prefix="ibsim-sweep-") if _file_missing(task)
              else contextlib.nullcontext()) as tmp:
            scn = _scenario(task, tmp)
            sim = scn.build()
        end = scn.clock.duration_s
        if end is None:
            return _error_row(point, f"{task.source}: clock.duration: a sweep point needs a duration")
        rec = Recorder(sim, every=scn.output.every_s, max_rows=scn.output.max_rows, duration=end)
        sim.run(end, realtime=None)
        data = rec.series()
        metrics = run_metrics(sim, data, recovery=task.recovery)
        if task.run_dir is not None:
            rec.write(task.run_dir, wall_s=time.monotonic() - wall0, plot=False)
    except IbsimError as exc:
        from .spec import blame
        return _error_row(point, str(exc) + blame(exc, point), time.monotonic() - wall0)
    row = point_columns(point)
    row.update(status="ok", error="")
    row.update(metrics)
    row.update(wall_s=round(time.monotonic() - wall0, 3), cpu_s=round(time.process_time() - cpu0, 3),
               worker=_worker_name())
    return row
