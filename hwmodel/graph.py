"""An RTL-style component graph: components with typed, directed ports, joined by links.

A :class:`Component` has a ``name``, a ``kind`` (``"die"``, ``"hbm"`` ...), an optional frozen
parameter object, named :class:`Port` objects and child components. Its hierarchical name joins
the names from the root with dots (``wafer.die_1_2.hbm``). A :class:`Link` joins two ports and
carries a latency (ns) and a bandwidth (GB/s = bytes/ns; ``None`` where the link is not a
bandwidth limit, e.g. a wire inside a die whose cost the unit models itself).

Links obey RTL rules and are checked the moment they are made (:meth:`Component.connect`):

* a link is owned by a component ``c`` and joins either two ports of children of ``c``
  (a *sibling* link: ``out`` to ``in``, or ``inout`` to ``inout``) or a port of ``c`` itself to a
  port of one of its children (an *export*: both ports have the same direction), so a link never
  skips a level of the hierarchy;
* both ports have the same ``kind`` (``"mem"``, ``"d2d"``, ``"cmd"`` ...) and, when both declare
  one, the same width and message type;
* a port has at most one link from outside its component and at most one from inside it.

Adding a child or a port whose name is taken fails at once; :meth:`Component.check` (called by
the builders once a graph is complete) fails on the first required port left unconnected.
Every error is a :class:`GraphError` whose message names the culprit by hierarchical name.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["Component", "Direction", "GraphError", "Link", "Port"]


class GraphError(ValueError):
    """An inconsistent component graph; the message names the culprit."""


class Direction(enum.Enum):
    """Direction of a port, seen from its component."""

    IN = "in"
    OUT = "out"
    INOUT = "inout"


def _check_name(what: str, name) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise GraphError(f"{what} name must be an identifier string, not {name!r}")
    return name


class Port:
    """A named, typed, directed port of a component.

    Parameters
    ----------
    name : str
        Port name, unique within its component (an identifier).
    direction : Direction or str
        ``"in"``, ``"out"`` or ``"inout"``, seen from the component.
    kind : str
        What travels on it: ``"mem"`` (memory requests and data), ``"d2d"`` (die-to-die
        traffic), ``"cmd"`` (command-processor messages), ``"addr"`` ... Only ports of the same
        kind can be linked.
    width : int, optional
        Width in bits, when the port is a fixed-width bus.
    message : str, optional
        Name of the message type carried (e.g. ``"SubKernel"``).
    required : bool
        Whether :meth:`Component.check` insists that the port is linked from outside.
    doc : str
        One line saying what the port is for.

    Members
    -------
    owner : Component or None
        The component the port belongs to (set by :meth:`Component.add_port`).
    outer_link, inner_link : Link or None
        The link from outside the owner (a sibling or the parent) and from inside it (an
        export to a child).
    """

    def __init__(self, name: str, direction: Direction | str, kind: str, *,
                 width: int | None = None, message: str | None = None,
                 required: bool = True, doc: str = ""):
        self.name = _check_name("port", name)
        try:
            self.direction = Direction(direction)
        except ValueError:
            raise GraphError(f"port {name!r}: direction must be 'in', 'out' or 'inout', "
                             f"not {direction!r}") from None
        if not isinstance(kind, str) or not kind:
            raise GraphError(f"port {name!r}: kind must be a non-empty string, not {kind!r}")
        self.kind = kind
        if width is not None and (isinstance(width, bool) or not isinstance(width, int)
                                  or width < 1):
            raise GraphError(f"port {name!r}: width must be a positive integer, not {width!r}")
        self.width = width
        self.message = message
        self.required = bool(required)
        self.doc = doc
        self.owner: Component | None = None
        self.outer_link: Link | None = None
        self.inner_link: Link | None = None

    @property
    def path(self) -> str:
        """Hierarchical name, ``<owner path>.<port name>``."""
        return f"{self.owner.path}.{self.name}" if self.owner else self.name

    @property
    def links(self) -> list[Link]:
        """The port's links (outer first)."""
        return [link for link in (self.outer_link, self.inner_link) if link is not None]

    def describe(self) -> dict[str, Any]:
        """Plain data of the port (for dumps and diagrams)."""
        return {"name": self.name, "direction": self.direction.value, "kind": self.kind,
                "width": self.width, "message": self.message, "required": self.required}

    def __repr__(self) -> str:
        return f"<Port {self.path} {self.direction.value} {self.kind}>"


