"""Architecture diagrams drawn from the component graph (see :mod:`hwmodel.diagrams.draw`).

The drawing functions are imported on first use (PEP 562), so that a command which only names
:data:`FORMATS` (the command line's ``--help``) does not load Graphviz and the wafer model.
"""

from importlib import import_module

#: Output formats :func:`render` writes (DOT is always kept as well).
FORMATS = ("svg", "png")

__all__ = ["FORMATS", "component_dot", "die_dot", "draw_component", "draw_die", "draw_wafer",
           "heat_colour", "render", "wafer_dot"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(import_module(".draw", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
