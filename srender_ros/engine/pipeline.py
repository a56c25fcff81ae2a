"""The pipeline for one request: world -> schedule -> generate -> lift -> render, chunk by chunk.

It only coordinates, through ports: the world store keeps worlds, the coverage probe and the
keyframe walk (engine/coverage.py, engine/scheduler.py) decide where keyframes go, the generator
makes them, :func:`~srender_ros.engine.lifting.merge_keyframe` turns them into Gaussians, the
renderer draws. Chunks are yielded in pose order as soon as they are rendered, so the first frames
of a long trajectory are out long before the plan reaches its end. Which backends fill the ports is
decided by the composition root (srender_ros/app/), never here.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics, crop_to_camera
from srender_ros.core.holes import fill_holes
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.metrics import hole_fraction
from srender_ros.core.ports.generate import Keyframe, KeyframeGenerator, KeyframeRequest
from srender_ros.core.ports.inbetween import Inbetweener
from srender_ros.core.ports.predict import CountPredictor
from srender_ros.core.ports.refine import KeyframeRefiner, Refiner
from srender_ros.core.ports.render import Renderer, RenderOutput
from srender_ros.core.store import WorldState, WorldStore
from srender_ros.core.trajectory import Trajectory
from srender_ros.core.world import GaussianWorld
from srender_ros.engine.config import PipelineConfig
from srender_ros.engine.coverage import Coverage, CoverageProbe
from srender_ros.engine.inbetween import InbetweenKind, interpolated_chunks, keyframe_views, require_two_keyframes
from srender_ros.engine.job import FrameChunk, RenderJob, RunStats
from srender_ros.engine.lifting import merge_keyframe
from srender_ros.engine.refinement import refine_state
from srender_ros.engine.scheduler import KeyframeWalk, Schedule
from srender_ros.errors import BackendUnavailableError, InputError

__all__ = ["FrameChunk", "Pipeline", "PipelineConfig", "PipelineRun", "RenderJob", "RunStats", "Schedule"]

log = logging.getLogger(__name__)


class Pipeline:
    """Coordinates store, coverage, scheduler, generator, lifting and renderer for requests.

    Args:
        store: where worlds live (one per prompt).
        renderer: draws worlds (cpu or gsplat).
        generator: makes keyframes (procedural or diffusers).
        config: pipeline settings.
        count_predictor: keyframe-count model, needed for ``scheduler=learned``.
        refiner: refinement backend, needed when ``config.refine`` is set.
        keyframe_refiner: the fast per-keyframe refinement backend, used when
            ``config.keyframe_refine`` is set (without one, keyframes are not refined: the
            composition root, app/compose.py, always passes one).
        inbetweener: 2D interpolator, needed when ``config.inbetween`` is ``interpolate``.
    """

    def __init__(self, store: WorldStore, renderer: Renderer, generator: KeyframeGenerator,
                 config: PipelineConfig | None = None, count_predictor: CountPredictor | None = None,
                 refiner: Refiner | None = None, keyframe_refiner: KeyframeRefiner | None = None,
                 inbetweener: Inbetweener | None = None) -> None:
        self.store = store
        self.renderer = renderer
        self.generator = generator
        self.config = config or PipelineConfig()
        self.count_predictor = count_predictor
        self.refiner = refiner
        self.keyframe_refiner = keyframe_refiner
        self.inbetweener = inbetweener
        cfg = self.config
        self.probe = CoverageProbe(renderer, cfg.coverage_alpha, cfg.max_footprint_px, cfg.coarse_weight,
                                   cfg.lift.max_stretch if cfg.grazing_detail else None)

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
        return 1.0 - self._uncovered(state.world, intrinsics, T)

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
        self.store.focus(state, T[:, :3, 3])  # the stored cells near the camera (worlds larger than memory)
        with state.lock:
            unc = float(self._uncovered(state.world, intrinsics, T)[0])
            if len(state.world) == 0 or unc > self.config.coverage_threshold:
                self.make_keyframe(state, -1, T[0], intrinsics, None, f"online view uncovered {unc:.3f}", RunStats())
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

    # ---- steps -------------------------------------------------------------------------------
    def measure_coverage(self, world: GaussianWorld, intrinsics: Intrinsics, T: NDArray[np.float64]) -> Coverage:
        """Coverage of poses ``T`` [B, 4, 4] seen by the request camera ``intrinsics``, rendered at
        ``coverage_scale`` with footprints in the request camera's pixels."""
        scale = self.config.coverage_scale
        return self.probe.measure(world, intrinsics.scaled(scale), T, 1.0 / scale)

    def _uncovered(self, world: GaussianWorld, intrinsics: Intrinsics, T: NDArray[np.float64]) -> NDArray[np.float64]:
        """[B] uncovered fraction of poses ``T`` [B, 4, 4] seen by the request camera ``intrinsics``."""
        return self.measure_coverage(world, intrinsics, T).uncovered(self.config.coarse_weight)

    def _seed(self, state: WorldState) -> int:
        digest = hashlib.sha256(f"{state.world_id}:{len(state.keyframes)}:{self.config.seed}".encode()).hexdigest()
        return int(digest[:8], 16)

    def make_keyframe(self, state: WorldState, pose_index: int, T: NDArray[np.float64], intrinsics: Intrinsics,
                      initial_image: NDArray[np.float32] | None, reason: str, stats: RunStats) -> None:
        """Generate a keyframe at pose ``T`` [4, 4], merge it into ``state`` (the caller holds state.lock)."""
        # A user image defines the first view exactly: no overscan for it.
        use_image = initial_image is not None and len(state.world) == 0
        K = intrinsics if use_image else intrinsics.overscanned(self.config.keyframe_overscan)
        t0 = time.perf_counter()
        view = self.renderer.render(state.world, K, T[None]) if len(state.world) else None
        t1 = time.perf_counter()
        request = KeyframeRequest(
            prompt=state.prompt, T_world_cam=T, intrinsics=K,
            world_view=RenderOutput(view.rgb[0], view.depth_m[0], view.alpha[0]) if view is not None else None,
            initial_image=initial_image if use_image else None, seed=self._seed(state), pose_index=pose_index,
            camera_height_m=self.config.camera_height_m)
        kf = self.generator.generate(request)
        t2 = time.perf_counter()
        cfg = self.config
        merged = merge_keyframe(state.world, Keyframe(kf.rgb, kf.depth_m, T, K, pose_index), view, self.renderer.render,
                                cfg.lift, cfg.max_footprint_px,
                                self.probe.coarse_pixels if cfg.max_footprint_px is not None else None,
                                cfg.dedup, state.keyframes, self.probe.grazing_max_stretch)
        if merged.removed:
            log.debug("keyframe at pose %d removes %d Gaussians %s", pose_index, merged.removed, merged.removed_by)
        state.replace_world(merged.world)
        state.add_keyframe(KeyframeRecord(pose_index=pose_index, T_world_cam=T.copy(), intrinsics=K,
                                          rgb=kf.rgb, depth_m=kf.depth_m, reason=reason,
                                          gaussians_added=merged.added, gaussians_removed=merged.removed,
                                          removed_by=dict(merged.removed_by or {})))
        t3 = time.perf_counter()
        if cfg.keyframe_refine is not None and self.keyframe_refiner is not None:
            refined, report = self.keyframe_refiner.refine_keyframe(state.world, state.keyframes, cfg.keyframe_refine)
            if refined is not state.world:
                state.replace_world(refined)
            log.debug("keyframe at pose %d refined: %d steps, keyframe PSNR %.2f -> %.2f dB", pose_index,
                      report.iterations, report.psnr_before_db, report.psnr_after_db)
        t4 = time.perf_counter()
        stats.seconds["refine"] += t4 - t3
        stats.seconds["lift"] += (t1 - t0) + (t3 - t2)
        stats.seconds["generate"] += t2 - t1
        stats.keyframes += 1
        stats.gaussians_added += merged.added
        log.info("keyframe at pose %d (%s): +%d -%d Gaussians, world %d", pose_index, reason, merged.added,
                 merged.removed, len(state.world))

    def predict_count(self, trajectory: Trajectory, intrinsics: Intrinsics,
                      first_view: NDArray[np.floating] | None = None) -> int:
        """The learned scheduler's keyframe count for ``trajectory``."""
        if self.count_predictor is None:
            raise BackendUnavailableError("scheduler=learned needs a keyframe-count predictor; build the pipeline "
                                          "with srender_ros.app (it loads the shipped weights)")
        return int(self.count_predictor(trajectory, intrinsics, first_view))


