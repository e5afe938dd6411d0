"""Routes on a 2-D mesh with dead dies and dead links: XY wherever XY is alive.

One rule, used by :meth:`hwmodel.topologies.mesh.Mesh.route` for a single pair and by the
replay's lowering for every pair at once (both call :func:`_route`, compiled with numba):

1. the XY route (along x first, then y; docs/graph.md) if every die and link on it is alive;
2. else the YX route (along y first, then x) if every die and link on it is alive;
3. else a shortest path over live dies and live links, found by breadth-first search from the
   source that visits neighbours in the order -x, +x, -y, +y; the first path found wins, so the
   route is deterministic.

A pair with no live path gets length -1 (the wafer builder turns that into an error naming both
dies). Dies are ``(x, y)`` with id ``y + x * Y``; ``link_x[x, y]`` is the index of the link from
``(x, y)`` to ``(x + 1, y)`` and ``link_y[x, y]`` of the one to ``(x, y + 1)``.
"""

from __future__ import annotations

import numpy as np

from ..jit import njit

__all__ = ["NO_ROUTE", "all_routes", "link_grids", "route"]

#: Length of the route between two dies with no live path between them.
NO_ROUTE = -1


def link_grids(x_dies: int, y_dies: int, links) -> tuple[np.ndarray, np.ndarray]:
    """``(link_x, link_y)``: link index by the coordinates of its lower end (-1: none)."""
    link_x = np.full((x_dies, y_dies), -1, np.int64)
    link_y = np.full((x_dies, y_dies), -1, np.int64)
    for index, (a, b) in enumerate(links):
        x, y = divmod(a, y_dies)
        if b == a + 1:
            link_y[x, y] = index
        else:
            link_x[x, y] = index
    return link_x, link_y


@njit(cache=True)
def _step(x, y, dx, dy, link_x, link_y):
    """Index of the link from (x, y) one step in direction (dx, dy)."""
    if dx == 1:
        return link_x[x, y]
    if dx == -1:
        return link_x[x - 1, y]
    if dy == 1:
        return link_y[x, y]
    return link_y[x, y - 1]


@njit(cache=True)
def _dimension_order(src, dst, y_dies, x_first, die_alive, link_alive, link_x, link_y, out):
    """Links of the XY (``x_first``) or YX route into ``out``; -1 if a part of it is dead."""
    x, y = src // y_dies, src % y_dies
    tx, ty = dst // y_dies, dst % y_dies
    n = 0
    for phase in range(2):
        along_x = (phase == 0) == x_first
        while (x != tx) if along_x else (y != ty):
            dx = (1 if tx > x else -1) if along_x else 0
            dy = 0 if along_x else (1 if ty > y else -1)
            link = _step(x, y, dx, dy, link_x, link_y)
            x += dx
            y += dy
            if not link_alive[link] or not die_alive[y + x * y_dies]:
                return NO_ROUTE
            out[n] = link
            n += 1
    return n


@njit(cache=True)
def _breadth_first(src, dst, x_dies, y_dies, die_alive, link_alive, link_x, link_y, out):
    """Links of the first shortest live path found (neighbours -x, +x, -y, +y)."""
    num_dies = x_dies * y_dies
    via_link = np.full(num_dies, -1, np.int64)
    parent = np.full(num_dies, -1, np.int64)
    queue = np.empty(num_dies, np.int64)
    queue[0] = src
    parent[src] = src
    head, tail = 0, 1
    moves = ((-1, 0), (1, 0), (0, -1), (0, 1))
    while head < tail and parent[dst] < 0:
        die = queue[head]
        head += 1
        x, y = die // y_dies, die % y_dies
        for dx, dy in moves:
            nx, ny = x + dx, y + dy
            if nx < 0 or nx >= x_dies or ny < 0 or ny >= y_dies:
                continue
            nxt = ny + nx * y_dies
            link = _step(x, y, dx, dy, link_x, link_y)
            if parent[nxt] >= 0 or not die_alive[nxt] or not link_alive[link]:
                continue
            parent[nxt] = die
            via_link[nxt] = link
            queue[tail] = nxt
            tail += 1
    if parent[dst] < 0:
        return NO_ROUTE
    n = 0
    die = dst
    while die != src:
        out[n] = via_link[die]
        n += 1
        die = parent[die]
    out[:n] = out[:n][::-1].copy()
    return n


