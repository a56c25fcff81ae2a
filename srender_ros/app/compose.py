"""The one place that wires store, renderer, generator, predictor, refiner and pipeline together."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.generate import KeyframeGenerator
from srender_ros.core.ports.inbetween import Inbetweener
from srender_ros.core.ports.predict import CountPredictor
from srender_ros.core.ports.refine import KeyframeRefiner, Refiner
from srender_ros.core.ports.render import Renderer
from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory import Trajectory
from srender_ros.engine.config import PipelineConfig
from srender_ros.engine.inbetween import InbetweenKind
from srender_ros.engine.pipeline import Pipeline
from srender_ros.engine.scheduler import SchedulerKind
from srender_ros.errors import InputError

__all__ = ["AppConfig", "LazyCountPredictor", "build_generator", "build_keyframe_refiner", "build_pipeline",
           "build_renderer", "build_store"]


@dataclass(frozen=True)
class AppConfig:
    """Everything that decides which backends serve a pipeline.

    Attributes:
        world_dir: where worlds are kept (None: $SRENDER_WORLD_DIR or ~/.cache/srender/worlds).
        memory_budget_bytes: loaded worlds beyond this are evicted (None: the store's default).
        renderer: a name of ``backends.render.registry.RENDERER_NAMES``.
        generator: a name of ``backends.generators.registry.GENERATORS``.
        generator_settings: the generator's keyword settings (None values take its defaults).
        pipeline: the pipeline's settings.
        predictor_weights: folder of the learned predictor's weights (None: the shipped ones).
    """

    world_dir: str | Path | None = None
    memory_budget_bytes: int | None = None
    renderer: str = "auto"
    generator: str = "procedural"
    generator_settings: Mapping[str, Any] = field(default_factory=dict)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    predictor_weights: Path | None = None


def build_store(config: AppConfig) -> WorldStore:
    """The world store of ``config``."""
    if config.memory_budget_bytes is None:
        return WorldStore(config.world_dir)
    return WorldStore(config.world_dir, config.memory_budget_bytes)


def build_renderer(name: str) -> Renderer:
    """A renderer from the registry (``auto`` picks gsplat where CUDA works)."""
    from srender_ros.backends.render.registry import get_renderer

    return get_renderer(name)


def build_generator(name: str, settings: Mapping[str, Any]) -> KeyframeGenerator:
    """A keyframe generator from the registry."""
    from srender_ros.backends.generators.registry import make_generator

    return make_generator(name, **dict(settings))


class LazyCountPredictor:
    """The learned predictor, loaded (torch + weights) on its first call, once, thread-safely.

    Args:
        weights_dir: the weights folder (None: the shipped weights).
    """

    def __init__(self, weights_dir: Path | None = None) -> None:
        self.weights_dir = weights_dir
        self._inner: CountPredictor | None = None
        self._lock = threading.Lock()

    def __call__(self, trajectory: Trajectory, intrinsics: Intrinsics,
                 first_view: NDArray[np.floating] | None = None) -> int:
        with self._lock:
            if self._inner is None:
                from srender_ros.backends.learned.predictor import KeyframeCountPredictor, load_default_predictor

                self._inner = (load_default_predictor() if self.weights_dir is None
                               else KeyframeCountPredictor.from_dir(self.weights_dir))
            inner: CountPredictor = self._inner
        return int(inner(trajectory, intrinsics, first_view))


def build_refiner() -> Refiner:
    """The photometric refinement backend (imports torch)."""
    from srender_ros.backends.refine.photometric import PhotometricRefiner

    return PhotometricRefiner()


def build_keyframe_refiner() -> KeyframeRefiner:
    """The fast per-keyframe refinement backend (numba on CPU, gsplat on CUDA)."""
    from srender_ros.backends.refine.keyframe import FastKeyframeRefiner

    return FastKeyframeRefiner()


def build_inbetweener() -> Inbetweener:
    """The 2D interpolator of ``inbetween = interpolate`` (imports OpenCV)."""
    from srender_ros.backends.inbetween.flow import FlowInbetweener

    return FlowInbetweener()


def with_depth_source(generator: KeyframeGenerator, depth_source: str) -> KeyframeGenerator:
    """``generator`` with its keyframes' depth from ``depth_source`` (exact: unchanged).

    Raises:
        InputError: monocular depth asked of a generator that is not procedural (the diffusers
            generator already estimates depth with a real monocular model).
    """
    if depth_source == "exact":
        return generator
    if generator.name != "procedural":
        raise InputError(f"--depth-source monocular simulates a monocular depth model for the procedural generator; "
                         f"the {generator.name} generator has its own depth (use --depth-source exact)")
    from srender_ros.backends.generators.monocular import MonocularDepthGenerator

    return MonocularDepthGenerator(generator)


def build_pipeline(config: AppConfig, *, store: WorldStore | None = None, renderer: Renderer | None = None,
                   generator: KeyframeGenerator | None = None, count_predictor: CountPredictor | None = None) -> Pipeline:
    """A pipeline wired from ``config``; parts given as arguments are shared instead of built.

    The node keeps one store and renderer for its lifetime and rebuilds only the generator or the
    pipeline when parameters change; the CLI and the label oracle build everything at once.
    """
    pcfg = config.pipeline
    if count_predictor is None and pcfg.scheduler is SchedulerKind.LEARNED:
        count_predictor = LazyCountPredictor(config.predictor_weights)
    if generator is None and pcfg.depth_source != "exact" and config.generator != "procedural":
        raise InputError(f"--depth-source {pcfg.depth_source} simulates a monocular depth model for the procedural "
                         f"generator; the {config.generator} generator has its own depth (use --depth-source exact)")
    gen = generator if generator is not None else build_generator(config.generator, config.generator_settings)
    return Pipeline(store if store is not None else build_store(config),
                    renderer if renderer is not None else build_renderer(config.renderer),
                    with_depth_source(gen, pcfg.depth_source),
                    pcfg, count_predictor=count_predictor,
                    refiner=build_refiner() if pcfg.refine is not None else None,
                    keyframe_refiner=build_keyframe_refiner() if pcfg.keyframe_refine is not None else None,
                    inbetweener=build_inbetweener() if pcfg.inbetween == InbetweenKind.INTERPOLATE else None)
