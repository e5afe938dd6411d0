"""Sweeps at scale: a grid of replays, a resumable results store, a reproduction report.

* :mod:`hwmodel.sweep.grid` expands a ``sweep:`` YAML into runs;
* :mod:`hwmodel.sweep.cache` builds each trace store once, cached by content;
* :mod:`hwmodel.sweep.store` is the SQLite results store (each run committed as it ends);
* :mod:`hwmodel.sweep.runner` runs what is missing on a process pool or on Ray;
* :mod:`hwmodel.sweep.report` writes the HTML reproduction report from a results store.
"""

from .grid import Grid, Run, TraceSpec, load_grid, parse_grid
from .runner import run_sweep
from .store import ResultsStore

__all__ = ["Grid", "ResultsStore", "Run", "TraceSpec", "load_grid", "parse_grid", "run_sweep"]
