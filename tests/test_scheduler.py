"""The keyframe walk and its rule, driven by synthetic coverage arrays (no renderer, no world)."""

from __future__ import annotations

import numpy as np
import pytest

from srender_ros.engine.config import PipelineConfig
from srender_ros.engine.coverage import Coverage
from srender_ros.engine.scheduler import (
    KeyframeRule,
    KeyframeWalk,
    ReasonKind,
    SchedulerKind,
    WalkSettings,
    uniform_indices,
)

_NAMES = {"lookahead": "keyframe_lookahead", "max_keyframes": "max_keyframes_per_request"}


def walk_settings(**changes: object) -> WalkSettings:
    """The walk's settings of a PipelineConfig with ``changes`` (walk names accepted)."""
    return PipelineConfig(**{_NAMES.get(k, k): v for k, v in changes.items()}).walk_settings()  # type: ignore[arg-type]


class FakeWorld:
    """Coverage of poses as arrays: each keyframe at pose k covers poses [k - back, k + ahead] fully."""

    def __init__(self, n: int, ahead: int = 5, back: int = 0, residual: float = 0.0, coarse: float = 0.0) -> None:
        self.n = n
        self.ahead, self.back = ahead, back
        self.covered = np.zeros(n, dtype=bool)
        self.residual = residual
        self.coarse = coarse
        self.made: list[tuple[int, str]] = []
        self.calls: list[tuple[int, int]] = []

    def coverage(self, start: int, end: int) -> Coverage:
        self.calls.append((start, end))
        empty = np.where(self.covered[start:end], self.residual, 1.0)
        coarse = np.where(self.covered[start:end], self.coarse, 0.0)
        return Coverage(empty.astype(np.float64), coarse.astype(np.float64), not self.made)

    def make(self, k: int, reason: str) -> None:
        self.made.append((k, reason))
        self.covered[max(0, k - self.back):k + self.ahead + 1] = True


def _walk(world: FakeWorld, chunk: int = 10, **kw: object) -> KeyframeWalk:
    walk = KeyframeWalk(walk_settings(**kw), world.n, world.coverage, world.make)  # type: ignore[arg-type]
    for s in range(0, world.n, chunk):
        walk.walk(s, min(world.n, s + chunk))
    return walk


def test_coverage_walk_makes_a_keyframe_where_coverage_ends() -> None:
    world = FakeWorld(30, ahead=5)
    walk = _walk(world, lookahead=0)
    assert [k for k, _ in world.made] == [0, 6, 12, 18, 24]
    kinds = [d.kind for d in walk.finish().keyframes]
    assert kinds[0] is ReasonKind.NEW_WORLD and set(kinds[1:]) == {ReasonKind.UNCOVERED}
    assert "uncovered 1.000 > tau 0.020" in world.made[1][1]
    assert not np.isnan(walk.schedule.coverage).any()


def test_lookahead_places_the_keyframe_ahead_within_the_chunk() -> None:
    # A keyframe also covers 4 poses behind it: a keyframe placed ahead covers the triggering pose.
    world = FakeWorld(20, ahead=3, back=4)
    # The fake world leaves poses ahead uncovered (1.0 > lookahead_max_uncovered): no lookahead possible.
    _walk(world, lookahead=8)
    assert [k for k, _ in world.made][:2] == [0, 4]
    # An existing world, poses ahead partly covered (below the lookahead limit): the keyframe goes as
    # far as allowed. Uncovered 0.05 everywhere except pose 5, which triggers; 6..8 are within reach.
    unc = np.full(20, 0.05)
    unc[5] = 0.9
    made: list[tuple[int, str]] = []

    def make(k: int, reason: str) -> None:
        made.append((k, reason))
        unc[max(0, k - 4):k + 4] = 0.0   # a keyframe covers 4 poses behind it and 3 ahead

    walk = KeyframeWalk(walk_settings(lookahead=3, lookahead_max_uncovered=0.1, coverage_threshold=0.5), 20,
                        lambda s, e: Coverage(unc[s:e].copy(), np.zeros(e - s), False), make)
    walk.walk(0, 20)
    assert made[0][0] == 8 and "placed ahead at pose 8" in made[0][1]


