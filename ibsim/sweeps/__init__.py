"""Parameter sweeps: many scenario runs, one row of metrics each, on Dask.

A sweep file names a base scenario and the axes to vary (a grid and/or a
list of explicit points, each an override of a scenario key by its path);
:func:`run_sweep` runs every point as one Dask task (a LocalCluster on
127.0.0.1 by default, or an existing cluster by its scheduler address) and
streams one row per point to ``results.parquet`` and ``results.csv``; at the
end it draws ``sweep.png`` and writes ``report.md``.

Modules: ``spec`` (the sweep file -> :class:`SweepSpec` of validated
points), ``worker`` (:func:`run_point`: one point -> one row, on a worker),
``metrics`` (the row's metrics from a run), ``runner`` (Dask, the results
files, resume), ``report`` (figure and report).

Notebook use::

    import ibsim
    df = ibsim.sweep("topologies/sweep-routing.yml", out="sweeps/routing")
    df = ibsim.load_sweep("sweeps/routing")

Dask is imported only when points are run (``pip install 'ibsim[sweep]'``).
"""

from .metrics import METRIC_COLUMNS, run_metrics
from .runner import check_output_dir, connect, load_sweep, read_results, run_sweep
from .spec import SWEEP_KEYS, Point, SweepSpec, load_sweep_file, parse_sweep
from .worker import NONDETERMINISTIC, PointTask, run_point

__all__ = ["SweepSpec", "Point", "SWEEP_KEYS", "load_sweep_file", "parse_sweep", "run_sweep", "load_sweep",
           "read_results", "check_output_dir", "connect", "run_point", "PointTask", "run_metrics", "METRIC_COLUMNS",
           "NONDETERMINISTIC", "sweep"]


def sweep(path, out=None, *, scheduler: str | None = None, workers: int | None = None, resume: bool = False,
          client=None, serial: bool = False):
    """Run a sweep file; return its results as a pandas DataFrame (``ibsim.sweep``).

    Parameters
    ----------
    path : str or Path
        Sweep YAML file.
    out : str or Path, optional
        Output directory (default: ``sweeps/<sweep name>``).
    scheduler, workers, resume, client, serial
        See :func:`run_sweep`.
    """
    spec = load_sweep_file(path)
    if out is None:
        out = f"sweeps/{spec.name}"
    return run_sweep(spec, out, scheduler=scheduler, workers=workers, resume=resume, client=client,
                     serial=serial)
