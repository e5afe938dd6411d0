"""Local command processor: its one layout (:mod:`.params`), graph node (:mod:`.node`), Python
twin (:mod:`.twin`) and Amaranth RTL (:mod:`.rtl`)."""

from .node import LocalCPUnit
from .params import LocalCPLayout
from .rtl import LocalCP, LocalCPCommand, LocalCPKind, SMTaskMessage, StatsMessage
from .twin import LocalCPStats, LocalCPTwin, SMTask, TaskDescriptor

__all__ = [
           "LocalCP",
           "LocalCPCommand",
           "LocalCPKind",
           "LocalCPLayout",
           "LocalCPStats",
           "LocalCPTwin",
           "LocalCPUnit",
           "SMTask",
           "SMTaskMessage",
           "StatsMessage",
           "TaskDescriptor",
]
