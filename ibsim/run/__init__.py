"""The run directory: what a run leaves behind, and reading it back.

recorder  Recorder (sampled time series, events, counters.csv, metadata.json) and load_run
report    summary.txt and overview.png of a run
"""

from .recorder import Recorder, RunResult, SeriesData, load_run, run_dir_name

__all__ = ["Recorder", "RunResult", "SeriesData", "load_run", "run_dir_name"]
