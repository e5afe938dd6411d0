"""Local command processor: Python twin (:mod:`.twin`) and Amaranth RTL (:mod:`.rtl`)."""

from .rtl import LocalCP, LocalCPCommand, LocalCPKind, SMTaskMessage, StatsMessage
from .twin import LocalCPStats, LocalCPTwin, SMTask, TaskDescriptor

__all__ = ["LocalCP", "LocalCPCommand", "LocalCPKind", "LocalCPStats", "LocalCPTwin", "SMTask",
           "SMTaskMessage", "StatsMessage", "TaskDescriptor"]
