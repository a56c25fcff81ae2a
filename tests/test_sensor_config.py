"""Sensor rig parsing and the realism module (no ROS): rig files, bad cameras, noise, distortion."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import T_BODY_OPTICAL
from srender_ros.core.realism import LensMap, Realism, add_depth_noise, add_image_noise, distort_normalized
from srender_ros.engine.tf_buffer import TfBuffer
from srender_ros.errors import TfError
from srender_ros.ros.sensor_config import parse_rig

REPO = Path(__file__).resolve().parents[1]


def _rig(params: dict) -> tuple:
    return parse_rig(params["cameras"], lambda cam, key: params.get(cam, {}).get(key))


def test_example_rig_parses_with_a_stereo_baseline_from_the_offsets() -> None:
    params = yaml.safe_load((REPO / "config" / "rig_mobile_base.yaml").read_text())["/**"]["ros__parameters"]
    specs, errors = _rig(params)
    assert errors == [] and [s.name for s in specs] == ["front", "stereo_left", "stereo_right"]
    front, left, right = specs
    assert front.optical_frame_id == "front_optical_frame" and front.publishes_static_tf
    assert np.allclose(front.T_mount_optical, T_BODY_OPTICAL)
    assert left.baseline_m == 0.0 and right.baseline_m == pytest.approx(0.12)
    assert (front.intrinsics.width_px, front.rate_hz, front.depth) == (320, 15.0, True)


@pytest.mark.parametrize(("cam", "match"), [
    ({"frame_id": "base_link", "width": 64}, r"bad\.height is missing"),
    ({"frame_id": "base_link", "width": 64, "height": 48, "rate_hz": 0.0}, r"rate_hz=0\.0 must lie in"),
    ({"frame_id": "base_link", "width": 64, "height": 48, "rate_hz": -5}, r"rate_hz=-5\.0 must lie in"),
    ({"frame_id": "", "width": 64, "height": 48}, "frame_id is empty"),
    ({"width": 64, "height": 48}, r"bad\.frame_id is missing"),
    ({"frame_id": "b", "width": 64, "height": 48, "fov_deg": 200.0}, "fov_deg"),
    ({"frame_id": "b", "width": "64", "height": 48}, "expected a int"),
    ({"frame_id": "b", "width": 64, "height": 48, "offset_xyz": [1, 2]}, "offset_xyz has 2 values"),
    ({"frame_id": "b", "width": 64, "height": 48, "noise_stddev": -1.0}, "noise_stddev"),
    ({"frame_id": "b", "width": 64, "height": 48, "stereo_left": "nobody"}, "not another usable camera"),
])
def test_a_bad_camera_is_one_line_and_the_others_stay(cam: dict, match: str) -> None:
    good = {"frame_id": "base_link", "width": 64, "height": 48}
    specs, errors = _rig({"cameras": ["good", "bad"], "good": good, "bad": cam})
    assert [s.name for s in specs] == ["good"]
    assert len(errors) == 1 and "'bad'" in errors[0]
    assert re.search(match, errors[0]), errors[0]


def test_duplicate_names_are_reported_once() -> None:
    good = {"frame_id": "base_link", "width": 64, "height": 48}
    specs, errors = _rig({"cameras": ["a", "a"], "a": good})
    assert len(specs) == 1 and len(errors) == 1 and "listed twice" in errors[0]


def test_optical_mount_needs_no_static_transform() -> None:
    specs, _ = _rig({"cameras": ["c"], "c": {"frame_id": "cam_optical", "width": 64, "height": 48, "optical": True}})
    assert specs[0].optical_frame_id == "cam_optical" and not specs[0].publishes_static_tf
    assert np.allclose(specs[0].T_mount_optical, np.eye(4))


def test_noise_is_seeded_by_seed_and_stamp_and_has_the_asked_spread() -> None:
    r = Realism(noise_stddev=0.05, depth_noise_k=0.01, seed=3)
    img = np.full((100, 100, 3), 0.5, np.float32)
    a = add_image_noise(img, 0.0, 0.05, r.rng(123))
    b = add_image_noise(img, 0.0, 0.05, r.rng(123))
    c = add_image_noise(img, 0.0, 0.05, r.rng(124))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(float(a.std()) - 0.05) < 0.005 and abs(float(a.mean()) - 0.5) < 0.005
    z = np.full((200, 200), 4.0, np.float32)
    z[0, 0] = np.nan
    dz = add_depth_noise(z, 0.01, r.rng(5))
    assert np.isnan(dz[0, 0])
    assert abs(float(np.nanstd(dz)) - 0.01 * 16) < 0.01  # sigma = k z^2 = 0.16 m at 4 m
    near = add_depth_noise(np.full((200, 200), 1.0, np.float32), 0.01, r.rng(5))
    assert float(near.std()) < float(np.nanstd(dz)) / 10


def test_distorted_image_undistorts_with_opencv_to_the_pinhole_view() -> None:
    cv2 = pytest.importorskip("cv2")
    cam = Intrinsics.from_fov(160, 120, 80.0)
    D = (-0.25, 0.08, 0.001, -0.001, 0.0)
    lens = LensMap(cam, D)
    big = lens.render_intrinsics
    assert big.width_px > cam.width_px  # barrel distortion sees more: rendered wider
    # A smooth synthetic "render": colour as a function of the ray direction.
    rays = big.pixel_rays()
    pinhole_wide = np.stack([np.sin(7 * rays[..., 0]) * 0.5 + 0.5, np.cos(5 * rays[..., 1]) * 0.5 + 0.5,
                             np.full(rays.shape[:2], 0.3)], -1).astype(np.float32)
    distorted = lens.rgb(pinhole_wide)
    assert distorted.shape == (120, 160, 3)
    # OpenCV's pixel centres are at integer coordinates: our cx (centre at +0.5) is cx - 0.5 there.
    K = cam.K.copy()
    K[0, 2] -= 0.5
    K[1, 2] -= 0.5
    undist = cv2.undistort(distorted, K, np.array(D))
    r = cam.pixel_rays()
    truth = np.stack([np.sin(7 * r[..., 0]) * 0.5 + 0.5, np.cos(5 * r[..., 1]) * 0.5 + 0.5,
                      np.full(r.shape[:2], 0.3)], -1)
    inner = (slice(15, -15), slice(20, -20))
    assert np.abs(undist[inner] - truth[inner]).max() < 0.03
    # And the map agrees with the plumb_bob model: a pixel's ray lands where D sends it.
    xd, yd = distort_normalized(np.array([0.5]), np.array([0.3]), D)
    assert xd[0] < 0.5 and yd[0] < 0.3  # barrel: pulled inwards


def test_tf_buffer_cache_forgets_old_samples_and_rebuilds_only_changed_links() -> None:
    buf = TfBuffer(cache_s=1.0)
    buf.add_static("base", "cam", np.eye(4))
    for k in range(300):
        T = np.eye(4)
        T[0, 3] = k * 0.01
        buf.add_dynamic("odom", "base", k * 10_000_000, T)  # 100 Hz for 3 s
    assert buf.span_ns("odom", "cam") == (1_990_000_000, 2_990_000_000)
    assert buf.lookup("odom", "cam", 2_500_000_000)[0, 0, 3] == pytest.approx(2.5)
    with pytest.raises(TfError, match="no data"):  # older than the cache
        buf.lookup("odom", "cam", 1_000_000_000)
