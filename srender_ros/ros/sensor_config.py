"""Sensor-camera parameters: the rig as validated values (no rclpy here).

CONTRACT (docs/node.md, issue 13)::

    world_frame: "odom"          # fixed frame the worlds live in
    cameras: ["front", "left"]   # empty (default) = no sensor cameras
    front:
      frame_id: "base_link"      # TF frame the camera is mounted on (REP 103 body axes unless optical: true)
      rate_hz: 10.0
      width: 320
      height: 240
      fov_deg: 90.0
      depth: true

Optional per camera: ``optical`` (the mount frame already has optical axes), ``offset_xyz`` /
``offset_rpy`` (metres / radians, fixed mount -> camera offset for mounts without a TF frame),
``optical_frame_id`` (default ``<name>_optical_frame``), ``stereo_left`` (this camera is the right
camera of a pair; CameraInfo P gets Tx = -fx * baseline), ``baseline_m`` (default: from the two
offsets when both cameras share a mount frame), and the realism terms of
:class:`srender_ros.core.realism.Realism` (all off by default).

A bad camera is reported (one line each) and left out; the others are served.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import T_BODY_OPTICAL, make_transform
from srender_ros.core.realism import Realism
from srender_ros.errors import InputError

#: Top-level sensor parameters: name -> (default, description). Declared by the node beside NodeConfig's.
SENSOR_PARAMS: dict[str, tuple[Any, str]] = {
    "world_frame": ("odom", "Fixed TF frame the worlds live in; sensor cameras are looked up from it (fixed at "
                    "start-up)."),
    "cameras": ([], "Sensor camera names (string array); empty = no sensor cameras. Each name's settings are "
                "the parameters <name>.frame_id, .rate_hz, .width, .height, .fov_deg, .depth, ... (docs/node.md)."),
    "sensor_generate": (True, "Sensor cameras whose view the world does not cover ask for a keyframe (made off the "
                        "publishing path); false renders only what the world has."),
    "tf_timeout_s": (0.5, "How long a sensor tick waits for /tf to reach its stamp before it is skipped, seconds."),
    "tf_cache_s": (10.0, "Seconds of /tf history kept for lookups (tf2's default is 10)."),
}

#: Per-camera keys: key -> (kind, default; None = required).
CAMERA_KEYS: dict[str, tuple[type, Any]] = {
    "frame_id": (str, None),
    "rate_hz": (float, 10.0),
    "width": (int, None),
    "height": (int, None),
    "fov_deg": (float, 90.0),
    "depth": (bool, True),
    "optical": (bool, False),
    "optical_frame_id": (str, ""),
    "offset_xyz": (list, [0.0, 0.0, 0.0]),
    "offset_rpy": (list, [0.0, 0.0, 0.0]),
    "stereo_left": (str, ""),
    "baseline_m": (float, 0.0),
    "noise_mean": (float, 0.0),
    "noise_stddev": (float, 0.0),
    "depth_noise_k": (float, 0.0),
    "distortion": (list, [0.0, 0.0, 0.0, 0.0, 0.0]),
    "motion_blur_s": (float, 0.0),
    "motion_blur_samples": (int, 4),
    "seed": (int, 0),
}


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> NDArray[np.float64]:
    """[3, 3] rotation of fixed-axis roll (x), pitch (y), yaw (z), as URDF and tf2 use: R = Rz Ry Rx."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw),
                              math.sin(yaw))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class CameraSpec:
    """One validated sensor camera.

    Attributes:
        name: camera name = topic prefix (``<name>/image_raw`` ...).
        frame_id: TF mount frame.
        optical_frame_id: ``header.frame_id`` of its images (published on /tf_static from the mount
            unless equal to ``frame_id``).
        rate_hz: ticks per second on the node clock.
        intrinsics: the published (pinhole) camera, width x height at fov_deg.
        depth: publish ``<name>/depth/image_raw``.
        T_mount_optical: [4, 4] mount -> optical frame (offset, then body -> optical axes unless optical).
        baseline_m: > 0 for the right camera of a stereo pair (CameraInfo P[3] = -fx * baseline).
        realism: noise, distortion and blur settings.
    """

    name: str
    frame_id: str
    optical_frame_id: str
    rate_hz: float
    intrinsics: Intrinsics
    depth: bool
    T_mount_optical: NDArray[np.float64]
    is_optical_mount: bool
    baseline_m: float = 0.0
    stereo_left: str = ""
    realism: Realism = field(default_factory=Realism)

    @property
    def period_ns(self) -> int:
        return max(1, round(1e9 / self.rate_hz))

    @property
    def publishes_static_tf(self) -> bool:
        """True when the node must publish mount -> optical on /tf_static."""
        return self.optical_frame_id != self.frame_id


def _typed(camera: str, key: str, value: Any) -> Any:
    kind, _ = CAMERA_KEYS[key]
    where = f"camera {camera!r}: parameter {camera}.{key}={value!r}"
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                           for v in value):
            raise InputError(f"{where}: expected a list of numbers")
        value = [float(v) for v in value]
        if not all(math.isfinite(v) for v in value):
            raise InputError(f"{where}: values must be finite")
        return value
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InputError(f"{where}: expected a {kind.__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: must be finite")
    return value


