"""Local command processor: its one layout (:mod:`.params`), graph node (:mod:`.node`), Python
twin (:mod:`.twin`) and Amaranth RTL (:mod:`.rtl`)."""

from .node import LocalCPUnit
from .params import LocalCPLayout
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


#: The RTL's names, imported on first use (PEP 562): the graph node, params and twin need no
#: Amaranth, so a replay does not load it.
_RTL = ("LocalCP", "LocalCPCommand", "LocalCPKind", "SMTaskMessage", "StatsMessage")


def __getattr__(name: str):
    if name in _RTL:
        from . import rtl
        return getattr(rtl, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
