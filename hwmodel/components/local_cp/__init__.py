"""Local command processor: Python twin and Amaranth RTL (see :mod:`.twin`)."""

from .twin import LocalCPStats, LocalCPTwin, SMTask, TaskDescriptor

__all__ = ["LocalCPStats", "LocalCPTwin", "SMTask", "TaskDescriptor"]
