"""Diffusion keyframes: render -> inpaint -> depth -> align, with models from local folders.

For a keyframe pose the pipeline hands us the world rendered there (``request.world_view``):

1. New world (no view, or nothing solid in it): the user's initial image (centre-cropped and
   resized to the camera), else text-to-image with the ``t2i_model_path`` pipeline, else the
   inpainting pipeline with everything masked. Depth: monocular depth with the metric prior.
2. Otherwise: mask = world alpha < 0.5, dilated ``mask_dilate_px``; inpaint the mask conditioned
   on the prompt; keep the rendered world pixels outside the mask exactly. Optionally a light
   refinement (img2img at ``refine_strength``) over the whole keyframe.
3. Depth: relative inverse depth from the depth model, aligned (robust scale + shift in inverse
   depth) to the world's rendered depth where the world is solid; where world pixels were kept,
   the world's own depth is used.

Diffusion runs at the smallest multiple of ``size_multiple`` (8: SD's latent is the image / 8) not
smaller than the camera resolution, and the result is resized back to the exact camera size.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.generators.diffusers_gen.depth import (
    DepthAlignment,
    DepthEstimator,
    MetricPrior,
    keyframe_depth,
)
from srender_ros.backends.generators.diffusers_gen.depth_warp import GridCorrection
from srender_ros.backends.generators.diffusers_gen.ground_scale import down_in_camera
from srender_ros.backends.generators.diffusers_gen.images import (
    center_crop_resize,
    generation_size,
    hole_mask,
    resize_mask_conservative,
    resize_rgb,
    to_uint8,
)
from srender_ros.backends.generators.diffusers_gen.loading import (
    DeviceDtype,
    PipelineTask,
    choose_device,
    is_out_of_memory,
    load_pipeline,
)
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.generate import Keyframe, KeyframeRequest
from srender_ros.core.ports.render import DEPTH_MIN_ALPHA, RenderOutput
from srender_ros.errors import InputError, SrenderError

#: A world view whose alpha never reaches this is treated as empty (a new world).
EMPTY_WORLD_ALPHA = 0.01


def keyframe_seed(generator_seed: int, request_seed: int) -> int:
    """Seed of one keyframe's torch.Generator from the generator's and the request's seeds."""
    state = np.random.SeedSequence([int(generator_seed) & 0xFFFFFFFF, int(request_seed) & 0xFFFFFFFFFFFFFFFF])
    return int(state.generate_state(1, np.uint64)[0] >> np.uint64(1))


def world_view_arrays(view: RenderOutput, width_px: int, height_px: int) -> tuple[NDArray[np.float32], ...]:
    """(rgb [H,W,3], depth_m [H,W], alpha [H,W]) of a one-view RenderOutput, shape-checked."""
    rgb, depth, alpha = (np.asarray(a, dtype=np.float32) for a in (view.rgb, view.depth_m, view.alpha))
    if rgb.ndim == 4:
        if rgb.shape[0] != 1:
            raise InputError(f"world_view must hold one view, got a batch of {rgb.shape[0]}")
        rgb, depth, alpha = rgb[0], depth[0], alpha[0]
    want = (height_px, width_px)
    if rgb.shape != (*want, 3) or depth.shape != want or alpha.shape != want:
        raise InputError(f"world_view shapes rgb {rgb.shape}, depth {depth.shape}, alpha {alpha.shape} do not match "
                         f"the keyframe camera {width_px}x{height_px}")
    return rgb, depth, alpha


