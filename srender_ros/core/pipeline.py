"""The pipeline for one request: world -> schedule -> generate -> lift -> render, chunk by chunk.

It only coordinates: the world store keeps worlds, the generator makes keyframes, lifting turns
them into Gaussians, the renderer draws. Chunks are yielded in pose order as soon as they are
rendered, so the first frames of a long trajectory are out long before the plan reaches its end.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.holes import fill_holes
from srender_ros.core.lifting import LiftConfig, correct_colours, lift_keyframe_pixels
from srender_ros.core.metrics import hole_fraction
from srender_ros.core.resolution import coarse_visible_gaussians, pixel_footprint_px, size_world
from srender_ros.core.scheduler import (
    KeyframeDecision,
    KeyframeRule,
    Schedule,
    SchedulerKind,
    uncovered_fraction,
    uniform_indices,
)
from srender_ros.core.trajectory import Trajectory
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError
from srender_ros.generators.protocol import KeyframeGenerator, KeyframeRequest
from srender_ros.render.protocol import Renderer, RenderOutput

if TYPE_CHECKING:
    from srender_ros.core.refine import RefineConfig
    from srender_ros.core.store import WorldState, WorldStore

__all__ = [
    "FrameChunk",
    "KeyframeDecision",
    "Pipeline",
    "PipelineConfig",
    "PipelineRun",
    "RenderJob",
    "RunStats",
    "Schedule",
    "SchedulerKind",
]

log = logging.getLogger(__name__)

#: (trajectory, camera, first view [H, W, 3] or None) -> predicted keyframe count, for the learned scheduler.
CountPredictor = Callable[[Trajectory, Intrinsics, "NDArray[np.floating] | None"], int]


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of the pipeline (one-to-one with the CLI flags and node parameters of the same names).

    Attributes:
        scheduler: coverage | uniform | learned.
        coverage_threshold: tau; a pose whose uncovered fraction exceeds it becomes a keyframe.
        uniform_keyframes: keyframe count of the uniform scheduler.
        coverage_scale: resolution of coverage renders relative to the camera.
        coverage_alpha: a low-resolution coverage pixel counts as covered from this alpha up.
            Keep it at the lifting's ``empty_alpha``: where coverage demands more than lifting
            fills, a keyframe cannot cover its own view and the rule would fire again and again.
        chunk_size: poses rendered per chunk.
        max_keyframes_per_request: hard cap on generation for one request.
        keyframe_overscan: keyframes are generated with this much wider image (same focal length),
            so content just outside the view is already in the world when the camera turns.
        keyframe_lookahead: when pose i triggers the coverage rule, the keyframe is made at the
            farthest pose j in [i, i + keyframe_lookahead] of the same chunk whose uncovered
            fraction is still below ``lookahead_max_uncovered``: the camera is moving into new
            territory, and a view further along covers pose i's missing part and the poses on the
            way, so fewer keyframes cover the same path. 0 = the paper's rule (keyframe at i).
        lookahead_max_uncovered: how far ahead a keyframe may be placed, as the uncovered fraction
            of its view in the current world.
        max_footprint_px: a covered pixel also needs detail: where the world's Gaussians appear
            larger than this (pixels of the camera's own resolution; lifting makes them about 0.5),
            the pixel counts as uncovered, and the keyframe made there replaces the coarse
            Gaussians it sees with its own (core/resolution.py). It is what makes a camera that
            walks up to a wall it first saw from afar get a new, closer keyframe. None = alpha only.
        fill_holes: composite frames over the world's own surrounding colour instead of black
            (core/holes.py): partly covered pixels (silhouettes, borders, small disocclusions) are
            not darkened. Depth and alpha are untouched, so holes still show in depth and metrics.
        coarse_weight: what a too-coarse pixel counts for in the uncovered fraction, relative to an
            empty one (a blur is less glaring than a hole: at 0.1, tau = 0.02 asks for a keyframe
            when 20 % of the view is coarse, or 2 % is empty, or a mix).
        seed: base seed; keyframe seeds derive from it, the world id and the keyframe count.
        lift: how keyframes become Gaussians.
        refine: photometric refinement of the world against its keyframes after every chunk that
            added keyframes (None = off; see docs/refine.md for what it costs and gains).
    """

    scheduler: SchedulerKind = SchedulerKind.COVERAGE
    coverage_threshold: float = 0.02
    uniform_keyframes: int = 8
    coverage_scale: float = 0.5
    coverage_alpha: float = 0.5
    chunk_size: int = 30
    max_keyframes_per_request: int = 64
    keyframe_overscan: float = 1.25
    keyframe_lookahead: int = 8
    lookahead_max_uncovered: float = 0.1
    max_footprint_px: float | None = 2.0
    coarse_weight: float = 0.1
    fill_holes: bool = True
    seed: int = 0
    lift: LiftConfig = field(default_factory=LiftConfig)
    refine: RefineConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheduler", SchedulerKind(self.scheduler))
        if not 0.0 <= self.coverage_threshold < 1.0:
            raise InputError(f"coverage_threshold={self.coverage_threshold}: must be in [0, 1)")
        if self.uniform_keyframes < 1:
            raise InputError(f"uniform_keyframes={self.uniform_keyframes}: must be >= 1")
        if not 0.01 <= self.coverage_scale <= 1.0:
            raise InputError(f"coverage_scale={self.coverage_scale}: must be in [0.01, 1]")
        if not 0.0 < self.coverage_alpha < 1.0:
            raise InputError(f"coverage_alpha={self.coverage_alpha}: must be in (0, 1)")
        if self.chunk_size < 1:
            raise InputError(f"chunk_size={self.chunk_size}: must be >= 1")
        if self.max_keyframes_per_request < 0:
            raise InputError("max_keyframes_per_request must be >= 0")
        if self.keyframe_lookahead < 0:
            raise InputError(f"keyframe_lookahead={self.keyframe_lookahead}: must be >= 0")
        if not 0.0 <= self.lookahead_max_uncovered < 1.0:
            raise InputError(f"lookahead_max_uncovered={self.lookahead_max_uncovered}: must be in [0, 1)")
        if self.max_footprint_px is not None and not self.max_footprint_px > 0.0:
            raise InputError(f"max_footprint_px={self.max_footprint_px}: must be > 0 (or None to ignore detail)")
        if not 0.0 <= self.coarse_weight <= 1.0:
            raise InputError(f"coarse_weight={self.coarse_weight}: must be in [0, 1]")
        if not 1.0 <= self.keyframe_overscan <= 2.0:
            raise InputError(f"keyframe_overscan={self.keyframe_overscan}: must be in [1, 2]")


