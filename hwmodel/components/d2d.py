"""Die-to-die (D2D) links of the mesh and each die's D2D controller, as graph elements.

A :class:`D2DLink` is a :class:`~hwmodel.graph.Link` (links are first-class edges of the graph,
carrying latency and bandwidth) that also carries the :class:`D2DParams` and its index in
:attr:`hwmodel.topologies.mesh.Mesh.links`. A :class:`D2DController` is the die's end of the
mesh: one router port per existing mesh neighbour; the die builder places the ATU and the PDU
inside it.

The network latency of a message (docs/replay.md) lives here, once:
:func:`message_latency_ns` is the formula, ``sum(hop latency) + ceil(bytes / slowest rate)``;
:meth:`D2DLink.transfer_latency_ns` applies it to a path of links of one kind, and the replay's
lowering (:mod:`hwmodel.system.lowering`) compiles the same function and applies it to every
route of the wafer, link by link.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..graph import Component, GraphError, Link, Port
from ..params import D2DParams

__all__ = ["ROUTER_PORTS", "D2DController", "D2DLink", "message_latency_ns",
           "transfer_latency_ns"]

#: Router port names, by the mesh direction they face.
ROUTER_PORTS = ("x_minus", "x_plus", "y_minus", "y_plus")


class D2DLink(Link):
    """One D2D channel of the mesh, joining the router ports of two adjacent dies.

    Made by :meth:`hwmodel.graph.Component.connect` with ``cls=D2DLink``.

    Parameters
    ----------
    a, b : Port
        Router ports (``inout``, kind ``"d2d"``) of the two dies.
    params : D2DParams
        Bandwidth, efficiency, hop latency and request size.
    index : int, optional
        Index of the link in ``Mesh.links``.
    dies : tuple of int, optional
        Ids ``(a, b)`` of the two dies, ``a < b``.
    latency_ns, bandwidth_GBps : float, optional
        Default to ``params.hop_latency_ns`` and ``params.bandwidth_GBps``.
    name : str, optional
        Link name (the builder uses ``link_<a>_<b>``).
    """

    def __init__(self, a: Port, b: Port, *, params: D2DParams, index: int | None = None,
                 dies: tuple[int, int] | None = None, latency_ns: float | None = None,
                 bandwidth_GBps: float | None = None, name: str | None = None):
        if not isinstance(params, D2DParams):
            raise TypeError(f"params must be D2DParams, not {params!r}")
        latency_ns = params.hop_latency_ns if latency_ns is None else latency_ns
        bandwidth_GBps = params.bandwidth_GBps if bandwidth_GBps is None else bandwidth_GBps
        if latency_ns != params.hop_latency_ns or bandwidth_GBps != params.bandwidth_GBps:
            raise GraphError(f"link {name or a.path}: latency_ns={latency_ns!r} and "
                             f"bandwidth_GBps={bandwidth_GBps!r} disagree with its params "
                             f"({params.hop_latency_ns!r}, {params.bandwidth_GBps!r})")
        super().__init__(a, b, latency_ns=latency_ns, bandwidth_GBps=bandwidth_GBps, name=name)
        self.params = params
        self.index = index
        self.dies = dies
        self.alive = True       # False: a dead link (a wafer fault), set by the wafer builder

    def describe(self) -> dict:
        out = super().describe()
        out.update(index=self.index, dies=self.dies)
        return out

    # ---- analytical model (docs/replay.md) ----------------------------------------------
    def transfer_latency_ns(self, hops: int, nbytes: float) -> int:
        """Latency of a message over ``hops`` links of this kind:
        ``hop_latency x hops + ceil(bytes / (bw x eff))`` (cut-through: the payload streams
        once; every link of the path is held meanwhile, which is how contention arises)."""
        return transfer_latency_ns(self.params, hops, nbytes)


def message_latency_ns(hop_ns_total, slowest_rate, nbytes):
    """Latency of a message over a path: the sum of its links' hop latencies (ns, integers)
    plus ``ceil(nbytes / slowest_rate)``, the payload streamed once at the rate (bytes/ns,
    bandwidth x efficiency) of the path's slowest link (cut-through; every link of the path is
    held meanwhile, which is how contention arises).

    Plain arithmetic, so that the lowering can compile it with numba unchanged.
    """
    return hop_ns_total + math.ceil(nbytes / slowest_rate)


def transfer_latency_ns(params: D2DParams, hops: int, nbytes: float) -> int:
    """:meth:`D2DLink.transfer_latency_ns` from bare :class:`D2DParams`."""
    if hops < 0 or nbytes < 0:
        raise ValueError(f"hops ({hops!r}) and nbytes ({nbytes!r}) must be zero or more")
    return message_latency_ns(int(params.hop_latency_ns) * hops,
                              params.bandwidth_GBps * params.efficiency, nbytes)


class D2DController(Component):
    """A die's D2D controller: its router ports to the mesh, with the ATU and PDU inside.

    Parameters
    ----------
    name : str
        Component name (``"d2d"`` inside a die).
    params : D2DParams
        Parameters of the links leaving this die.
    router_ports : sequence of str
        Router ports to create, a subset of :data:`ROUTER_PORTS` (only the directions in which
        the die has a mesh neighbour: the mesh has no wrap-around links).

    Members
    -------
    llc : Port (inout, mem)
        Slices to and from the local LLC.
    hbm : Port (out, mem)
        Reads of local HBM for remote dies; writes of duplicated experts (PDU ``cp_en``).
    translate : Port (in, addr)
        Remote-expert miss addresses from the LLC, translated by the ATU.
    cmd : Port (in, cmd)
        PDU table writes from the Local CP.
    x_minus, x_plus, y_minus, y_plus : Port (inout, d2d)
        Router ports towards the mesh neighbours that exist.
    """

    kind = "d2d_controller"

    def __init__(self, name: str = "d2d", params: D2DParams | None = None, *,
                 router_ports: Sequence[str] = ROUTER_PORTS):
        params = D2DParams() if params is None else params
        if not isinstance(params, D2DParams):
            raise TypeError(f"params must be D2DParams, not {params!r}")
        super().__init__(name, params)
        self.add_port(Port("llc", "inout", "mem", doc="slices to and from the local LLC"))
        self.add_port(Port("hbm", "out", "mem", doc="remote reads and replica writes"))
        self.add_port(Port("translate", "in", "addr", width=48,
                           doc="remote miss addresses for the ATU"))
        self.add_port(Port("cmd", "in", "cmd", message="PDUTable",
                           doc="PDU table writes from the Local CP"))
        for direction in router_ports:
            if direction not in ROUTER_PORTS:
                raise GraphError(f"{name}: router port must be one of {ROUTER_PORTS}, "
                                 f"not {direction!r}")
            self.add_port(Port(direction, "inout", "d2d",
                               doc=f"D2D link towards the {direction.replace('_', ' ')} "
                                   f"neighbour"))
