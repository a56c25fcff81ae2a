"""Frames between keyframes by 2D interpolation (``inbetween = interpolate``), the baseline to 3D rendering.

The keyframes are the very ones the 3D mode makes (same scheduler walk, same generator); only the
frames between them change: each pose between keyframes a < i < b gets the interpolator's frame at
t = (i - a) / (b - a) of the pair (keyframe a, keyframe b), as the request camera sees them (the
overscanned keyframe cropped back to the camera). Keyframe poses get their keyframe image exactly.
Poses before the first or after the last keyframe of the request hold that keyframe (an
interpolator cannot extrapolate); ``held_frames`` counts them.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence

import numpy as np

from srender_ros.core.camera import Intrinsics, crop_to_camera
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.metrics import hole_fraction
from srender_ros.core.ports.inbetween import Inbetweener, InbetweenFrame, InbetweenPair
from srender_ros.core.ports.render import RenderOutput
from srender_ros.core.trajectory import Trajectory
from srender_ros.engine.job import FrameChunk, RunStats
from srender_ros.errors import InputError

__all__ = ["InbetweenKind", "interpolated_chunks", "keyframe_views"]


class InbetweenKind:
    """Values of ``PipelineConfig.inbetween``."""

    RENDER = "render"
    INTERPOLATE = "interpolate"
    ALL = (RENDER, INTERPOLATE)


def keyframe_views(records: Sequence[KeyframeRecord], camera: Intrinsics) -> dict[int, InbetweenFrame]:
    """pose index -> the keyframe as ``camera`` sees it (crop of the overscanned keyframe; rgb and depth).

    Records without a pose in the trajectory (pose_index < 0) are left out; a later record of the
    same pose wins.
    """
    views: dict[int, InbetweenFrame] = {}
    for r in records:
        if r.pose_index < 0:
            continue
        rgb = crop_to_camera(r.rgb, r.intrinsics, camera)
        depth = crop_to_camera(np.asarray(r.depth_m, np.float32)[..., None], r.intrinsics, camera)[..., 0]
        if rgb.shape[:2] != (camera.height_px, camera.width_px):
            raise InputError(f"keyframe at pose {r.pose_index} is {rgb.shape[1]}x{rgb.shape[0]} and does not contain "
                             f"the {camera.width_px}x{camera.height_px} camera's view; interpolation needs keyframes "
                             "at least as large as the camera (same focal length)")
        views[r.pose_index] = InbetweenFrame(rgb, depth.astype(np.float32))
    return views


def require_two_keyframes(count: int) -> None:
    """The one error of interpolation without a pair of keyframes."""
    if count < 2:
        raise InputError(f"--inbetween interpolate needs at least 2 keyframes in the request, the scheduler made "
                         f"{count}; use --scheduler uniform --keyframes 2 (or more), or --inbetween render")


def interpolated_chunks(inbetweener: Inbetweener, views: dict[int, InbetweenFrame], trajectory: Trajectory,
                        chunk_size: int, stats: RunStats) -> Iterator[FrameChunk]:
    """FrameChunks of every pose of ``trajectory`` from keyframe ``views`` (pose index -> view).

    Each keyframe pair's flow is computed once, when the first pose between them is reached.
    Adds the time to ``stats.seconds["interpolate"]``, frames and hole fractions to ``stats``.

    Raises:
        InputError: fewer than two keyframes.
    """
    require_two_keyframes(len(views))
    kf = sorted(views)
    n = len(trajectory)
    T_all = trajectory.T_world_cam
    cache: dict[tuple[int, int], InbetweenPair] = {}
    stats.seconds.setdefault("interpolate", 0.0)
    stats.held_frames = sum(1 for i in range(n) if i < kf[0] or i > kf[-1])

    def segment(i: int) -> tuple[int, int, float]:
        if i <= kf[0]:
            return kf[0], kf[1], 0.0
        if i >= kf[-1]:
            return kf[-2], kf[-1], 1.0
        j = bisect.bisect_right(kf, i)
        a, b = kf[j - 1], kf[j]
        return a, b, (i - a) / (b - a)

    for s in range(0, n, chunk_size):
        e = min(n, s + chunk_size)
        t0 = time.perf_counter()
        groups: dict[tuple[int, int], list[tuple[int, float]]] = {}
        for i in range(s, e):
            a, b, t = segment(i)
            groups.setdefault((a, b), []).append((i - s, t))
        parts: list[tuple[list[int], RenderOutput]] = []
        for key, items in groups.items():
            if key not in cache:
                cache.clear()  # poses come in order: an earlier pair is never needed again
                cache[key] = inbetweener.pair(views[key[0]], views[key[1]])
            parts.append(([k for k, _ in items], cache[key].at(np.array([t for _, t in items]))))
        h, w = views[kf[0]].rgb.shape[:2]
        rgb = np.empty((e - s, h, w, 3), np.float32)
        depth = np.empty((e - s, h, w), np.float32)
        alpha = np.empty((e - s, h, w), np.float32)
        for rows, out in parts:
            rgb[rows], depth[rows], alpha[rows] = out.rgb, out.depth_m, out.alpha
        stats.seconds["interpolate"] += time.perf_counter() - t0
        stats.frames += e - s
        stats.hole_fractions.extend(hole_fraction(alpha).tolist())
        yield FrameChunk(np.arange(s, e, dtype=np.int64), trajectory.stamps_ns[s:e].copy(), T_all[s:e].copy(),
                         RenderOutput(rgb, depth, alpha))
