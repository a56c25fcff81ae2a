"""Worlds stored by spatial cells (format 2): exact round trip, damage confined to a cell, working
set under a memory budget, migration of format 1, failed saves (issue 15 items 4 and 6)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from srender_ros.app.compose import AppConfig, build_pipeline
from srender_ros.backends.render.registry import get_renderer
from srender_ros.core import cell_store
from srender_ros.core.camera import Intrinsics
from srender_ros.core.manifest import WorldSnapshot, read_world_files, write_world_files
from srender_ros.core.ply import read_ply
from srender_ros.core.store import WorldStore, WorldWriteError
from srender_ros.core.trajectory import Trajectory
from srender_ros.core.world import GaussianWorld
from srender_ros.engine.pipeline import PipelineConfig, RenderJob
from srender_ros.errors import WorldFormatError
from tests.test_store import assert_world_equal, keyframe, random_world

PROMPT = "a long street"
CAM = Intrinsics.from_fov(48, 36, 90.0)
#: Optical camera looking along world +x (x right = -y, y down = -z).
R_LOOK_X = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def wall(x_m: float, n: int = 3000, seed: int = 0, y_m: float = 0.0) -> GaussianWorld:
    """A dense, opaque wall of Gaussians at x = x_m, 40 m wide around y_m and 20 m high (several storage cells)."""
    rng = np.random.default_rng(seed)
    means = np.stack([x_m + rng.uniform(-0.2, 0.2, n), y_m + rng.uniform(-20, 20, n), rng.uniform(-10, 10, n)], 1)
    return GaussianWorld.from_linear(means, np.full((n, 3), 0.4), np.full(n, 0.95), rng.uniform(size=(n, 3)))


def pose(x_m: float, y_m: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R_LOOK_X
    T[:3, 3] = [x_m, y_m, 0.0]
    return T


def save_world(root: Path, world: GaussianWorld, keyframes: int = 0) -> None:
    store = WorldStore(root)
    state = store.get_or_create(PROMPT, {"name": "test"})
    state.replace_world(world)
    for i in range(keyframes):
        state.add_keyframe(keyframe(i, pose_index=i))
    store.save(state)


def test_cell_streaming_round_trips_a_world_exactly(tmp_path: Path) -> None:
    world = wall(5.0).concat(wall(70.0, seed=1), random_world(200, 0, seed=3))
    save_world(tmp_path, world, keyframes=2)
    d = WorldStore(tmp_path).world_dir(WorldStore(tmp_path).resolve_id(PROMPT))
    m = json.loads((d / "manifest.json").read_text())
    assert m["format_version"] == 2 and m["counts"]["cells"] == len(m["cells"]) > 3
    loaded = WorldStore(tmp_path).get(PROMPT)
    assert loaded is not None and len(loaded.keyframes) == 2
    assert_world_equal(loaded.world, world)  # same Gaussians, bit for bit
    renderer = get_renderer("cpu")
    T = np.stack([pose(0.0), pose(40.0, 3.0)])
    a, b = renderer.render(world, CAM, T), renderer.render(loaded.world, CAM, T)
    np.testing.assert_allclose(b.rgb, a.rgb, atol=1e-6)  # same render (order only changes float sums)
    np.testing.assert_allclose(b.alpha, a.alpha, atol=1e-6)
    # A world larger than the budget opens without its cells; export still streams every one.
    small = WorldStore(tmp_path, memory_budget_bytes=1000)
    lazy = small.get(PROMPT)
    assert lazy is not None and len(lazy.world) == 0 and len(lazy.cells.unloaded()) == len(m["cells"])
    small.export_ply(PROMPT, tmp_path / "all.ply")
    assert_world_equal(read_ply(tmp_path / "all.ply"), world)
    small.focus(lazy, np.array([[0.0, 0.0, 0.0]]), radius_m=20.0)  # only the cells near the camera
    assert 0 < len(lazy.world) < len(world) and np.abs(lazy.world.means[:, 0]).max() < 64


def test_a_corrupted_cell_is_named_and_the_rest_of_the_world_loads(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    world = wall(5.0).concat(wall(70.0, seed=1))
    save_world(tmp_path, world, keyframes=1)
    store = WorldStore(tmp_path)
    d = store.world_dir(store.resolve_id(PROMPT))
    m = json.loads((d / "manifest.json").read_text())
    name, entry = next((k, e) for k, e in m["cells"].items() if e["gaussians"] > 100)
    data = bytearray((d / entry["file"]).read_bytes())
    data[-7] ^= 0xFF
    (d / entry["file"]).write_bytes(bytes(data))
    store = WorldStore(tmp_path)
    with caplog.at_level(logging.ERROR):
        state = store.get(PROMPT)
    assert state is not None and len(state.keyframes) == 1
    assert len(state.world) == len(world) - entry["gaussians"]  # everything but the damaged cell
    assert entry["file"].split("/")[-1] in caplog.text and "sha256 checksum mismatch" in caplog.text
    with pytest.raises(WorldFormatError, match=rf"{entry['file'].split('/')[-1]}: sha256 checksum mismatch"):
        WorldStore(tmp_path).info(PROMPT, verify=True)
    # Saving other changes keeps the damaged file as it is (nothing is silently dropped).
    state.add_keyframe(keyframe(5))
    store.save(state)
    m2 = json.loads((d / "manifest.json").read_text())
    assert m2["cells"][name] == entry


def _run(store: WorldStore, T: np.ndarray) -> np.ndarray:
    pipe = build_pipeline(AppConfig(renderer="cpu", pipeline=PipelineConfig(chunk_size=4, max_keyframes_per_request=0)),
                          store=store)
    traj = Trajectory(np.arange(len(T), dtype=np.int64) * 100_000_000, T)
    return np.concatenate([c.render.rgb for c in pipe.run(RenderJob(prompt=PROMPT, trajectory=traj, intrinsics=CAM))])


def test_eviction_under_a_tiny_budget_renders_the_same_frames(tmp_path: Path) -> None:
    near, far = wall(6.0), wall(1006.0, seed=1, y_m=3000.0)  # neither in view from the other's poses
    save_world(tmp_path, near.concat(far))
    T = np.stack([pose(0.0, y) for y in (0.0, 1.0, 2.0, 3.0)] + [pose(1000.0, 3000.0 + y) for y in (0.0, 1.0, 2.0, 3.0)])
    big = WorldStore(tmp_path, focus_radius_m=60.0)
    frames_big = _run(big, T)
    tiny = WorldStore(tmp_path, memory_budget_bytes=1, focus_radius_m=60.0)
    frames_tiny = _run(tiny, T)
    np.testing.assert_array_equal(frames_tiny, frames_big)
    assert frames_big[:, 18, 24].max() > 0.05  # the walls are in view
    state = tiny.get(PROMPT)
    assert state is not None and len(state.world) == len(far)  # the near wall was evicted at the far poses
    assert state.cells.unloaded() and len(big.get(PROMPT).world) == len(near) + len(far)  # type: ignore[union-attr]


def _write_format1(root: Path, world: GaussianWorld, keyframes: int) -> Path:
    from srender_ros.core.store import world_id_for_prompt

    wid = world_id_for_prompt(PROMPT)
    d = root / f"w-{wid}"
    d.mkdir(parents=True)
    write_world_files(d, WorldSnapshot(PROMPT, wid, world, tuple(keyframe(i, pose_index=i) for i in range(keyframes)),
                                       "test", {}, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
    return d


def test_a_format1_world_loads_and_migrates_on_first_save_keeping_it_until_the_new_one_is_complete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = wall(5.0).concat(wall(70.0, seed=1))
    d = _write_format1(tmp_path, world, keyframes=2)
    store = WorldStore(tmp_path)
    state = store.get(PROMPT)
    assert state is not None and len(state.keyframes) == 2
    assert_world_equal(state.world, world)
    # The first save migrates; a disk that fills up midway leaves the format-1 world as it was.
    real, calls = cell_store.write_new_file, {"n": 0}

    def fail_on_third(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(cell_store, "write_new_file", fail_on_third)
    state.add_keyframe(keyframe(7, pose_index=9))
    with pytest.raises(WorldWriteError, match=r"writing .*/cells/c_.*\.ply: No space left on device"):
        store.save(state)
    assert (d / "gaussians.ply").is_file() and not (d / "cells").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")) == []
    assert len(read_world_files(d).keyframes) == 2
    monkeypatch.undo()
    store.save(state)
    m = json.loads((d / "manifest.json").read_text())
    assert m["format_version"] == 2 and not (d / "gaussians.ply").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".old-", ".tmp-"))]  # backup gone once complete
    again = WorldStore(tmp_path).get(PROMPT)
    assert again is not None and [k.pose_index for k in again.keyframes] == [0, 1, 9]
    assert_world_equal(again.world, world)


def test_incremental_saves_write_only_changed_cells_and_a_failed_one_keeps_the_last_world(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_world(tmp_path, wall(5.0).concat(wall(200.0, seed=1)), keyframes=1)
    store = WorldStore(tmp_path)
    state = store.get(PROMPT)
    assert state is not None
    d = store.world_dir(state.world_id)
    before = json.loads((d / "manifest.json").read_text())["cells"]
    state.replace_world(state.world.concat(wall(200.5, n=50, seed=7)))  # new Gaussians near x = 200 only
    state.add_keyframe(keyframe(3, pose_index=4))
    store.save(state)
    after = json.loads((d / "manifest.json").read_text())["cells"]
    changed = {k for k in after if after[k] != before.get(k)}
    size = cell_store.STORAGE_CELL_SIZE_M
    assert changed and all(cell_store.parse_cell_name(k)[0] * size >= 150 for k in changed)  # x = 5 cells untouched
    assert {k: v for k, v in after.items() if k not in changed} == {k: v for k, v in before.items() if k not in changed}
    files = {f"cells/{p.name}" for p in (d / "cells").iterdir()}
    assert files == {e["file"] for e in after.values()}  # replaced cell files deleted
    # A permission error on a keyframe file: the last complete world stays loadable, the file is named.
    real = cell_store.atomic_write_bytes

    def deny(path: Path, data: bytes) -> None:
        if "kf-0002" in str(path):
            raise PermissionError(13, "Permission denied")
        real(path, data)

    monkeypatch.setattr(cell_store, "atomic_write_bytes", deny)
    state.replace_world(state.world.concat(wall(5.5, n=50, seed=8)))
    state.add_keyframe(keyframe(4, pose_index=6))
    with pytest.raises(WorldWriteError, match=r"kf-0002-rgb\.png: Permission denied"):
        store.save(state)
    assert json.loads((d / "manifest.json").read_text())["cells"] == after
    assert {f"cells/{p.name}" for p in (d / "cells").iterdir()} == files  # its new cell files removed again
    fresh = WorldStore(tmp_path).get(PROMPT)
    assert fresh is not None and len(fresh.keyframes) == 2
    monkeypatch.undo()
    store.save(state)
    final = WorldStore(tmp_path).get(PROMPT)
    assert final is not None and len(final.keyframes) == 3 and len(final.world) == len(state.world)


def test_concurrent_writers_merge_per_cell(tmp_path: Path) -> None:
    save_world(tmp_path, wall(5.0))
    a, b = WorldStore(tmp_path), WorldStore(tmp_path)
    sa, sb = a.get(PROMPT), b.get(PROMPT)
    assert sa is not None and sb is not None
    sa.replace_world(sa.world.concat(wall(5.2, n=40, seed=11)))  # both add to the same cells
    sa.add_keyframe(keyframe(1, pose_index=1))
    sb.replace_world(sb.world.select(np.arange(100, len(sb.world))).concat(wall(300.0, n=40, seed=12)))
    sb.add_keyframe(keyframe(2, pose_index=2))
    a.save(sa)
    b.save(sb)  # b merges a's save: a's additions kept, b's removals kept
    final = WorldStore(tmp_path).get(PROMPT)
    assert final is not None and len(final.world) == 3000 - 100 + 40 + 40
    assert sorted(k.pose_index for k in final.keyframes) == [1, 2]
    shutil.rmtree(tmp_path / f"w-{final.world_id}")
