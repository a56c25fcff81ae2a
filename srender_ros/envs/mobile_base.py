"""Gymnasium envs: a camera on a mobile base in a srender world (single env and batched VectorEnv).

Action: Box [-1, 1]^2 float32 = (forward speed, yaw rate) as fractions of max_speed_mps and
max_yaw_rate_rps (normalized, as RL libraries expect). Finite actions outside the box are clipped
to it (actuator limits, like Gymnasium's continuous-control envs); NaN/inf or a wrong shape
raise srender_ros.errors.InputError (a ValueError) naming the env.
Observation: Dict(rgb [H,W,3] uint8, depth [H,W,1] float32 metres (z-depth, clipped to
max_depth_m, which empty pixels also read), pose [7] float32 (x y z qw qx qy qz of the base's
camera mount, world frame, z up), goal [2] float32 (goal in the base frame, metres)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from srender_ros.envs.sim import EnvConfig, MobileBaseSim
from srender_ros.errors import InputError

RENDER_MODES = ["rgb_array"]


def observation_space(cfg: EnvConfig) -> spaces.Dict:
    """The single env's observation space."""
    H, W = cfg.height, cfg.width
    r = np.float32(cfg.arena_radius_m)
    return spaces.Dict({
        "rgb": spaces.Box(0, 255, (H, W, 3), np.uint8),
        "depth": spaces.Box(0.0, cfg.max_depth_m, (H, W, 1), np.float32),
        "pose": spaces.Box(np.array([-r, -r, 0.0, -1.0, -1.0, -1.0, -1.0], np.float32),
                           np.array([r, r, cfg.camera_height_m, 1.0, 1.0, 1.0, 1.0], np.float32), (7,), np.float32),
        "goal": spaces.Box(-2.0 * r, 2.0 * r, (2,), np.float32),
    })


def action_space(cfg: EnvConfig) -> spaces.Box:
    """The single env's action space: [-1, 1]^2, scaled to (forward speed, yaw rate) by the config's maxima."""
    return spaces.Box(-1.0, 1.0, (2,), np.float32)


def _check_render_mode(render_mode: str | None) -> None:
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise InputError(f"render_mode={render_mode!r}: supported are None and {RENDER_MODES}")


class MobileBaseEnv(gym.Env[dict[str, NDArray[Any]], NDArray[np.float32]]):
    """One camera on a mobile base (unicycle) with the built-in goal-reaching task (or ``task=``).

    Keyword arguments: see :class:`srender_ros.envs.sim.EnvConfig` (width, height, world_dir,
    prompts, generate, ...), plus ``render_mode`` ("rgb_array" or None) and ``seed`` (used by the
    first reset that gives none).
    """

    metadata: dict[str, Any] = {"render_modes": RENDER_MODES, "render_fps": 10}  # noqa: RUF012 (Gymnasium API)

    def __init__(self, render_mode: str | None = None, seed: int | None = None, **kwargs: Any) -> None:
        _check_render_mode(render_mode)
        self.render_mode = render_mode
        self.config = EnvConfig.from_kwargs(**kwargs)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.config.dt_s)}
        self.sim = MobileBaseSim(1, self.config)
        self.observation_space = observation_space(self.config)
        self.action_space = action_space(self.config)
        self._initial_seed = seed

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        if seed is None and self._initial_seed is not None:
            seed, self._initial_seed = self._initial_seed, None
        super().reset(seed=seed)
        self.sim.seed(0, self.np_random)
        self.sim.reset_envs([0])
        return self._obs(), self._info()

    def step(self, action: NDArray[np.float32]) -> tuple[dict[str, NDArray[Any]], float, bool, bool, dict[str, Any]]:
        a = self.sim.check_actions(np.asarray(action, dtype=np.float64)[None])
        reward, terminated, truncated = self.sim.step_envs(a, np.ones(1, bool))
        return self._obs(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info()

    def render(self) -> NDArray[np.uint8] | None:  # type: ignore[override]
        """The last camera image [H, W, 3] uint8 (render_mode "rgb_array"), else None."""
        if self.render_mode != "rgb_array" or self.sim.last_rgb is None:
            return None
        return self.sim.last_rgb[0].copy()

    def _obs(self) -> dict[str, NDArray[Any]]:
        return {k: v[0] for k, v in self.sim.observe().items()}

    def _info(self) -> dict[str, Any]:
        return {"distance_m": float(self.sim.distances()[0]),
                "prompt": self.config.prompts[int(self.sim.prompt_index[0])]}


class MobileBaseVectorEnv(VectorEnv[dict[str, NDArray[Any]], NDArray[np.float32], NDArray[Any]]):
    """``num_envs`` mobile bases stepped together: ONE batched render per step (not a loop of envs).

    Autoreset: NEXT_STEP (Gymnasium's default): the step after an episode ends resets that env,
    ignores its action and returns reward 0. ``reset(seed=s)`` seeds env i with s + i, as
    SyncVectorEnv does, so env i matches ``MobileBaseEnv`` reset with seed s + i.
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 (Gymnasium API)
        "render_modes": RENDER_MODES, "render_fps": 10, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        _check_render_mode(render_mode)
        self.render_mode = render_mode
        self.config = EnvConfig.from_kwargs(**kwargs)
        self.sim = MobileBaseSim(num_envs, self.config)
        self.num_envs = num_envs
        self.single_observation_space = observation_space(self.config)
        self.single_action_space = action_space(self.config)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._needs_reset = np.zeros(num_envs, bool)
        self._initial_seed = seed

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        if seed is None and self._initial_seed is not None:
            seed, self._initial_seed = self._initial_seed, None
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds: list[int | None] = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise InputError(f"reset got {len(seeds)} seeds for {self.num_envs} envs")
        super().reset(seed=seeds[0])
        for i, s in enumerate(seeds):
            self.sim.seed(i, np.random.default_rng(s) if s is not None else np.random.default_rng())
        self.sim.reset_envs(range(self.num_envs))
        self._needs_reset[:] = False
        return self.sim.observe(), self._info()

    def step(self, actions: NDArray[np.float32]) -> tuple[
            dict[str, NDArray[Any]], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]]:
        a = self.sim.check_actions(actions)
        resetting = self._needs_reset.copy()
        reward, terminated, truncated = self.sim.step_envs(a, ~resetting)
        if resetting.any():
            self.sim.reset_envs(np.nonzero(resetting)[0].tolist())
        self._needs_reset = terminated | truncated
        return self.sim.observe(), reward, terminated, truncated, self._info()

    def render(self) -> tuple[NDArray[np.uint8], ...] | None:  # type: ignore[override]
        """The last camera image of every env (render_mode "rgb_array"), else None."""
        if self.render_mode != "rgb_array" or self.sim.last_rgb is None:
            return None
        return tuple(self.sim.last_rgb.copy())

    def _info(self) -> dict[str, Any]:
        on = np.ones(self.num_envs, bool)
        return {"distance_m": self.sim.distances(), "_distance_m": on,
                "prompt_index": self.sim.prompt_index.copy(), "_prompt_index": on}
