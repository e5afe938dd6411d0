"""The wafer builder: a mesh of dies joined by D2D links, plus the Global CP.

:func:`build_wafer` turns :class:`~hwmodel.params.WaferParams` into a :class:`Wafer`, the root
of the component graph::

    wafer
    ├── die_0_0 ... die_{X-1}_{Y-1}   (in die-id order, id = y + x * Y)
    │   ├── compute      Compute (SMs)
    │   ├── llc          LLC
    │   ├── hbm          HBM
    │   ├── d2d          D2DController, holding atu (ATUUnit) and pdu (PDUUnit)
    │   └── local_cp     LocalCPUnit
    └── global_cp        GlobalCPUnit, one command link to every die's Local CP

Each die exports its Local CP's command port as ``cp`` and its D2D controller's router ports
(``x_minus``, ``x_plus``, ``y_minus``, ``y_plus``, only towards neighbours that exist). The D2D
links (:class:`~hwmodel.components.d2d.D2DLink`) come in the order of
:attr:`~hwmodel.topologies.mesh.Mesh.links`, so ``wafer.links[i]`` is mesh link ``i``.

The graph is the single source of truth: :meth:`Wafer.graph_params` reads the parameters back
from the components, and the parameter dump and the diagrams come from it.
"""

from __future__ import annotations

from ..components.atu.node import ATUUnit
from ..components.compute import Compute
from ..components.d2d import D2DController, D2DLink
from ..components.global_cp.node import GlobalCPUnit
from ..components.hbm import HBM
from ..components.llc import LLC
from ..components.local_cp.node import LocalCPUnit
from ..components.pdu.node import PDUUnit
from ..config import dump_yaml
from ..graph import Component, Link, Port
from ..params import DieParams, WaferParams, difference, load_wafer, overlay
from .mesh import Mesh

__all__ = ["Die", "Wafer", "build_die", "build_wafer", "wafer_from"]


def _router_ports(mesh: Mesh, x: int, y: int) -> list[str]:
    ports = []
    if x > 0:
        ports.append("x_minus")
    if x + 1 < mesh.x_dies:
        ports.append("x_plus")
    if y > 0:
        ports.append("y_minus")
    if y + 1 < mesh.y_dies:
        ports.append("y_plus")
    return ports


class Die(Component):
    """One GPU die of the wafer (built by :func:`build_die`).

    Members
    -------
    cp : Port (inout, cmd)
        Command link to the Global CP (exported from the Local CP).
    x_minus, x_plus, y_minus, y_plus : Port (inout, d2d)
        Router ports towards the existing mesh neighbours (exported from the D2D controller).
    """

    kind = "die"

    def __init__(self, name: str, params: DieParams, *, die_id: int, x: int, y: int):
        super().__init__(name, params)
        self.die_id = die_id
        self.x = x
        self.y = y
        self.alive = True

    @property
    def compute(self) -> Compute:
        return self.child("compute")

    @property
    def llc(self) -> LLC:
        return self.child("llc")

    @property
    def hbm(self) -> HBM:
        return self.child("hbm")

    @property
    def d2d(self) -> D2DController:
        return self.child("d2d")

    @property
    def atu(self) -> ATUUnit:
        return self.child("d2d").child("atu")

    @property
    def pdu(self) -> PDUUnit:
        return self.child("d2d").child("pdu")

    @property
    def local_cp(self) -> LocalCPUnit:
        return self.child("local_cp")

    def die_params(self) -> DieParams:
        """The die's parameters as read back from its units (the graph is the source)."""
        return DieParams(compute=self.compute.params, llc=self.llc.params,
                         hbm=self.hbm.params, d2d=self.d2d.params,
                         atu_entries=self.atu.entries, pdu_experts=self.pdu.experts)


