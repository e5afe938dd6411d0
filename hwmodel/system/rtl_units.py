"""The names of the co-simulation's units and RTL simulators (:mod:`hwmodel.system.cosim`).

A module of its own, importing nothing, so that the command line lists them in ``--help``
without loading the replay.
"""

__all__ = ["ENGINES", "UNITS"]

#: Units that can run as RTL in a window, in the order their transactions happen in a layer.
UNITS = ("allocator", "edt", "predictor", "pdu", "atu", "local_cp")
#: RTL simulators: Amaranth's Python simulator; a compiled one when installed.
ENGINES = ("pysim", "cxxrtl")
