"""Inputs of the keyframe-count model: pose tokens and the appearance image.

Pose tokens follow SRENDER (one token per pose: quaternion + translation relative to the first
pose, translation divided by the trajectory's scale) with a few additions that the paper's
scale-free video data could not have but our metric trajectories do (see docs/learned.md):

- per token: its time as a fraction of the duration, and the step (metres, radians) from the
  previous token, so the model sees how fast and how far the camera moves;
- global, repeated on every token: log scale (m), log duration (s), log path length (m), log total
  rotation (rad) and the field of view (rad), so a count can grow with the trajectory.

Everything is relative to the first pose and the first stamp, so a rigid transform of the whole
trajectory or a shift of its stamps leaves the tokens unchanged (up to rounding).

Long trajectories are resampled to exactly ``n_tokens`` poses evenly spaced in index (short ones
repeat poses), so the model always sees the same number of tokens and prediction cost does not
grow with the trajectory length.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import invert_transform, matrix_to_quat_wxyz
from srender_ros.core.trajectory import Trajectory
from srender_ros.errors import InputError, TrajectoryError

#: Names of the per-token features, in order (the model's input width is their count).
TOKEN_FEATURES = (
    "qw", "qx", "qy", "qz",            # rotation relative to the first pose (w >= 0)
    "tx", "ty", "tz",                  # translation in the first camera's frame / scale
    "time_frac",                       # (stamp - first stamp) / duration, 0..1
    "step_log_m",                      # log1p(metres moved since the previous token)
    "step_rot_rad",                    # radians turned since the previous token
    "log_scale_m",                     # log(max distance from the first pose, m) (global)
    "log_duration_s",                  # log1p(duration, s) (global)
    "log_path_m",                      # log1p(path length over all poses, m) (global)
    "log_rot_rad",                     # log1p(total rotation over all poses, rad) (global)
    "hfov_rad",                        # horizontal field of view (global)
    "vfov_rad",                        # vertical field of view (global)
)
N_TOKEN_FEATURES = len(TOKEN_FEATURES)

#: Default number of pose tokens (trajectories are resampled to exactly this many).
DEFAULT_N_TOKENS = 32
#: Side of the square image the built-in appearance encoder reads.
IMAGE_SIDE_PX = 64
#: Below this (metres) a trajectory counts as not translating; its scale is set to 1 m.
MIN_SCALE_M = 1e-6


def token_indices(n_poses: int, n_tokens: int) -> NDArray[np.int64]:
    """[n_tokens] pose indices evenly spread over ``n_poses`` (first and last included, repeats allowed)."""
    if n_poses < 1:
        raise TrajectoryError("trajectory is empty: it needs at least one pose")
    if n_tokens < 1:
        raise InputError(f"n_tokens={n_tokens}: must be >= 1")
    return np.round(np.linspace(0, n_poses - 1, n_tokens)).astype(np.int64)


def _rotation_angles(R_a: NDArray[np.float64], R_b: NDArray[np.float64]) -> NDArray[np.float64]:
    """[N] angle (rad) of R_a^T R_b for [N, 3, 3] rotations."""
    tr = np.einsum("nji,nji->n", R_a, R_b)
    return np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0))


def pose_tokens(stamps_ns: NDArray[np.integer], T_world_cam: NDArray[np.floating], intrinsics: Intrinsics,
                n_tokens: int = DEFAULT_N_TOKENS) -> NDArray[np.float32]:
    """Pose tokens of one trajectory.

    Args:
        stamps_ns: [N] int64 strictly increasing stamps (ns).
        T_world_cam: [N, 4, 4] optical camera-to-world poses.
        intrinsics: the camera (its field of view is a feature).
        n_tokens: tokens to produce (the trajectory is resampled evenly by index).
    Returns:
        [n_tokens, N_TOKEN_FEATURES] float32 (see TOKEN_FEATURES).
    Raises:
        TrajectoryError: empty, mismatched, non-finite or badly stamped input.
    """
    stamps = np.asarray(stamps_ns)
    T = np.asarray(T_world_cam, dtype=np.float64)
    if stamps.ndim != 1 or len(stamps) == 0:
        raise TrajectoryError("trajectory is empty: the keyframe-count model needs at least one pose")
    if T.shape != (len(stamps), 4, 4):
        raise TrajectoryError(f"trajectory: {len(stamps)} stamps but poses of shape {list(T.shape)}; expected [N, 4, 4]")
    if not np.isfinite(T).all():
        raise TrajectoryError("trajectory has NaN or infinite pose values")
    if len(stamps) > 1 and (np.diff(stamps.astype(np.int64)) <= 0).any():
        raise TrajectoryError("trajectory stamps must increase strictly")

    T_rel = invert_transform(T[0])[None] @ T                      # [N, 4, 4] pose i in the first camera's frame
    t_rel = T_rel[:, :3, 3]
    R_rel = T_rel[:, :3, :3]
    scale_m = float(np.linalg.norm(t_rel, axis=1).max())
    scale_m = scale_m if scale_m > MIN_SCALE_M else 1.0
    t_s = (stamps.astype(np.int64) - int(stamps[0])).astype(np.float64) * 1e-9
    duration_s = float(t_s[-1])

    # Totals over ALL poses (not only the tokens): path length and rotation are what the coverage
    # walk actually sweeps, and resampling would under-count wiggly paths.
    path_m = float(np.linalg.norm(np.diff(t_rel, axis=0), axis=1).sum()) if len(T) > 1 else 0.0
    rot_rad = float(_rotation_angles(R_rel[:-1], R_rel[1:]).sum()) if len(T) > 1 else 0.0

    idx = token_indices(len(T), n_tokens)
    q = matrix_to_quat_wxyz(R_rel[idx])                           # w >= 0 already
    t_tok = t_rel[idx]
    prev = np.concatenate([idx[:1], idx[:-1]])
    step_m = np.linalg.norm(t_rel[idx] - t_rel[prev], axis=1)
    step_rot = _rotation_angles(R_rel[prev], R_rel[idx])
    time_frac = t_s[idx] / duration_s if duration_s > 0 else np.zeros(n_tokens)

    hfov = 2.0 * math.atan(intrinsics.width_px / (2.0 * intrinsics.fx_px))
    vfov = 2.0 * math.atan(intrinsics.height_px / (2.0 * intrinsics.fy_px))
    glob = np.array([math.log(scale_m), math.log1p(duration_s), math.log1p(path_m), math.log1p(rot_rad), hfov, vfov])
    feats = np.concatenate([
        q, t_tok / scale_m, time_frac[:, None], np.log1p(step_m)[:, None], step_rot[:, None],
        np.broadcast_to(glob, (n_tokens, len(glob))),
    ], axis=1)
    return feats.astype(np.float32)


def trajectory_tokens(trajectory: Trajectory, intrinsics: Intrinsics, n_tokens: int = DEFAULT_N_TOKENS) -> NDArray[np.float32]:
    """:func:`pose_tokens` of a validated Trajectory: [n_tokens, N_TOKEN_FEATURES] float32."""
    if not isinstance(trajectory, Trajectory):
        raise TrajectoryError(f"expected a Trajectory, got {type(trajectory).__name__}")
    return pose_tokens(trajectory.stamps_ns, trajectory.T_world_cam, intrinsics, n_tokens)


def prepare_image(image: NDArray[np.generic], side_px: int = IMAGE_SIDE_PX) -> NDArray[np.float32]:
    """An RGB image resized (area average) to the built-in encoder's input.

    Args:
        image: [H, W, 3] float in [0, 1] or uint8 in [0, 255].
        side_px: output side.
    Returns:
        [3, side_px, side_px] float32 in [0, 1].
    Raises:
        InputError: wrong shape or non-finite values.
    """
    import torch
    import torch.nn.functional as F

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError(f"appearance image: expected [H, W, 3], got {list(img.shape)}")
    x = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    if not np.isfinite(x).all():
        raise InputError("appearance image has NaN or infinite values")
    t = torch.from_numpy(np.ascontiguousarray(np.clip(x, 0.0, 1.0).transpose(2, 0, 1)))[None]
    out = F.interpolate(t, size=(side_px, side_px), mode="area" if min(img.shape[:2]) >= side_px else "bilinear")
    return out[0].numpy().astype(np.float32)


class Dinov2ClassToken:
    """DINOv2 class token of an image, from a LOCAL transformers folder (never downloads).

    Args:
        model_dir: a folder saved with ``save_pretrained`` (config.json + weights, and ideally the
            image processor's preprocessor_config.json).
    Raises:
        ModelLoadError: the folder is missing or is not a loadable vision model.
    """

    def __init__(self, model_dir: str | Path) -> None:
        from srender_ros.errors import ModelLoadError

        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"DINOv2 folder {path}: no config.json; pass a folder saved with save_pretrained")
        try:
            from transformers import AutoModel
        except ImportError as exc:  # pragma: no cover - transformers is a requirement
            raise ModelLoadError(f"DINOv2 needs transformers ({exc})") from exc
        try:
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"DINOv2 folder {path} cannot be loaded: {exc}") from exc
        cfg = self.model.config
        self.hidden_size = int(getattr(cfg, "hidden_size", 0))
        self.image_size = int(getattr(cfg, "image_size", 224))
        if self.hidden_size < 1:
            raise ModelLoadError(f"DINOv2 folder {path}: config has no hidden_size; is it a vision transformer?")

    def __call__(self, image: NDArray[np.generic]) -> NDArray[np.float32]:
        """[H, W, 3] image -> [hidden_size] float32 class token (ImageNet-normalized input at image_size)."""
        import torch

        x = torch.from_numpy(prepare_image(image, self.image_size))[None]
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        with torch.no_grad():
            out = self.model(pixel_values=(x - mean) / std)
        return out.last_hidden_state[0, 0].numpy().astype(np.float32)
