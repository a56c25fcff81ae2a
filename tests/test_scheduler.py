"""KeyframeRule: the per-pose decision of the walk."""

from __future__ import annotations

from srender_ros.core.scheduler import KeyframeRule, SchedulerKind, uniform_indices


def test_coverage_top_ups_never_take_the_place_of_planned_keyframes() -> None:
    """learned: 3 keyframes planned, a cap of 4; the coverage rule asks early and often."""
    rule = KeyframeRule(SchedulerKind.LEARNED, 40, 0.02, planned=[10, 20, 30], max_keyframes=4)
    made = [i for i in range(40) if rule.decide(i, uncovered=0.5, world_empty=False) is not None]
    assert made == [0, 10, 20, 30]          # one top-up fits beside the plan; the plan is kept whole
    assert rule.made == 4


def test_coverage_rule_and_cap() -> None:
    rule = KeyframeRule(SchedulerKind.COVERAGE, 10, 0.1, max_keyframes=2)
    assert rule.decide(0, 1.0, world_empty=True) == "new world: nothing to render from yet"
    assert rule.decide(1, 0.05, world_empty=False) is None
    assert rule.decide(2, 0.2, world_empty=False) == "uncovered 0.200 > tau 0.100"
    assert rule.decide(3, 0.9, world_empty=False) is None   # cap reached


def test_uniform_places_exactly_its_plan() -> None:
    plan = uniform_indices(30, 4)
    rule = KeyframeRule(SchedulerKind.UNIFORM, 30, 0.02, planned=plan)
    assert [i for i in range(30) if rule.decide(i, 1.0, world_empty=(i == 0)) is not None] == plan
