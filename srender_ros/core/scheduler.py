"""Keyframe scheduling: which poses of a trajectory get a generated keyframe, and why.

- coverage (default): SRENDER's labelling rule run online. Walk the trajectory; a pose whose
  uncovered fraction exceeds tau becomes a keyframe; after it is generated and lifted, coverage is
  recomputed for the poses after it. Uncovered means empty (world alpha < 0.5 in a low-resolution
  render) or, at a tenth of the weight, too coarse: the world's Gaussians there appear larger than
  ``max_footprint_px`` (core/resolution.py), as when the camera walks up to content it first saw
  from afar.
- uniform: the paper's placement of a fixed number of keyframes evenly along the trajectory.
- learned: a keyframe count predicted from the trajectory, placed uniformly, and the coverage rule
  still adds keyframes where holes remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.metrics import hole_fraction
from srender_ros.errors import InputError

#: A world pixel counts as covered where its rendered alpha reaches this.
COVERED_ALPHA = 0.5


class SchedulerKind(str, Enum):
    COVERAGE = "coverage"
    UNIFORM = "uniform"
    LEARNED = "learned"


class KeyframeDecision(NamedTuple):
    """One chosen keyframe: the pose, why, and how much of its view was uncovered before it."""

    pose_index: int
    reason: str
    uncovered_fraction: float


@dataclass
class Schedule:
    """The plan for one request, grown while the pipeline walks the trajectory.

    Attributes:
        scheduler: which rule made it.
        coverage: [N] covered fraction of each pose when the walk reached it (before a keyframe
            there); NaN for poses not reached yet.
        keyframes: the decisions in pose order.
        predicted_count: the learned model's keyframe count, -1 when none was predicted.
        coverage_threshold: tau, the uncovered fraction that triggers a keyframe.
    """

    scheduler: SchedulerKind
    coverage: NDArray[np.float32]
    keyframes: list[KeyframeDecision] = field(default_factory=list)
    predicted_count: int = -1
    coverage_threshold: float = 0.02

    @property
    def keyframe_indices(self) -> list[int]:
        return [k.pose_index for k in self.keyframes]


def uncovered_fraction(alpha: NDArray[np.floating], covered_alpha: float = COVERED_ALPHA) -> NDArray[np.float64]:
    """[B, H, W] alpha -> [B] fraction of pixels not covered (alpha < ``covered_alpha``)."""
    return hole_fraction(alpha, covered_alpha)


def uniform_indices(n_poses: int, n_keyframes: int) -> list[int]:
    """``n_keyframes`` pose indices spread evenly over ``n_poses`` (first and last pose included).

    Raises:
        InputError: a non-positive keyframe count.
    """
    if n_keyframes < 1:
        raise InputError(f"uniform scheduler needs at least 1 keyframe, got {n_keyframes}")
    if n_poses <= 0:
        return []
    k = min(n_keyframes, n_poses)
    if k == 1:
        return [0]
    return sorted({int(round(x)) for x in np.linspace(0, n_poses - 1, k)})


class KeyframeRule:
    """Decides, pose by pose, whether the walk makes a keyframe there.

    Args:
        kind: the scheduler.
        n_poses: trajectory length.
        coverage_threshold: tau (uncovered fraction) for the coverage rule.
        planned: pose indices planned up front (uniform / learned placement).
        max_keyframes: hard cap per request.
    """

    def __init__(self, kind: SchedulerKind, n_poses: int, coverage_threshold: float,
                 planned: list[int] | None = None, max_keyframes: int = 64) -> None:
        if not 0.0 <= coverage_threshold < 1.0:
            raise InputError(f"coverage_threshold={coverage_threshold}: must be in [0, 1)")
        self.kind = kind
        self.tau = coverage_threshold
        self.planned = set(planned or [])
        self.n_planned = len(self.planned)
        self.max_keyframes = max_keyframes
        self.made = 0

    def decide(self, pose_index: int, uncovered: float, world_empty: bool) -> str | None:
        """Reason to make a keyframe at ``pose_index``, or None."""
        if self.made >= self.max_keyframes:
            return None
        # Keyframes planned further along keep their place under the cap: extra ones the coverage
        # rule asks for (learned top-ups) must not use up the budget before the path's end is reached.
        planned_ahead = sum(1 for j in self.planned if j > pose_index)
        reason: str | None = None
        if pose_index in self.planned:
            reason = f"{self.kind.value} placement ({self.n_planned} planned)"
        elif self.made + planned_ahead >= self.max_keyframes:
            return None
        elif world_empty and self.kind is not SchedulerKind.UNIFORM:
            reason = "new world: nothing to render from yet"
        elif self.kind is not SchedulerKind.UNIFORM and uncovered > self.tau:
            reason = f"uncovered {uncovered:.3f} > tau {self.tau:.3f}"
        if reason is not None:
            self.made += 1
        return reason
