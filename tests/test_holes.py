"""Push-pull hole filling of rendered frames."""

from __future__ import annotations

import numpy as np
import pytest

from srender_ros.core.holes import fill_holes


def _two_tone(h: int = 32, w: int = 48) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[:, : w // 2] = (0.8, 0.2, 0.1)
    rgb[:, w // 2:] = (0.1, 0.3, 0.9)
    return rgb


def test_covered_pixels_are_kept_exactly() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 1, (2, 20, 30, 3)).astype(np.float32)
    out = fill_holes(rgb, np.ones((2, 20, 30)))
    np.testing.assert_array_equal(out, rgb)


def test_holes_take_the_colour_around_them() -> None:
    truth = _two_tone()
    alpha = np.ones(truth.shape[:2])
    alpha[10:16, 4:10] = 0.0          # a hole in the red half
    alpha[10:16, 36:44] = 0.0         # and one in the blue half
    rendered = truth * alpha[..., None]   # composited over black
    out = fill_holes(rendered, alpha)
    np.testing.assert_allclose(out[10:16, 4:10], np.broadcast_to(truth[0, 0], (6, 6, 3)), atol=1e-5)
    np.testing.assert_allclose(out[10:16, 36:44], np.broadcast_to(truth[0, -1], (6, 8, 3)), atol=1e-5)
    assert np.abs(rendered - truth).max() > 0.5   # the holes were black before


def test_partly_covered_pixels_are_not_darkened_and_the_background_is_removed() -> None:
    truth = np.full((16, 16, 3), 0.6, np.float32)
    alpha = np.ones((16, 16))
    alpha[5:8, 5:8] = 0.4
    bg = (0.0, 1.0, 0.0)
    rendered = truth * alpha[..., None] + (1 - alpha[..., None]) * np.array(bg, np.float32)
    np.testing.assert_allclose(fill_holes(rendered, alpha, bg), truth, atol=1e-5)


def test_nothing_covered_keeps_the_background_and_shapes_are_checked() -> None:
    bg = (0.2, 0.3, 0.4)
    out = fill_holes(np.broadcast_to(np.array(bg, np.float32), (8, 9, 3)), np.zeros((8, 9)), bg)
    np.testing.assert_allclose(out, np.broadcast_to(bg, (8, 9, 3)), atol=1e-6)
    assert fill_holes(np.zeros((1, 1, 3)), np.zeros((1, 1))).shape == (1, 1, 3)
    with pytest.raises(ValueError, match="do not match"):
        fill_holes(np.zeros((4, 4, 3)), np.zeros((4, 5)))
