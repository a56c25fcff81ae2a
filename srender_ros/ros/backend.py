"""The node's core objects (store, renderer, generator, pipeline) built from a NodeConfig.

No rclpy here. Parameter changes at run time only swap a config reference; the worker threads ask
:meth:`Backend.pipeline` for the pipeline of the current config, which rebuilds the generator
(when a generator setting changed) or the cheap Pipeline object (when a scheduler setting changed).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from srender_ros.app.compose import AppConfig, build_generator, build_pipeline, build_renderer, build_store
from srender_ros.app.options import pipeline_config_from_values
from srender_ros.engine.config import PipelineConfig
from srender_ros.engine.pipeline import Pipeline
from srender_ros.errors import BackendUnavailableError, SrenderError
from srender_ros.ros.config import NodeConfig

if TYPE_CHECKING:
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.ports.generate import Keyframe, KeyframeGenerator, KeyframeRequest

#: NodeConfig fields that need a new generator when they change.
GENERATOR_FIELDS = ("generator", "model_path", "depth_model_path", "t2i_model_path", "device", "seed")


class WorldSummary(NamedTuple):
    """What WorldStatus reports about one environment's world."""

    world_id: str
    gaussians: int
    keyframes: int


def pipeline_config(cfg: NodeConfig) -> PipelineConfig:
    """The PipelineConfig of a NodeConfig (raises InputError for combinations the pipeline refuses)."""
    return pipeline_config_from_values(cfg.as_params(), refine=cfg.refine, refine_iterations=cfg.refine_iterations,
                                       refine_device=cfg.device)


def app_config(cfg: NodeConfig) -> AppConfig:
    """The composition root's configuration of a NodeConfig."""
    return AppConfig(world_dir=cfg.world_path, memory_budget_bytes=cfg.memory_budget_bytes, renderer=cfg.renderer,
                     generator=cfg.generator, generator_settings=generator_settings(cfg), pipeline=pipeline_config(cfg))


def generator_settings(cfg: NodeConfig) -> dict[str, Any]:
    """The generator's settings from the node's parameters."""
    if cfg.generator == "procedural":
        return {}
    return {"model_path": cfg.model_path or None, "depth_model_path": cfg.depth_model_path or None,
            "t2i_model_path": cfg.t2i_model_path or None, "device": cfg.device, "seed": cfg.seed}


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
        app = app_config(cfg)
        self.store = build_store(app)
        self.renderer = build_renderer(app.renderer)
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
                self._pipeline = build_pipeline(app_config(cfg), store=self.store, renderer=self.renderer,
                                                generator=self._generator)
                self._pipeline_key = pipe_key
            return self._pipeline

    @staticmethod
    def _make_generator(cfg: NodeConfig) -> KeyframeGenerator:
        return build_generator(cfg.generator, generator_settings(cfg))

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
