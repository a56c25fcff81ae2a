"""inbetween = interpolate: the 2D optical-flow baseline between keyframes (issue 17, item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srender_ros.app.compose import AppConfig, build_pipeline
from srender_ros.backends.inbetween.flow import FlowInbetweener
from srender_ros.core.camera import Intrinsics, crop_to_camera
from srender_ros.core.metrics import psnr_db, temporal_error
from srender_ros.core.ports.inbetween import InbetweenFrame
from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory import Trajectory
from srender_ros.core.trajectory_gen import make_trajectory
from srender_ros.core.trajectory_io import save_tum
from srender_ros.engine.pipeline import PipelineConfig, RenderJob
from srender_ros.errors import InputError

CAM = Intrinsics.from_fov(64, 48, 90.0)
PROMPT = "a small office"
REPO = Path(__file__).resolve().parents[1]


def _plane_texture(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A flat plane's colour at plane coordinates (u, v) in pixels: smooth multi-scale pattern [..., 3]."""
    out = []
    for c, (a, b) in enumerate([(0.11, 0.07), (0.05, 0.13), (0.21, 0.03)]):
        val = 0.5 + 0.2 * np.sin(a * u + 1.3 * c) * np.cos(b * v) + 0.15 * np.sin(0.031 * u + 0.047 * v + c) \
            + 0.1 * np.cos(0.37 * u - 0.29 * v + 2 * c)
        out.append(val)
    return np.clip(np.stack(out, -1), 0, 1).astype(np.float32)


