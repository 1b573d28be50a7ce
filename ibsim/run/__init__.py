"""The run directory: what a run leaves behind, and reading it back.

rundir    RunDir (checked and created before the run, metadata.json first and last), load_run
recorder  Recorder (sampled time series within a memory budget, events, counters.csv, metadata.json)
series    SeriesData, fabric-wide series, the long series file
report    summary.txt and overview.png of a run
"""

from .recorder import Recorder, RunResult, SeriesData, load_run, run_dir_name
from .rundir import RUN_FILES, RUN_STATUSES, RunDir

__all__ = ["Recorder", "RunDir", "RunResult", "SeriesData", "load_run", "run_dir_name",
           "RUN_FILES", "RUN_STATUSES"]
