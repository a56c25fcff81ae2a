"""The plug-in point for camera-conditioned (multi-view) keyframe generators.

SRENDER generates keyframes with a camera-conditioned video diffusion model: given a few context
views (images with their poses) and target poses, it draws the targets consistently. diffusers
has such models only as video world models (e.g. ``SanaWMPipeline``: image + prompt + per-frame
camera-to-world poses and intrinsics); research code has others (history-guided video diffusion,
Stable Virtual Camera). To add one, implement :class:`CameraConditionedGenerator` and wrap it in
:class:`CameraConditionedAdapter`; the result is an ordinary ``KeyframeGenerator`` the pipeline
uses without any change::

    class MyModel:
        name = "my-model"
        def generate_views(self, prompt, context, targets, seed):
            ...  # run the network: context[i].rgb / .T_world_cam / .intrinsics -> one view per target
            return [GeneratedView(rgb, depth_m_or_None) for _ in targets]
        def settings(self):
            return {"weights": "/models/my-model"}

    generator = CameraConditionedAdapter(MyModel(), depth=DepthEstimator(folder, choose_device()))

The adapter does the bookkeeping every such model needs: it keeps the recent keyframes of each
prompt as context, keeps the world's rendered pixels where the world is solid, and gives the
keyframe metric depth aligned to the world (from the model's own depth if it returns one, else from
a monocular depth model). :class:`ReprojectionExample` is a small, runnable example "model":
it forward-warps the context views into the target camera with their depth and fills what no
context view sees with a prompt-seeded texture. It is geometry, not learning, and it shows exactly
which inputs a real model gets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.generators.diffusers_gen.depth import (
    MIN_ALIGN_PIXELS,
    DepthEstimator,
    MetricPrior,
    align_depth,
    prior_depth,
)
from srender_ros.backends.generators.diffusers_gen.generator import EMPTY_WORLD_ALPHA, keyframe_seed, world_view_arrays
from srender_ros.backends.generators.diffusers_gen.images import center_crop_resize, hole_mask
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.generate import Keyframe, KeyframeGenerator, KeyframeRequest
from srender_ros.core.ports.render import DEPTH_MIN_ALPHA
from srender_ros.errors import InputError


class ViewSpec(NamedTuple):
    """A camera to draw: [4, 4] optical camera-to-world pose and its intrinsics."""

    T_world_cam: NDArray[np.float64]
    intrinsics: Intrinsics


class ContextView(NamedTuple):
    """A view the model conditions on.

    Attributes:
        rgb: [H, W, 3] float32 in [0, 1].
        T_world_cam: [4, 4] optical camera-to-world pose.
        intrinsics: its camera.
        depth_m: [H, W] float32 metric z-depth (NaN = unknown), or None.
    """

    rgb: NDArray[np.float32]
    T_world_cam: NDArray[np.float64]
    intrinsics: Intrinsics
    depth_m: NDArray[np.float32] | None = None


class GeneratedView(NamedTuple):
    """One drawn target: rgb [H, W, 3] float32 in [0, 1]; depth_m [H, W] metres or None if the model has none."""

    rgb: NDArray[np.float32]
    depth_m: NDArray[np.float32] | None = None


class CameraConditionedGenerator(Protocol):
    """A model that draws target views consistent with posed context views."""

    name: str

    def generate_views(
        self, prompt: str, context: Sequence[ContextView], targets: Sequence[ViewSpec], seed: int
    ) -> list[GeneratedView]:
        """Draw one view per target.

        Args:
            prompt: environment prompt.
            context: posed views to stay consistent with (may be empty for the first keyframe).
            targets: cameras to draw (same size as their intrinsics).
            seed: seed for any sampling, for reproducibility.
        Returns:
            len(targets) views; rgb [H, W, 3] at each target's intrinsics size.
        """
        ...

    def settings(self) -> dict[str, object]:
        """JSON-able description recorded in the world manifest."""
        ...


class CameraConditionedAdapter:
    """Turns a :class:`CameraConditionedGenerator` into a ``KeyframeGenerator``.

    Context for a keyframe = the last ``max_context`` keyframes this adapter made for the same
    prompt (in this process), or, for the first keyframe of a new world, the user's initial image
    at the keyframe pose. With neither, ``first_frame`` (any KeyframeGenerator, e.g. the diffusers
    one) makes the first keyframe if given; otherwise the model is called with no context.
    """

    def __init__(
        self,
        model: CameraConditionedGenerator,
        depth: DepthEstimator | None = None,
        first_frame: KeyframeGenerator | None = None,
        max_context: int = 4,
        mask_dilate_px: int = 3,
        seed: int = 0,
        depth_prior: MetricPrior | None = None,
    ) -> None:
        """Args: see the class docstring; ``depth`` is required when the model returns no depth."""
        if max_context < 1:
            raise InputError(f"max_context={max_context}: must be >= 1")
        self.model, self.depth, self.first_frame = model, depth, first_frame
        self.max_context, self.mask_dilate_px, self.seed = int(max_context), int(mask_dilate_px), int(seed)
        self.depth_prior = depth_prior if depth_prior is not None else MetricPrior()
        self.name = f"camera-conditioned:{model.name}"
        self._history: dict[str, list[ContextView]] = {}

    def context_for(self, prompt: str) -> list[ContextView]:
        """The context views the next keyframe of ``prompt`` will be conditioned on."""
        return list(self._history.get(prompt, [])[-self.max_context :])

    def generate(self, request: KeyframeRequest) -> Keyframe:
        """Make one keyframe at ``request.T_world_cam`` with the wrapped model."""
        intr = request.intrinsics
        W, H = intr.width_px, intr.height_px
        T = np.asarray(request.T_world_cam, dtype=np.float64)
        world = world_view_arrays(request.world_view, W, H) if request.world_view is not None else None
        empty = world is None or not float(np.nanmax(world[2], initial=0.0)) >= EMPTY_WORLD_ALPHA
        context = self.context_for(request.prompt)
        if empty and not context and request.initial_image is not None:
            rgb = center_crop_resize(request.initial_image, W, H)
            view = GeneratedView(rgb, None)
        elif empty and not context and self.first_frame is not None:
            kf = self.first_frame.generate(request)
            self._remember(request.prompt, ContextView(kf.rgb, T, intr, kf.depth_m))
            return kf
        else:
            seed = keyframe_seed(self.seed, request.seed)
            views = self.model.generate_views(request.prompt, context, [ViewSpec(T, intr)], seed)
            if len(views) != 1:
                raise InputError(f"{self.model.name}: returned {len(views)} views for 1 target")
            view = _checked(views[0], W, H, self.model.name)

        mask = np.ones((H, W), bool) if world is None else hole_mask(world[2], self.mask_dilate_px, DEPTH_MIN_ALPHA)
        rgb = view.rgb if world is None else np.where(mask[..., None], view.rgb, world[0]).astype(np.float32)
        depth_m = self._depth(rgb, view.depth_m, world, mask, request.seed)
        self._remember(request.prompt, ContextView(rgb, T, intr, depth_m))
        return Keyframe(rgb=rgb, depth_m=depth_m, T_world_cam=T, intrinsics=intr, pose_index=request.pose_index)

    def _remember(self, prompt: str, view: ContextView) -> None:
        hist = self._history.setdefault(prompt, [])
        hist.append(view)
        del hist[: -self.max_context]

    def _depth(self, rgb: NDArray[np.float32], model_depth: NDArray[np.float32] | None,
               world: tuple[NDArray[np.float32], ...] | None, mask: NDArray[np.bool_], seed: int) -> NDArray[np.float32]:
        """Metric depth: the model's or the depth estimator's, aligned to the world where it is solid."""
        if model_depth is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                pred = np.where(model_depth > 0, 1.0 / model_depth, np.nan)
            unknown = ~np.isfinite(pred)
        elif self.depth is not None:
            pred = self.depth.predict_inverse(rgb).astype(np.float64)
            unknown = np.zeros(pred.shape, bool)
        else:
            raise InputError(f"{self.model.name} returns no depth: give CameraConditionedAdapter a DepthEstimator")
        valid = np.zeros(pred.shape, bool)
        if world is not None:
            with np.errstate(invalid="ignore"):
                valid = (world[2] >= DEPTH_MIN_ALPHA) & np.isfinite(world[1]) & (world[1] > 0)
        if int(valid.sum()) >= MIN_ALIGN_PIXELS:
            depth_m = align_depth(pred, world[1] if world is not None else pred, valid, self.depth_prior, seed).depth_m
        elif model_depth is not None:  # the model's metres define the scale when nothing overlaps
            depth_m = np.clip(model_depth, self.depth_prior.min_depth_m, self.depth_prior.max_depth_m).astype(np.float32)
        else:
            depth_m = prior_depth(pred, self.depth_prior).depth_m
        depth_m = np.where(unknown, np.nan, depth_m)
        if world is not None:
            depth_m = np.where(~mask & valid, world[1], depth_m)
        return depth_m.astype(np.float32)

    def settings(self) -> dict[str, object]:
        """JSON-able description: the model's settings plus the adapter's."""
        return {
            "generator": self.name,
            "model": self.model.settings(),
            "depth_model_path": self.depth.model_path if self.depth is not None else None,
            "first_frame": self.first_frame.settings() if self.first_frame is not None else None,
            "max_context": self.max_context,
            "mask_dilate_px": self.mask_dilate_px,
            "seed": self.seed,
            "depth_prior": asdict(self.depth_prior),
        }


def _checked(view: GeneratedView, width_px: int, height_px: int, who: str) -> GeneratedView:
    rgb = np.asarray(view.rgb, dtype=np.float32)
    if rgb.shape != (height_px, width_px, 3):
        raise InputError(f"{who}: generated rgb has shape {rgb.shape}, expected {(height_px, width_px, 3)}")
    depth = None if view.depth_m is None else np.asarray(view.depth_m, dtype=np.float32)
    if depth is not None and depth.shape != (height_px, width_px):
        raise InputError(f"{who}: generated depth has shape {depth.shape}, expected {(height_px, width_px)}")
    return GeneratedView(np.clip(np.nan_to_num(rgb), 0.0, 1.0), depth)


class ReprojectionExample:
    """Example CameraConditionedGenerator: forward-warp posed RGB-D context into the target camera.

    Each context pixel with depth is lifted to 3D, moved into the target camera and drawn with a
    z-buffer (nearest point wins). Pixels no context view reaches get a prompt-seeded texture at
    the median warped depth (or ``fill_depth_m`` when nothing was warped). A real model replaces
    the body of :meth:`generate_views`; the inputs and outputs stay the same.
    """

    name = "reprojection-example"

    def __init__(self, fill_depth_m: float = 3.0) -> None:
        self.fill_depth_m = float(fill_depth_m)

    def generate_views(
        self, prompt: str, context: Sequence[ContextView], targets: Sequence[ViewSpec], seed: int
    ) -> list[GeneratedView]:
        """See :class:`CameraConditionedGenerator`."""
        return [self._one(prompt, context, t, seed) for t in targets]

    def _one(self, prompt: str, context: Sequence[ContextView], target: ViewSpec, seed: int) -> GeneratedView:
        intr = target.intrinsics
        W, H = intr.width_px, intr.height_px
        pts, cols = [], []
        for c in context:
            if c.depth_m is None:
                continue
            d = np.asarray(c.depth_m, dtype=np.float64)
            ok = np.isfinite(d) & (d > 0)
            X_cam = c.intrinsics.pixel_rays()[ok] * d[ok][:, None]
            pts.append(X_cam @ c.T_world_cam[:3, :3].T + c.T_world_cam[:3, 3])
            cols.append(np.asarray(c.rgb, dtype=np.float32)[ok])
        rgb = np.zeros((H, W, 3), np.float32)
        depth = np.full((H, W), np.nan, np.float32)
        if pts:
            T_cam_world = np.linalg.inv(target.T_world_cam)
            X = np.concatenate(pts) @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
            col = np.concatenate(cols)
            front = X[:, 2] > 1e-6
            X, col = X[front], col[front]
            u = np.floor(intr.fx_px * X[:, 0] / X[:, 2] + intr.cx_px).astype(np.int64)
            v = np.floor(intr.fy_px * X[:, 1] / X[:, 2] + intr.cy_px).astype(np.int64)
            inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
            flat, z, col = v[inside] * W + u[inside], X[inside, 2], col[inside]
            # z-buffer: sort by (pixel, depth) and keep the nearest point of each pixel.
            order = np.lexsort((z, flat))
            flat, z, col = flat[order], z[order], col[order]
            first = np.ones(flat.size, bool)
            first[1:] = flat[1:] != flat[:-1]
            rgb.reshape(-1, 3)[flat[first]] = col[first]
            depth.reshape(-1)[flat[first]] = z[first]
        hole = ~np.isfinite(depth)
        if hole.any():
            digest = hashlib.sha256(f"{prompt}\0{seed}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            base = rng.uniform(0.2, 0.8, size=3).astype(np.float32)
            noise = rng.normal(0.0, 0.05, size=(H, W, 1)).astype(np.float32)
            rgb[hole] = np.clip(base + noise, 0.0, 1.0)[hole]
            known = depth[~hole]
            depth[hole] = float(np.median(known)) if known.size else self.fill_depth_m
        return GeneratedView(rgb, depth)

    def settings(self) -> dict[str, object]:
        """JSON-able description."""
        return {"model": self.name, "fill_depth_m": self.fill_depth_m}
