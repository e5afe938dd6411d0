"""Wafer topologies: the mesh (ids, XY routing) and the wafer graph builder."""

from ..components.atu.node import ATUUnit
from ..components.global_cp.node import GlobalCPUnit
from ..components.local_cp.node import LocalCPUnit
from ..components.pdu.node import PDUUnit
from .mesh import Mesh
from .wafer import Die, Wafer, build_die, build_wafer, wafer_from

__all__ = ["ATUUnit", "Die", "GlobalCPUnit", "LocalCPUnit", "Mesh", "PDUUnit", "Wafer",
           "build_die", "build_wafer", "wafer_from"]