class Link:
    """A link joining two ports, carrying a latency and a bandwidth.

    Make links with :meth:`Component.connect`, which checks them and records them on their
    owner; subclasses (e.g. :class:`hwmodel.components.d2d.D2DLink`) are passed as ``cls``.

    Parameters
    ----------
    a, b : Port
        The two ends. For a sibling link ``a`` is the ``out`` (or an ``inout``) end.
    latency_ns : float
        Latency added by the link itself, in ns (zero or more).
    bandwidth_GBps : float or None
        Bandwidth in GB/s (= bytes/ns), greater than zero; ``None`` if the link is not a
        bandwidth limit.
    name : str, optional
        Name of the link; by default ``"<a path>--<b path>"``.
    """

    def __init__(self, a: Port, b: Port, *, latency_ns: float = 0.0,
                 bandwidth_GBps: float | None = None, name: str | None = None):
        for end in (a, b):
            if not isinstance(end, Port):
                raise GraphError(f"a link joins two Port objects, not {end!r}")
        if isinstance(latency_ns, bool) or not isinstance(latency_ns, (int, float)) \
                or latency_ns < 0:
            raise GraphError(f"link {a.path} -- {b.path}: latency_ns must be a number >= 0, "
                             f"not {latency_ns!r}")
        if bandwidth_GBps is not None and (isinstance(bandwidth_GBps, bool)
                                           or not isinstance(bandwidth_GBps, (int, float))
                                           or bandwidth_GBps <= 0):
            raise GraphError(f"link {a.path} -- {b.path}: bandwidth_GBps must be a number "
                             f"greater than zero (or None), not {bandwidth_GBps!r}")
        self.a = a
        self.b = b
        self.latency_ns = float(latency_ns)
        self.bandwidth_GBps = None if bandwidth_GBps is None else float(bandwidth_GBps)
        self.name = name
        self.owner: Component | None = None

    @property
    def kind(self) -> str:
        """The kind of both ports."""
        return self.a.kind

    @property
    def ends(self) -> tuple[Port, Port]:
        return (self.a, self.b)

    @property
    def components(self) -> tuple[Component, Component]:
        """The components owning the two ends."""
        return (self.a.owner, self.b.owner)

    @property
    def label(self) -> str:
        return self.name or f"{self.a.path}--{self.b.path}"

    def other(self, port: Port) -> Port:
        """The end that is not ``port``."""
        if port is self.a:
            return self.b
        if port is self.b:
            return self.a
        raise GraphError(f"{port.path} is not an end of link {self.label}")

    def describe(self) -> dict[str, Any]:
        """Plain data of the link (for dumps and structural comparison)."""
        return {"name": self.name, "a": self.a.path, "b": self.b.path, "kind": self.kind,
                "latency_ns": self.latency_ns, "bandwidth_GBps": self.bandwidth_GBps,
                "type": type(self).__name__}

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.label} {self.latency_ns:g} ns "
                f"{self.bandwidth_GBps if self.bandwidth_GBps is not None else '-'} GB/s>")


