"""2-D mesh of dies with dimension-order (XY) routing and no wrap-around links.

Die ``(x, y)`` of an ``X`` by ``Y`` mesh has id ``y + x * Y`` (ids run down each column, as in
the study's artefact) and the name ``die_{x}_{y}``. A link joins two dies at Manhattan distance 1
and is undirected: one D2D channel per mesh edge, shared by both directions (SPEC section 6).
Links are numbered in the order of :attr:`Mesh.links`: sorted ``(a, b)`` pairs with ``a < b``.
"""

from __future__ import annotations

import itertools
from functools import cached_property

__all__ = ["Mesh"]


class Mesh:
    """An ``x_dies`` by ``y_dies`` mesh.

    Parameters
    ----------
    x_dies, y_dies : int
        Number of dies along x and along y (at least 1 each).

    Raises
    ------
    TypeError
        If a size is not an integer.
    ValueError
        If a size is less than 1.
    """

    def __init__(self, x_dies: int, y_dies: int):
        for name, value in (("x_dies", x_dies), ("y_dies", y_dies)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value!r}")
        self._x = x_dies
        self._y = y_dies

    @property
    def x_dies(self) -> int:
        return self._x

    @property
    def y_dies(self) -> int:
        return self._y

    @property
    def num_dies(self) -> int:
        return self._x * self._y

    def __repr__(self) -> str:
        return f"Mesh({self._x}, {self._y})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Mesh) and (self._x, self._y) == (other._x, other._y)

    def __hash__(self) -> int:
        return hash((Mesh, self._x, self._y))

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
        """Dies visited from ``src`` to ``dst`` inclusive, moving along x first, then y."""
        (x, y), (dx, dy) = self.coords(src), self.coords(dst)
        path = [src]
        while x != dx:
            x += 1 if dx > x else -1
            path.append(y + x * self._y)
        while y != dy:
            y += 1 if dy > y else -1
            path.append(y + x * self._y)
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
        """Indices of the links an XY route from ``src`` to ``dst`` uses, in order."""
        path = self.route(src, dst)
        return [self.link_index(a, b) for a, b in itertools.pairwise(path)]

    def neighbours(self, die: int) -> list[int]:
        """Dies one link away, in ascending id order."""
        x, y = self.coords(die)
        out = []
        for nx, ny in ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)):
            if 0 <= nx < self._x and 0 <= ny < self._y:
                out.append(ny + nx * self._y)
        return sorted(out)
