"""Several processes growing one world in one root at once lose nothing (merge on save), and a
store picks up what another process saved (refresh)."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from pathlib import Path

import numpy as np

from srender_ros.core.camera import Intrinsics
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.store import WorldStore
from srender_ros.core.world import GaussianWorld
from srender_ros.core.world_merge import gaussian_keys, merge_gaussians

PROMPT = "a warehouse shared by robots"
WRITERS, ROUNDS, PER_ROUND = 3, 4, 50


def _gaussians(writer: int, k: int) -> GaussianWorld:
    rng = np.random.default_rng(1000 * writer + k)
    means = rng.normal(size=(PER_ROUND, 3)) + np.array([writer * 10.0, k, 0.0])
    return GaussianWorld.from_linear(means, np.full((PER_ROUND, 3), 0.05), np.full(PER_ROUND, 0.8),
                                     rng.uniform(size=(PER_ROUND, 3)))


def _keyframe(writer: int, k: int) -> KeyframeRecord:
    T = np.eye(4)
    T[:3, 3] = [writer, k, 1.0]
    intr = Intrinsics.from_fov(8, 6, 60.0)
    return KeyframeRecord(pose_index=k, T_world_cam=T, intrinsics=intr, rgb=np.full((6, 8, 3), 0.5, np.float32),
                          depth_m=np.full((6, 8), 1.0 + writer + 0.1 * k, np.float32), reason=f"writer {writer}")


def _writer(root: str, writer: int, start: float) -> None:
    store = WorldStore(root)
    state = store.get_or_create(PROMPT, {"name": "test"})
    while time.time() < start:
        time.sleep(0.001)
    rnd = random.Random(writer)
    for k in range(ROUNDS):
        with state.lock:
            state.replace_world(state.world.concat(_gaussians(writer, k)))
            state.add_keyframe(_keyframe(writer, k))
        store.save(state)
        time.sleep(rnd.uniform(0.0, 0.02))


def test_concurrent_writer_processes_lose_no_keyframe_and_no_gaussian(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    start = time.time() + 3.0  # all three begin saving together, after their start-up
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, start)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    state = WorldStore(tmp_path).get(PROMPT)
    assert state is not None
    assert len(state.keyframes) == WRITERS * ROUNDS
    assert {k.reason for k in state.keyframes} == {f"writer {w}" for w in range(WRITERS)}
    assert len(state.world) == WRITERS * ROUNDS * PER_ROUND
    want = np.concatenate([gaussian_keys(_gaussians(w, k)) for w in range(WRITERS) for k in range(ROUNDS)])
    assert np.isin(want, gaussian_keys(state.world)).all()


def test_a_store_picks_up_another_writers_save_and_merges_its_own_unsaved_changes(tmp_path: Path) -> None:
    a, b = WorldStore(tmp_path), WorldStore(tmp_path)
    sa = a.get_or_create(PROMPT)
    sa.replace_world(_gaussians(0, 0))
    sa.add_keyframe(_keyframe(0, 0))
    a.save(sa)
    sb = b.get(PROMPT)
    assert sb is not None and len(sb.keyframes) == 1
    assert b.refresh(PROMPT) is False  # nothing new
    # a saves a second keyframe; b has an unsaved one of its own
    sa.replace_world(sa.world.concat(_gaussians(0, 1)))
    sa.add_keyframe(_keyframe(0, 1))
    a.save(sa)
    sb.replace_world(sb.world.concat(_gaussians(1, 0)))
    sb.add_keyframe(_keyframe(1, 0))
    assert b.refresh(PROMPT) is True
    assert len(sb.keyframes) == 3 and len(sb.world) == 3 * PER_ROUND and sb.dirty
    b.save(sb)
    assert a.refresh(PROMPT) is True and len(sa.keyframes) == 3 and len(sa.world) == 3 * PER_ROUND


def test_merge_keeps_removals_of_either_side() -> None:
    base = _gaussians(0, 0).concat(_gaussians(0, 1))
    ours = _gaussians(0, 0).concat(_gaussians(1, 0))  # dropped base's second block, added one
    theirs = base.concat(_gaussians(2, 0))  # added one
    merged = merge_gaussians(base, ours, theirs)
    keys = gaussian_keys(merged)
    assert len(merged) == 3 * PER_ROUND
    assert not np.isin(gaussian_keys(_gaussians(0, 1)), keys).any()
    assert np.isin(gaussian_keys(_gaussians(2, 0)), keys).all() and np.isin(gaussian_keys(_gaussians(1, 0)), keys).all()