@njit(cache=True)
def _route(src, dst, x_dies, y_dies, die_alive, link_alive, link_x, link_y, out):
    """Route ``src -> dst`` by the module's rule: its links in ``out``; returns the length."""
    if src == dst:
        return 0
    if not die_alive[src] or not die_alive[dst]:
        return NO_ROUTE
    for x_first in (True, False):
        n = _dimension_order(src, dst, y_dies, x_first, die_alive, link_alive, link_x,
                             link_y, out)
        if n >= 0:
            return n
    return _breadth_first(src, dst, x_dies, y_dies, die_alive, link_alive, link_x, link_y,
                          out)


@njit(cache=True)
def _route_lengths(x_dies, y_dies, die_alive, link_alive, link_x, link_y):
    """Links per route, every pair (:data:`NO_ROUTE` where no live path exists)."""
    num_dies = x_dies * y_dies
    length = np.empty((num_dies, num_dies), np.int64)
    buffer = np.empty(num_dies, np.int64)
    for src in range(num_dies):
        for dst in range(num_dies):
            length[src, dst] = _route(src, dst, x_dies, y_dies, die_alive, link_alive, link_x,
                                      link_y, buffer)
    return length


@njit(cache=True)
def _fill_routes(x_dies, y_dies, die_alive, link_alive, link_x, link_y, start, flat):
    """Every pair's links into ``flat`` at the offsets ``start`` (sized by the lengths)."""
    num_dies = x_dies * y_dies
    buffer = np.empty(num_dies, np.int64)
    for src in range(num_dies):
        for dst in range(num_dies):
            first = start[src * num_dies + dst]
            hops = start[src * num_dies + dst + 1] - first
            if hops:
                _route(src, dst, x_dies, y_dies, die_alive, link_alive, link_x, link_y, buffer)
                flat[first:first + hops] = buffer[:hops]


def _all_routes(x_dies, y_dies, die_alive, link_alive, link_x, link_y):
    # two passes (lengths, then links) so that ``flat`` is allocated once at its exact size:
    # on a 64 x 64 mesh it holds 700 million links, and a growing buffer plus its final copy
    # doubled the peak memory
    length = _route_lengths(x_dies, y_dies, die_alive, link_alive, link_x, link_y)
    start = np.zeros(length.size + 1, np.int64)
    np.cumsum(np.maximum(length, 0).ravel(), out=start[1:])
    flat = np.empty(int(start[-1]), np.int32)
    _fill_routes(x_dies, y_dies, die_alive, link_alive, link_x, link_y, start, flat)
    return start, flat, length


def route(src: int, dst: int, x_dies: int, y_dies: int, die_alive: np.ndarray,
          link_alive: np.ndarray, link_x: np.ndarray, link_y: np.ndarray) -> list[int] | None:
    """Link indices of the route ``src -> dst`` (``None``: no live path)."""
    out = np.empty(x_dies * y_dies, np.int64)
    n = _route(src, dst, x_dies, y_dies, die_alive, link_alive, link_x, link_y, out)
    return None if n == NO_ROUTE else out[:n].tolist()


def all_routes(x_dies: int, y_dies: int, die_alive: np.ndarray, link_alive: np.ndarray,
               link_x: np.ndarray, link_y: np.ndarray):
    """Every pair's route at once, compressed.

    Returns
    -------
    start : numpy.ndarray (N * N + 1,) int64
        Route ``s -> d`` is ``flat[start[s * N + d]:start[s * N + d + 1]]``.
    flat : numpy.ndarray int32
        Link indices of all routes, back to back.
    length : numpy.ndarray (N, N) int64
        Links per route (:data:`NO_ROUTE` where no live path exists).
    """
    return _all_routes(x_dies, y_dies, die_alive, link_alive, link_x, link_y)
