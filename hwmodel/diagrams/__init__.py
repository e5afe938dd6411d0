"""Architecture diagrams drawn from the component graph (see :mod:`hwmodel.diagrams.draw`)."""

from .draw import (
    FORMATS,
    component_dot,
    die_dot,
    draw_component,
    draw_die,
    draw_wafer,
    heat_colour,
    render,
    wafer_dot,
)

__all__ = ["FORMATS", "component_dot", "die_dot", "draw_component", "draw_die", "draw_wafer",
           "heat_colour", "render", "wafer_dot"]