def _plane_view(shift_px: float, h: int = 120, w: int = 160) -> np.ndarray:
    """The plane seen by a fronto-parallel camera moved sideways: the image shifts by ``shift_px``."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return _plane_texture(xs + shift_px, ys)


def test_pure_translation_of_a_flat_textured_plane_is_interpolated_within_tolerance() -> None:
    d = 10.0  # the camera moves so that the plane slides 10 px between the keyframes
    first, second = _plane_view(0.0), _plane_view(d)
    depth = np.full(first.shape[:2], 2.0, np.float32)
    pair = FlowInbetweener().pair(InbetweenFrame(first, depth), InbetweenFrame(second, depth))
    ts = np.array([0.25, 0.5, 0.75])
    out = pair.at(ts)
    margin = int(d) + 2  # columns the first or second keyframe does not see
    for k, t in enumerate(ts):
        truth = _plane_view(t * d)
        err = np.abs(out.rgb[k] - truth)[:, margin:-margin]
        assert err.mean() < 0.01, (t, err.mean())
        assert psnr_db(out.rgb[k][:, margin:-margin], truth[:, margin:-margin]) > 35.0
        # a naive cross-fade of the two keyframes is far worse: the test can fail
        fade = (1 - t) * first + t * second
        assert np.abs(fade - truth)[:, margin:-margin].mean() > 5 * err.mean()
    assert (out.alpha[:, 2:-2, margin:-margin] == 1).all()
    np.testing.assert_allclose(out.depth_m[:, 2:-2, margin:-margin], 2.0, atol=1e-5)


def test_pair_ends_are_the_keyframes_exactly() -> None:
    a, b = _plane_view(0.0), _plane_view(7.0)
    z = np.full(a.shape[:2], 3.0, np.float32)
    out = FlowInbetweener().pair(InbetweenFrame(a, z), InbetweenFrame(b, z)).at(np.array([0.0, 1.0]))
    assert np.array_equal(out.rgb[0], a) and np.array_equal(out.rgb[1], b)


def _pipeline(root: Path, **cfg: object):  # type: ignore[no-untyped-def]
    return build_pipeline(AppConfig(world_dir=root, renderer="cpu", generator="procedural",
                                    pipeline=PipelineConfig(chunk_size=8, **cfg)))  # type: ignore[arg-type]


def test_interpolate_reproduces_the_keyframes_exactly_and_keeps_the_same_keyframes(tmp_path: Path) -> None:
    traj = make_trajectory("walk", fps=10.0, duration_s=2.0, seed=1)
    runs = {}
    for mode in ("render", "interpolate"):
        pipe = _pipeline(tmp_path / mode, scheduler="uniform", uniform_keyframes=3, inbetween=mode)
        run = pipe.run(RenderJob(prompt=PROMPT, trajectory=traj, intrinsics=CAM))
        chunks = list(run)
        frames = np.concatenate([c.render.rgb for c in chunks])
        idx = np.concatenate([c.indices for c in chunks])
        assert idx.tolist() == list(range(len(traj))) and frames.shape == (len(traj), 48, 64, 3)
        runs[mode] = (run, frames, pipe)
    run_i, frames_i, pipe_i = runs["interpolate"]
    assert run_i.schedule.keyframe_indices == runs["render"][0].schedule.keyframe_indices
    state = pipe_i.store.get(PROMPT)
    assert state is not None and len(state.keyframes) == 3
    for rec in state.keyframes:
        assert np.array_equal(frames_i[rec.pose_index], crop_to_camera(rec.rgb, rec.intrinsics, CAM))
    assert run_i.stats.seconds["interpolate"] > 0 and run_i.stats.seconds["render"] == 0.0
    # between keyframes the frames are new images, not copies of a keyframe
    k0, k1 = sorted(r.pose_index for r in state.keyframes)[:2]
    mid = (k0 + k1) // 2
    assert not np.array_equal(frames_i[mid], frames_i[k0]) and not np.array_equal(frames_i[mid], frames_i[k1])


def test_interpolate_with_fewer_than_two_keyframes_is_refused_in_the_config() -> None:
    with pytest.raises(InputError, match="at least 2 keyframes"):
        PipelineConfig(scheduler="uniform", uniform_keyframes=1, inbetween="interpolate")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="inbetween"):
        PipelineConfig(inbetween="rife")


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), SRENDER_WORLD_DIR=str(cwd / "worlds"))
    return subprocess.run([sys.executable, "-m", "srender_ros.cli.main", "render", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("extra", [["--scheduler", "uniform", "--keyframes", "1"],  # refused by the settings
                                   ["--scheduler", "coverage"]])                    # a still camera: 1 keyframe
def test_cli_interpolate_with_one_keyframe_fails_with_one_line_and_writes_nothing(tmp_path: Path,
                                                                                  extra: list[str]) -> None:
    still = make_trajectory("walk", fps=10.0, duration_s=1.0, seed=0)
    T = np.repeat(still.T_world_cam[:1], len(still), axis=0)
    save_tum(tmp_path / "still.tum", Trajectory(still.stamps_ns, T))
    proc = _cli(["--prompt", PROMPT, "--trajectory", "still.tum", "--width", "64", "--height", "48",
                 "--renderer", "cpu", "--inbetween", "interpolate", "--no-progress", "--out", "o.mp4",
                 "--frames-dir", "frames", "--metrics-json", "m.json", *extra], tmp_path)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and "at least 2 keyframes" in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "frames").exists()
    assert not (tmp_path / "m.json").exists()
    if extra[0:2] == ["--scheduler", "uniform"]:   # refused before anything ran: no world either
        assert not (tmp_path / "worlds").exists() or not any((tmp_path / "worlds").rglob("*.ply"))
    else:
        # The coverage walk made (and durably saved, issue 15) its one keyframe before the count was
        # known: the world is kept whole, so the next request reuses it instead of generating again.
        world = WorldStore(tmp_path / "worlds").get(PROMPT)
        assert world is not None and len(world.keyframes) == 1


def test_temporal_error_compares_changes_not_frames() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((3, 8, 8, 3))
    assert temporal_error(truth[0] + 0.2, truth[1] + 0.2, truth[0], truth[1]) == pytest.approx(0.0, abs=1e-12)
    held = temporal_error(truth[0], truth[0], truth[0], truth[1])  # a frozen frame misses the whole change
    assert held == pytest.approx(float(np.mean(np.abs(truth[1] - truth[0]))))