def build_die(params: DieParams, mesh: Mesh, die_id: int) -> Die:
    """Build die ``die_id`` of ``mesh``: its units, their links and its exported ports.

    Parameters
    ----------
    params : DieParams
        The die's parameters.
    mesh : Mesh
        The mesh the die sits in (decides which router ports exist).
    die_id : int
        The die's id (``y + x * Y``).
    """
    x, y = mesh.coords(die_id)
    die = Die(mesh.die_name(die_id), params, die_id=die_id, x=x, y=y)
    routers = _router_ports(mesh, x, y)
    compute = die.add(Compute("compute", params.compute))
    llc = die.add(LLC("llc", params.llc))
    hbm = die.add(HBM("hbm", params.hbm))
    d2d = die.add(D2DController("d2d", params.d2d, router_ports=routers))
    # the units' field widths derive from the wafer (die ids) and their table sizes
    local_cp = die.add(LocalCPUnit("local_cp", num_sms=params.compute.num_sms,
                                   num_dies=mesh.num_dies, experts=params.pdu_experts))
    atu = d2d.add(ATUUnit("atu", entries=params.atu_entries, num_dies=mesh.num_dies))
    pdu = d2d.add(PDUUnit("pdu", experts=params.pdu_experts, atu=atu.layout))
    # Inside the D2D controller: table writes reach the PDU, miss addresses the ATU, and the
    # PDU inserts the translation of every copy it keeps (docs/graph.md, flow 2).
    d2d.connect(d2d.ports["cmd"], pdu.ports["table"])
    d2d.connect(d2d.ports["translate"], atu.ports["lookup"])
    d2d.connect(pdu.ports["insert"], atu.ports["insert"])
    # Inside the die. Unit latencies and bandwidths are modelled by the units themselves, so
    # these wires are free (0 ns, no bandwidth limit).
    die.connect(compute.ports["mem"], llc.ports["req"])
    die.connect(llc.ports["hbm"], hbm.ports["llc"])
    die.connect(llc.ports["remote"], d2d.ports["llc"])
    die.connect(llc.ports["miss_addr"], d2d.ports["translate"])
    die.connect(d2d.ports["hbm"], hbm.ports["d2d"])
    die.connect(local_cp.ports["sm"], compute.ports["cmd"])
    die.connect(local_cp.ports["pdu"], d2d.ports["cmd"])
    cp = die.add_port(Port("cp", "inout", "cmd", doc="command link to the Global CP"))
    die.connect(cp, local_cp.ports["global_cp"])
    for direction in routers:
        port = die.add_port(Port(direction, "inout", "d2d",
                                 doc=f"D2D link towards the {direction.replace('_', ' ')} die"))
        die.connect(port, d2d.ports[direction])
    return die


class Wafer(Component):
    """A wafer: the root of the component graph (built by :func:`build_wafer`).

    Members
    -------
    params : WaferParams
        The parameters it was built from.
    mesh : Mesh
        Its mesh (ids, routing).
    dies : list of Die
        Dies by id.
    links : list of D2DLink
        D2D links in the order of ``mesh.links``.
    command_links : list of Link
        Global CP to Local CP command links, by die id.
    global_cp : GlobalCPUnit
        The Global CP.
    """

    kind = "wafer"

    def __init__(self, params: WaferParams, name: str = "wafer"):
        if not isinstance(params, WaferParams):
            raise TypeError(f"params must be WaferParams, not {params!r}")
        super().__init__(name, params)
        #: The mesh's geometry (ids, coordinates, link numbering), with no faults: liveness
        #: lives on the graph (``die.alive``, ``link.alive``), see :attr:`mesh`.
        self.layout = Mesh(params.mesh_x, params.mesh_y)
        self._mesh_view: tuple | None = None
        self.dies: list[Die] = []
        self.links: list[D2DLink] = []
        self.command_links: list[Link] = []
        self.global_cp: GlobalCPUnit | None = None

    @property
    def num_dies(self) -> int:
        return self.layout.num_dies

    @property
    def mesh(self) -> Mesh:
        """The mesh as the graph has it: the dies and links whose ``alive`` is False are dead.

        The graph is the one source of liveness: marking a die or a link dead on the built
        wafer changes :attr:`mesh`, its routes and everything lowered from them. The view is
        made again only when a flag changed.
        """
        dead = (tuple(d.die_id for d in self.dies if not d.alive),
                tuple(link.index for link in self.links if not link.alive))
        if self._mesh_view is None or self._mesh_view[0] != dead:
            mesh = Mesh(self.layout.x_dies, self.layout.y_dies, dead_dies=dead[0],
                        dead_links=dead[1])
            self._mesh_view = (dead, mesh)
        return self._mesh_view[1]

    def die(self, die: int | str | tuple[int, int]) -> Die:
        """A die by id, by name (``"die_2_1"``) or by ``(x, y)``."""
        if isinstance(die, str):
            found = self.lookup(die)
            if not isinstance(found, Die):
                raise KeyError(f"{die!r} is not a die of {self.path}")
            return found
        if isinstance(die, tuple):
            die = self.layout.die_id(*die)
        self.layout._check_die(die)
        return self.dies[die]

    def link(self, a: int, b: int) -> D2DLink:
        """The D2D link joining adjacent dies ``a`` and ``b``."""
        return self.links[self.layout.link_index(a, b)]

    def route(self, src: int, dst: int) -> list[Die]:
        """Dies visited by the route from ``src`` to ``dst`` inclusive (XY where alive)."""
        return [self.dies[d] for d in self.mesh.route(src, dst)]

    def route_links(self, src: int, dst: int) -> list[D2DLink]:
        """The D2D links the route from ``src`` to ``dst`` uses, in order (XY where alive)."""
        return [self.links[i] for i in self.mesh.route_links(src, dst)]

    def hop_count(self, src: int, dst: int) -> int:
        return self.layout.hop_count(src, dst)

    def graph_params(self) -> WaferParams:
        """The wafer's parameters read back from the graph's components.

        Each die's and each link's parameters are read from that component; where they differ
        from the wafer's nominal die (``params.die``), they come back as an override, so
        ``load_wafer`` of the dump builds the same graph.
        """
        base = self.params.die
        dies = {die.name: overlay(difference(die.die_params(), base), self._set_by_die(die))
                for die in self.dies}
        links = {link.name: difference(link.params, base.d2d) for link in self.links}
        return WaferParams(
            name=self.params.name, mesh_x=self.layout.x_dies, mesh_y=self.layout.y_dies,
            clock_MHz=self.params.clock_MHz, die=base, global_cp=self.global_cp.params,
            host=self.params.host,
            dies={name: diff for name, diff in dies.items() if diff},
            links={name: diff for name, diff in links.items() if diff},
            dead_dies=tuple(die.name for die in self.dies if not die.alive),
            dead_links=tuple(link.name for link in self.links if not link.alive))

    def _set_by_die(self, die: Die) -> dict:
        """What the die's own parameters set that keeps a meaning even where it equals the
        nominal value: its HBM efficiency, which the model's does not replace (see
        :func:`hwmodel.system.lowering.hbm_efficiencies`)."""
        written = (self.params.dies.get(die.name) or {}).get("hbm") or {}
        if "efficiency" not in written:
            return {}
        return {"hbm": {"efficiency": die.hbm.params.efficiency}}

    def dump_params(self, file=None) -> str:
        """YAML of :meth:`graph_params` under a ``wafer:`` key (loadable by ``load_wafer``)."""
        return dump_yaml(self.graph_params(), file, root="wafer")


