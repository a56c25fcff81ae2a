"""WorldStore: ids from prompts, lossless save/load, damage detection, crash-safe saves, LRU, threads."""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from srender_ros.core import atomic, cell_store
from srender_ros.core import manifest as manifest_mod
from srender_ros.core.camera import Intrinsics
from srender_ros.core.cells import CellGrid, cell_name
from srender_ros.core.ply import read_ply, write_ply
from srender_ros.core.store import (
    KeyframeRecord,
    WorldState,
    WorldStore,
    WorldWriteError,
    default_world_root,
    world_id_for_prompt,
)
from srender_ros.core.world import GaussianWorld, num_sh_coeffs
from srender_ros.errors import InputError, SrenderError, WorldFormatError

PROMPT = "A cluttered warehouse aisle"
OTHER = "a sunny beach"


def random_world(n: int, sh_degree: int = 0, seed: int = 0) -> GaussianWorld:
    rng = np.random.default_rng(seed)
    return GaussianWorld(rng.normal(size=(n, 3)), rng.normal(size=(n, 4)), rng.normal(-3, 1, size=(n, 3)),
                         rng.normal(size=n), rng.normal(size=(n, num_sh_coeffs(sh_degree), 3)))


def keyframe(seed: int, w: int = 8, h: int = 6, pose_index: int = 3) -> KeyframeRecord:
    rng = np.random.default_rng(seed)
    T = np.eye(4)
    T[:3, 3] = rng.normal(size=3)
    depth = rng.uniform(0.5, 5.0, size=(h, w)).astype(np.float32)
    depth[0, :2] = np.nan  # unknown depth (sky) must survive the round trip
    return KeyframeRecord(pose_index, T, Intrinsics.from_fov(w, h, 70.0), rng.uniform(size=(h, w, 3)).astype(np.float32),
                          depth, f"coverage {seed / 10:.2f} < 0.8")


def canonical(w: GaussianWorld) -> GaussianWorld:
    """``w`` in a fixed order (a world stored by cells reloads grouped by cell, same Gaussians)."""
    rows = np.concatenate([w.means, w.log_scales, w.opacity_logits[:, None], w.quats_wxyz,
                           w.sh.reshape(len(w), -1)], axis=1).astype(np.float32)
    return w.select(np.lexsort(rows.view(np.uint32).T[::-1]))


