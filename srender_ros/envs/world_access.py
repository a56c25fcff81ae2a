"""The envs' one door to worlds and rendering (today's wiring; switch this module to srender_ros.app).

Everything the Gymnasium envs need from the rest of srender goes through :class:`WorldAccess`:
loading a prompt's world from the store, growing it with keyframes (``generate=True``) and one
batched render per step. It is built with today's helper (``cli.render_session.build_pipeline``);
when the composition root lands, only :func:`shared_access` changes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError

if TYPE_CHECKING:
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.ports.render import RenderOutput
    from srender_ros.core.world import GaussianWorld
    from srender_ros.engine.pipeline import Pipeline


@dataclass(frozen=True)
class AccessConfig:
    """Which store, renderer and generator an env uses.

    Attributes:
        world_dir: store folder (None: $SRENDER_WORLD_DIR or ~/.cache/srender/worlds).
        renderer: "cpu", "gsplat" or "auto".
        generator: keyframe source for ``generate=True`` ("procedural" needs no model).
        depth_source: exact | monocular keyframe depth (PipelineConfig.depth_source).
        camera_height_m: the envs' camera height above the floor (PipelineConfig.camera_height_m:
            a new world's first monocular keyframe is scaled by its ground plane); None = unknown.
    """

    world_dir: str | None = None
    renderer: str = "cpu"
    generator: str = "procedural"
    depth_source: str = "exact"
    camera_height_m: float | None = None


class WorldAccess:
    """Store + renderer + pipeline for the envs of one process (thread-safe)."""

    def __init__(self, config: AccessConfig) -> None:
        from srender_ros.app.compose import AppConfig, build_pipeline

        self.config = config
        from srender_ros.engine.config import PipelineConfig

        self.pipeline: Pipeline = build_pipeline(AppConfig(world_dir=config.world_dir, renderer=config.renderer,
                                                           generator=config.generator,
                                                           pipeline=PipelineConfig(depth_source=config.depth_source,
                                                                                   camera_height_m=config.camera_height_m)))
        self._lock = threading.Lock()

    @property
    def renderer_name(self) -> str:
        return str(self.pipeline.renderer.name)

    def known_prompts(self) -> list[str]:
        """Prompts of the worlds saved in the store."""
        return [info.prompt for info in self.pipeline.store.list()]

    def check_prompts(self, prompts: Sequence[str], generate: bool) -> None:
        """Refuse prompts the envs cannot use.

        Raises:
            InputError: an empty list, a non-string or blank entry, or (``generate=False``) a prompt
                whose world is not in the store (the message names the entry and how to build it).
        """
        if len(prompts) == 0:
            raise InputError("prompts is empty: give one prompt or a list of prompts")
        for k, p in enumerate(prompts):
            if not isinstance(p, str) or not p.strip():
                raise InputError(f"prompts[{k}] = {p!r}: every prompt must be a non-empty string")
            if not generate and self.pipeline.store.get(p) is None:
                known = self.known_prompts()
                raise InputError(
                    f"prompts[{k}] = {p!r}: no world for this prompt in {self.pipeline.store.root} and generate=False. "
                    f"Build it first (srender_ros.envs.build_world, or `srender render --prompt ...`), pass "
                    f"generate=True, or use a stored prompt: {known[:8]!r}")

    def world(self, prompt: str, generate: bool) -> GaussianWorld:
        """The current world of ``prompt`` (created empty when generating and not stored yet)."""
        if generate:
            return self.pipeline.store.get_or_create(prompt, self.pipeline.generator.settings()).world
        state = self.pipeline.store.get(prompt)
        if state is None:
            raise InputError(f"no world for prompt {prompt!r} (generate=False)")
        return state.world

    def grow(self, prompt: str, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]) -> GaussianWorld:
        """Make a keyframe at one optical pose where the pipeline's coverage rule asks for it; the world after."""
        with self._lock:  # one keyframe at a time: generators are not safe to call concurrently
            self.pipeline.view(prompt, intrinsics, np.asarray(T_world_cam).reshape(4, 4), generate_if_uncovered=True)
        return self.world(prompt, True)

    def render(self, worlds: Sequence[GaussianWorld], world_index: NDArray[np.integer], intrinsics: Intrinsics,
               T_world_cam: NDArray[np.floating]) -> RenderOutput:
        """One batched render: view b of ``worlds[world_index[b]]`` (see render.protocol.render_batch)."""
        from srender_ros.core.ports.render import render_batch

        return render_batch(self.pipeline.renderer, worlds, world_index, intrinsics, T_world_cam)


_SHARED: dict[AccessConfig, WorldAccess] = {}
_SHARED_LOCK = threading.Lock()


def shared_access(config: AccessConfig) -> WorldAccess:
    """One WorldAccess per config and process, so envs in one process share loaded worlds and caches."""
    with _SHARED_LOCK:
        access = _SHARED.get(config)
        if access is None:
            access = _SHARED[config] = WorldAccess(config)
        return access


def build_world(prompt: str, world_dir: str | None = None, *, width: int = 160, height: int = 120,
                fov_deg: float = 90.0, camera_height_m: float = 1.5, arena_radius_m: float = 2.0,
                renderer: str = "cpu") -> dict[str, Any]:
    """Build (or extend) a prompt's world off-line so envs can run with ``generate=False`` (the fast path).

    The camera turns a full circle at the arena centre, then circles at 3/4 of the arena radius
    looking at the centre, at the env's camera height, through the normal keyframe pipeline.

    Returns:
        {"prompt", "world_id", "gaussians", "keyframes"}.
    """
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.engine.pipeline import RenderJob

    access = shared_access(AccessConfig(world_dir=world_dir, renderer=renderer, camera_height_m=camera_height_m))
    intr = Intrinsics.from_fov(width, height, fov_deg)
    r = 0.75 * arena_radius_m
    paths = [make_trajectory("pan", fps=5.0, duration_s=6.0, height_m=camera_height_m),
             make_trajectory("orbit", fps=5.0, duration_s=10.0, radius_m=max(r, 0.1), height_m=camera_height_m,
                             target_height_m=camera_height_m)]
    keyframes = 0
    for traj in paths:
        run = access.pipeline.run(RenderJob(prompt=prompt, trajectory=traj, intrinsics=intr))
        for _ in run:
            pass
        keyframes += len(run.schedule.keyframes)
    state = access.pipeline.store.get(prompt)
    assert state is not None
    return {"prompt": prompt, "world_id": state.world_id, "gaussians": len(state.world), "keyframes": len(state.keyframes)}
