"""Gymnasium envs: checker, batched vector env (one render per step), determinism, bad input.

Worlds are small real Gaussian worlds written into a temporary store (a ring room around the
origin), so every step really renders; one test grows a world with the procedural generator.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import srender_ros.envs  # noqa: F401  (registers the ids)
from srender_ros.core.store import WorldStore
from srender_ros.core.world import GaussianWorld
from srender_ros.envs.mobile_base import MobileBaseEnv, MobileBaseVectorEnv
from srender_ros.errors import InputError

ENV_ID = "srender/MobileBase-v0"
PROMPTS = ("a ring room", "a red ring room")
SMALL = dict(width=32, height=24)


def ring_room(seed: int, n: int = 3000, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> GaussianWorld:
    """Gaussians on a cylinder wall (radius 4 m, 0..3 m high) and a floor disc, random colours."""
    rng = np.random.default_rng(seed)
    k = 2 * n // 3
    a = rng.uniform(-np.pi, np.pi, k)
    wall = np.stack([4.0 * np.cos(a), 4.0 * np.sin(a), rng.uniform(0.0, 3.0, k)], -1)
    r = 4.0 * np.sqrt(rng.uniform(size=n - k))
    b = rng.uniform(-np.pi, np.pi, n - k)
    floor = np.stack([r * np.cos(b), r * np.sin(b), np.zeros(n - k)], -1)
    rgb = rng.uniform(0.1, 0.9, (n, 3)) * np.asarray(tint)
    return GaussianWorld.from_linear(np.concatenate([wall, floor]), np.full((n, 3), 0.18), np.full(n, 0.9), rgb)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("worlds")
    store = WorldStore(root)
    for i, (prompt, tint) in enumerate(zip(PROMPTS, [(1.0, 1.0, 1.0), (1.0, 0.2, 0.2)], strict=True)):
        state = store.get_or_create(prompt)
        state.replace_world(ring_room(i, tint=tint))
        store.save(state)
    return str(root)


def test_single_env_passes_gymnasium_checker(world_dir: str) -> None:
    env = gym.make(ENV_ID, world_dir=world_dir, prompts=list(PROMPTS), render_mode="rgb_array", **SMALL).unwrapped
    assert isinstance(env, MobileBaseEnv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert not [w for w in caught if "WARN" in str(w.message)], [str(w.message) for w in caught]
    obs, _ = env.reset(seed=3)
    assert obs["rgb"].shape == (24, 32, 3) and obs["rgb"].dtype == np.uint8
    assert obs["depth"].shape == (24, 32, 1) and obs["depth"].dtype == np.float32
    assert obs["rgb"].std() > 5, "the camera should see the textured room"
    assert 0.5 < float(np.median(obs["depth"])) < 8.0
    frame = env.render()
    assert frame is not None and np.array_equal(frame, obs["rgb"])


def test_make_vec_is_batched_one_render_per_step(world_dir: str) -> None:
    env = gym.make_vec(ENV_ID, num_envs=5, vectorization_mode="vector_entry_point", world_dir=world_dir,
                       prompts=list(PROMPTS), **SMALL)
    base = env.unwrapped
    assert isinstance(base, MobileBaseVectorEnv)
    calls: list[int] = []
    access = base.sim.access
    real = access.render

    def counting(worlds, idx, intr, T):  # type: ignore[no-untyped-def]
        calls.append(len(idx))
        return real(worlds, idx, intr, T)

    access.render = counting  # type: ignore[method-assign]
    try:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        for _ in range(4):
            obs, rew, term, trunc, _ = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs)
            assert rew.shape == term.shape == trunc.shape == (5,)
    finally:
        access.render = real  # type: ignore[method-assign]
    assert calls == [5] * 5, "one batched render of all envs per reset/step"


def _rollout(env: gym.vector.VectorEnv, seed: int, steps: int) -> list[tuple]:  # type: ignore[type-arg]
    rng = np.random.default_rng(99)
    obs, _ = env.reset(seed=seed)
    out = [(obs["rgb"].copy(), obs["depth"].copy(), obs["pose"].copy(), obs["goal"].copy())]
    for _ in range(steps):
        obs, rew, term, trunc, _ = env.step(rng.uniform(-1, 1, (env.num_envs, 2)).astype(np.float32))
        out.append((obs["rgb"].copy(), obs["depth"].copy(), obs["pose"].copy(), obs["goal"].copy(),
                    rew.copy(), term.copy(), trunc.copy()))
    return out


def test_batched_equals_sync_loop_of_single_envs_and_is_deterministic(world_dir: str) -> None:
    kw = dict(world_dir=world_dir, prompts=list(PROMPTS), max_episode_steps=4, **SMALL)
    batched = _rollout(gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", **kw), 7, 10)
    looped = _rollout(gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="sync", **kw), 7, 10)
    again = _rollout(gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", **kw), 7, 10)
    other = _rollout(gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", **kw), 8, 2)
    assert any(step[6].any() for step in batched[1:]), "episodes should be truncated and auto-reset"
    for a, b, c in zip(batched, looped, again, strict=True):
        for x, y, z in zip(a, b, c, strict=True):
            np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(x, z)
    assert not np.array_equal(batched[0][2], other[0][2]), "another seed gives other start poses"


def test_goal_task_rewards_progress_and_terminates(world_dir: str) -> None:
    env = MobileBaseEnv(world_dir=world_dir, prompts=PROMPTS[0], **SMALL)
    obs, info = env.reset(seed=5)
    total, terminated = 0.0, False
    for _ in range(200):
        gx, gy = obs["goal"]
        turn = np.clip(2.0 * np.arctan2(gy, gx), -1, 1)
        obs, rew, terminated, truncated, info = env.step(np.array([1.0 if abs(turn) < 0.5 else 0.1, turn], np.float32))
        total += rew
        if terminated or truncated:
            break
    assert terminated and info["distance_m"] < 0.3
    assert total > 0.5


def test_bad_actions(world_dir: str) -> None:
    env = MobileBaseVectorEnv(num_envs=3, world_dir=world_dir, prompts=PROMPTS[0], **SMALL)
    env.reset(seed=1)
    a = np.zeros((3, 2), np.float32)
    a[2, 1] = np.nan
    with pytest.raises(InputError, match="env 2 is not finite"):
        env.step(a)
    with pytest.raises(InputError, match=r"expected \(3, 2\)"):
        env.step(np.zeros((2, 2), np.float32))
    # Out-of-range actions are clipped: 5.0 moves exactly like 1.0.
    e1 = MobileBaseEnv(world_dir=world_dir, prompts=PROMPTS[0], **SMALL)
    e2 = MobileBaseEnv(world_dir=world_dir, prompts=PROMPTS[0], **SMALL)
    e1.reset(seed=2)
    e2.reset(seed=2)
    o1 = e1.step(np.array([5.0, -7.0], np.float32))[0]
    o2 = e2.step(np.array([1.0, -1.0], np.float32))[0]
    np.testing.assert_array_equal(o1["pose"], o2["pose"])
    with pytest.raises(InputError, match="not finite"):
        e1.step(np.array([np.inf, 0.0], np.float32))


def test_bad_construction(world_dir: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"prompts\[1\] = 'no such place'.*generate=False"):
        MobileBaseEnv(world_dir=world_dir, prompts=[PROMPTS[0], "no such place"])
    with pytest.raises(InputError, match="prompts is empty"):
        MobileBaseEnv(world_dir=world_dir, prompts=[])
    with pytest.raises(InputError, match="unknown env argument"):
        MobileBaseEnv(world_dir=world_dir, widht=64)
    with pytest.raises(InputError, match="render_mode"):
        MobileBaseEnv(world_dir=world_dir, render_mode="human")
    with pytest.raises(InputError, match="num_envs"):
        MobileBaseVectorEnv(num_envs=0, world_dir=world_dir)


def test_prompts_drawn_per_episode(world_dir: str) -> None:
    env = MobileBaseVectorEnv(num_envs=8, world_dir=world_dir, prompts=list(PROMPTS), **SMALL)
    obs, info = env.reset(seed=11)
    idx = info["prompt_index"]
    assert set(idx.tolist()) == {0, 1}
    red = obs["rgb"][..., 0].astype(float).mean(axis=(1, 2)) / (obs["rgb"][..., 1:].astype(float).mean(axis=(1, 2, 3)) + 1)
    assert (red[idx == 1].min() > red[idx == 0].max()), "envs of the red room see red"


def test_generate_grows_an_unknown_world(tmp_path: Path) -> None:
    env = MobileBaseEnv(world_dir=str(tmp_path), prompts="a tiny procedural office", generate=True, **SMALL)
    obs, _ = env.reset(seed=0)
    state = WorldStore(tmp_path).get("a tiny procedural office")
    assert state is not None and len(state.world) > 0 and len(state.keyframes) >= 1
    assert float((obs["depth"] < env.config.max_depth_m).mean()) > 0.9, "the new keyframe covers the view"