@dataclass(frozen=True)
class RenderJob:
    """One request: render every pose of ``trajectory`` in the world of ``prompt``.

    Attributes:
        prompt: environment prompt (one world per normalized prompt).
        trajectory: optical-frame camera poses.
        intrinsics: the camera.
        initial_image: [H, W, 3] float32 in [0, 1], used as the first keyframe of a NEW world.
        request_id: echoed in logs and schedules.
    """

    prompt: str
    trajectory: Trajectory
    intrinsics: Intrinsics
    initial_image: NDArray[np.float32] | None = None
    request_id: str = ""

    def __post_init__(self) -> None:
        if not self.prompt or not self.prompt.strip():
            raise InputError("environment prompt is empty: name the environment, e.g. 'a cluttered warehouse aisle'")
        if self.initial_image is not None:
            img = np.asarray(self.initial_image)
            if img.ndim != 3 or img.shape[2] != 3:
                raise InputError(f"initial image: expected [H, W, 3], got {list(img.shape)}")


class FrameChunk(NamedTuple):
    """Consecutive rendered frames.

    Attributes:
        indices: [b] int64 pose indices (ascending; chunks arrive in pose order).
        stamps_ns: [b] int64 the poses' stamps.
        T_world_cam: [b, 4, 4] optical poses.
        render: rgb [b, H, W, 3], depth_m [b, H, W], alpha [b, H, W].
    """

    indices: NDArray[np.int64]
    stamps_ns: NDArray[np.int64]
    T_world_cam: NDArray[np.float64]
    render: RenderOutput


