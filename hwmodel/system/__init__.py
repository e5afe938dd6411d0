"""The wafer system model: trace replay of the paper's five strategies (docs/replay.md).

See :mod:`hwmodel.system.replay` (the replay loop), :mod:`hwmodel.system.lowering` (wafer graph
-> kernel tables), :mod:`hwmodel.system.strategies` (the strategy registry),
:mod:`hwmodel.system.prediction` (the units' twins on the prediction path),
:mod:`hwmodel.system.results` (CSV columns) and :mod:`hwmodel.system.engine` (compiled event
kernel).

The names below are imported on first use (PEP 562): a module that needs only a light part of
this package (the command line's option lists in :mod:`hwmodel.system.rtl_units`) does not load
the replay, numba and the units' twins.
"""

from importlib import import_module

#: Where each public name lives.
_HOMES = {"STRATEGIES": ".replay", "Replay": ".replay", "ReplayParams": ".replay",
          "ARTEFACT_NAMES": ".results", "ReplayResult": ".results",
          "Strategy": ".strategies", "get_strategy": ".strategies",
          "register_strategy": ".strategies", "strategy_names": ".strategies"}

__all__ = ["ARTEFACT_NAMES", "STRATEGIES", "Replay", "ReplayParams", "ReplayResult", "Strategy",
           "get_strategy", "register_strategy", "strategy_names"]


def __getattr__(name: str):
    if name in _HOMES:
        import_module(".replay", __name__)   # the replay registers the built-in strategies
        return getattr(import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