def _mesh_of(params: WaferParams) -> Mesh:
    """The mesh of ``params``, with its dead dies and dead links."""
    mesh = Mesh(params.mesh_x, params.mesh_y)
    names = {mesh.die_name(d): d for d in range(mesh.num_dies)}
    links = {f"link_{a}_{b}": i for i, (a, b) in enumerate(mesh.links)}
    return Mesh(params.mesh_x, params.mesh_y,
                dead_dies=[names[n] for n in params.dead_dies],
                dead_links=[links[n] for n in params.dead_links])


def build_wafer(params: WaferParams) -> Wafer:
    """Build the component graph of a wafer and check it.

    Parameters
    ----------
    params : WaferParams
        Mesh size, die parameters and Global CP parameters.

    Returns
    -------
    Wafer
        The checked graph (every required port linked).
    """
    wafer = Wafer(params)
    mesh = _mesh_of(params)   # the parameters' faults, copied onto the graph below
    for die_id in range(mesh.num_dies):
        die_params = params.die_params(mesh.die_name(die_id))
        die = wafer.add(build_die(die_params, mesh, die_id))
        die.alive = bool(mesh.die_alive[die_id])
        wafer.dies.append(die)
    global_cp = GlobalCPUnit("global_cp", params.global_cp,
                             die_names=[die.name for die in wafer.dies])
    wafer.global_cp = wafer.add(global_cp)
    for index, (a, b) in enumerate(mesh.links):
        # a < b, so b is a's +x neighbour or its +y neighbour (same column).
        same_column = mesh.coords(a)[0] == mesh.coords(b)[0]
        out_port, in_port = ("y_plus", "y_minus") if same_column else ("x_plus", "x_minus")
        name = f"link_{a}_{b}"
        d2d = params.link_params(name)
        link = wafer.connect(wafer.dies[a].ports[out_port], wafer.dies[b].ports[in_port],
                             cls=D2DLink, params=d2d, index=index, dies=(a, b),
                             latency_ns=d2d.hop_latency_ns, bandwidth_GBps=d2d.bandwidth_GBps,
                             name=name)
        link.alive = bool(mesh.link_alive[index])
        wafer.links.append(link)
    for die in wafer.dies:
        wafer.command_links.append(
            wafer.connect(global_cp.ports[die.name], die.ports["cp"], name=f"cmd_{die.name}"))
    wafer.check()
    return wafer


def wafer_from(preset_or_path) -> Wafer:
    """Build a wafer from a preset name (``tsmc-sow`` ...) or a YAML file (see ``load_wafer``)."""
    return build_wafer(load_wafer(preset_or_path))
