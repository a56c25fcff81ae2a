"""Procedural world source: prompt -> scene, determinism, exact z-depth, unboundedness, texture.

Images are tiny (64x48 or less) so the whole file runs in a few seconds once numba's cache is
warm (the first run in a fresh checkout compiles the ray caster once, ~20-60 s of CPU).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from srender_ros.backends.generators.procedural import (
    SKY_DISTANCE_M,
    Family,
    ProceduralGenerator,
    family_from_prompt,
    normalize_prompt,
    prompt_seed,
    render_ground_truth,
    scene_from_prompt,
)
from srender_ros.backends.generators.procedural.cellkit import object_bounds
from srender_ros.backends.generators.procedural.cells import build_table
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import make_transform
from srender_ros.core.ports.generate import KeyframeGenerator, KeyframeRequest
from srender_ros.errors import InputError

K_SMALL = Intrinsics.from_fov(64, 48, 70.0)

FAMILY_PROMPTS = {
    Family.ROOM: "a cozy living room with a sofa",
    Family.OFFICE: "an open-plan office",
    Family.KITCHEN: "a small kitchen",
    Family.WAREHOUSE: "a cluttered warehouse aisle",
    Family.STREET: "a city street at noon",
    Family.FOREST: "a pine forest",
    Family.FIELD: "a farm field in summer",
}


def look(pos: tuple[float, float, float], yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """[4, 4] optical camera-to-world pose at ``pos`` looking along yaw/pitch (z-up world, never rolled)."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    f = np.array([np.cos(y) * np.cos(p), np.sin(y) * np.cos(p), np.sin(p)])
    r = np.cross(f, [0.0, 0.0, 1.0])
    r = r / np.linalg.norm(r) if np.linalg.norm(r) > 1e-9 else np.array([np.sin(y), -np.cos(y), 0.0])
    d = np.cross(f, r)
    return make_transform(np.stack([r, d, f], 1), np.asarray(pos, dtype=np.float64))


def look_down(pos: tuple[float, float, float]) -> np.ndarray:
    """Camera at ``pos`` looking straight down (optical z = world -z), image x = world +x."""
    R = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    return make_transform(R, np.asarray(pos, dtype=np.float64))


# ------------------------------------------------------------------------------------------------
# Prompt -> scene
# ------------------------------------------------------------------------------------------------


def test_seed_is_sha256_of_the_normalized_prompt() -> None:
    assert normalize_prompt("  A   Cluttered\tWAREHOUSE ") == "a cluttered warehouse"
    expected = int.from_bytes(hashlib.sha256(b"a cluttered warehouse").digest()[:8], "little")
    assert prompt_seed("A cluttered  warehouse") == expected
    assert prompt_seed("a cluttered warehouse") != prompt_seed("a cluttered warehouse aisle")


def test_prompts_sharing_a_world_id_share_a_procedural_world() -> None:
    from srender_ros.core.manifest import normalize_prompt as store_normalize

    for p in ("  A  Stra\u00dfe\tCafe ", "STRASSE cafe", "\u00c9cole", "a b"):
        assert normalize_prompt(p) == store_normalize(p)
    assert prompt_seed("Straße café") == prompt_seed("STRASSE CAFÉ")


@pytest.mark.parametrize(("prompt", "family"), [
    *[(p, f) for f, p in FAMILY_PROMPTS.items()],
    ("Bedroom with a big bed", Family.ROOM),
    ("a restaurant kitchen", Family.KITCHEN),
    ("storage racks and pallets", Family.WAREHOUSE),
    ("driving through downtown traffic", Family.STREET),
    ("a hiking trail in the woods", Family.FOREST),
    ("drone flight over rolling hills and meadows", Family.FIELD),
    ("an office desk in a warehouse", Family.OFFICE),  # office 2 + desk 1 beat warehouse 2
    ("a warehouse office", Family.WAREHOUSE),  # a tie goes to the word that comes first
])
def test_keywords_choose_the_family(prompt: str, family: Family) -> None:
    assert family_from_prompt(prompt) is family
    assert scene_from_prompt(prompt).family is family


def test_unknown_prompts_still_get_a_scene_picked_by_their_hash() -> None:
    prompts = [f"zorblax quux number {i}" for i in range(40)]
    families = {scene_from_prompt(p).family for p in prompts}
    assert len(families) >= 4  # spread over the families, not always the same fallback
    assert scene_from_prompt(prompts[0]) == scene_from_prompt(prompts[0])


