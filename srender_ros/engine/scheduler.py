"""Keyframe scheduling: which poses of a trajectory get a generated keyframe, and why.

- coverage (default): SRENDER's labelling rule run online. Walk the trajectory; a pose whose
  uncovered fraction exceeds tau becomes a keyframe; after it is generated and lifted, coverage is
  recomputed for the poses after it. Uncovered means empty (world alpha below ``coverage_alpha`` in
  a low-resolution render) or, at ``coarse_weight``, too coarse (engine/coverage.py).
- uniform: the paper's placement of a fixed number of keyframes evenly along the trajectory.
- learned: a keyframe count predicted from the trajectory, placed uniformly, and the coverage rule
  still adds keyframes where holes remain.

The walk (:class:`KeyframeWalk`) owns the state of one request's schedule: the plan, the cap
(``max(max_keyframes_per_request, ceil(keyframe_share * poses))``, paced: by pose i at most
``keyframe_burst + (cap - keyframe_burst) * i / (poses - 1)``), the residual left by the latest keyframe and the
lookahead. It sees the world only through two callables, so it is tested with synthetic coverage arrays.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.engine.coverage import Coverage
from srender_ros.errors import InputError

__all__ = [
    "KeyframeDecision",
    "KeyframeRule",
    "KeyframeWalk",
    "ReasonKind",
    "Schedule",
    "SchedulerKind",
    "WalkSettings",
    "check_pacing",
    "keyframe_cap",
    "paced_limit",
    "uniform_indices",
]


class SchedulerKind(str, Enum):
    COVERAGE = "coverage"
    UNIFORM = "uniform"
    LEARNED = "learned"


class ReasonKind(str, Enum):
    """Why a keyframe was made."""

    NEW_WORLD = "new_world"        # the world is empty: nothing to render from
    PLANNED = "planned"            # uniform / learned placement
    UNCOVERED = "uncovered"        # the coverage rule: uncovered fraction above tau
    ONLINE_VIEW = "online_view"    # a single view (camera_pose) the world does not cover


class KeyframeDecision(NamedTuple):
    """One chosen keyframe.

    Attributes:
        pose_index: the pose it was made at (-1 for an online view).
        reason: the reason in words (with the numbers behind it), as logged and published.
        uncovered_fraction: the uncovered fraction of the pose that triggered it, before it.
        kind: the reason as an Enum.
    """

    pose_index: int
    reason: str
    uncovered_fraction: float
    kind: ReasonKind = ReasonKind.UNCOVERED


@dataclass
class Schedule:
    """The plan for one request, grown while the pipeline walks the trajectory.

    Attributes:
        scheduler: which rule made it.
        coverage: [N] covered fraction of each pose when the walk reached it (before a keyframe
            there); NaN for poses not reached yet.
        keyframes: the decisions (in pose order once the walk is done).
        predicted_count: the learned model's keyframe count, -1 when none was predicted.
        coverage_threshold: tau, the uncovered fraction that triggers a keyframe.
    """

    scheduler: SchedulerKind
    coverage: NDArray[np.float32]
    coverage_threshold: float
    keyframes: list[KeyframeDecision] = field(default_factory=list)
    predicted_count: int = -1

    @property
    def keyframe_indices(self) -> list[int]:
        return [k.pose_index for k in self.keyframes]


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


def keyframe_cap(max_keyframes: int, keyframe_share: float, n_poses: int) -> int:
    """Keyframes one request of ``n_poses`` poses may make: ``max(max_keyframes, ceil(keyframe_share * n_poses))``.

    The budget scales with the request, so a long path is not left without keyframes after its
    first ``max_keyframes``; ``max_keyframes = 0`` still means none at all (render only what exists).
    """
    if max_keyframes <= 0:
        return 0
    # The small tolerance keeps 0.1 * 600 at 60, not 61 (floating point).
    return max(max_keyframes, math.ceil(keyframe_share * n_poses - 1e-9))


def paced_limit(pose_index: int, cap: int, n_poses: int, keyframe_share: float, keyframe_burst: int) -> float:
    """Most keyframes a request may have made by pose ``pose_index`` (included):
    ``burst + (cap - burst) * i / (n_poses - 1)``, i.e. the cap spread evenly over the request.

    Pacing keeps a long request from spending its budget at the start and starving its end (the
    allowance reaches the cap at the last pose, not before). A short request is not held back: its
    cap (at least ``max_keyframes_per_request``) spread over a few poses never binds, so a fast turn
    of 20 poses still gets a keyframe wherever coverage asks. ``keyframe_share = 0`` turns it off
    (no limit but the cap).
    """
    if keyframe_share <= 0.0 or n_poses <= 1:
        return math.inf
    return keyframe_burst + max(0, cap - keyframe_burst) * pose_index / (n_poses - 1)


class KeyframeRule:
    """Decides, pose by pose, whether the walk makes a keyframe there (plan, tau, the cap and pacing).

    Args:
        kind: the scheduler.
        coverage_threshold: tau (uncovered fraction) for the coverage rule.
        planned: pose indices planned up front (uniform / learned placement).
        max_keyframes: cap per request (before scaling with the request's length).
        n_poses: the request's pose count (the cap scales with it).
        keyframe_share: the cap is at least ``ceil(keyframe_share * n_poses)``, and by pose i at most
            ``keyframe_burst + (cap - keyframe_burst) * i / (n_poses - 1)`` keyframes are made (the cap
            spread evenly; 0: a flat cap, no pacing).
        keyframe_burst: keyframes a request may make before pacing holds it back.
    Planned keyframes are not paced (their placement is even already); they still count.
    """

    def __init__(self, kind: SchedulerKind, coverage_threshold: float, planned: list[int] | None = None,
                 max_keyframes: int = 64, n_poses: int = 0, keyframe_share: float = 0.0,
                 keyframe_burst: int = 8) -> None:
        if not 0.0 <= coverage_threshold < 1.0:
            raise InputError(f"coverage_threshold={coverage_threshold}: must be in [0, 1)")
        check_pacing(keyframe_share, keyframe_burst)
        self.kind = kind
        self.tau = coverage_threshold
        self.planned = set(planned or [])
        self.n_planned = len(self.planned)
        self.max_keyframes = keyframe_cap(max_keyframes, keyframe_share, n_poses)
        self.n_poses = n_poses
        self.keyframe_share = keyframe_share
        self.keyframe_burst = keyframe_burst
        self._made = 0

    @property
    def made(self) -> int:
        """Keyframes counted against the cap so far."""
        return self._made

    def count_made(self) -> None:
        """Count a keyframe made outside :meth:`decide` (the learned scheduler's first one)."""
        self._made += 1

    def plan(self, planned: list[int]) -> None:
        """Replace the planned placement (the learned count arrives after the first keyframe)."""
        self.planned = set(planned)
        self.n_planned = len(self.planned)

    def decide(self, pose_index: int, uncovered: float, world_empty: bool) -> tuple[ReasonKind, str] | None:
        """(kind, reason in words) to make a keyframe at ``pose_index``, or None."""
        if self._made >= self.max_keyframes:
            return None
        # Keyframes planned further along keep their place under the cap: extra ones the coverage
        # rule asks for (learned top-ups) must not use up the budget before the path's end is reached.
        planned_ahead = sum(1 for j in self.planned if j > pose_index)
        decision: tuple[ReasonKind, str] | None = None
        if pose_index in self.planned:
            decision = ReasonKind.PLANNED, f"{self.kind.value} placement ({self.n_planned} planned)"
        elif self._made + planned_ahead >= self.max_keyframes:
            return None
        elif self._made + 1 > paced_limit(pose_index, self.max_keyframes, self.n_poses, self.keyframe_share,
                                          self.keyframe_burst):
            return None   # paced: the budget of the poses still ahead is not spent here
        elif world_empty and self.kind is not SchedulerKind.UNIFORM:
            decision = ReasonKind.NEW_WORLD, NEW_WORLD_REASON
        elif self.kind is not SchedulerKind.UNIFORM and uncovered > self.tau:
            decision = ReasonKind.UNCOVERED, f"uncovered {uncovered:.3f} > tau {self.tau:.3f}"
        if decision is not None:
            self._made += 1
        return decision


def check_pacing(keyframe_share: float, keyframe_burst: int) -> None:
    """Raise InputError for a keyframe share outside [0, 1] or a burst below 1."""
    if not 0.0 <= keyframe_share <= 1.0:
        raise InputError(f"keyframe_share={keyframe_share}: must be in [0, 1] (a share of the request's poses; "
                         "0 = a flat max_keyframes_per_request cap without pacing)")
    if keyframe_burst < 1:
        raise InputError(f"keyframe_burst={keyframe_burst}: must be >= 1 (keyframes a request may make before "
                         "pacing by keyframe_share holds it back)")


#: The reason text of a keyframe made because the world is empty.
NEW_WORLD_REASON = "new world: nothing to render from yet"


@dataclass(frozen=True)
class WalkSettings:
    """The scheduler's part of the pipeline settings, made by ``PipelineConfig.walk_settings()``.

    No defaults here: they live in PipelineConfig (see it for each one's meaning).
    """

    scheduler: SchedulerKind
    coverage_threshold: float
    uniform_keyframes: int
    max_keyframes: int
    keyframe_share: float
    keyframe_burst: int
    lookahead: int
    lookahead_max_uncovered: float
    coarse_weight: float
    detail_in_reasons: bool


#: (start, end) -> coverage of poses [start, end) in the world as it is now.
CoverageFn = Callable[[int, int], Coverage]
#: (pose index, reason in words) -> None: generate, lift and merge a keyframe at that pose.
MakeKeyframeFn = Callable[[int, str], None]


class KeyframeWalk:
    """Walks one request's trajectory chunk by chunk and makes the keyframes it needs.

    Args:
        settings: the rule's settings.
        n_poses: trajectory length.
        coverage: measures coverage of a range of poses in the current world.
        make_keyframe: makes a keyframe at a pose (the world changes; coverage is measured again).
    Attributes:
        schedule: the decisions and per-pose coverage so far.
        coverage_seconds: time spent in ``coverage`` (the scheduling cost).
    """

    def __init__(self, settings: WalkSettings, n_poses: int, coverage: CoverageFn, make_keyframe: MakeKeyframeFn) -> None:
        self.settings = settings
        self.n_poses = n_poses
        self._coverage = coverage
        self._make = make_keyframe
        self.schedule = Schedule(scheduler=settings.scheduler, coverage=np.full(n_poses, np.nan, np.float32),
                                 coverage_threshold=settings.coverage_threshold)
        planned = uniform_indices(n_poses, settings.uniform_keyframes) if settings.scheduler is SchedulerKind.UNIFORM else []
        self.rule = KeyframeRule(settings.scheduler, settings.coverage_threshold, planned, settings.max_keyframes,
                                 n_poses, settings.keyframe_share, settings.keyframe_burst)
        self.coverage_seconds = 0.0
        # Uncovered fraction left at the pose of the latest keyframe: what it could not cover
        # (semi-transparent edges, sky) is no reason for another one.
        self._residual = 0.0

    def wants_first_keyframe(self, world_empty: bool) -> bool:
        """The learned scheduler makes the first keyframe of a new world before it predicts a count."""
        return (self.settings.scheduler is SchedulerKind.LEARNED and world_empty and self.settings.max_keyframes > 0
                and self.n_poses > 0)

    def make_first_keyframe(self, predict_count: Callable[[], int]) -> None:
        """Make a new world's first keyframe at pose 0, then plan ``predict_count()`` keyframes uniformly.

        ``predict_count`` runs after the keyframe exists, so it can look at the world's first view.
        """
        self._make(0, NEW_WORLD_REASON)
        self.schedule.keyframes.append(KeyframeDecision(0, NEW_WORLD_REASON, 1.0, ReasonKind.NEW_WORLD))
        self.rule.count_made()
        count = int(predict_count())
        self.schedule.predicted_count = count
        self.rule.plan([i for i in uniform_indices(self.n_poses, max(1, count)) if i != 0])

    def walk(self, start: int, end: int) -> None:
        """Decide (and make) the keyframes of poses [start, end)."""
        s = self.settings
        cov = self._measure(start, end)
        empty, coarse, world_empty = cov.empty.copy(), cov.coarse.copy(), cov.world_empty
        unc = empty + s.coarse_weight * coarse
        made = set(self.schedule.keyframe_indices)
        for i in range(start, end):
            u = float(unc[i - start])
            self.schedule.coverage[i] = 1.0 - u
            if not world_empty and u <= self._residual + s.coverage_threshold and i not in self.rule.planned:
                continue
            if i in made:
                # A second keyframe at a pose sees what the first one saw: it cannot cover more. (A
                # lookahead keyframe placed here earlier left this uncovered; the poses after it decide.)
                continue
            decided = self.rule.decide(i, u, world_empty)
            if decided is None:
                continue
            kind, reason = decided
            if kind is ReasonKind.UNCOVERED and s.detail_in_reasons:
                reason += f" (empty {empty[i - start]:.3f}, coarse {coarse[i - start]:.3f})"
            k = i
            if not world_empty and i not in self.rule.planned:
                k = self._lookahead(i, end, unc[i - start:])
                if k in self.schedule.keyframe_indices:  # that view did not cover i: make i itself
                    k = i
                if k != i:
                    reason += f"; placed ahead at pose {k} (uncovered {float(unc[k - start]):.3f})"
            self._make(k, reason)
            self.schedule.keyframes.append(KeyframeDecision(k, reason, u, kind))
            made.add(k)
            after = self._measure(i, end)
            empty[i - start:], coarse[i - start:], world_empty = after.empty, after.coarse, after.world_empty
            unc[i - start:] = empty[i - start:] + s.coarse_weight * coarse[i - start:]
            self._residual = float(unc[i - start])

    def finish(self) -> Schedule:
        """The schedule with its decisions in pose order."""
        self.schedule.keyframes.sort(key=lambda d: d.pose_index)
        return self.schedule

    def _measure(self, start: int, end: int) -> Coverage:
        t0 = time.perf_counter()
        try:
            return self._coverage(start, end)
        finally:
            self.coverage_seconds += time.perf_counter() - t0

    def _lookahead(self, i: int, end: int, uncovered_from_i: NDArray[np.float64]) -> int:
        """Pose for the keyframe triggered at ``i``: the farthest within reach whose view is still mostly covered."""
        last = min(end - 1, i + self.settings.lookahead)
        best = i
        for j in range(i + 1, last + 1):
            if uncovered_from_i[j - i] <= self.settings.lookahead_max_uncovered:
                best = j
            else:
                break
        return best