class PipelineRun:
    """One request in progress. Iterate to drive it; ``schedule`` and ``stats`` grow meanwhile."""

    def __init__(self, pipeline: Pipeline, job: RenderJob) -> None:
        self.pipeline = pipeline
        self.job = job
        self.stats = RunStats()
        self.world_id = ""
        self._walk: KeyframeWalk | None = None
        self._empty_schedule = Schedule(scheduler=pipeline.config.scheduler,
                                        coverage=np.full(len(job.trajectory), np.nan, np.float32),
                                        coverage_threshold=pipeline.config.coverage_threshold)
        self._started = False

    @property
    def schedule(self) -> Schedule:
        """The keyframe decisions and per-pose coverage so far."""
        return self._walk.schedule if self._walk is not None else self._empty_schedule

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

        def coverage(start: int, end: int) -> Coverage:
            return p.measure_coverage(state.world, job.intrinsics, T_all[start:end])

        def make(k: int, reason: str) -> None:
            p.make_keyframe(state, k, T_all[k], job.intrinsics, job.initial_image, reason, stats)
            p.store.save(state)  # durable per keyframe: only the changed cells are written

        p.store.focus(state, T_all[:cfg.chunk_size, :3, 3])

        interpolate = cfg.inbetween == InbetweenKind.INTERPOLATE
        if interpolate and p.inbetweener is None:
            raise BackendUnavailableError("inbetween=interpolate but the pipeline has no interpolator; build it with "
                                          "srender_ros.app")
        records_before = len(state.keyframes)
        walk = KeyframeWalk(cfg.walk_settings(), n, coverage, make)
        self._walk = walk
        made_first = False
        if walk.wants_first_keyframe(len(state.world) == 0):
            # A new world needs a keyframe at the first pose anyway: make it first, so that the
            # predictor sees the world's look (docs/learned.md measures what the first view adds).
            def predict() -> int:
                first = state.keyframes[-1]
                t0 = time.perf_counter()
                count = p.predict_count(traj, job.intrinsics, crop_to_camera(first.rgb, first.intrinsics, job.intrinsics))
                stats.seconds["schedule"] += time.perf_counter() - t0
                return count

            with state.lock:
                walk.make_first_keyframe(predict)
            made_first = True

        for s in range(0, n, cfg.chunk_size):
            e = min(n, s + cfg.chunk_size)
            keyframes_before_chunk = stats.keyframes - (int(made_first) if s == 0 else 0)
            p.store.focus(state, T_all[s:e, :3, 3])  # load cells near this chunk, evict far ones over budget
            with state.lock:
                walk.coverage_seconds = 0.0
                walk.walk(s, e)
                stats.seconds["schedule"] += walk.coverage_seconds
                if cfg.refine is not None and stats.keyframes > keyframes_before_chunk:
                    if p.refiner is None:
                        raise BackendUnavailableError("refine is set but the pipeline has no refiner; build it with "
                                                      "srender_ros.app")
                    t0 = time.perf_counter()
                    refine_state(state, p.refiner, cfg.refine)
                    stats.seconds["refine"] += time.perf_counter() - t0
                world = state.world
            if interpolate:
                continue  # frames come from the keyframes once the whole walk has placed them
            t0 = time.perf_counter()
            out = p.render_frames(world, job.intrinsics, T_all[s:e])
            stats.seconds["render"] += time.perf_counter() - t0
            stats.frames += e - s
            stats.gaussians = len(world)
            stats.hole_fractions.extend(hole_fraction(out.alpha).tolist())
            stats.seconds["total"] = time.perf_counter() - t_start
            idx = np.arange(s, e, dtype=np.int64)
            yield FrameChunk(idx, traj.stamps_ns[s:e].copy(), T_all[s:e].copy(), out)

        walk.finish()
        if interpolate and p.inbetweener is not None:
            views = keyframe_views(state.keyframes[records_before:], job.intrinsics)
            require_two_keyframes(len(views))  # before anything is yielded or saved
            stats.gaussians = len(state.world)
            for chunk in interpolated_chunks(p.inbetweener, views, traj, cfg.chunk_size, stats):
                stats.seconds["total"] = time.perf_counter() - t_start
                yield chunk
        if state.dirty:
            p.store.save(state)
        stats.seconds["total"] = time.perf_counter() - t_start