def _supported(pipe: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Drop the optional arguments a pipeline's ``__call__`` does not take (e.g. Kandinsky has no
    ``strength``); pipelines that accept ``**kwargs`` get everything."""
    import inspect

    params = inspect.signature(type(pipe).__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


class DiffusersGenerator:
    """KeyframeGenerator backed by a diffusers inpainting pipeline and a transformers depth model."""

    name = "diffusers"

    def __init__(
        self,
        model_path: str | None = None,
        depth_model_path: str | None = None,
        t2i_model_path: str | None = None,
        device: str = "auto",
        steps: int = 20,
        guidance_scale: float = 7.5,
        refine_strength: float = 0.0,
        seed: int = 0,
        *,
        dtype: str = "auto",
        negative_prompt: str | None = None,
        mask_dilate_px: int = 3,
        size_multiple: int = 8,
        min_side_px: int = 0,
        depth_prior: MetricPrior | None = None,
        depth_warp: bool = True,
    ) -> None:
        """Load every model now (once per process), so a bad folder fails before any work starts.

        Args:
            model_path: inpainting pipeline folder or Hub id (anything AutoPipelineForInpainting loads);
                required (None -> InputError naming --model, so a registry may pass unset settings).
            depth_model_path: transformers depth-estimation model folder or Hub id; required likewise.
            t2i_model_path: optional text-to-image pipeline for the first keyframe of a new world.
            device: "auto" (CUDA if present, else CPU), "cpu", "cuda" or "cuda:N".
            steps: denoising steps per keyframe.
            guidance_scale: classifier-free guidance (> 1 doubles the UNet batch).
            refine_strength: 0 = off; in (0, 1) = img2img over the whole keyframe at this strength.
            seed: mixed with each request's seed into the keyframe's torch.Generator seed.
            dtype: "auto" (CUDA bf16/fp16, CPU fp32) or an explicit torch dtype name.
            negative_prompt: passed to the pipelines that take one.
            mask_dilate_px: growth of the hole mask, pixels.
            size_multiple: generation width/height are rounded up to this (8 for SD).
            min_side_px: run diffusion with the shorter side at least this large (0 = camera size).
            depth_prior: metric scale for keyframes with nothing to align to (default MetricPrior()).
            depth_warp: after the affine alignment to the world, also correct the depth's smooth
                residual warp on an 8x6 grid (depth_warp.py); False = affine only.
        Raises:
            ModelLoadError, BackendUnavailableError, InputError.
        """
        if not model_path:
            raise InputError("the diffusers generator needs an inpainting pipeline: --model DIR (see docs/diffusion.md)")
        if not depth_model_path:
            raise InputError("the diffusers generator needs a depth-estimation model: --depth-model DIR, e.g. a "
                             "Depth Anything V2 folder (see docs/diffusion.md)")
        if not (isinstance(steps, int) and steps >= 1):
            raise InputError(f"steps={steps!r}: must be an integer >= 1")
        if not (math.isfinite(guidance_scale) and guidance_scale >= 0):
            raise InputError(f"guidance_scale={guidance_scale}: must be finite and >= 0")
        if not 0.0 <= refine_strength < 1.0:
            raise InputError(f"refine_strength={refine_strength}: must be in [0, 1) (0 turns refinement off)")
        if mask_dilate_px < 0 or min_side_px < 0:
            raise InputError("mask_dilate_px and min_side_px must be >= 0")
        self.where: DeviceDtype = choose_device(device, dtype)
        self.steps, self.guidance_scale, self.refine_strength = steps, float(guidance_scale), float(refine_strength)
        self.seed, self.negative_prompt, self.mask_dilate_px = int(seed), negative_prompt, int(mask_dilate_px)
        self.size_multiple, self.min_side_px = int(size_multiple), int(min_side_px)
        self.depth_prior = depth_prior if depth_prior is not None else MetricPrior()
        self.depth_warp: GridCorrection | None = GridCorrection() if depth_warp else None
        self.model_path, self.depth_model_path, self.t2i_model_path = str(model_path), str(depth_model_path), t2i_model_path
        self.inpaint_pipe: Any = load_pipeline(model_path, PipelineTask.INPAINT, self.where)
        self.t2i_pipe: Any = (load_pipeline(t2i_model_path, PipelineTask.TEXT2IMAGE, self.where)
                              if t2i_model_path is not None else None)
        self.depth = DepthEstimator(str(depth_model_path), self.where)
        self._img2img: Any = self._make_img2img() if self.refine_strength > 0 else None

    def _make_img2img(self) -> Any:
        """An img2img pipeline sharing the loaded components, or None to refine with the inpainter.

        A 9-channel inpainting UNet cannot run img2img; then the refinement is the inpainting
        pipeline itself with everything masked at low strength (it starts from the noised keyframe).
        """
        from diffusers import AutoPipelineForImage2Image

        source = self.t2i_pipe if self.t2i_pipe is not None else self.inpaint_pipe
        unet = getattr(source, "unet", None)
        if unet is not None and int(unet.config.in_channels) != 4:
            return None
        try:
            pipe = AutoPipelineForImage2Image.from_pipe(source)
        except Exception:  # a pipeline family without an img2img variant: refine with the inpainter
            return None
        pipe.set_progress_bar_config(disable=True)
        return pipe

    # ---------------------------------------------------------------- diffusion calls
    def _call(self, pipe: Any, what: str, seed: int, **kwargs: Any) -> NDArray[np.float32]:
        """Run one pipeline call and return [H, W, 3] float32; OOM -> SrenderError."""
        import torch

        gen = torch.Generator(device="cpu").manual_seed(seed)
        if self.negative_prompt is not None:
            kwargs["negative_prompt"] = self.negative_prompt
        kwargs = {"num_inference_steps": self.steps, **kwargs, "guidance_scale": self.guidance_scale,
                  "generator": gen, "output_type": "np"}
        try:
            out = pipe(**_supported(pipe, kwargs))
        except SrenderError:
            raise
        except Exception as e:
            if is_out_of_memory(e):
                raise SrenderError(f"out of memory during {what} on {self.where.device} ({self.where.dtype}) at "
                                   f"{kwargs.get('width')}x{kwargs.get('height')}: lower the camera resolution or "
                                   "steps, or use --device cpu") from e
            # Re-raised as ours so front ends report it and carry on; nothing was merged into the world yet.
            raise SrenderError(f"{what} with {type(pipe).__name__} from {self.model_path!r} failed: "
                               f"{type(e).__name__}: {e}") from e
        images = np.asarray(out.images, dtype=np.float32)
        return np.clip(images[0], 0.0, 1.0)

    def _inpaint(self, prompt: str, rgb: NDArray[np.float32], mask: NDArray[np.bool_], seed: int,
                 strength: float = 1.0, num_inference_steps: int | None = None) -> NDArray[np.float32]:
        from PIL import Image

        h, w = mask.shape
        return self._call(self.inpaint_pipe, "inpainting", seed, prompt=prompt, image=Image.fromarray(to_uint8(rgb)),
                          mask_image=Image.fromarray(mask.astype(np.uint8) * 255), height=h, width=w, strength=strength,
                          num_inference_steps=num_inference_steps or self.steps)

    def _first_image(self, request: KeyframeRequest, gw: int, gh: int, seed: int) -> NDArray[np.float32]:
        """The first keyframe of a new world, at the generation size."""
        if self.t2i_pipe is not None:
            return self._call(self.t2i_pipe, "text-to-image", seed, prompt=request.prompt, height=gh, width=gw)
        # Mid-grey under a full mask: the inpainter sees no content and draws from the prompt alone.
        grey = np.full((gh, gw, 3), 0.5, np.float32)
        return self._inpaint(request.prompt, grey, np.ones((gh, gw), bool), seed)

    def _refine(self, prompt: str, rgb: NDArray[np.float32], seed: int) -> NDArray[np.float32]:
        """Low-strength img2img over the whole keyframe (at least one denoising step runs)."""
        from PIL import Image

        steps = max(self.steps, math.ceil(1.0 / self.refine_strength))
        h, w = rgb.shape[:2]
        if self._img2img is not None:
            return self._call(self._img2img, "refinement", seed + 1, prompt=prompt, image=Image.fromarray(to_uint8(rgb)),
                              strength=self.refine_strength, num_inference_steps=steps)
        return self._inpaint(prompt, rgb, np.ones((h, w), bool), seed + 1, strength=self.refine_strength,
                             num_inference_steps=steps)

    # ---------------------------------------------------------------- protocol
    def generate(self, request: KeyframeRequest) -> Keyframe:
        """Make one RGB-D keyframe at ``request.T_world_cam`` (see the module docstring).

        Returns:
            Keyframe with rgb [H, W, 3] float32 in [0, 1] and depth_m [H, W] float32 metres, at
            the request's exact camera size.
        """
        intr = request.intrinsics
        W, H = intr.width_px, intr.height_px
        gw, gh = generation_size(W, H, self.size_multiple, self.min_side_px)
        seed = keyframe_seed(self.seed, request.seed)
        world = world_view_arrays(request.world_view, W, H) if request.world_view is not None else None
        empty = world is None or not float(np.nanmax(world[2], initial=0.0)) >= EMPTY_WORLD_ALPHA

        if empty:
            if request.initial_image is not None:
                rgb = center_crop_resize(request.initial_image, W, H)
            else:
                rgb = resize_rgb(self._first_image(request, gw, gh, seed), W, H)
            mask = np.ones((H, W), bool)
        else:
            assert world is not None
            world_rgb, _, world_alpha = world
            mask = hole_mask(world_alpha, self.mask_dilate_px, DEPTH_MIN_ALPHA)
            if mask.any():
                generated = self._inpaint(request.prompt, resize_rgb(world_rgb, gw, gh),
                                          resize_mask_conservative(mask, gw, gh), seed)
                # Keep the world's own pixels exactly where it is solid: the keyframe must agree with it.
                rgb = np.where(mask[..., None], resize_rgb(generated, W, H), world_rgb)
            else:
                rgb = world_rgb.copy()
        if self.refine_strength > 0 and not (empty and request.initial_image is not None):
            rgb = resize_rgb(self._refine(request.prompt, resize_rgb(rgb, gw, gh), seed), W, H)
        rgb = np.clip(rgb, 0.0, 1.0).astype(np.float32)
        depth_m = self._depth(rgb, world, mask, seed, intr, request.camera_height_m,
                              down_in_camera(request.T_world_cam)).depth_m
        return Keyframe(rgb=rgb, depth_m=depth_m, T_world_cam=np.asarray(request.T_world_cam, dtype=np.float64),
                        intrinsics=intr, pose_index=request.pose_index)

    def _depth(self, rgb: NDArray[np.float32], world: tuple[NDArray[np.float32], ...] | None,
               mask: NDArray[np.bool_], seed: int, intrinsics: Intrinsics | None = None,
               camera_height_m: float | None = None, down_cam: NDArray[np.float64] | None = None) -> DepthAlignment:
        """Monocular depth aligned to the world where it is solid (plus the smooth warp correction);
        the world's depth where kept; a new world's scale from the ground plane at ``camera_height_m``."""
        inv = self.depth.predict_inverse(rgb)
        world_depth, world_alpha = (world[1], world[2]) if world is not None else (None, None)
        return keyframe_depth(inv, world_depth, world_alpha, mask, self.depth_prior, seed, self.depth.is_metric,
                              DEPTH_MIN_ALPHA, warp=self.depth_warp, intrinsics=intrinsics,
                              camera_height_m=camera_height_m, down_cam=down_cam)

    def settings(self) -> dict[str, object]:
        """JSON-able description recorded in the world manifest."""
        return {
            "generator": self.name,
            "model_path": self.model_path,
            "depth_model_path": self.depth_model_path,
            "t2i_model_path": self.t2i_model_path,
            "pipeline_class": type(self.inpaint_pipe).__name__,
            "t2i_pipeline_class": type(self.t2i_pipe).__name__ if self.t2i_pipe is not None else None,
            "depth_model_class": type(self.depth._depth.model).__name__,
            "device": self.where.device,
            "dtype": self.where.dtype,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "refine_strength": self.refine_strength,
            "seed": self.seed,
            "negative_prompt": self.negative_prompt,
            "mask_dilate_px": self.mask_dilate_px,
            "size_multiple": self.size_multiple,
            "min_side_px": self.min_side_px,
            "depth_prior": asdict(self.depth_prior),
            "depth_warp": asdict(self.depth_warp) if self.depth_warp is not None else None,
        }