def assert_world_equal(a: GaussianWorld, b: GaussianWorld) -> None:
    """Same Gaussians, bit for bit (order aside)."""
    assert len(a) == len(b) and a.sh_degree == b.sh_degree
    a, b = canonical(a), canonical(b)
    for f in ("means", "quats_wxyz", "log_scales", "opacity_logits", "sh"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f


def make_saved(store: WorldStore, prompt: str, n: int = 30, seed: int = 0, keyframes: int = 2) -> WorldState:
    state = store.get_or_create(prompt, {"name": "procedural", "seed": seed})
    state.replace_world(random_world(n, 3, seed))
    for i in range(keyframes):
        state.add_keyframe(keyframe(seed * 10 + i, pose_index=i * 5))
    store.save(state)
    return state


def scratch_entries(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith((".tmp-", ".old-", ".del-")))


# ---- ids --------------------------------------------------------------------------------------
def test_world_id_from_normalized_prompt(tmp_path: Path) -> None:
    wid = world_id_for_prompt(PROMPT)
    assert re.fullmatch(r"[0-9a-f]{16}", wid)
    assert world_id_for_prompt("  a   CLUTTERED\twarehouse\naisle ") == wid
    assert world_id_for_prompt("a cluttered warehouse aisles") != wid
    store = WorldStore(tmp_path)
    state = make_saved(store, "../../etc/passwd; rm -rf /")
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [f"w-{state.world_id}"]  # never the raw text
    for bad in ("", "   \n"):
        with pytest.raises(InputError, match="prompt is empty"):
            world_id_for_prompt(bad)


def test_default_root_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SRENDER_WORLD_DIR", str(tmp_path / "envworlds"))
    assert default_world_root() == tmp_path / "envworlds"
    assert WorldStore().root == tmp_path / "envworlds"
    monkeypatch.delenv("SRENDER_WORLD_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_world_root() == tmp_path / "cache" / "srender" / "worlds"


# ---- round trip -------------------------------------------------------------------------------
def test_save_load_round_trip_with_keyframes(tmp_path: Path) -> None:
    store = WorldStore(tmp_path)
    state = make_saved(store, PROMPT, keyframes=3)
    assert not state.dirty and state.updated_utc
    loaded = WorldStore(tmp_path).get(" a cluttered  WAREHOUSE aisle")
    assert loaded is not None and loaded is not state
    assert loaded.prompt == PROMPT and loaded.world_id == state.world_id and not loaded.dirty
    assert loaded.generator_name == "procedural" and loaded.generator_settings == {"name": "procedural", "seed": 0}
    assert loaded.created_utc == state.created_utc
    assert_world_equal(state.world, loaded.world)
    assert len(loaded.keyframes) == 3
    for a, b in zip(state.keyframes, loaded.keyframes):
        assert (a.pose_index, a.reason, a.intrinsics) == (b.pose_index, b.reason, b.intrinsics)
        np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)  # JSON floats round-trip exactly
        np.testing.assert_array_equal(a.depth_m, b.depth_m)  # incl. NaN where unknown
        np.testing.assert_allclose(a.rgb, b.rgb, atol=0.5 / 255 + 1e-6)  # 8-bit PNG
        assert b.rgb.dtype == np.float32 and b.depth_m.dtype == np.float32


def test_manifest_contents(tmp_path: Path) -> None:
    store = WorldStore(tmp_path)
    state = make_saved(store, PROMPT, n=12, keyframes=1)
    d = store.world_dir(state.world_id)
    m = json.loads((d / "manifest.json").read_text())
    assert m["format_version"] == 2 and m["prompt"] == PROMPT and m["world_id"] == state.world_id
    assert m["generator"] == {"name": "procedural", "settings": {"name": "procedural", "seed": 0}}
    groups = CellGrid(m["cell_size_m"]).group(state.world.means)
    assert m["counts"] == {"gaussians": 12, "sh_degree": 3, "keyframes": 1, "cells": len(groups)}
    assert set(m["cells"]) == {cell_name(k) for k in groups}
    for key, idx in groups.items():  # one plain 3DGS PLY per cell, checksummed
        e = m["cells"][cell_name(key)]
        assert e["file"].startswith(f"cells/{cell_name(key)}-") and e["gaussians"] == len(idx)
        assert e["sha256"] == manifest_mod.sha256_file(d / e["file"]) and e["bytes"] == (d / e["file"]).stat().st_size
        assert_world_equal(read_ply(d / e["file"]), state.world.select(idx))
    kf = m["keyframes"][0]
    assert kf["index"] == 0 and kf["pose_index"] == 0 and len(kf["T_world_cam"]) == 4
    assert set(kf["intrinsics"]) == {"width_px", "height_px", "fx_px", "fy_px", "cx_px", "cy_px"}
    assert set(m["files"]) == {kf["rgb_file"], kf["depth_file"]}
    for rel, meta in m["files"].items():
        assert meta["sha256"] == manifest_mod.sha256_file(d / rel) and meta["bytes"] == (d / rel).stat().st_size
    assert np.load(d / kf["depth_file"], allow_pickle=False).dtype == np.float32


def test_resave_keeps_created_and_replaces_content(tmp_path: Path) -> None:
    store = WorldStore(tmp_path)
    state = make_saved(store, PROMPT, n=5, keyframes=2)
    created = state.created_utc
    state.replace_world(random_world(9, 1, seed=5))
    store.save(state)
    loaded = WorldStore(tmp_path).get(PROMPT)
    assert loaded is not None and len(loaded.world) == 9 and loaded.created_utc == created
    assert scratch_entries(tmp_path) == []


# ---- damage -----------------------------------------------------------------------------------
def _flip_byte(path: Path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "manifest_json": (lambda d: (d / "manifest.json").write_text('{"format_version": 1, "prompt": '),
                      r"manifest\.json: corrupt JSON"),
    "manifest_missing": (lambda d: (d / "manifest.json").unlink(), r"manifest\.json: missing"),
    "png_bitflip": (lambda d: _flip_byte(d / "keyframes" / "kf-0001-rgb.png", 40), r"kf-0001-rgb\.png: sha256"),
    "depth_deleted": (lambda d: (d / "keyframes" / "kf-0000-depth.npy").unlink(), r"kf-0000-depth\.npy: missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_world_raises_naming_the_file_and_others_still_load(tmp_path: Path, damage: str) -> None:
    store = WorldStore(tmp_path)
    bad = make_saved(store, PROMPT, seed=1)
    good = make_saved(store, OTHER, seed=2)
    corrupt, pattern = DAMAGE[damage]
    corrupt(store.world_dir(bad.world_id))
    fresh = WorldStore(tmp_path)
    with pytest.raises(WorldFormatError, match=pattern) as exc:
        fresh.get(PROMPT)
    assert str(store.world_dir(bad.world_id)) in str(exc.value)
    with pytest.raises(WorldFormatError):  # not silently replaced by an empty world either
        fresh.get_or_create(PROMPT)
    other = fresh.get(OTHER)
    assert other is not None
    assert_world_equal(other.world, good.world)
    infos = {i.world_id: i for i in fresh.list()}
    assert set(infos) == {bad.world_id, good.world_id}
    assert infos[good.world_id].error is None
    with pytest.raises(WorldFormatError):
        fresh.info(bad.world_id, verify=True)
    # The damaged world can be removed and recreated.
    fresh.remove(bad.world_id)
    assert fresh.get(PROMPT) is None and len(fresh.get_or_create(PROMPT).world) == 0


def test_manifest_cannot_point_outside_the_world_or_be_from_the_future(tmp_path: Path) -> None:
    store = WorldStore(tmp_path)
    state = make_saved(store, PROMPT, keyframes=1)
    mpath = store.world_dir(state.world_id) / "manifest.json"
    m = json.loads(mpath.read_text())
    evil = json.loads(json.dumps(m))
    next(iter(evil["cells"].values()))["file"] = "../../outside.ply"
    mpath.write_text(json.dumps(evil))
    with pytest.raises(WorldFormatError, match="not a relative path inside the world"):
        WorldStore(tmp_path).get(PROMPT)
    future = dict(m, format_version=99)
    mpath.write_text(json.dumps(future))
    with pytest.raises(WorldFormatError, match="format_version 99 is newer"):
        WorldStore(tmp_path).get(PROMPT)
    mpath.write_text(json.dumps(dict(m, prompt=OTHER)))
    with pytest.raises(WorldFormatError, match="do not match the directory name"):
        WorldStore(tmp_path).get(PROMPT)


def test_pickled_depth_is_refused_even_with_matching_checksum(tmp_path: Path) -> None:
    store = WorldStore(tmp_path)
    state = make_saved(store, PROMPT, keyframes=1)
    d = store.world_dir(state.world_id)
    rel = "keyframes/kf-0000-depth.npy"
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    (d / rel).write_bytes(buf.getvalue())
    m = json.loads((d / "manifest.json").read_text())
    m["files"][rel] = {"sha256": manifest_mod.sha256_file(d / rel), "bytes": len(buf.getvalue())}
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(WorldFormatError, match=r"kf-0000-depth\.npy: cannot load depth"):
        WorldStore(tmp_path).get(PROMPT)


# ---- crash safety -----------------------------------------------------------------------------
def test_failed_save_leaves_previous_world_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = WorldStore(tmp_path)
    state = make_saved(store, PROMPT, n=40, seed=1)
    saved_world = state.world
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    real_write = cell_store.write_new_file

    def half_then_fail_on_third(path: Path, data: bytes) -> None:  # two cells written, the third fails
        calls["n"] += 1
        if calls["n"] < 3:
            real_write(path, data)
            return
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    calls = {"n": 0}
    monkeypatch.setattr(cell_store, "write_new_file", half_then_fail_on_third)
    state.replace_world(random_world(100, 3, seed=9))
    state.add_keyframe(keyframe(7))
    with pytest.raises(WorldWriteError, match=r"writing .*/cells/c_-?\d+_-?\d+_-?\d+-\w+\.ply: No space left on device"
                                              r".*previously saved copy is unchanged") as exc:
        store.save(state)
    assert isinstance(exc.value, SrenderError)
    assert state.dirty
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # byte for byte, and no scratch left behind
    assert scratch_entries(tmp_path) == []
    loaded = WorldStore(tmp_path).get(PROMPT)
    assert loaded is not None and len(loaded.keyframes) == 2
    assert_world_equal(loaded.world, saved_world)
    monkeypatch.undo()
    store.save(state)  # works again once the disk is fine
    reloaded = WorldStore(tmp_path).get(PROMPT)
    assert reloaded is not None and len(reloaded.world) == 100 and len(reloaded.keyframes) == 3


def test_failed_keyframe_write_leaves_previous_world_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = WorldStore(tmp_path)
    state = make_saved(store, PROMPT, n=10, keyframes=1)
    calls = {"n": 0}
    real = cell_store.atomic_write_bytes

    def fail_on_second(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise PermissionError(13, "Permission denied")
        real(path, data)

    monkeypatch.setattr(cell_store, "atomic_write_bytes", fail_on_second)
    state.add_keyframe(keyframe(3))
    with pytest.raises(WorldWriteError, match=r"writing .*kf-0001-depth\.npy: Permission denied"):
        store.save(state)
    loaded = WorldStore(tmp_path).get(PROMPT)
    assert loaded is not None and len(loaded.keyframes) == 1
    assert scratch_entries(tmp_path) == []


def test_interrupted_swap_is_recovered_and_stale_scratch_removed(tmp_path: Path) -> None:
    store = WorldStore(tmp_path)
    state = make_saved(store, PROMPT, n=8)
    d = store.world_dir(state.world_id)
    # Crash between "rename old aside" and "rename new in": the world dir is missing.
    os.rename(d, tmp_path / f".old-{d.name}-0123456789ab")
    half = tmp_path / f".tmp-{d.name}-ba9876543210"
    half.mkdir()
    (half / "gaussians.ply").write_bytes(b"ply\n")  # a half-written scratch dir
    old_time = time.time() - 2 * 3600
    os.utime(half, (old_time, old_time))
    fresh = WorldStore(tmp_path)
    assert scratch_entries(tmp_path) == []
    loaded = fresh.get(PROMPT)
    assert loaded is not None
    assert_world_equal(loaded.world, state.world)


def test_recovery_on_load_without_restart(tmp_path: Path) -> None:
    store = WorldStore(tmp_path)
    state = make_saved(store, PROMPT, n=8)
    d = store.world_dir(state.world_id)
    store2 = WorldStore(tmp_path)
    os.rename(d, tmp_path / f".old-{d.name}-0123456789ab")
    loaded = store2.get(PROMPT)
    assert loaded is not None and d.is_dir()


def test_swap_dir_restores_old_copy_when_second_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, new = tmp_path / "t", tmp_path / "n"
    target.mkdir()
    (target / "f").write_text("old")
    new.mkdir()
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:
        if Path(str(src)) == new:
            raise OSError(5, "I/O error")
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.os, "rename", rename)
    with pytest.raises(OSError, match="I/O error"):
        atomic.swap_dir(new, target)
    assert (target / "f").read_text() == "old"


# ---- memory -----------------------------------------------------------------------------------
def test_lru_eviction_saves_dirty_worlds(tmp_path: Path) -> None:
    one = random_world(100, 3).nbytes
    store = WorldStore(tmp_path, memory_budget_bytes=int(2.5 * one))
    states = []
    for i, prompt in enumerate(["world a", "world b", "world c"]):
        s = store.get_or_create(prompt)
        s.replace_world(random_world(100, 3, seed=i))
        states.append(s)
    assert not any(tmp_path.glob("w-*"))  # nothing saved while within budget
    store.get(states[0].prompt)  # a is now the most recent; b is the least
    d = store.get_or_create("world d")
    d.replace_world(random_world(100, 3, seed=3))
    store.get_or_create("world e")  # over budget: evicts b then c (oldest first), saving them
    assert store.loaded_ids() == [states[0].world_id, d.world_id, world_id_for_prompt("world e")]
    assert store.memory_bytes <= store.memory_budget_bytes
    assert not states[1].dirty and not states[2].dirty and states[0].dirty
    on_disk = WorldStore(tmp_path).get("world b")
    assert on_disk is not None
    assert_world_equal(on_disk.world, states[1].world)
    # An evicted world comes back from disk on demand (pushing out a, the least recently used, saved).
    again = store.get("world c")
    assert again is not None and again is not states[2] and not again.dirty
    assert_world_equal(again.world, states[2].world)
    assert store.loaded_ids() == [d.world_id, world_id_for_prompt("world e"), again.world_id]
    assert not states[0].dirty
    assert store.save_all() == 2  # d and the new, empty e
    assert not d.dirty and store.save_all() == 0


def test_world_larger_than_budget_is_kept(tmp_path: Path) -> None:
    store = WorldStore(tmp_path, memory_budget_bytes=10)
    s = store.get_or_create(PROMPT)
    s.replace_world(random_world(50))
    assert store.get(PROMPT) is s


# ---- threads ----------------------------------------------------------------------------------
def test_concurrent_access_returns_one_state_per_world(tmp_path: Path) -> None:
    make_saved(WorldStore(tmp_path), PROMPT, n=20)
    store = WorldStore(tmp_path)
    results: list[WorldState] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            s = store.get_or_create(PROMPT)
            results.append(s)
            with s.lock:
                s.add_keyframe(keyframe(100 + i))
            store.save(s)
            other = store.get_or_create(f"{OTHER} {i % 3}")
            other.replace_world(random_world(5, seed=i))
            store.save(other)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(r is results[0] for r in results)
    loaded = WorldStore(tmp_path).get(PROMPT)
    assert loaded is not None and len(loaded.keyframes) == 2 + 6  # no save overwrote a newer one
    assert len(WorldStore(tmp_path).list()) == 4
    assert scratch_entries(tmp_path) == []


# ---- management -------------------------------------------------------------------------------
def test_import_export_info_remove(tmp_path: Path) -> None:
    src = tmp_path / "in.ply"
    w = random_world(33, 2, seed=4)
    write_ply(src, w)
    store = WorldStore(tmp_path / "worlds")
    make_saved(store, PROMPT, n=5, keyframes=2)
    state = store.import_ply(src, PROMPT)  # replaces Gaussians, drops the old keyframes
    assert state.generator_name == "import" and not state.keyframes and not state.dirty
    fresh = WorldStore(tmp_path / "worlds")
    info = fresh.info(PROMPT, verify=True)
    assert (info.gaussians, info.keyframes, info.sh_degree, info.generator) == (33, 0, 2, "import")
    assert info.bytes_on_disk > 33 * 4 * 41 and info.path == fresh.world_dir(state.world_id)
    assert fresh.info(state.world_id) == info == fresh.info(f"w-{state.world_id}")
    out = fresh.export_ply(state.world_id, tmp_path / "out.ply")
    assert_world_equal(read_ply(out), w)
    removed = fresh.remove(PROMPT)
    assert removed.world_id == state.world_id
    assert fresh.get(PROMPT) is None and not fresh.world_dir(state.world_id).exists()
    for call in (lambda: fresh.remove(PROMPT), lambda: fresh.info(PROMPT),
                 lambda: fresh.export_ply(PROMPT, tmp_path / "x.ply")):
        with pytest.raises(InputError, match="no world for prompt"):
            call()
    with pytest.raises(InputError, match="no world with id 0123456789abcdef"):
        fresh.info("0123456789abcdef")
    with pytest.raises(WorldFormatError, match=r"missing\.ply: no such file"):
        fresh.import_ply(tmp_path / "missing.ply", PROMPT)


def test_list_includes_unsaved_worlds(tmp_path: Path) -> None:
    store = WorldStore(tmp_path)
    make_saved(store, PROMPT, n=3)
    store.get_or_create(OTHER).replace_world(random_world(4))
    infos = store.list()
    assert [(i.prompt, i.gaussians, i.path is None) for i in infos] == [(PROMPT, 3, False), (OTHER, 4, True)]


def test_bad_keyframes_and_settings_are_refused() -> None:
    K = Intrinsics.from_fov(8, 6, 70.0)
    rgb, depth = np.zeros((6, 8, 3), np.float32), np.ones((6, 8), np.float32)
    with pytest.raises(InputError, match=r"KeyframeRecord\.rgb: expected shape \[6, 8, 3\]"):
        KeyframeRecord(0, np.eye(4), K, rgb[:, :4], depth)
    with pytest.raises(InputError, match=r"KeyframeRecord\.depth_m: expected shape"):
        KeyframeRecord(0, np.eye(4), K, rgb, depth.T)
    with pytest.raises(InputError, match=r"KeyframeRecord\.T_world_cam"):
        KeyframeRecord(0, np.full((4, 4), np.nan), K, rgb, depth)
    with pytest.raises(InputError, match=r"KeyframeRecord\.rgb: has NaN"):
        KeyframeRecord(0, np.eye(4), K, rgb + np.nan, depth)
    with pytest.raises(InputError, match=r"KeyframeRecord\.depth_m: values must be finite and >= 0"):
        KeyframeRecord(0, np.eye(4), K, rgb, -depth)
    with pytest.raises(InputError, match="pose_index"):
        KeyframeRecord(-2, np.eye(4), K, rgb, depth)
    with pytest.raises(InputError, match="JSON-serializable"):
        WorldState(PROMPT, generator_settings={"model": object()})
    with pytest.raises(InputError, match="JSON-serializable"):
        WorldState(PROMPT, generator_settings={"guidance": float("nan")})
    with pytest.raises(InputError, match="replace_world: expected a GaussianWorld"):
        WorldState(PROMPT).replace_world(np.zeros(3))  # type: ignore[arg-type]


def test_generator_name_recorded_for_new_worlds(tmp_path: Path) -> None:
    store = WorldStore(tmp_path)
    a = store.get_or_create(PROMPT, {"generator": "procedural", "grammar_version": 1})
    assert a.generator_name == "procedural"
    b = store.get_or_create(OTHER, {"model": "x"}, generator_name="diffusers")
    assert b.generator_name == "diffusers"
    store.save(a)
    again = WorldStore(tmp_path).get_or_create(PROMPT, {"generator": "other"})  # stored settings win
    assert again.generator_name == "procedural" and again.generator_settings == {"generator": "procedural",
                                                                                  "grammar_version": 1}


def test_worlds_that_grow_in_memory_are_evicted_on_next_access(tmp_path: Path) -> None:
    one = random_world(100, 3).nbytes
    store = WorldStore(tmp_path, memory_budget_bytes=int(1.5 * one))
    a, b = store.get_or_create("world a"), store.get_or_create("world b")  # both empty: within budget
    a.replace_world(random_world(100, 3, seed=1))
    b.replace_world(random_world(100, 3, seed=2))
    assert store.get("world a") is a  # now over budget: b (least recently used) is saved and dropped
    assert store.loaded_ids() == [a.world_id] and not b.dirty and a.dirty
    assert (tmp_path / f"w-{b.world_id}" / "manifest.json").is_file()
