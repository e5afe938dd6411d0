"""The wafer system model: trace replay of the paper's five strategies (SPEC sections 6-7).

See :mod:`hwmodel.system.replay` (Python layer: strategies, twins, statistics) and
:mod:`hwmodel.system.engine` (compiled event kernel).
"""

from .replay import ARTEFACT_NAMES, STRATEGIES, Latencies, Replay, ReplayParams, ReplayResult

__all__ = ["ARTEFACT_NAMES", "STRATEGIES", "Latencies", "Replay", "ReplayParams",
           "ReplayResult"]