def test_bad_prompts_and_families_are_refused() -> None:
    with pytest.raises(InputError, match="empty"):
        scene_from_prompt("   ")
    with pytest.raises(InputError, match="unknown scene family"):
        scene_from_prompt("a room", family="castle")
    assert scene_from_prompt("a room", family="forest").family is Family.FOREST


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------


def test_same_prompt_same_images_different_prompts_differ() -> None:
    T = np.stack([look((0.3, -0.2, 1.5), 20.0, -8.0), look((2.0, 1.0, 1.6), 130.0, -5.0)])
    a = ProceduralGenerator().ground_truth("a cluttered warehouse aisle", K_SMALL, T)
    b = ProceduralGenerator().ground_truth("A cluttered  warehouse aisle", K_SMALL, T)  # fresh caches, same world
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth_m, b.depth_m)
    c = ProceduralGenerator().ground_truth("a dusty warehouse aisle", K_SMALL, T)  # same family, other seed
    assert np.abs(a.rgb - c.rgb).mean() > 0.02


def test_families_look_different() -> None:
    T = look((0.2, 0.1, 1.5), 15.0, -10.0)[None]
    imgs = [render_ground_truth(p, K_SMALL, T, 1).rgb[0] for p in FAMILY_PROMPTS.values()]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert np.abs(imgs[i] - imgs[j]).mean() > 0.05, (i, j)


def test_output_contract() -> None:
    T = np.stack([look((0.0, 0.0, 1.5), 0.0), look((5.0, 3.0, 1.2), 200.0, 10.0), look((1.0, 2.0, 1.0), 90.0)])
    out = render_ground_truth("a small kitchen", K_SMALL, T)
    assert out.rgb.shape == (3, 48, 64, 3) and out.rgb.dtype == np.float32
    assert out.depth_m.shape == (3, 48, 64) and out.depth_m.dtype == np.float32
    assert out.alpha.shape == (3, 48, 64) and out.alpha.dtype == np.float32
    assert np.all(out.alpha == 1.0)
    assert np.all((out.rgb >= 0.0) & (out.rgb <= 1.0))
    assert np.isfinite(out.depth_m).all() and (out.depth_m > 0).all()
    # A single [4, 4] pose is accepted as a batch of one.
    one = render_ground_truth("a small kitchen", K_SMALL, T[0])
    np.testing.assert_array_equal(one.rgb[0], out.rgb[0])


def test_depth_is_z_depth_looking_straight_down() -> None:
    # The street grid's origin is a road crossing (flat asphalt at z = 0 for +-5 m).
    for h in (1.0, 2.5):
        out = render_ground_truth("a city street", Intrinsics.from_fov(32, 24, 60.0), look_down((0.0, 0.0, h))[None])
        np.testing.assert_allclose(out.depth_m, h, rtol=0, atol=1e-5)


def test_depth_times_ray_is_the_hit_point_on_a_tilted_view() -> None:
    # 45 deg down at the crossing, narrow field of view: every pixel sees the road plane z = 0. Depth
    # must be the z-depth (distance along the optical axis), not the ray length.
    K = Intrinsics.from_fov(40, 30, 20.0)
    T = look((-3.0, 0.0, 3.0), 0.0, -45.0)
    out = render_ground_truth("a city street", K, T[None])
    rays = K.pixel_rays()  # [H, W, 3] with z = 1
    pts = T[:3, :3] @ (rays * out.depth_m[0][..., None]).reshape(-1, 3).T + T[:3, 3:4]
    np.testing.assert_allclose(pts[2], 0.0, atol=1e-4)
    ray_len = out.depth_m[0] * np.linalg.norm(rays, axis=-1)
    assert (ray_len - out.depth_m[0]).max() > 0.01  # off-axis pixels: length > z-depth


def test_depth_is_the_pixel_centre_ray_whatever_the_supersampling() -> None:
    T = np.stack([look((0.5, 0.5, 1.5), 33.0, -12.0), look((-2.0, 1.0, 1.6), -60.0, -3.0)])
    d1 = render_ground_truth("a cozy living room", K_SMALL, T, 1)
    d3 = render_ground_truth("a cozy living room", K_SMALL, T, 3)
    np.testing.assert_array_equal(d1.depth_m, d3.depth_m)
    assert not np.array_equal(d1.rgb, d3.rgb)  # edges got anti-aliased


