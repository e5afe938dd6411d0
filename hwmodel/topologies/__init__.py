"""Wafer topologies: the mesh (ids, XY routing) and the wafer graph builder."""

from .mesh import Mesh
from .units import ATUUnit, GlobalCPUnit, LocalCPUnit, PDUUnit
from .wafer import Die, Wafer, build_die, build_wafer, wafer_from

__all__ = ["ATUUnit", "Die", "GlobalCPUnit", "LocalCPUnit", "Mesh", "PDUUnit", "Wafer",
           "build_die", "build_wafer", "wafer_from"]