def parse_camera(name: str, get: Callable[[str], Any]) -> CameraSpec:
    """Validate one camera from its parameter values.

    Args:
        name: camera name.
        get: ``key -> value`` of ``<name>.<key>``, None where the parameter is not set.
    Raises:
        InputError: one line naming the camera, the parameter and what to do.
    """
    if not name or not name.replace("_", "").replace("/", "").isalnum() or name[0].isdigit() or "//" in name:
        raise InputError(f"camera name {name!r}: use letters, digits, '_' (a topic name prefix), not starting with "
                         "a digit")
    v: dict[str, Any] = {}
    for key, (_, default) in CAMERA_KEYS.items():
        raw = get(key)
        if raw is None:
            if default is None:
                raise InputError(f"camera {name!r}: parameter {name}.{key} is missing; set it (e.g. "
                                 f"{name}.{key}: {_EXAMPLE[key]})")
            raw = default
        v[key] = _typed(name, key, raw)
    frame = v["frame_id"].strip().lstrip("/")
    if not frame:
        raise InputError(f"camera {name!r}: parameter {name}.frame_id is empty; name the TF frame it is mounted on")
    if v["rate_hz"] <= 0 or v["rate_hz"] > 1000:
        raise InputError(f"camera {name!r}: rate_hz={v['rate_hz']} must lie in (0, 1000] ticks per second")
    for key in ("width", "height"):
        if not 8 <= v[key] <= 8192:
            raise InputError(f"camera {name!r}: {key}={v[key]} must lie in [8, 8192] pixels")
    if not 1.0 <= v["fov_deg"] <= 179.0:
        raise InputError(f"camera {name!r}: fov_deg={v['fov_deg']} must lie in [1, 179] degrees")
    for key, n in (("offset_xyz", 3), ("offset_rpy", 3), ("distortion", 5)):
        if len(v[key]) != n:
            raise InputError(f"camera {name!r}: {key} has {len(v[key])} values, expected {n}")
    T_mount_cam = make_transform(rpy_to_matrix(*v["offset_rpy"]), np.array(v["offset_xyz"]))
    T = T_mount_cam if v["optical"] else T_mount_cam @ T_BODY_OPTICAL
    optical_frame = v["optical_frame_id"].strip().lstrip("/") or (
        frame if v["optical"] and not any(v["offset_xyz"]) and not any(v["offset_rpy"]) else f"{name}_optical_frame")
    if optical_frame == frame and not np.allclose(T, np.eye(4)):
        raise InputError(f"camera {name!r}: optical_frame_id equals the mount frame {frame!r} but the camera is "
                         "offset or rotated from it; give the optical frame its own name")
    realism = Realism(noise_mean=v["noise_mean"], noise_stddev=v["noise_stddev"], depth_noise_k=v["depth_noise_k"],
                      distortion=tuple(v["distortion"]), motion_blur_s=v["motion_blur_s"],
                      motion_blur_samples=v["motion_blur_samples"], seed=v["seed"])
    realism.check(f"camera {name!r}")
    if v["baseline_m"] < 0:
        raise InputError(f"camera {name!r}: baseline_m={v['baseline_m']} must be >= 0")
    return CameraSpec(name=name, frame_id=frame, optical_frame_id=optical_frame, rate_hz=v["rate_hz"],
                      intrinsics=Intrinsics.from_fov(v["width"], v["height"], v["fov_deg"]), depth=v["depth"],
                      T_mount_optical=T, is_optical_mount=v["optical"], baseline_m=v["baseline_m"],
                      stereo_left=v["stereo_left"].strip(), realism=realism)


_EXAMPLE = {"frame_id": '"base_link"', "width": 320, "height": 240}


def parse_rig(names: list[str], get: Callable[[str, str], Any]) -> tuple[list[CameraSpec], list[str]]:
    """Validate every camera of the rig; bad ones are left out with one error line each.

    Args:
        names: the ``cameras`` parameter.
        get: ``(camera, key) -> value`` (None where unset).
    Returns:
        (the usable cameras in order, error lines).
    """
    specs: list[CameraSpec] = []
    errors: list[str] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            errors.append(f"camera {name!r} is listed twice in 'cameras'; camera names must be unique (the second "
                          "is ignored)")
            continue
        seen.add(name)
        try:
            specs.append(parse_camera(name, lambda key, n=name: get(n, key)))  # type: ignore[misc]
        except InputError as exc:
            errors.append(str(exc))
    by_name = {s.name: s for s in specs}
    out: list[CameraSpec] = []
    for s in specs:
        if not s.stereo_left:
            out.append(s)
            continue
        left = by_name.get(s.stereo_left)
        try:
            out.append(_stereo(s, left))
        except InputError as exc:
            errors.append(str(exc))
    return out, errors


def _stereo(right: CameraSpec, left: CameraSpec | None) -> CameraSpec:
    """The right camera of a pair with its baseline (from the offsets when not given)."""
    if left is None or left is right:
        raise InputError(f"camera {right.name!r}: stereo_left={right.stereo_left!r} is not another usable camera of "
                         "this rig")
    if (left.intrinsics.width_px, left.intrinsics.height_px) != (right.intrinsics.width_px, right.intrinsics.height_px):
        raise InputError(f"camera {right.name!r}: a stereo pair needs equal image sizes ({left.name!r} is "
                         f"{left.intrinsics.width_px}x{left.intrinsics.height_px})")
    baseline = right.baseline_m
    if baseline == 0.0:
        if left.frame_id != right.frame_id:
            raise InputError(f"camera {right.name!r}: the pair's mounts differ ({left.frame_id!r}, {right.frame_id!r});"
                             " set baseline_m")
        # Right camera's origin in the left optical frame: +x is the baseline.
        rel = np.linalg.inv(left.T_mount_optical) @ right.T_mount_optical
        baseline = float(rel[0, 3])
        if baseline <= 0:
            raise InputError(f"camera {right.name!r}: it sits {baseline:+.3f} m along {left.name!r}'s x axis; the "
                             "right camera of a pair must be to its right (or set baseline_m)")
    return CameraSpec(**{**right.__dict__, "baseline_m": baseline})
