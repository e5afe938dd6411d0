"""Sweeps at scale: a grid of replays, a resumable results store, a reproduction report.

* :mod:`hwmodel.sweep.grid` expands a ``sweep:`` YAML into runs;
* :mod:`hwmodel.sweep.cache` builds each trace store once, cached by content;
* :mod:`hwmodel.sweep.store` is the SQLite results store (each run committed as it ends);
* :mod:`hwmodel.sweep.runner` runs what is missing on a process pool or on Ray;
* :mod:`hwmodel.sweep.report` writes the HTML reproduction report from a results store.

The names below are imported on first use (PEP 562), so that a command's option list (the
ablation's defaults in :mod:`hwmodel.sweep.ablation`) loads no runner, store or replay.
"""

from importlib import import_module

#: Where each public name lives.
_HOMES = {"Grid": ".grid", "Run": ".grid", "TraceSpec": ".grid", "load_grid": ".grid",
          "parse_grid": ".grid", "run_sweep": ".runner", "ResultsStore": ".store"}

__all__ = ["Grid", "ResultsStore", "Run", "TraceSpec", "load_grid", "parse_grid", "run_sweep"]


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