class Component:
    """A node of the component graph: ports, children and the links among them.

    Subclasses set the class attribute ``kind`` and declare their ports in ``__init__`` with
    :meth:`add_port` (parametric ports, e.g. one router port per mesh neighbour, are added by
    the builder that knows them).

    Parameters
    ----------
    name : str
        Name, unique among its siblings (an identifier, e.g. ``die_2_1``).
    params : object, optional
        The frozen parameter object the component carries (e.g. :class:`~hwmodel.params.
        HBMParams`), or ``None``.
    kind : str, optional
        Overrides the class's ``kind``.
    doc : str
        One line saying what the component is (used by diagrams).

    Members
    -------
    parent : Component or None
        The enclosing component.
    children : list of Component
        Child components in insertion order.
    ports : dict of str to Port
        The component's ports in declaration order.
    internal_links : list of Link
        The links this component owns (between its children, or exporting its ports).
    """

    kind: str = "component"

    def __init__(self, name: str, params: Any = None, *, kind: str | None = None,
                 doc: str = ""):
        self.name = _check_name("component", name)
        if kind is not None:
            self.kind = kind
        self.params = params
        if not doc and type(self).__doc__:
            doc = type(self).__doc__.strip().splitlines()[0]
        self.doc = doc
        self.parent: Component | None = None
        self._children: dict[str, Component] = {}
        self.ports: dict[str, Port] = {}
        self.internal_links: list[Link] = []

    # -- building ---------------------------------------------------------------------------

    def add_port(self, port: Port) -> Port:
        """Add ``port``; fails if the name is taken."""
        if port.name in self.ports:
            raise GraphError(f"duplicate port name {port.name!r} on {self.path}")
        if port.owner is not None:
            raise GraphError(f"port {port.path} already belongs to a component")
        port.owner = self
        self.ports[port.name] = port
        return port

    def add(self, child: Component) -> Component:
        """Add ``child`` (returned, so ``self.hbm = self.add(HBM(...))`` reads well)."""
        if not isinstance(child, Component):
            raise GraphError(f"{self.path}: a child must be a Component, not {child!r}")
        if child.name in self._children:
            raise GraphError(f"duplicate component name {child.name!r} in {self.path}")
        if child.parent is not None:
            raise GraphError(f"{child.path} already has a parent")
        child.parent = self
        self._children[child.name] = child
        return child

    def connect(self, a: Port | str, b: Port | str, *, latency_ns: float = 0.0,
                bandwidth_GBps: float | None = None, name: str | None = None,
                cls: type[Link] = Link, **extra) -> Link:
        """Make a link owned by this component between ports ``a`` and ``b``.

        Ports may be given as objects or as names relative to this component
        (``"hbm.llc"``, or ``"cp"`` for one of this component's own ports).

        Raises
        ------
        GraphError
            On a link across hierarchy levels, a kind, width, message or direction mismatch,
            or a port already linked on that side; the message names both ports.
        """
        a = self.port(a) if isinstance(a, str) else a
        b = self.port(b) if isinstance(b, str) else b
        for end in (a, b):
            if not isinstance(end, Port) or end.owner is None:
                raise GraphError(f"{self.path}: can only link ports of components, not {end!r}")
        where = f"link {a.path} -- {b.path}"
        own_a, own_b = a.owner is self, b.owner is self
        for end, own in ((a, own_a), (b, own_b)):
            if not own and end.owner.parent is not self:
                raise GraphError(
                    f"{where} crosses hierarchy levels: {end.path} is neither a port of "
                    f"{self.path} nor of one of its children (link owners must be the common "
                    f"parent; export the port through each level instead)")
        if own_a and own_b:
            raise GraphError(f"{where}: both ends are ports of {self.path} itself")
        if a.kind != b.kind:
            raise GraphError(f"{where}: kind mismatch, {a.path} is {a.kind!r} but {b.path} "
                             f"is {b.kind!r}")
        if a.width is not None and b.width is not None and a.width != b.width:
            raise GraphError(f"{where}: width mismatch, {a.width} bits vs {b.width} bits")
        if a.message is not None and b.message is not None and a.message != b.message:
            raise GraphError(f"{where}: message type mismatch, {a.message!r} vs {b.message!r}")
        da, db = a.direction, b.direction
        if own_a or own_b:
            # An export passes a port of this component through to a child unchanged.
            if da != db:
                raise GraphError(f"{where}: direction mismatch, an export joins ports of the "
                                 f"same direction, not {da.value!r} and {db.value!r}")
        else:
            ok = {da, db} == {Direction.IN, Direction.OUT} or da == db == Direction.INOUT
            if not ok:
                raise GraphError(f"{where}: direction mismatch, {a.path} is {da.value!r} and "
                                 f"{b.path} is {db.value!r} (expected out -> in or inout -- "
                                 f"inout)")
        slots = []
        for end, own in ((a, own_a), (b, own_b)):
            slot = "inner_link" if own else "outer_link"
            existing = getattr(end, slot)
            if existing is not None:
                raise GraphError(f"{where}: {end.path} is already linked "
                                 f"({existing.label})")
            slots.append((end, slot))
        link = cls(a, b, latency_ns=latency_ns, bandwidth_GBps=bandwidth_GBps, name=name,
                   **extra)
        for end, slot in slots:
            setattr(end, slot, link)
        link.owner = self
        self.internal_links.append(link)
        return link

    def check(self) -> None:
        """Check the whole subtree; fail on the first required port without an outer link.

        The root's own ports are exempt (nothing outside can link them).

        Raises
        ------
        GraphError
            Naming the unconnected port, its direction and kind.
        """
        for component in self.flatten():
            if component is self and self.parent is None:
                continue
            for port in component.ports.values():
                if port.required and port.outer_link is None:
                    raise GraphError(f"unconnected required port {port.path} "
                                     f"({port.direction.value} {port.kind})")

    # -- queries ----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """Hierarchical name from the root, e.g. ``wafer.die_1_2.hbm``."""
        return f"{self.parent.path}.{self.name}" if self.parent else self.name

    @property
    def children(self) -> list[Component]:
        return list(self._children.values())

    @property
    def root(self) -> Component:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def child(self, name: str) -> Component:
        """The direct child called ``name``."""
        try:
            return self._children[name]
        except KeyError:
            known = ", ".join(self._children) or "none"
            raise KeyError(f"{self.path} has no child {name!r} (children: {known})") from None

    def lookup(self, name: str) -> Component:
        """Component by hierarchical name relative to this one (``"die_1_2.hbm"``).

        The name may also start with this component's own name (``"wafer.die_1_2.hbm"``).
        """
        parts = name.split(".") if name else []
        if parts and parts[0] == self.name and parts[0] not in self._children:
            parts = parts[1:]
        node = self
        for part in parts:
            node = node.child(part)
        return node

    def __getitem__(self, name: str) -> Component:
        return self.lookup(name)

    def port(self, name: str) -> Port:
        """Port by hierarchical name relative to this component (``"hbm.llc"``, ``"cp"``)."""
        head, _, last = name.rpartition(".")
        owner = self.lookup(head) if head else self
        try:
            return owner.ports[last]
        except KeyError:
            known = ", ".join(owner.ports) or "none"
            raise KeyError(f"{owner.path} has no port {last!r} (ports: {known})") from None

    def flatten(self) -> list[Component]:
        """This component and all its descendants, depth first, in insertion order."""
        out = [self]
        for child in self._children.values():
            out.extend(child.flatten())
        return out

    def iter_links(self) -> Iterator[Link]:
        """Every link owned in this subtree, depth first."""
        for component in self.flatten():
            yield from component.internal_links

    def neighbours(self, kind: str | None = None) -> list[Component]:
        """Components at the other end of this component's outer links (optionally of one kind
        of port), in the order of this component's ports."""
        out: list[Component] = []
        for port in self.ports.values():
            link = port.outer_link
            if link is None or (kind is not None and port.kind != kind):
                continue
            other = link.other(port).owner
            if other not in out:
                out.append(other)
        return out

    def links_between(self, a: Component | str, b: Component | str) -> list[Link]:
        """Links joining children ``a`` and ``b`` directly (either direction)."""
        a = self.lookup(a) if isinstance(a, str) else a
        b = self.lookup(b) if isinstance(b, str) else b
        return [link for link in self.internal_links
                if {link.a.owner, link.b.owner} == {a, b} and a is not b]

    def path_links(self, path: Sequence[Component | str]) -> list[Link]:
        """The links joining each consecutive pair of children along ``path``.

        Raises
        ------
        GraphError
            If two consecutive components are not joined by a link (naming them).
        """
        nodes = [self.lookup(p) if isinstance(p, str) else p for p in path]
        out = []
        for a, b in itertools.pairwise(nodes):
            found = self.links_between(a, b)
            if not found:
                raise GraphError(f"no link joins {a.path} and {b.path}")
            out.append(found[0])
        return out

    def structure(self) -> tuple:
        """Hashable description of the whole subtree (names, kinds, params, ports, links).

        Two graphs built from equal parameters have equal structures; used by round-trip tests.
        """
        def freeze(value):
            if isinstance(value, dict):
                return tuple((k, freeze(v)) for k, v in value.items())
            return value
        nodes = tuple((c.path, c.kind, type(c).__name__, c.params,
                       tuple(freeze(p.describe()) for p in c.ports.values()))
                      for c in self.flatten())
        links = tuple(freeze(link.describe()) for link in self.iter_links())
        return nodes, links

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({self.kind})>"
