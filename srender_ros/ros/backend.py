"""The node's core objects (store, renderer, generator, pipeline) built from a NodeConfig.

No rclpy here. Parameter changes at run time only swap a config reference; the worker threads ask
:meth:`Backend.pipeline` for the pipeline of the current config, which rebuilds the generator
(when a generator setting changed) or the cheap Pipeline object (when a scheduler setting changed).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from srender_ros.core.pipeline import Pipeline, PipelineConfig, SchedulerKind
from srender_ros.errors import BackendUnavailableError, SrenderError
from srender_ros.ros.config import NodeConfig

if TYPE_CHECKING:
    from srender_ros.core.camera import Intrinsics
    from srender_ros.generators.protocol import Keyframe, KeyframeGenerator, KeyframeRequest

#: NodeConfig fields that need a new generator when they change.
GENERATOR_FIELDS = ("generator", "model_path", "depth_model_path", "t2i_model_path", "device", "seed")


class WorldSummary(NamedTuple):
    """What WorldStatus reports about one environment's world."""

    world_id: str
    gaussians: int
    keyframes: int


def pipeline_config(cfg: NodeConfig) -> PipelineConfig:
    """The PipelineConfig of a NodeConfig (raises InputError for combinations the pipeline refuses)."""
    return PipelineConfig(scheduler=SchedulerKind(cfg.scheduler), coverage_threshold=cfg.coverage_threshold,
                          uniform_keyframes=cfg.uniform_keyframes, chunk_size=cfg.chunk_size,
                          max_keyframes_per_request=cfg.max_keyframes_per_request, seed=cfg.seed)


def intrinsics_of(cfg: NodeConfig) -> Intrinsics:
    """The node's default camera (width, height, fov_deg)."""
    from srender_ros.core.camera import Intrinsics

    return Intrinsics.from_fov(cfg.width, cfg.height, cfg.fov_deg)


class SerializedGenerator:
    """Lets one generator serve the path worker and the camera_pose worker, one call at a time.

    Two worlds may each want a keyframe at once (a path in one environment, an online view in
    another); model pipelines (diffusers, torch on one GPU) are not safe to call concurrently.
    """

    def __init__(self, inner: KeyframeGenerator) -> None:
        self.inner = inner
        self.name = inner.name
        self._lock = threading.Lock()

    def generate(self, request: KeyframeRequest) -> Keyframe:
        with self._lock:
            return self.inner.generate(request)

    def settings(self) -> dict[str, object]:
        return self.inner.settings()


class Backend:
    """Store + renderer for the node's lifetime; generator and pipeline rebuilt on config changes.

    Args:
        cfg: the start-up config (world_dir, memory budget, renderer and device are fixed from it).
    Raises:
        SrenderError: the store or renderer cannot be created (bad world_dir, missing backend).
    """

    def __init__(self, cfg: NodeConfig) -> None:
        from srender_ros.core.store import WorldStore
        from srender_ros.render.registry import get_renderer

        self.store = WorldStore(cfg.world_path, cfg.memory_budget_bytes)
        self.renderer = get_renderer(cfg.renderer)
        self._lock = threading.Lock()
        self._generator: SerializedGenerator | None = None
        self._generator_key: tuple[Any, ...] | None = None
        self._generator_error: SrenderError | None = None
        self._pipeline: Pipeline | None = None
        self._pipeline_key: tuple[Any, ...] | None = None

    def pipeline(self, cfg: NodeConfig) -> Pipeline:
        """The pipeline for ``cfg`` (built on first use and after relevant changes; thread-safe).

        Raises:
            ModelLoadError / BackendUnavailableError / InputError: the generator cannot be built
                with these settings (remembered, so a broken model folder is not reloaded for every
                request; any generator setting change retries).
        """
        gen_key = tuple(getattr(cfg, f) for f in GENERATOR_FIELDS)
        pipe_key = (gen_key, pipeline_config(cfg))
        with self._lock:
            if self._generator_key != gen_key:
                self._generator_key = gen_key
                self._generator, self._generator_error = None, None
                try:
                    self._generator = SerializedGenerator(self._make_generator(cfg))
                except SrenderError as exc:
                    self._generator_error = exc
                except Exception as exc:  # a broken install must not kill the node's worker either
                    self._generator_error = BackendUnavailableError(
                        f"generator {cfg.generator!r} could not be built: {type(exc).__name__}: {exc}")
            if self._generator is None:
                assert self._generator_error is not None
                raise type(self._generator_error)(str(self._generator_error))
            if self._pipeline is None or self._pipeline_key != pipe_key:
                self._pipeline = Pipeline(self.store, self.renderer, self._generator, pipeline_config(cfg))
                self._pipeline_key = pipe_key
            return self._pipeline

    @staticmethod
    def _make_generator(cfg: NodeConfig) -> KeyframeGenerator:
        from srender_ros.generators.registry import make_generator

        if cfg.generator == "procedural":
            return make_generator("procedural")
        return make_generator(cfg.generator, model_path=cfg.model_path or None,
                              depth_model_path=cfg.depth_model_path or None,
                              t2i_model_path=cfg.t2i_model_path or None, device=cfg.device, seed=cfg.seed)

    def world_info(self, pipeline: Pipeline, environment: str) -> WorldSummary:
        """World id, Gaussian and keyframe counts of ``environment`` (loads or creates its world)."""
        state = self.store.get_or_create(environment, pipeline.generator.settings())
        return WorldSummary(state.world_id, len(state.world), len(state.keyframes))

    def warm_up(self) -> None:
        """Render a one-Gaussian world once, so compiled kernels are loaded before the first request."""
        import numpy as np

        from srender_ros.core.camera import Intrinsics
        from srender_ros.core.world import GaussianWorld

        world = GaussianWorld.from_linear(np.array([[0.0, 0.0, 2.0]]), np.full((1, 3), 0.1), np.array([0.9]),
                                          np.array([[0.5, 0.5, 0.5]]))
        intr = Intrinsics.from_fov(16, 12, 60.0)
        self.renderer.render(world, intr, np.eye(4)[None])
        self.renderer.coverage(world, intr, np.eye(4)[None])

    def stored_world(self, environment: str) -> WorldSummary | None:
        """Counts of the world of ``environment`` if it is loaded or saved, else None (creates nothing).

        Raises:
            WorldFormatError: the saved world is damaged.
        """
        state = self.store.get(environment)
        return None if state is None else WorldSummary(state.world_id, len(state.world), len(state.keyframes))

    @staticmethod
    def world_id_of(environment: str) -> str:
        """The world id of an environment prompt ('' for an empty prompt); touches no files."""
        from srender_ros.core.store import world_id_for_prompt

        return world_id_for_prompt(environment) if environment.strip() else ""

    def save_all(self) -> int:
        """Write every loaded world that changed (the store knows which); returns how many."""
        return int(self.store.save_all())
