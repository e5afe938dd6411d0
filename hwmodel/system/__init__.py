"""The wafer system model: trace replay of the paper's five strategies (docs/replay.md).

See :mod:`hwmodel.system.replay` (the replay loop), :mod:`hwmodel.system.lowering` (wafer graph
-> kernel tables), :mod:`hwmodel.system.strategies` (the strategy registry),
:mod:`hwmodel.system.prediction` (the units' twins on the prediction path),
:mod:`hwmodel.system.results` (CSV columns) and :mod:`hwmodel.system.engine` (compiled event
kernel).
"""

from .replay import STRATEGIES, Replay, ReplayParams
from .results import ARTEFACT_NAMES, ReplayResult
from .strategies import Strategy, get_strategy, register_strategy, strategy_names

__all__ = ["ARTEFACT_NAMES", "STRATEGIES", "Replay", "ReplayParams", "ReplayResult", "Strategy",
           "get_strategy", "register_strategy", "strategy_names"]