def test_residual_rule_ignores_what_the_last_keyframe_could_not_cover() -> None:
    # Every covered pose keeps 3 % uncovered (sky, soft edges) above tau = 2 %: no keyframe chain.
    world = FakeWorld(30, ahead=40, residual=0.03)
    _walk(world, lookahead=0)
    assert [k for k, _ in world.made] == [0]


def _coarse_walk(coarse_weight: float) -> tuple[KeyframeWalk, list[int]]:
    """An existing world: every pose covered; poses 6.. coarse (50 %) until a keyframe near them."""
    coarse = np.where(np.arange(12) >= 6, 0.5, 0.0)
    made: list[int] = []

    def coverage(s: int, e: int) -> Coverage:
        return Coverage(np.zeros(e - s), coarse[s:e].copy(), False)

    def make(k: int, reason: str) -> None:
        made.append(k)
        coarse[k:] = 0.0

    walk = KeyframeWalk(walk_settings(lookahead=0, coarse_weight=coarse_weight), 12, coverage, make)
    walk.walk(0, 12)
    return walk, made


def test_detail_counts_coarse_pixels_at_their_weight() -> None:
    walk, made = _coarse_walk(0.1)        # 50 % coarse x weight 0.1 = 5 % > tau 2 %
    assert made == [6]
    assert walk.schedule.keyframes[0].reason == "uncovered 0.050 > tau 0.020 (empty 0.000, coarse 0.500)"
    _, made = _coarse_walk(0.0)           # coarse ignored
    assert made == []


def test_cap_keeps_planned_keyframes_ahead() -> None:
    """learned: 3 keyframes planned, a cap of 4; the coverage rule asks early and often."""
    world = FakeWorld(40, ahead=0)
    walk = KeyframeWalk(walk_settings(scheduler=SchedulerKind.LEARNED, max_keyframes=4, lookahead=0), world.n,
                        world.coverage, world.make)
    assert walk.wants_first_keyframe(world_empty=True)
    walk.make_first_keyframe(lambda: 4)          # plan: uniform 4 over 40 poses, pose 0 already made
    assert walk.schedule.predicted_count == 4 and sorted(walk.rule.planned) == [13, 26, 39]
    for s in range(0, 40, 10):
        walk.walk(s, min(40, s + 10))
    made = [k for k, _ in world.made]
    assert made == [0, 13, 26, 39]               # the plan is kept whole under the cap; no top-up fits
    assert walk.rule.made == 4


def test_learned_first_keyframe_is_made_before_the_count_is_predicted() -> None:
    world = FakeWorld(20, ahead=40)
    seen: list[int] = []
    walk = KeyframeWalk(walk_settings(scheduler=SchedulerKind.LEARNED), world.n, world.coverage, world.make)
    walk.make_first_keyframe(lambda: seen.append(len(world.made)) or 1)
    assert seen == [1] and walk.schedule.keyframes[0].kind is ReasonKind.NEW_WORLD
    assert not walk.wants_first_keyframe(world_empty=False)


def test_uniform_walk_places_exactly_its_plan_and_ignores_coverage() -> None:
    world = FakeWorld(30, ahead=0)
    walk = _walk(world, scheduler=SchedulerKind.UNIFORM, uniform_keyframes=4)
    assert [k for k, _ in world.made] == uniform_indices(30, 4) == walk.schedule.keyframe_indices
    assert {d.kind for d in walk.schedule.keyframes} == {ReasonKind.PLANNED}


def test_rule_reasons_and_cap() -> None:
    rule = KeyframeRule(SchedulerKind.COVERAGE, 0.1, max_keyframes=2)
    assert rule.decide(0, 1.0, world_empty=True) == (ReasonKind.NEW_WORLD, "new world: nothing to render from yet")
    assert rule.decide(1, 0.05, world_empty=False) is None
    assert rule.decide(2, 0.2, world_empty=False) == (ReasonKind.UNCOVERED, "uncovered 0.200 > tau 0.100")
    assert rule.decide(3, 0.9, world_empty=False) is None   # cap reached


def test_rule_refuses_a_bad_tau() -> None:
    from srender_ros.errors import InputError

    with pytest.raises(InputError, match="coverage_threshold"):
        KeyframeRule(SchedulerKind.COVERAGE, 1.5)
