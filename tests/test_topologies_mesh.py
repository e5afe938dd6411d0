"""Mesh routing on the presets' meshes, checked against Manhattan distance and XY order."""

import itertools

import numpy as np
import pytest

from hwmodel.topologies.mesh import Mesh


@pytest.mark.parametrize(("x_dies", "y_dies"), [(5, 5), (3, 8)])
def test_every_route_is_manhattan_and_moves_along_x_first(x_dies, y_dies):
    mesh = Mesh(x_dies, y_dies)
    for src, dst in itertools.product(range(mesh.num_dies), repeat=2):
        (sx, sy), (dx, dy) = mesh.coords(src), mesh.coords(dst)
        manhattan = abs(sx - dx) + abs(sy - dy)
        assert mesh.hop_count(src, dst) == manhattan
        path = [mesh.coords(d) for d in mesh.route(src, dst)]
        assert len(path) == manhattan + 1 and path[0] == (sx, sy) and path[-1] == (dx, dy)
        steps = [(bx - ax, by - ay) for (ax, ay), (bx, by) in itertools.pairwise(path)]
        assert all(abs(a) + abs(b) == 1 for a, b in steps)
        x_steps = [i for i, (a, _) in enumerate(steps) if a]
        # All x moves come before any y move: x first, then y (dimension order).
        assert x_steps == list(range(abs(sx - dx)))
        links = mesh.route_links(src, dst)
        assert len(links) == manhattan
        assert [mesh.links[i] for i in links] == [tuple(sorted(p)) for p in
                                                  itertools.pairwise(mesh.route(src, dst))]


@pytest.mark.parametrize(("x_dies", "y_dies", "links"), [(5, 5, 40), (3, 8, 37), (8, 8, 112),
                                                         (16, 16, 480), (1, 1, 0), (1, 4, 3)])
def test_link_count_is_grid_edges(x_dies, y_dies, links):
    # A grid without wrap-around has (X-1)Y + X(Y-1) edges.
    assert len(Mesh(x_dies, y_dies).links) == links == (x_dies - 1) * y_dies + x_dies * (y_dies - 1)


def test_ids_run_down_each_column():
    mesh = Mesh(3, 8)
    assert mesh.die_id(1, 2) == 10 and mesh.coords(10) == (1, 2)
    assert mesh.die_name(10) == "die_1_2"
    assert mesh.neighbours(0) == [1, 8]
    assert mesh.route(0, 10) == [0, 8, 9, 10]


def test_bad_mesh_and_die_are_named():
    with pytest.raises(ValueError, match="y_dies must be at least 1, not 0"):
        Mesh(3, 0)
    with pytest.raises(TypeError, match="x_dies must be an integer, not 2.5"):
        Mesh(2.5, 3)
    with pytest.raises(ValueError, match=r"die must be an integer in 0\.\.23"):
        Mesh(3, 8).route(0, 24)
    with pytest.raises(ValueError, match="dies 0 and 2 are not neighbours"):
        Mesh(3, 8).link_index(0, 2)


# --------------------------------------------------------------------------- shortest detours
def _live_distances(x_dies, y_dies, dead_dies, dead_links, src):
    """Hops from ``src`` to every die over live dies and live links (plain breadth-first
    search on coordinates, written independently of hwmodel.topologies.routing)."""
    dead_pairs = set(dead_links)
    dist = {src: 0}
    frontier = [src]
    while frontier:
        following = []
        for die in frontier:
            x, y = divmod(die, y_dies)
            for nx, ny in ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)):
                if not (0 <= nx < x_dies and 0 <= ny < y_dies):
                    continue
                other = ny + nx * y_dies
                if other in dist or other in dead_dies or (min(die, other),
                                                           max(die, other)) in dead_pairs:
                    continue
                dist[other] = dist[die] + 1
                following.append(other)
        frontier = following
    return dist


@pytest.mark.parametrize("seed", range(6))
def test_every_detour_is_a_shortest_live_path(seed):
    """Random faults on a 5 x 6 mesh: every route between two live dies is a connected path
    over live dies and links whose length is the live graph's distance (a depth-first detour,
    or one that skips the search for the shortest, is longer)."""
    rng = np.random.default_rng(seed)
    x_dies, y_dies = 5, 6
    layout = Mesh(x_dies, y_dies)
    dead_links = sorted(rng.choice(len(layout.links), size=7, replace=False).tolist())
    dead_dies = sorted(rng.choice(layout.num_dies, size=2, replace=False).tolist())
    mesh = Mesh(x_dies, y_dies, dead_dies=dead_dies, dead_links=dead_links)
    dead_pairs = [layout.links[i] for i in dead_links]
    detours = 0
    for src in mesh.live_dies:
        dist = _live_distances(x_dies, y_dies, set(dead_dies), dead_pairs, src)
        for dst in mesh.live_dies:
            if dst not in dist:
                continue
            path = mesh.route(src, dst)
            assert len(path) - 1 == dist[dst], (src, dst, path)
            assert path[0] == src and path[-1] == dst
            for a, b in itertools.pairwise(path):
                assert layout.hop_count(a, b) == 1 and b not in dead_dies
                assert (min(a, b), max(a, b)) not in dead_pairs
            detours += dist[dst] > layout.hop_count(src, dst)
    assert detours > 0   # the faults force some routes off every Manhattan path
