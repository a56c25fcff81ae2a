"""The batched simulation behind both env classes: N mobile bases, one batched render per step.

Pure numpy plus :class:`srender_ros.envs.world_access.WorldAccess`; no Gymnasium here. The single
env is this with N = 1, so single and vector envs give the same observations for the same seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import to_optical
from srender_ros.envs.tasks import BaseState, GoalReachingTask, Task, uniform_in_disc
from srender_ros.envs.world_access import AccessConfig, WorldAccess, shared_access
from srender_ros.errors import InputError

#: An uncovered fraction of a view above this makes a keyframe there when generate=True.
GROW_UNCOVERED_FRACTION = 0.02


@dataclass(frozen=True)
class EnvConfig:
    """Settings of a mobile-base camera env (the env constructors' keyword arguments).

    Attributes:
        width, height: image size, px. fov_deg: horizontal field of view.
        world_dir: world store (None: the default store). renderer: cpu | gsplat | auto.
        prompts: one prompt or several; each episode draws one (uniformly, from the env's seed).
        generate: True: a view that is not covered makes a keyframe first (slow: a generator call);
            False: only render what the stored world has (every prompt must be stored).
        camera_height_m: camera above the floor (z = 0). dt_s: seconds per step.
        max_speed_mps, max_yaw_rate_rps: action bounds (forward speed, yaw rate).
        arena_radius_m: the base stays in this disc around the world origin (positions are clamped).
        max_depth_m: depth observations are clipped to this; empty pixels read max_depth_m.
        max_episode_steps: episodes are truncated after this many steps.
        depth_source: keyframe depth for ``generate=True``: exact | monocular (docs/quality.md).
    """

    width: int = 84
    height: int = 84
    fov_deg: float = 90.0
    world_dir: str | None = None
    renderer: str = "cpu"
    prompts: tuple[str, ...] = ("a small office",)
    generate: bool = False
    camera_height_m: float = 1.5
    depth_source: str = "exact"
    dt_s: float = 0.1
    max_speed_mps: float = 1.0
    max_yaw_rate_rps: float = 1.5
    arena_radius_m: float = 2.0
    max_depth_m: float = 20.0
    max_episode_steps: int = 200
    task: Task = field(default_factory=GoalReachingTask)

    def __post_init__(self) -> None:
        positive = {k: getattr(self, k) for k in ("dt_s", "max_speed_mps", "max_yaw_rate_rps", "arena_radius_m",
                                                   "max_depth_m", "camera_height_m")}
        for k, v in positive.items():
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise InputError(f"{k}={v!r}: must be a finite number > 0")
        if not (isinstance(self.max_episode_steps, int) and self.max_episode_steps >= 1):
            raise InputError(f"max_episode_steps={self.max_episode_steps!r}: must be an integer >= 1")

    @classmethod
    def from_kwargs(cls, prompts: str | Sequence[str] | None = None, **kwargs: Any) -> EnvConfig:
        """Config from env keyword arguments (``prompts`` may be one string or a list)."""
        if prompts is not None:
            kwargs["prompts"] = (prompts,) if isinstance(prompts, str) else tuple(prompts)
        unknown = set(kwargs) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown env argument(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**kwargs)

    @property
    def intrinsics(self) -> Intrinsics:
        return Intrinsics.from_fov(self.width, self.height, self.fov_deg)


def base_to_optical(state: BaseState, camera_height_m: float) -> NDArray[np.float64]:
    """[n, 4, 4] optical camera poses of bases (camera looks along the base's x axis, level)."""
    n = len(state.yaw_rad)
    T = np.zeros((n, 4, 4))
    c, s = np.cos(state.yaw_rad), np.sin(state.yaw_rad)
    T[:, 0, 0], T[:, 0, 1], T[:, 1, 0], T[:, 1, 1] = c, -s, s, c
    T[:, 2, 2] = T[:, 3, 3] = 1.0
    T[:, :2, 3] = state.xy_m
    T[:, 2, 3] = camera_height_m
    return to_optical(T, "body")


class MobileBaseSim:
    """N unicycle bases with cameras; state arrays over envs, one random generator per env."""

    def __init__(self, num_envs: int, config: EnvConfig, access: WorldAccess | None = None) -> None:
        if not (isinstance(num_envs, int) and num_envs >= 1):
            raise InputError(f"num_envs={num_envs!r}: must be an integer >= 1")
        self.n = num_envs
        self.config = config
        self.intrinsics = config.intrinsics
        self.access = access or shared_access(AccessConfig(world_dir=config.world_dir, renderer=config.renderer,
                                                              depth_source=config.depth_source,
                                                              camera_height_m=config.camera_height_m))
        self.access.check_prompts(config.prompts, config.generate)
        self.rngs = [np.random.default_rng() for _ in range(num_envs)]
        self.state = BaseState(np.zeros((num_envs, 2)), np.zeros(num_envs))
        self.goals = np.zeros((num_envs, 2))
        self.prompt_index = np.zeros(num_envs, np.int64)
        self.steps = np.zeros(num_envs, np.int64)
        self.action_scale = np.array([config.max_speed_mps, config.max_yaw_rate_rps])
        self.last_rgb: NDArray[np.uint8] | None = None

    def seed(self, i: int, rng: np.random.Generator) -> None:
        self.rngs[i] = rng

    def reset_envs(self, indices: Sequence[int]) -> None:
        """New episodes for envs ``indices``: prompt, start pose and goal drawn from each env's generator."""
        cfg = self.config
        for i in indices:
            rng = self.rngs[i]
            self.prompt_index[i] = rng.integers(len(cfg.prompts))
            self.state.xy_m[i] = uniform_in_disc(rng, 0.5 * cfg.arena_radius_m)
            self.state.yaw_rad[i] = rng.uniform(-np.pi, np.pi)
            one = BaseState(self.state.xy_m[i:i + 1], self.state.yaw_rad[i:i + 1])
            self.goals[i] = cfg.task.sample_goals(rng, one, cfg.arena_radius_m)[0]
            self.steps[i] = 0

    def check_actions(self, actions: Any) -> NDArray[np.float64]:
        """[n, 2] actions in [-1, 1] -> (forward speed m/s, yaw rate rad/s), clipped to the bounds first.

        Out-of-range finite actions are clipped (actuator limits, as Gymnasium's continuous control
        envs do); wrong shapes and NaN/inf raise InputError naming the env index.
        """
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.n, 2):
            raise InputError(f"actions have shape {a.shape}; expected ({self.n}, 2): (forward speed, yaw rate) in "
                             "[-1, 1] per env" if self.n > 1 else f"action has shape {a.shape[1:] or a.shape}; expected "
                             "(2,): (forward speed, yaw rate) in [-1, 1]")
        bad = np.nonzero(~np.isfinite(a).all(axis=1))[0]
        if len(bad):
            raise InputError(f"action of env {int(bad[0])} is not finite: {a[bad[0]].tolist()} "
                             f"({len(bad)} env(s) with NaN/inf actions: {bad[:8].tolist()})")
        return np.asarray(np.clip(a, -1.0, 1.0) * self.action_scale)

    def step_envs(self, actions: NDArray[np.float64], active: NDArray[np.bool_]) -> tuple[
            NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
        """Move the ``active`` bases one step; (reward, terminated, truncated) over all envs (0/False elsewhere)."""
        cfg = self.config
        before = BaseState(self.state.xy_m.copy(), self.state.yaw_rad.copy())
        v, w = actions[:, 0], actions[:, 1]
        yaw = before.yaw_rad
        xy = before.xy_m + (v * cfg.dt_s)[:, None] * np.stack([np.cos(yaw), np.sin(yaw)], -1)
        r = np.linalg.norm(xy, axis=-1)
        xy = np.where((r > cfg.arena_radius_m)[:, None], xy * (cfg.arena_radius_m / np.maximum(r, 1e-12))[:, None], xy)
        new_yaw = np.mod(yaw + w * cfg.dt_s + np.pi, 2 * np.pi) - np.pi
        self.state.xy_m[active] = xy[active]
        self.state.yaw_rad[active] = new_yaw[active]
        self.steps[active] += 1
        reward = np.where(active, cfg.task.reward(before, self.state, self.goals, actions), 0.0)
        terminated = active & np.asarray(cfg.task.terminated(self.state, self.goals), bool)
        truncated = active & ~terminated & (self.steps >= cfg.max_episode_steps)
        return reward.astype(np.float64), terminated, truncated

    def observe(self) -> dict[str, NDArray[Any]]:
        """Observations of all envs from ONE batched render: rgb [n,H,W,3] uint8, depth [n,H,W,1] float32 m,
        pose [n,7] float32 (x y z, qw qx qy qz; body frame, z up), goal [n,2] float32 (goal in the base frame, m)."""
        cfg = self.config
        T = base_to_optical(self.state, cfg.camera_height_m)
        used = sorted(set(self.prompt_index.tolist()))
        prompts = [cfg.prompts[u] for u in used]
        worlds = [self.access.world(p, cfg.generate) for p in prompts]
        idx = np.searchsorted(used, self.prompt_index)
        out = self.access.render(worlds, idx, self.intrinsics, T)
        if cfg.generate:
            unc = (out.alpha < 0.5).mean(axis=(1, 2))
            for i in np.nonzero(unc > GROW_UNCOVERED_FRACTION)[0]:
                worlds[idx[i]] = self.access.grow(prompts[idx[i]], self.intrinsics, T[i])
                one = self.access.render(worlds, idx[i:i + 1], self.intrinsics, T[i:i + 1])
                out.rgb[i], out.depth_m[i], out.alpha[i] = one.rgb[0], one.depth_m[0], one.alpha[0]
        rgb = (np.clip(out.rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        depth = np.nan_to_num(out.depth_m, nan=cfg.max_depth_m)
        depth = np.clip(depth, 0.0, cfg.max_depth_m)[..., None].astype(np.float32)
        yaw = self.state.yaw_rad
        pose = np.zeros((self.n, 7), np.float32)
        pose[:, :2] = self.state.xy_m
        pose[:, 2] = cfg.camera_height_m
        pose[:, 3], pose[:, 6] = np.cos(yaw / 2), np.sin(yaw / 2)
        d = self.goals - self.state.xy_m
        goal = np.stack([d[:, 0] * np.cos(yaw) + d[:, 1] * np.sin(yaw),
                         -d[:, 0] * np.sin(yaw) + d[:, 1] * np.cos(yaw)], -1).astype(np.float32)
        self.last_rgb = rgb
        return {"rgb": rgb, "depth": depth, "pose": pose, "goal": goal}

    def distances(self) -> NDArray[np.float64]:
        """[n] distance of each base to its goal, metres."""
        return np.asarray(np.linalg.norm(self.goals - self.state.xy_m, axis=-1))