@pytest.mark.parametrize("family", list(Family))
def test_unbounded_every_family(family: Family) -> None:
    prompt = FAMILY_PROMPTS[family]
    # Along the free lines every family keeps (room centres and doorways, aisles, roads, trails).
    T = np.stack([
        look((500.0, 0.0, 1.5), 0.0, -3.0),  # after a 500 m drive along x
        look((0.0, 0.0, 40.0), 30.0, 0.0),  # drone at 40 m looking forward
        look((0.0, 0.0, 40.0), 30.0, -40.0),  # ... and down
        look((0.0, -1234.0, 1.7), 97.0, -5.0),  # 1.2 km away along y
        look((-3000.0, 0.0, 0.4), 175.0, 5.0),  # low robot looking slightly up, 3 km away
    ])
    out = render_ground_truth(prompt, K_SMALL, T, 1)
    d = out.depth_m
    assert np.isfinite(d).all()
    assert (d > 0.0).all() and (d <= SKY_DISTANCE_M + 1e-3).all()
    for i in range(len(T)):
        assert 0.3 < float(np.median(d[i])) < SKY_DISTANCE_M, (i, float(np.median(d[i])))
        assert out.rgb[i].std() > 0.02, i  # not a constant image
    assert d[2].max() < 300.0  # looking down from 40 m never reaches the sky
    # Anywhere at all (possibly right in front of, or inside, an object): still finite everywhere.
    rng = np.random.default_rng(int(family.value.encode().hex(), 16) % 2**32)
    poses = [look((*rng.uniform(-5000, 5000, 2), rng.uniform(0.1, 60.0)), rng.uniform(0, 360), rng.uniform(-60, 30))
             for _ in range(4)]
    d = render_ground_truth(prompt, Intrinsics.from_fov(16, 12, 70.0), np.stack(poses), 1).depth_m
    assert np.isfinite(d).all() and (d > 0.0).all() and (d <= SKY_DISTANCE_M + 1e-3).all()


@pytest.mark.parametrize("family", list(Family))
def test_surfaces_carry_texture(family: Family) -> None:
    # Mean absolute difference of horizontally adjacent pixels, in a view at eye height: a world of
    # flat-coloured surfaces would score near 0 (only edges); textured surfaces score well above it.
    T = look((0.3, -0.4, 1.5), 20.0, -20.0)[None]
    gray = render_ground_truth(FAMILY_PROMPTS[family], K_SMALL, T, 1).rgb[0].mean(-1)
    hf = float(np.abs(np.diff(gray, axis=1)).mean())
    assert hf > 0.012, hf


def test_views_agree_on_the_colour_of_a_surface_point() -> None:
    # Static, view-independent shading: a point seen from two poses has (almost) the same colour.
    K = Intrinsics.from_fov(64, 48, 60.0)
    Ta, Tb = look((0.0, 0.0, 1.5), 10.0, -25.0), look((0.4, -0.3, 1.6), 18.0, -22.0)
    a = render_ground_truth("a small kitchen", K, Ta[None], 1)
    b = render_ground_truth("a small kitchen", K, Tb[None], 1)
    rays = K.pixel_rays()
    pts = Ta[:3, :3] @ (rays * a.depth_m[0][..., None]).reshape(-1, 3).T + Ta[:3, 3:4]
    pc = Tb[:3, :3].T @ (pts - Tb[:3, 3:4])
    u = K.fx_px * pc[0] / pc[2] + K.cx_px
    v = K.fy_px * pc[1] / pc[2] + K.cy_px
    ui, vi = np.floor(u).astype(int), np.floor(v).astype(int)
    ok = (pc[2] > 0.1) & (ui >= 0) & (ui < K.width_px) & (vi >= 0) & (vi < K.height_px)
    ok[ok] &= np.abs(b.depth_m[0][vi[ok], ui[ok]] - pc[2][ok]) < 0.01 * pc[2][ok]  # visible in b too
    assert ok.sum() > 500
    diff = np.abs(a.rgb[0].reshape(-1, 3)[ok] - b.rgb[0][vi[ok], ui[ok]]).max(-1)
    assert float(np.median(diff)) < 0.04


def test_batching_and_cache_state_do_not_change_pixels() -> None:
    near, far = look((1.0, 2.0, 1.5), 40.0, -10.0), look((5000.0, -3000.0, 1.5), 100.0, -10.0)
    gen = ProceduralGenerator(supersample=2)
    alone = gen.ground_truth("a pine forest", K_SMALL, near[None])
    gen.ground_truth("a pine forest", K_SMALL, far[None])  # the cell cache now holds another window
    together = gen.ground_truth("a pine forest", K_SMALL, np.stack([far, near]))
    np.testing.assert_array_equal(alone.rgb[0], together.rgb[1])
    np.testing.assert_array_equal(alone.depth_m[0], together.depth_m[1])


