"""The shared spatial grid (core/cells.py)."""

from __future__ import annotations

import numpy as np
import pytest

from srender_ros.core.cells import CellGrid, cell_name, parse_cell_name
from srender_ros.errors import InputError


def test_keys_and_group_partition_the_points() -> None:
    grid = CellGrid(2.0)
    pts = np.array([[0.1, 0.1, 0.1], [1.9, 0.0, 0.0], [2.0, 0.0, 0.0], [-0.1, 0.0, 0.0], [2.5, 0.1, -3.0]])
    assert grid.keys(pts).tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [-1, 0, 0], [1, 0, -2]]
    groups = grid.group(pts)
    assert list(groups) == [(-1, 0, 0), (0, 0, 0), (1, 0, -2), (1, 0, 0)]
    assert groups[(0, 0, 0)].tolist() == [0, 1]
    assert sorted(np.concatenate(list(groups.values())).tolist()) == list(range(5))
    for key, idx in groups.items():
        lo, hi = grid.bounds_m(key)
        assert np.all(pts[idx] >= lo) and np.all(pts[idx] < hi)
    assert grid.group(np.zeros((0, 3))) == {}


def test_near_cells_are_those_the_ball_touches() -> None:
    grid = CellGrid(1.0)
    assert grid.near(np.array([0.5, 0.5, 0.5]), 0.4) == [(0, 0, 0)]
    near = grid.near(np.array([0.5, 0.5, 0.5]), 0.6)
    assert len(near) == 7 and (1, 1, 1) not in near and (-1, 0, 0) in near
    np.testing.assert_allclose(grid.centre_m((1, -1, 0)), [1.5, -0.5, 0.5])


def test_names_round_trip_and_bad_input() -> None:
    assert parse_cell_name(cell_name((3, -1, 0))) == (3, -1, 0)
    with pytest.raises(InputError, match="not a cell name"):
        parse_cell_name("world.ply")
    with pytest.raises(InputError, match="positive"):
        CellGrid(0.0)