@dataclass
class RunStats:
    """What one request cost (seconds per stage) and produced."""

    seconds: dict[str, float] = field(
        default_factory=lambda: {"schedule": 0.0, "generate": 0.0, "lift": 0.0, "refine": 0.0, "render": 0.0,
                                 "total": 0.0})
    frames: int = 0
    keyframes: int = 0
    gaussians: int = 0
    gaussians_added: int = 0
    hole_fractions: list[float] = field(default_factory=list)

    @property
    def hole_fraction_mean(self) -> float:
        return float(np.mean(self.hole_fractions)) if self.hole_fractions else 0.0

    @property
    def render_fps(self) -> float:
        return self.frames / self.seconds["render"] if self.seconds["render"] > 0 else 0.0


def overscan_intrinsics(intrinsics: Intrinsics, factor: float) -> Intrinsics:
    """A wider image around the same optical axis and focal length (``factor`` x the size)."""
    if factor <= 1.0:
        return intrinsics
    w = int(round(intrinsics.width_px * factor))
    h = int(round(intrinsics.height_px * factor))
    return Intrinsics(w, h, intrinsics.fx_px, intrinsics.fy_px,
                      intrinsics.cx_px + (w - intrinsics.width_px) / 2.0,
                      intrinsics.cy_px + (h - intrinsics.height_px) / 2.0)