def test_bad_poses_are_refused() -> None:
    T = look((0.0, 0.0, 1.5), 0.0)
    with pytest.raises(InputError, match=r"\[B, 4, 4\]"):
        render_ground_truth("a room", K_SMALL, np.zeros((2, 3, 4)))
    bad = T.copy()
    bad[0, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        render_ground_truth("a room", K_SMALL, bad[None])
    skew = T.copy()
    skew[:3, :3] *= 2.0
    with pytest.raises(InputError, match="orthonormal"):
        render_ground_truth("a room", K_SMALL, skew[None])
    with pytest.raises(InputError, match="supersample"):
        render_ground_truth("a room", K_SMALL, T[None], 0)


# ------------------------------------------------------------------------------------------------
# Cells: the invariant the ray caster relies on
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(Family))
def test_primitives_stay_inside_their_cell_and_fit_its_capacity(family: Family) -> None:
    scene = scene_from_prompt(FAMILY_PROMPTS[family])
    lay = scene.layout
    table = build_table(scene, -6, -5, 12, 10)
    assert table.count.max() < lay.max_objects, "a cell filled up: primitives were dropped"
    assert table.count.sum() > 0
    for ci in range(table.nx * table.ny):
        ix, iy = table.ix0 + ci // table.ny, table.iy0 + ci % table.ny
        x0, y0 = lay.grid_origin_m + ix * lay.cell_m, lay.grid_origin_m + iy * lay.cell_m
        for k in range(table.count[ci]):
            bx0, by0, bz0, bx1, by1, bz1 = object_bounds(table.objs[ci, k])
            assert x0 - 1e-3 <= bx0 and bx1 <= x0 + lay.cell_m + 1e-3, (family, ix, iy, k)
            assert y0 - 1e-3 <= by0 and by1 <= y0 + lay.cell_m + 1e-3, (family, ix, iy, k)
            assert bz0 < bz1
            if lay.ceiling_m > 0:
                assert bz1 < lay.ceiling_m


# ------------------------------------------------------------------------------------------------
# The generator
# ------------------------------------------------------------------------------------------------


def test_generator_makes_keyframes_and_reports_settings() -> None:
    gen: KeyframeGenerator = ProceduralGenerator()  # satisfies the protocol (checked by mypy)
    assert gen.name == "procedural"
    T = look((0.0, 0.0, 1.5), 45.0, -5.0)
    req = KeyframeRequest(prompt="a city street", T_world_cam=T, intrinsics=K_SMALL, world_view=None,
                          initial_image=None, seed=7, pose_index=12)
    kf = gen.generate(req)
    assert kf.rgb.shape == (48, 64, 3) and kf.rgb.dtype == np.float32
    assert kf.depth_m.shape == (48, 64) and np.isfinite(kf.depth_m).all()
    assert kf.pose_index == 12 and kf.intrinsics == K_SMALL
    np.testing.assert_array_equal(kf.T_world_cam, T)
    assert isinstance(gen, ProceduralGenerator)
    truth = gen.ground_truth("a city street", K_SMALL, T[None])
    np.testing.assert_array_equal(kf.rgb, truth.rgb[0])
    # The keyframe seed does not matter: the prompt alone defines the world.
    np.testing.assert_array_equal(gen.generate(req._replace(seed=99)).rgb, kf.rgb)
    settings = gen.settings()
    assert json.loads(json.dumps(settings)) == settings
    assert settings["generator"] == "procedural" and settings["supersample"] == 2
    assert isinstance(settings["grammar_version"], int)
    assert gen.scene("a city street").family is Family.STREET


@pytest.mark.parametrize("bad", [0, 5, 1.5, True, "2"])
def test_generator_rejects_bad_supersample(bad: object) -> None:
    with pytest.raises(InputError, match="supersample"):
        ProceduralGenerator(supersample=bad)  # type: ignore[arg-type]


def test_generator_rejects_a_batch_as_keyframe_pose() -> None:
    req = KeyframeRequest(prompt="a room", T_world_cam=np.stack([np.eye(4)] * 2), intrinsics=K_SMALL, world_view=None,
                          initial_image=None, seed=0)
    with pytest.raises(InputError, match=r"\[4, 4\]"):
        ProceduralGenerator().generate(req)


def test_thread_count_does_not_change_pixels() -> None:
    import numba

    T = np.stack([look((0.5, 0.0, 1.5), 10.0 * i, -10.0) for i in range(3)])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = render_ground_truth("a city street", K_SMALL, T, 2)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = render_ground_truth("a city street", K_SMALL, T, 2)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.rgb, many.rgb)
    np.testing.assert_array_equal(one.depth_m, many.depth_m)
