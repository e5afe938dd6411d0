"""Mesh routing on the presets' meshes, checked against Manhattan distance and XY order."""

import itertools

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
