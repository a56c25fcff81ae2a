"""Diffusion keyframes with tiny random-weight models saved to disk and loaded the way users load them.

The tiny models (srender_ros.backends.generators.diffusers_gen.tiny) are built in code, written with
save_pretrained(safe_serialization=True) and loaded back through DiffusersGenerator with
HF_HUB_OFFLINE=1 (tests/conftest.py). Their images are noise, but every code path is real.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from srender_ros.backends.generators.diffusers_gen import DiffusersGenerator
from srender_ros.backends.generators.diffusers_gen.images import center_crop_resize, generation_size, hole_mask
from srender_ros.backends.generators.diffusers_gen.loading import cached_model_keys, choose_device
from srender_ros.backends.generators.diffusers_gen.multiview import (
    CameraConditionedAdapter,
    ContextView,
    ReprojectionExample,
    ViewSpec,
)
from srender_ros.backends.generators.diffusers_gen.tiny import TinyModelPaths, save_tiny_models
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.generate import KeyframeRequest
from srender_ros.core.ports.render import RenderOutput
from srender_ros.errors import BackendUnavailableError, InputError, ModelLoadError

STEPS = 2
# Not a multiple of 8 on purpose: generation rounds up, the keyframe comes back at this size.
K = Intrinsics.from_fov(60, 44, 60.0)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine, torch's spinning thread pool makes these
    tiny convolutions ~10x slower than a single thread. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModelPaths:
    return save_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="module")
def gen(tiny: TinyModelPaths) -> DiffusersGenerator:
    return DiffusersGenerator(model_path=str(tiny.inpaint), depth_model_path=str(tiny.depth), device="cpu",
                              steps=STEPS, guidance_scale=5.0, seed=7)


def _half_world(seed: int = 0, solid_cols: int = 30) -> RenderOutput:
    """A world view whose left ``solid_cols`` columns are solid (alpha 1, depth 2..3 m), the rest empty."""
    rng = np.random.default_rng(seed)
    h, w = K.height_px, K.width_px
    alpha = np.zeros((1, h, w), np.float32)
    alpha[:, :, :solid_cols] = 1.0
    alpha[:, :, solid_cols : solid_cols + 2] = 0.3  # a soft rim
    rgb = rng.random((1, h, w, 3)).astype(np.float32) * alpha[..., None]
    depth = np.where(alpha >= 0.5, np.linspace(2.0, 3.0, w)[None, None, :], np.nan).astype(np.float32)
    return RenderOutput(rgb, depth, alpha)


def _request(world: RenderOutput | None = None, seed: int = 3, image: np.ndarray | None = None) -> KeyframeRequest:
    T = np.eye(4)
    T[:3, 3] = [0.5, -0.2, 1.0]
    return KeyframeRequest(prompt="a red brick courtyard", T_world_cam=T, intrinsics=K, world_view=world,
                           initial_image=image, seed=seed, pose_index=5)


# ------------------------------------------------------------------------------------- keyframes
def test_first_keyframe_shapes_and_metric_prior(gen: DiffusersGenerator) -> None:
    kf = gen.generate(_request())
    assert kf.rgb.shape == (44, 60, 3) and kf.rgb.dtype == np.float32
    assert kf.depth_m.shape == (44, 60) and kf.depth_m.dtype == np.float32
    assert 0.0 <= kf.rgb.min() and kf.rgb.max() <= 1.0
    assert np.isfinite(kf.depth_m).all()
    # Nothing to align to: the documented prior puts the median pixel at 3 m.
    assert np.median(kf.depth_m) == pytest.approx(gen.depth_prior.median_depth_m, rel=0.05)
    assert kf.pose_index == 5 and kf.intrinsics == K
    np.testing.assert_array_equal(kf.T_world_cam, _request().T_world_cam)


def test_first_keyframe_from_text_to_image_pipeline(tiny: TinyModelPaths) -> None:
    g = DiffusersGenerator(str(tiny.inpaint), str(tiny.depth), t2i_model_path=str(tiny.t2i), device="cpu", steps=STEPS)
    assert g.settings()["t2i_pipeline_class"] == "StableDiffusionPipeline"
    kf = g.generate(_request())
    assert kf.rgb.shape == (44, 60, 3) and np.isfinite(kf.depth_m).all()


def test_initial_image_is_the_first_keyframe(gen: DiffusersGenerator) -> None:
    # A wider image than the camera: centre-cropped to the camera's aspect ratio, then resized.
    yy, xx = np.mgrid[0:50, 0:120]
    image = np.stack([xx / 119.0, yy / 49.0, np.full_like(xx, 0.25, dtype=float)], -1).astype(np.float32)
    kf = gen.generate(_request(image=image))
    np.testing.assert_array_equal(kf.rgb, center_crop_resize(image, 60, 44))
    # The crop kept the central 68 of 120 columns: red spans about 0.22..0.78 instead of 0..1.
    assert 0.18 < kf.rgb[:, 0, 0].mean() < 0.26 and 0.74 < kf.rgb[:, -1, 0].mean() < 0.82


def test_compositing_keeps_world_pixels_and_world_depth(gen: DiffusersGenerator) -> None:
    world = _half_world()
    kf = gen.generate(_request(world))
    mask = hole_mask(world.alpha[0], gen.mask_dilate_px)
    # The mask is the low-alpha region (soft rim included) grown by mask_dilate_px.
    assert mask[:, 30 - gen.mask_dilate_px :].all() and not mask[:, : 30 - gen.mask_dilate_px].any()
    keep = ~mask
    np.testing.assert_array_equal(kf.rgb[keep], world.rgb[0][keep])
    np.testing.assert_array_equal(kf.depth_m[keep], world.depth_m[0][keep])
    # The hole is generated: not the (black) empty world, and with finite positive depth.
    assert np.abs(kf.rgb[mask] - world.rgb[0][mask]).mean() > 0.05
    assert np.isfinite(kf.depth_m).all() and (kf.depth_m > 0).all()


def test_fully_covered_view_is_returned_unchanged(gen: DiffusersGenerator) -> None:
    world = _half_world(solid_cols=60)
    kf = gen.generate(_request(world))
    np.testing.assert_array_equal(kf.rgb, world.rgb[0])
    np.testing.assert_array_equal(kf.depth_m, world.depth_m[0])


def test_same_seed_same_keyframe_other_seed_differs(gen: DiffusersGenerator) -> None:
    world = _half_world()
    a = gen.generate(_request(world, seed=11))
    b = gen.generate(_request(world, seed=11))
    c = gen.generate(_request(world, seed=12))
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth_m, b.depth_m)
    assert np.abs(a.rgb - c.rgb).max() > 0.01


def test_refinement_runs_over_the_whole_keyframe(tiny: TinyModelPaths) -> None:
    world = _half_world()
    # 9-channel inpainting UNet: refinement is the inpainter itself under a full mask.
    g9 = DiffusersGenerator(str(tiny.inpaint), str(tiny.depth), device="cpu", steps=STEPS, refine_strength=0.5)
    # With a text-to-image pipeline: img2img built from its components (AutoPipelineForImage2Image.from_pipe).
    g4 = DiffusersGenerator(str(tiny.inpaint), str(tiny.depth), t2i_model_path=str(tiny.t2i), device="cpu",
                            steps=STEPS, refine_strength=0.5)
    assert g9._img2img is None and type(g4._img2img).__name__ == "StableDiffusionImg2ImgPipeline"
    for g in (g9, g4):
        kf = g.generate(_request(world))
        assert kf.rgb.shape == (44, 60, 3)
        # Refinement repaints the world's pixels too (structure from the world, detail from the model).
        assert np.abs(kf.rgb[:, :20] - world.rgb[0][:, :20]).mean() > 0.01


def test_models_load_once_per_process(tiny: TinyModelPaths, gen: DiffusersGenerator) -> None:
    again = DiffusersGenerator(str(tiny.inpaint), str(tiny.depth), device="cpu", steps=5)
    assert again.inpaint_pipe is gen.inpaint_pipe
    assert again.depth._depth is gen.depth._depth
    keys = cached_model_keys()
    assert sum(1 for k in keys if k[0] == "inpaint" and k[1] == str(tiny.inpaint.resolve())) == 1


def test_settings_are_json(gen: DiffusersGenerator) -> None:
    s = json.loads(json.dumps(gen.settings()))
    assert s["generator"] == "diffusers" and s["steps"] == STEPS and s["device"] == "cpu"
    assert s["dtype"] == "float32" and s["pipeline_class"] == "StableDiffusionInpaintPipeline"
    assert s["depth_model_class"] == "DepthAnythingForDepthEstimation"


def test_generation_size_rounds_up_to_the_multiple() -> None:
    assert generation_size(60, 44) == (64, 48)
    assert generation_size(64, 48) == (64, 48)
    assert generation_size(60, 44, multiple=64) == (64, 64)
    assert generation_size(64, 48, min_side_px=96) == (128, 96)


# ------------------------------------------------------------------------------------- errors
def test_missing_folder(tmp_path: Path, tiny: TinyModelPaths) -> None:
    with pytest.raises(ModelLoadError, match="does not exist") as e:
        DiffusersGenerator(str(tmp_path / "no_such_model"), str(tiny.depth), device="cpu")
    assert "no_such_model" in str(e.value)
    with pytest.raises(ModelLoadError, match=r"depth model folder .* does not exist"):
        DiffusersGenerator(str(tiny.inpaint), str(tmp_path / "no_depth"), device="cpu")


def test_incomplete_folder(tmp_path: Path, tiny: TinyModelPaths) -> None:
    broken = tmp_path / "inpaint_without_unet"
    shutil.copytree(tiny.inpaint, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(ModelLoadError, match=r"incomplete.*'unet'") as e:
        DiffusersGenerator(str(broken), str(tiny.depth), device="cpu")
    assert str(broken) in str(e.value)


def test_pickle_only_weights_are_refused(tmp_path: Path, tiny: TinyModelPaths) -> None:
    depth = tmp_path / "depth_bin"
    shutil.copytree(tiny.depth, depth)
    (depth / "model.safetensors").rename(depth / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        DiffusersGenerator(str(tiny.inpaint), str(depth), device="cpu")


def test_wrong_pipeline_type(tmp_path: Path, tiny: TinyModelPaths) -> None:
    with pytest.raises(ModelLoadError, match=r"depth_anything.*not a diffusers pipeline"):
        DiffusersGenerator(str(tiny.depth), str(tiny.depth), device="cpu")
    with pytest.raises(ModelLoadError, match="not a transformers depth-estimation model"):
        DiffusersGenerator(str(tiny.inpaint), str(tiny.inpaint), device="cpu")
    # A pipeline family diffusers has no inpainting variant for.
    odd = tmp_path / "odd_pipeline"
    shutil.copytree(tiny.t2i, odd)
    index = json.loads((odd / "model_index.json").read_text())
    index["_class_name"] = "DDPMPipeline"
    (odd / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match=r"cannot load .* as an inpainting pipeline"):
        DiffusersGenerator(str(odd), str(tiny.depth), device="cpu")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.skipif(_cuda_available(), reason="CUDA is present here")
def test_cuda_requested_but_absent(tiny: TinyModelPaths) -> None:
    with pytest.raises(BackendUnavailableError, match=r"CUDA is not available.*--device cpu"):
        DiffusersGenerator(str(tiny.inpaint), str(tiny.depth), device="cuda")


def test_out_of_memory_while_loading(tmp_path: Path, tiny: TinyModelPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    import diffusers
    import torch

    def oom(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(diffusers.AutoPipelineForInpainting, "from_pretrained", oom)
    fresh = tmp_path / "inpaint_copy"  # not in the per-process cache yet, so it really loads
    shutil.copytree(tiny.inpaint, fresh)
    with pytest.raises(ModelLoadError, match=r"out of memory loading .*inpaint_copy.*--device cpu"):
        DiffusersGenerator(str(fresh), str(tiny.depth), device="cpu")


def test_failures_while_generating_become_our_errors(tiny: TinyModelPaths) -> None:
    import torch

    from srender_ros.errors import SrenderError

    class Failing:
        def __init__(self, error: Exception) -> None:
            self.error = error

        def __call__(self, **kwargs: object) -> None:
            raise self.error

    g = DiffusersGenerator(str(tiny.inpaint), str(tiny.depth), device="cpu", steps=STEPS)
    g.inpaint_pipe = Failing(torch.cuda.OutOfMemoryError("CUDA out of memory"))  # this instance only
    with pytest.raises(SrenderError, match="out of memory during inpainting on cpu"):
        g.generate(_request())
    g.inpaint_pipe = Failing(ValueError("height must be divisible by 8"))
    with pytest.raises(SrenderError, match=r"inpainting with Failing .* failed: ValueError: height"):
        g.generate(_request())


def test_missing_depth_model_setting(tiny: TinyModelPaths) -> None:
    with pytest.raises(InputError, match="--depth-model"):
        DiffusersGenerator(str(tiny.inpaint), None, device="cpu")  # type: ignore[arg-type]


def test_bad_settings(tiny: TinyModelPaths) -> None:
    with pytest.raises(InputError, match="device 'tpu'"):
        choose_device("tpu")
    with pytest.raises(InputError, match="float16 on CPU"):
        choose_device("cpu", "float16")
    assert choose_device("cpu") == ("cpu", "float32")
    with pytest.raises(InputError, match="steps"):
        DiffusersGenerator(str(tiny.inpaint), str(tiny.depth), device="cpu", steps=0)
    with pytest.raises(InputError, match="refine_strength"):
        DiffusersGenerator(str(tiny.inpaint), str(tiny.depth), device="cpu", refine_strength=1.0)


def test_world_view_of_the_wrong_size(gen: DiffusersGenerator) -> None:
    world = _half_world()
    small = RenderOutput(world.rgb[:, :40], world.depth_m[:, :40], world.alpha[:, :40])
    with pytest.raises(InputError, match="do not match the keyframe camera 60x44"):
        gen.generate(_request(small))


# ------------------------------------------------------------------------------------- multi-view plug-in
def _plane_view(T_world_cam: np.ndarray, depth: float = 2.0) -> ContextView:
    yy, xx = np.mgrid[0 : K.height_px, 0 : K.width_px]
    rgb = np.stack([xx / (K.width_px - 1), yy / (K.height_px - 1), np.full(xx.shape, 0.5)], -1).astype(np.float32)
    return ContextView(rgb, T_world_cam, K, np.full((K.height_px, K.width_px), depth, np.float32))


def test_reprojection_example_moves_content_with_the_camera() -> None:
    ctx = _plane_view(np.eye(4))
    T = np.eye(4)
    # Move right by exactly 10 pixels' worth at 2 m: content shifts 10 px to the left.
    T[0, 3] = 10 * 2.0 / K.fx_px
    (view,) = ReprojectionExample().generate_views("p", [ctx], [ViewSpec(T, K)], seed=0)
    np.testing.assert_allclose(view.rgb[:, : K.width_px - 10], ctx.rgb[:, 10:], atol=1e-6)
    np.testing.assert_allclose(view.depth_m, 2.0, rtol=1e-5)  # holes take the median warped depth
    assert np.abs(view.rgb[:, -10:] - ctx.rgb[:, -10:]).mean() > 0.05  # the uncovered strip is filled


def test_camera_conditioned_adapter(gen: DiffusersGenerator) -> None:
    adapter = CameraConditionedAdapter(ReprojectionExample(), depth=gen.depth, max_context=2)
    first = adapter.generate(_request(None))
    assert first.rgb.shape == (44, 60, 3) and np.isfinite(first.depth_m).all()
    assert len(adapter.context_for("a red brick courtyard")) == 1
    # Second keyframe: the world is solid on the left; the rest comes from the model, conditioned on the first.
    world = _half_world()
    kf = adapter.generate(_request(world, seed=4))
    keep = ~hole_mask(world.alpha[0], adapter.mask_dilate_px)
    np.testing.assert_array_equal(kf.rgb[keep], world.rgb[0][keep])
    np.testing.assert_array_equal(kf.depth_m[keep], world.depth_m[0][keep])
    # Same pose as the context view: the example model reproduces it where the world is empty.
    np.testing.assert_allclose(kf.rgb[~keep], first.rgb[~keep], atol=1e-6)
    for _ in range(2):
        adapter.generate(_request(world))
    assert len(adapter.context_for("a red brick courtyard")) == 2  # bounded history
    assert json.loads(json.dumps(adapter.settings()))["model"]["model"] == "reprojection-example"


def test_adapter_needs_depth_when_the_model_has_none() -> None:
    class RgbOnly:
        name = "rgb-only"

        def generate_views(self, prompt, context, targets, seed):  # type: ignore[no-untyped-def]
            from srender_ros.backends.generators.diffusers_gen.multiview import GeneratedView

            return [GeneratedView(np.zeros((t.intrinsics.height_px, t.intrinsics.width_px, 3), np.float32)) for t in targets]

        def settings(self) -> dict[str, object]:
            return {}

    with pytest.raises(InputError, match="DepthEstimator"):
        CameraConditionedAdapter(RgbOnly()).generate(_request(None))


# ------------------------------------------------------------------------------------- end to end
def test_pipeline_renders_a_path_with_diffusion_keyframes(tmp_path: Path, gen: DiffusersGenerator) -> None:
    from srender_ros.backends.render.registry import get_renderer
    from srender_ros.core.store import WorldStore
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.engine.pipeline import Pipeline, PipelineConfig, RenderJob

    traj = make_trajectory("pan", fps=10.0, duration_s=1.0, sweep_deg=60.0)
    assert len(traj) == 10
    cam = Intrinsics.from_fov(64, 48, 60.0)
    store = WorldStore(tmp_path / "worlds")
    pipe = Pipeline(store, get_renderer("cpu"), gen, PipelineConfig(chunk_size=4, max_keyframes_per_request=3))
    run = pipe.run(RenderJob("a tiny diffusion world", traj, cam))
    chunks = list(run)

    assert np.concatenate([c.indices for c in chunks]).tolist() == list(range(10))
    for c in chunks:
        assert c.render.rgb.shape == (len(c.indices), 48, 64, 3)
        assert np.isfinite(c.render.rgb).all()
    assert run.stats.frames == 10 and 1 <= run.stats.keyframes <= 3
    assert run.schedule.keyframes[0].pose_index == 0 and run.stats.gaussians > 0
    # The first frame is the first keyframe seen through the world: solid, and close to the keyframe's
    # central crop (keyframes are generated with overscan around the same optical axis).
    first = chunks[0].render
    assert first.alpha[0].mean() > 0.95
    state = store.get("a tiny diffusion world")
    assert state is not None and state.generator_name == "diffusers"
    kf = state.keyframes[0]
    oy = (kf.intrinsics.height_px - 48) // 2
    ox = (kf.intrinsics.width_px - 64) // 2
    crop = kf.rgb[oy : oy + 48, ox : ox + 64]
    assert np.abs(first.rgb[0] - crop).mean() < 0.1
    # The world went to disk with the generator's settings.
    manifest = json.loads(next((tmp_path / "worlds").glob("w-*/manifest.json")).read_text())
    assert "diffusers" in json.dumps(manifest)
