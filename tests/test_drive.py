"""Issue 15 item 5: the built-in forward drive, and no keyframe made twice at one pose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srender_ros.backends.generators.registry import make_generator
from srender_ros.backends.render.registry import get_renderer
from srender_ros.core.camera import Intrinsics
from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory_gen import GENERATORS, drive, make_trajectory
from srender_ros.engine.coverage import Coverage
from srender_ros.engine.pipeline import Pipeline, PipelineConfig, RenderJob
from srender_ros.engine.scheduler import KeyframeWalk, SchedulerKind, WalkSettings
from srender_ros.errors import TrajectoryError


def test_drive_is_a_built_in_trajectory() -> None:
    assert GENERATORS["drive"] is drive
    t = make_trajectory("drive", fps=10.0, duration_s=60.0)
    assert len(t) == 600


def test_drive_shape_speed_height_and_slight_steering() -> None:
    t = drive(fps=10.0, duration_s=60.0, seed=0)
    p = t.T_world_cam[:, :3, 3]
    dt = np.diff(t.stamps_ns) * 1e-9
    speed = np.linalg.norm(np.diff(p, axis=0), axis=1) / dt
    # 10 m/s along the road (x), a little more in total while weaving.
    np.testing.assert_allclose(np.diff(p[:, 0]) / dt, 10.0, rtol=1e-9)
    assert 10.0 <= speed.min() and speed.max() < 10.1
    np.testing.assert_allclose(p[-1, 0] - p[0, 0], 599.0, atol=1e-6)
    # 1.6 m above the road, in the right-hand lane (y = -2), weaving within +-0.6 m.
    np.testing.assert_allclose(p[:, 2], 1.6)
    assert p[0, 1] == pytest.approx(-2.0) and np.all(np.abs(p[:, 1] + 2.0) <= 0.6 + 1e-9)
    assert np.ptp(p[:, 1]) > 0.2                              # it does steer
    # The camera looks along the motion, level: heading within a few degrees of the road, steering
    # changing it smoothly, and the image's down axis pointing down.
    fwd = t.T_world_cam[:, :3, 2]                               # optical z in the world
    heading = np.degrees(np.arctan2(fwd[:, 1], fwd[:, 0]))
    assert np.abs(heading).max() < 5.0 and np.abs(heading).max() > 0.3
    assert np.abs(np.diff(heading)).max() < 0.5                 # slight steering: < 5 deg/s at 10 fps
    assert np.abs(fwd[:, 2]).max() < np.sin(np.radians(1.0))
    vel = np.diff(p, axis=0)
    motion_heading = np.degrees(np.arctan2(vel[:, 1], vel[:, 0]))
    assert np.abs(motion_heading - heading[:-1]).max() < 0.5
    assert (t.T_world_cam[:, 2, 1] < -0.99).all()


def test_drive_parameters_and_bad_values() -> None:
    t = drive(fps=5.0, duration_s=4.0, speed_mps=20.0, height_m=1.2, lane_offset_m=2.0, weave_m=0.0, seed=3)
    p = t.T_world_cam[:, :3, 3]
    np.testing.assert_allclose(p[:, 1], 2.0)
    np.testing.assert_allclose(p[:, 2], 1.2)
    np.testing.assert_allclose(np.diff(p[:, 0]), 4.0)
    with pytest.raises(TrajectoryError, match="speed_mps"):
        drive(speed_mps=0.0)
    with pytest.raises(TrajectoryError, match="pitch_deg"):
        drive(pitch_deg=45.0)
    with pytest.raises(TrajectoryError, match="weave_hz"):
        drive(weave_hz=(0.2, 0.1))


class _Blocked:
    """Coverage where a keyframe covers the poses before it but not its own pose, and pose 9 is far off.

    The lookahead of the trigger at pose 0 places a keyframe at pose 8; pose 8 then still counts as
    uncovered, and its own lookahead cannot pass pose 9: before the fix, the walk made pose 8 again.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.made: list[int] = []

    def coverage(self, start: int, end: int) -> Coverage:
        unc = np.full(self.n, 0.05)
        unc[9] = 0.5
        for k in self.made:
            unc[max(0, k - 8):k] = 0.0
            if k == 9:
                unc[9:] = 0.0
        sl = unc[start:end]
        return Coverage(sl.copy(), np.zeros_like(sl), False)

    def make(self, k: int, reason: str) -> None:
        self.made.append(k)


def test_no_keyframe_twice_at_one_pose_in_the_walk() -> None:
    world = _Blocked(20)
    settings = WalkSettings(scheduler=SchedulerKind.COVERAGE, coverage_threshold=0.02, uniform_keyframes=8,
                            max_keyframes=64, keyframe_share=0.1, keyframe_burst=8, lookahead=8,
                            lookahead_max_uncovered=0.1, coarse_weight=0.1,
                            detail_in_reasons=True)
    walk = KeyframeWalk(settings, world.n, world.coverage, world.make)
    walk.walk(0, world.n)
    # Pose 8 stays uncovered after its keyframe and its lookahead cannot pass pose 9: it is not
    # made again; pose 9 triggers the next keyframe (placed ahead of it).
    assert world.made[0] == 8 and world.made.count(8) == 1, world.made
    assert len(world.made) == len(set(world.made)) and world.made[1] > 8, world.made
    assert walk.finish().keyframe_indices == sorted(world.made)


def test_no_keyframe_twice_at_one_pose_on_a_real_drive(tmp_path: Path) -> None:
    """A short real drive down the procedural street (small camera): every keyframe at its own pose."""
    cam = Intrinsics.from_fov(64, 48, 90.0)
    traj = make_trajectory("drive", fps=10.0, duration_s=3.0)
    pipe = Pipeline(WorldStore(tmp_path), get_renderer("cpu"), make_generator("procedural"), PipelineConfig(chunk_size=15))
    run = pipe.run(RenderJob(prompt="a city street", trajectory=traj, intrinsics=cam))
    for _ in run:
        pass
    idx = run.schedule.keyframe_indices
    assert len(idx) >= 2 and len(idx) == len(set(idx)), idx
    state = pipe.store.get("a city street")
    assert state is not None
    # The ledger: every keyframe says what it added and removed.
    assert all(k.gaussians_added > 0 and k.gaussians_removed >= 0 for k in state.keyframes)
    assert sum(k.gaussians_added - k.gaussians_removed for k in state.keyframes) == len(state.world)