class Pipeline:
    """Coordinates store, scheduler, generator, lifting and renderer for requests.

    Args:
        store: where worlds live (one per prompt).
        renderer: draws worlds (cpu or gsplat).
        generator: makes keyframes (procedural or diffusers).
        config: pipeline settings.
        count_predictor: keyframe-count model for ``scheduler=learned`` (loaded lazily from the
            shipped weights when None).
    """

    def __init__(self, store: WorldStore, renderer: Renderer, generator: KeyframeGenerator,
                 config: PipelineConfig | None = None, count_predictor: CountPredictor | None = None) -> None:
        self.store = store
        self.renderer = renderer
        self.generator = generator
        self.config = config or PipelineConfig()
        self._count_predictor = count_predictor
        self._size_cache: tuple[GaussianWorld, GaussianWorld] | None = None

    # ---- requests ---------------------------------------------------------------------------
    def run(self, job: RenderJob) -> PipelineRun:
        """A lazy run of ``job``: iterate it to get FrameChunks in pose order."""
        return PipelineRun(self, job)

    def coverage_of(self, prompt: str, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]) -> NDArray[np.float64]:
        """[B] covered fraction of each pose's view in the current world (no generation).

        Args:
            T_world_cam: [B, 4, 4] optical poses.
        """
        state = self.store.get_or_create(prompt, self.generator.settings())
        T = np.asarray(T_world_cam, dtype=np.float64).reshape(-1, 4, 4)
        return 1.0 - self._uncovered(state.world, intrinsics.scaled(self.config.coverage_scale), T)

    def view(self, prompt: str, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating],
             generate_if_uncovered: bool = True) -> RenderOutput:
        """Render one view now; optionally make a keyframe first when the view is not covered.

        Args:
            T_world_cam: [4, 4] optical pose.
        Returns:
            RenderOutput with B = 1.
        """
        T = np.asarray(T_world_cam, dtype=np.float64).reshape(1, 4, 4)
        if not np.isfinite(T).all():
            raise InputError("camera pose has NaN or infinite values")
        if not generate_if_uncovered:
            # Only look: an environment that is merely viewed must not leave an empty world behind.
            known = self.store.get(prompt)
            return self.render_frames(known.world if known is not None else GaussianWorld.empty(), intrinsics, T)
        state = self.store.get_or_create(prompt, self.generator.settings())
        if generate_if_uncovered:
            with state.lock:
                cov_K = intrinsics.scaled(self.config.coverage_scale)
                unc = float(self._uncovered(state.world, cov_K, T)[0])
                if len(state.world) == 0 or unc > self.config.coverage_threshold:
                    self._make_keyframe(state, -1, T[0], intrinsics, None, f"online view uncovered {unc:.3f}", RunStats())
                    self.store.save(state)
        return self.render_frames(state.world, intrinsics, T)

    def render_frames(self, world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]) -> RenderOutput:
        """The frames of ``world`` as the pipeline delivers them (holes filled when configured).

        Args:
            T_world_cam: [B, 4, 4] optical poses.
        Returns:
            RenderOutput: rgb [B, H, W, 3], depth_m and alpha [B, H, W] as rendered.
        """
        out = self.renderer.render(world, intrinsics, T_world_cam)
        if not self.config.fill_holes or len(world) == 0:
            return out
        return RenderOutput(fill_holes(out.rgb, out.alpha), out.depth_m, out.alpha)

    # ---- steps (used by PipelineRun) ----------------------------------------------------------
    def _uncovered(self, world: object, intrinsics: Intrinsics, T: NDArray[np.float64]) -> NDArray[np.float64]:
        """[B] uncovered fraction of each pose: empty pixels, and (weighted) pixels whose content is too coarse.

        Args:
            intrinsics: the coverage camera (``coverage_scale`` times the request camera).
            T: [B, 4, 4] optical poses.
        """
        empty, coarse = self._coverage_parts(world, intrinsics, T)
        return empty + self.config.coarse_weight * coarse

    def _coverage_parts(self, world: object, intrinsics: Intrinsics,
                        T: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """([B] empty fraction, [B] coarse fraction) of each pose's coverage render."""
        assert isinstance(world, GaussianWorld)
        B = len(T)
        if len(world) == 0 or B == 0:
            return np.ones(B, dtype=np.float64), np.zeros(B, dtype=np.float64)
        cfg = self.config
        if cfg.max_footprint_px is None:
            alpha = self.renderer.coverage(world, intrinsics, T)
            return uncovered_fraction(alpha, cfg.coverage_alpha), np.zeros(B, dtype=np.float64)
        # Footprints in pixels of the request camera, not of the low-resolution coverage render.
        out, too_coarse = self._coarse_pixels(world, intrinsics, T, 1.0 / cfg.coverage_scale)
        empty = out.alpha < cfg.coverage_alpha
        coarse = ~empty & too_coarse
        return uncovered_fraction(out.alpha, cfg.coverage_alpha), coarse.reshape(B, -1).mean(axis=1).astype(np.float64)

    def _coarse_pixels(self, world: GaussianWorld, intrinsics: Intrinsics, T: NDArray[np.float64],
                       focal_scale: float = 1.0) -> tuple[RenderOutput, NDArray[np.bool_]]:
        """Render ``world``'s Gaussian sizes; pixels whose footprint exceeds ``max_footprint_px``.

        Args:
            T: [B, 4, 4] optical poses.
            focal_scale: footprints are measured at ``focal_scale`` times the render's focal length
                (the request camera's, for a reduced-resolution coverage render).
        Returns:
            (the size render: alpha and depth_m [B, H, W] are the world's; [B, H, W] coarse mask).
        """
        assert self.config.max_footprint_px is not None
        out = self.renderer.render(self._size_world(world), intrinsics, T)
        focal_px = float(np.sqrt(intrinsics.fx_px * intrinsics.fy_px)) * focal_scale
        fp = pixel_footprint_px(out.rgb, out.alpha, out.depth_m, focal_px)
        with np.errstate(invalid="ignore"):
            return out, fp > self.config.max_footprint_px

    def _size_world(self, world: GaussianWorld) -> GaussianWorld:
        """``resolution.size_world(world)``, cached for the latest world (coverage asks for it per chunk)."""
        cached = self._size_cache
        if cached is None or cached[0] is not world:
            cached = (world, size_world(world))
            self._size_cache = cached
        return cached[1]

    def _seed(self, state: WorldState) -> int:
        digest = hashlib.sha256(f"{state.world_id}:{len(state.keyframes)}:{self.config.seed}".encode()).hexdigest()
        return int(digest[:8], 16)

    def _make_keyframe(self, state: WorldState, pose_index: int, T: NDArray[np.float64], intrinsics: Intrinsics,
                       initial_image: NDArray[np.float32] | None, reason: str, stats: RunStats) -> None:
        """Generate a keyframe at pose ``T``, lift it and merge it into ``state`` (caller holds state.lock)."""
        from srender_ros.core.store import KeyframeRecord

        # A user image defines the first view exactly: no overscan for it.
        use_image = initial_image is not None and len(state.world) == 0
        K = intrinsics if use_image else overscan_intrinsics(intrinsics, self.config.keyframe_overscan)
        t0 = time.perf_counter()
        view = self.renderer.render(state.world, K, T[None]) if len(state.world) else None
        t1 = time.perf_counter()
        request = KeyframeRequest(
            prompt=state.prompt, T_world_cam=T, intrinsics=K,
            world_view=RenderOutput(view.rgb[0], view.depth_m[0], view.alpha[0]) if view is not None else None,
            initial_image=initial_image if use_image else None, seed=self._seed(state), pose_index=pose_index)
        kf = self.generator.generate(request)
        t2 = time.perf_counter()
        lift = self.config.lift
        base = state.world
        lift_alpha = None if view is None else view.alpha[0]
        if view is not None and self.config.max_footprint_px is not None:
            # Content this keyframe sees much finer than the world has it: drop the coarse
            # Gaussians, and lift the keyframe's own pixels wherever the rest is still coarse.
            coarse = coarse_visible_gaussians(base, K, T, kf.depth_m, self.config.max_footprint_px,
                                              lift.occlusion_margin)
            if coarse.any():
                base = base.select(~coarse)
                log.debug("keyframe at pose %d replaces %d coarse Gaussians", pose_index, int(coarse.sum()))
            if len(base):
                sized, too_coarse = self._coarse_pixels(base, K, T[None])
                view = RenderOutput(view.rgb, sized.depth_m, sized.alpha)
                lift_alpha = np.where(too_coarse[0], 0.0, sized.alpha[0])
            else:
                view, lift_alpha = None, None
        new, pixels = lift_keyframe_pixels(kf.rgb, kf.depth_m, K, T, lift_alpha,
                                           None if view is None else view.depth_m[0],
                                           lift, sh_degree=state.world.sh_degree)
        merged = correct_colours(base.concat(new), len(new), pixels, kf.rgb,
                                 lambda w: self.renderer.render(w, K, T[None]).rgb[0],
                                 lift.colour_iterations, lift.colour_step)
        state.replace_world(merged)
        state.add_keyframe(KeyframeRecord(pose_index=pose_index, T_world_cam=T.copy(), intrinsics=K,
                                          rgb=kf.rgb, depth_m=kf.depth_m, reason=reason))
        t3 = time.perf_counter()
        stats.seconds["lift"] += (t1 - t0) + (t3 - t2)
        stats.seconds["generate"] += t2 - t1
        stats.keyframes += 1
        stats.gaussians_added += len(new)
        log.info("keyframe at pose %d (%s): +%d Gaussians, world %d", pose_index, reason, len(new), len(state.world))

    def _predict_count(self, trajectory: Trajectory, intrinsics: Intrinsics,
                       first_view: NDArray[np.floating] | None = None) -> int:
        if self._count_predictor is None:
            from srender_ros.learned.predictor import load_default_predictor

            self._count_predictor = load_default_predictor()
        return int(self._count_predictor(trajectory, intrinsics, first_view))


def _camera_view(rgb: NDArray[np.floating], keyframe_K: Intrinsics, camera: Intrinsics) -> NDArray[np.floating]:
    """The camera's own view inside a (possibly overscanned, same focal length) keyframe image.

    Args:
        rgb: [H', W', 3] keyframe image taken with ``keyframe_K``.
    Returns:
        [H, W, 3] float32, the crop the camera ``camera`` sees; a fractional offset (an odd
        overscan margin) is interpolated linearly. The whole image if the view does not fit.
    """
    img = np.asarray(rgb, dtype=np.float32)
    dx, dy = keyframe_K.cx_px - camera.cx_px, keyframe_K.cy_px - camera.cy_px
    H, W = camera.height_px, camera.width_px
    x0, y0 = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - x0, dy - y0
    if x0 < 0 or y0 < 0 or y0 + H + (fy > 0) > img.shape[0] or x0 + W + (fx > 0) > img.shape[1]:
        return img
    rows = (1 - fy) * img[y0:y0 + H] + (fy * img[y0 + 1:y0 + H + 1] if fy > 0 else 0.0)
    return np.asarray((1 - fx) * rows[:, x0:x0 + W] + (fx * rows[:, x0 + 1:x0 + W + 1] if fx > 0 else 0.0),
                      dtype=np.float32)


class PipelineRun:
    """One request in progress. Iterate to drive it; ``schedule`` and ``stats`` grow meanwhile."""

    def __init__(self, pipeline: Pipeline, job: RenderJob) -> None:
        self.pipeline = pipeline
        self.job = job
        n = len(job.trajectory)
        cfg = pipeline.config
        self.schedule = Schedule(scheduler=cfg.scheduler, coverage=np.full(n, np.nan, np.float32),
                                 coverage_threshold=cfg.coverage_threshold)
        self.stats = RunStats()
        self.world_id = ""
        self._started = False

    def __iter__(self) -> Iterator[FrameChunk]:
        if self._started:
            raise InputError("a PipelineRun can be iterated only once; call Pipeline.run again")
        self._started = True
        return self._chunks()

    def _chunks(self) -> Iterator[FrameChunk]:
        p, job, cfg, stats = self.pipeline, self.job, self.pipeline.config, self.stats
        t_start = time.perf_counter()
        state = p.store.get_or_create(job.prompt, p.generator.settings())
        self.world_id = state.world_id
        traj = job.trajectory
        T_all = traj.T_world_cam
        n = len(traj)
        cov_K = job.intrinsics.scaled(cfg.coverage_scale)

        planned: list[int] = []
        if cfg.scheduler is SchedulerKind.UNIFORM:
            planned = uniform_indices(n, cfg.uniform_keyframes)
        made_first = False
        if cfg.scheduler is SchedulerKind.LEARNED and len(state.world) == 0 and cfg.max_keyframes_per_request > 0:
            # A new world needs a keyframe at the first pose anyway: make it first, so that the
            # predictor sees the world's look (its count error on held-out paths: 83 % within
            # 1.5x of the oracle with the first view, 72 % without; docs/learned.md).
            first_reason = "new world: nothing to render from yet"
            with state.lock:
                p._make_keyframe(state, 0, T_all[0], job.intrinsics, job.initial_image, first_reason, stats)
                first = state.keyframes[-1]
            self.schedule.keyframes.append(KeyframeDecision(0, first_reason, 1.0))
            made_first = True
            t0 = time.perf_counter()
            count = p._predict_count(traj, job.intrinsics, _camera_view(first.rgb, first.intrinsics, job.intrinsics))
            self.schedule.predicted_count = count
            planned = [i for i in uniform_indices(n, max(1, count)) if i != 0]
            stats.seconds["schedule"] += time.perf_counter() - t0
        rule = KeyframeRule(cfg.scheduler, n, cfg.coverage_threshold, planned, cfg.max_keyframes_per_request)
        rule.made = int(made_first)
        residual = 0.0  # uncovered fraction left at the pose of the latest keyframe

        for s in range(0, n, cfg.chunk_size):
            e = min(n, s + cfg.chunk_size)
            keyframes_before_chunk = stats.keyframes - (int(made_first) if s == 0 else 0)
            with state.lock:
                t0 = time.perf_counter()
                empty, coarse = p._coverage_parts(state.world, cov_K, T_all[s:e])
                unc = empty + cfg.coarse_weight * coarse
                stats.seconds["schedule"] += time.perf_counter() - t0
                for i in range(s, e):
                    u = float(unc[i - s])
                    self.schedule.coverage[i] = 1.0 - u
                    world_empty = len(state.world) == 0
                    # What the last keyframe could not cover (semi-transparent edges, sky) is no
                    # reason for another one: only new territory beyond that residual counts.
                    if not world_empty and u <= residual + cfg.coverage_threshold and i not in rule.planned:
                        continue
                    reason = rule.decide(i, u, world_empty)
                    if reason is None:
                        continue
                    if reason.startswith("uncovered") and cfg.max_footprint_px is not None:
                        reason += f" (empty {empty[i - s]:.3f}, coarse {coarse[i - s]:.3f})"
                    k = i
                    if not world_empty and i not in rule.planned:
                        k = self._lookahead(i, e, unc[i - s:])
                        if k in self.schedule.keyframe_indices:  # that view did not cover i: make i itself
                            k = i
                        if k != i:
                            reason += f"; placed ahead at pose {k} (uncovered {float(unc[k - s]):.3f})"
                    p._make_keyframe(state, k, T_all[k], job.intrinsics, job.initial_image, reason, stats)
                    self.schedule.keyframes.append(KeyframeDecision(k, reason, u))
                    t0 = time.perf_counter()
                    empty[i - s:], coarse[i - s:] = p._coverage_parts(state.world, cov_K, T_all[i:e])
                    unc[i - s:] = empty[i - s:] + cfg.coarse_weight * coarse[i - s:]
                    residual = float(unc[i - s])
                    stats.seconds["schedule"] += time.perf_counter() - t0
                if cfg.refine is not None and stats.keyframes > keyframes_before_chunk:
                    from srender_ros.core.refine import refine_state

                    t0 = time.perf_counter()
                    refine_state(state, cfg.refine)
                    stats.seconds["refine"] += time.perf_counter() - t0
                world = state.world
            t0 = time.perf_counter()
            out = p.render_frames(world, job.intrinsics, T_all[s:e])
            stats.seconds["render"] += time.perf_counter() - t0
            stats.frames += e - s
            stats.gaussians = len(world)
            stats.hole_fractions.extend(hole_fraction(out.alpha).tolist())
            stats.seconds["total"] = time.perf_counter() - t_start
            idx = np.arange(s, e, dtype=np.int64)
            yield FrameChunk(idx, traj.stamps_ns[s:e].copy(), T_all[s:e].copy(), out)

        self.schedule.keyframes.sort(key=lambda d: d.pose_index)
        if state.dirty:
            p.store.save(state)
        stats.seconds["total"] = time.perf_counter() - t_start

    def _lookahead(self, i: int, end: int, uncovered_from_i: NDArray[np.float64]) -> int:
        """Pose for the keyframe triggered at ``i``: the farthest within reach whose view is still mostly covered."""
        cfg = self.pipeline.config
        last = min(end - 1, i + cfg.keyframe_lookahead)
        best = i
        for j in range(i + 1, last + 1):
            if uncovered_from_i[j - i] <= cfg.lookahead_max_uncovered:
                best = j
            else:
                break
        return best
