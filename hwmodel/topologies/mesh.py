"""2-D mesh of dies with dimension-order (XY) routing and no wrap-around links.

Die ``(x, y)`` of an ``X`` by ``Y`` mesh has id ``y + x * Y`` (ids run down each column, as in
the study's artefact) and the name ``die_{x}_{y}``. A link joins two dies at Manhattan distance 1
and is undirected: one D2D channel per mesh edge, shared by both directions (docs/replay.md).
Links are numbered in the order of :attr:`Mesh.links`: sorted ``(a, b)`` pairs with ``a < b``.

A mesh may have dead dies and dead links (wafer faults,
docs/replay.md#overrides-and-faults). Routes follow the rule of
:mod:`hwmodel.topologies.routing`: XY wherever XY is alive, else YX, else a deterministic
shortest live path.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

import numpy as np

from . import routing

__all__ = ["Mesh"]


class Mesh:
    """An ``x_dies`` by ``y_dies`` mesh.

    Parameters
    ----------
    x_dies, y_dies : int
        Number of dies along x and along y (at least 1 each).
    dead_dies : iterable of int, optional
        Ids of dies that do not work (no compute, memory or routing through them).
    dead_links : iterable of int, optional
        Indices in :attr:`links` of links that carry nothing.

    Raises
    ------
    TypeError
        If a size is not an integer.
    ValueError
        If a size is less than 1.
    """

    def __init__(self, x_dies: int, y_dies: int, *, dead_dies: Iterable[int] = (),
                 dead_links: Iterable[int] = ()):
        for name, value in (("x_dies", x_dies), ("y_dies", y_dies)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value!r}")
        self._x = x_dies
        self._y = y_dies
        self.die_alive = np.ones(self.num_dies, np.bool_)
        for die in dead_dies:
            self._check_die(die)
            self.die_alive[die] = False
        self.link_alive = np.ones(len(self.links), np.bool_)
        for link in dead_links:
            if isinstance(link, bool) or not isinstance(link, int) or not (
                    0 <= link < len(self.links)):
                raise ValueError(f"dead link must be an index in 0..{len(self.links) - 1}, "
                                 f"not {link!r}")
            self.link_alive[link] = False
        self._link_x, self._link_y = routing.link_grids(self._x, self._y, self.links)

    @property
    def live_dies(self) -> list[int]:
        """Ids of the dies that work, ascending."""
        return np.flatnonzero(self.die_alive).tolist()

    @property
    def has_faults(self) -> bool:
        return not (self.die_alive.all() and self.link_alive.all())

    @property
    def x_dies(self) -> int:
        return self._x

    @property
    def y_dies(self) -> int:
        return self._y

    @property
    def num_dies(self) -> int:
        return self._x * self._y

    def _key(self):
        return (self._x, self._y, tuple(np.flatnonzero(~self.die_alive).tolist()),
                tuple(np.flatnonzero(~self.link_alive).tolist()))

    def __repr__(self) -> str:
        _, _, dead_dies, dead_links = self._key()
        faults = (f", dead_dies={list(dead_dies)}" if dead_dies else "") + (
            f", dead_links={list(dead_links)}" if dead_links else "")
        return f"Mesh({self._x}, {self._y}{faults})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Mesh) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((Mesh, self._key()))

    def _check_die(self, die: int) -> None:
        if isinstance(die, bool) or not isinstance(die, int) or not 0 <= die < self.num_dies:
            raise ValueError(f"die must be an integer in 0..{self.num_dies - 1} on {self!r}, "
                             f"not {die!r}")

    def die_id(self, x: int, y: int) -> int:
        """Id of the die at ``(x, y)``."""
        if not (0 <= x < self._x and 0 <= y < self._y):
            raise ValueError(f"({x}, {y}) is outside the {self._x} x {self._y} mesh")
        return y + x * self._y

    def coords(self, die: int) -> tuple[int, int]:
        """``(x, y)`` of a die id."""
        self._check_die(die)
        return divmod(die, self._y)

    def die_name(self, die: int) -> str:
        x, y = self.coords(die)
        return f"die_{x}_{y}"

    def hop_count(self, src: int, dst: int) -> int:
        """Number of links between two dies (their Manhattan distance)."""
        (sx, sy), (dx, dy) = self.coords(src), self.coords(dst)
        return abs(sx - dx) + abs(sy - dy)

    def route(self, src: int, dst: int) -> list[int]:
        """Dies visited from ``src`` to ``dst`` inclusive (XY where alive; see the module)."""
        path = [src]
        for link in self.route_links(src, dst):
            a, b = self.links[link]
            path.append(b if a == path[-1] else a)
        return path

    @cached_property
    def links(self) -> tuple[tuple[int, int], ...]:
        """Every mesh edge as ``(a, b)`` with ``a < b``, sorted."""
        pairs = []
        for die in range(self.num_dies):
            x, y = divmod(die, self._y)
            if y + 1 < self._y:
                pairs.append((die, die + 1))
            if x + 1 < self._x:
                pairs.append((die, die + self._y))
        return tuple(sorted(pairs))

    @cached_property
    def _link_index(self) -> dict[tuple[int, int], int]:
        return {pair: i for i, pair in enumerate(self.links)}

    def link_index(self, a: int, b: int) -> int:
        """Index in :attr:`links` of the link joining two adjacent dies."""
        key = (a, b) if a < b else (b, a)
        try:
            return self._link_index[key]
        except KeyError:
            raise ValueError(f"dies {a} and {b} are not neighbours on {self!r}") from None

    def route_links(self, src: int, dst: int) -> list[int]:
        """Indices of the links the route from ``src`` to ``dst`` uses, in order.

        Raises
        ------
        ValueError
            If a die is dead or no live path joins them.
        """
        self._check_die(src)
        self._check_die(dst)
        links = routing.route(src, dst, self._x, self._y, self.die_alive, self.link_alive,
                              self._link_x, self._link_y)
        if links is None:
            raise ValueError(f"no live route from {self.die_name(src)} to "
                             f"{self.die_name(dst)} on {self!r}")
        return links

    def all_routes(self):
        """Every pair's route at once: ``(start, flat, length)``, see
        :func:`hwmodel.topologies.routing.all_routes`.

        Computed once per mesh (its dead dies and links are fixed when it is built) and
        shared by the replay's tables and the allocator's costs: callers must not modify
        the arrays."""
        if getattr(self, "_all_routes", None) is None:
            self._all_routes = routing.all_routes(self._x, self._y, self.die_alive,
                                                  self.link_alive, self._link_x, self._link_y)
        return self._all_routes

    def neighbours(self, die: int) -> list[int]:
        """Dies one link away, in ascending id order."""
        x, y = self.coords(die)
        out = []
        for nx, ny in ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)):
            if 0 <= nx < self._x and 0 <= ny < self._y:
                out.append(ny + nx * self._y)
        return sorted(out)
