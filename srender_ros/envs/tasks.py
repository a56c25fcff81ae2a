"""Reward and termination hooks of the envs, and the built-in goal-reaching task.

A task sees the bases of all envs of a batch at once (arrays over envs), so the vector env calls
it once per step. Replace it with ``task=MyTask()`` (any object with these three methods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError


class BaseState(NamedTuple):
    """Planar poses of n mobile bases (world frame, z up).

    Attributes:
        xy_m: [n, 2] position, metres.
        yaw_rad: [n] heading (x axis of the base), radians in [-pi, pi).
    """

    xy_m: NDArray[np.float64]
    yaw_rad: NDArray[np.float64]


class Task(Protocol):
    """Goals, rewards and termination for a batch of envs."""

    def sample_goals(self, rng: np.random.Generator, start: BaseState, arena_radius_m: float) -> NDArray[np.float64]:
        """[n, 2] goal positions (metres) for episodes starting at ``start``."""
        ...

    def reward(self, before: BaseState, after: BaseState, goals_xy_m: NDArray[np.float64],
               actions: NDArray[np.float64]) -> NDArray[np.float64]:
        """[n] rewards of one step from ``before`` to ``after`` under ``actions`` [n, 2]."""
        ...

    def terminated(self, state: BaseState, goals_xy_m: NDArray[np.float64]) -> NDArray[np.bool_]:
        """[n] whether each episode ended (goal reached, failure)."""
        ...


@dataclass(frozen=True)
class GoalReachingTask:
    """Drive to a goal point: dense progress reward, a small time penalty, a bonus on arrival.

    reward = (distance before - distance after) - time_penalty + (success_bonus if arrived);
    the episode terminates when the base is within ``goal_radius_m`` of the goal. Goals are drawn
    uniformly in the arena disc, at least ``min_goal_distance_m`` from the start where possible.
    """

    goal_radius_m: float = 0.3
    min_goal_distance_m: float = 1.0
    time_penalty: float = 0.01
    success_bonus: float = 1.0

    def __post_init__(self) -> None:
        if not (self.goal_radius_m > 0 and self.min_goal_distance_m >= 0):
            raise InputError("GoalReachingTask: goal_radius_m must be > 0 and min_goal_distance_m >= 0")

    def sample_goals(self, rng: np.random.Generator, start: BaseState, arena_radius_m: float) -> NDArray[np.float64]:
        n = len(start.yaw_rad)
        goals = np.empty((n, 2))
        for i in range(n):
            for _ in range(32):  # rejection sampling; the last draw stands if none is far enough
                g = uniform_in_disc(rng, arena_radius_m)
                if np.linalg.norm(g - start.xy_m[i]) >= self.min_goal_distance_m:
                    break
            goals[i] = g
        return goals

    def reward(self, before: BaseState, after: BaseState, goals_xy_m: NDArray[np.float64],
               actions: NDArray[np.float64]) -> NDArray[np.float64]:
        d0 = np.linalg.norm(goals_xy_m - before.xy_m, axis=-1)
        d1 = np.linalg.norm(goals_xy_m - after.xy_m, axis=-1)
        return (d0 - d1) - self.time_penalty + self.success_bonus * (d1 < self.goal_radius_m)

    def terminated(self, state: BaseState, goals_xy_m: NDArray[np.float64]) -> NDArray[np.bool_]:
        return np.asarray(np.linalg.norm(goals_xy_m - state.xy_m, axis=-1) < self.goal_radius_m)


def uniform_in_disc(rng: np.random.Generator, radius_m: float) -> NDArray[np.float64]:
    """[2] a point drawn uniformly in the disc of ``radius_m`` around the origin."""
    r = radius_m * np.sqrt(rng.uniform())
    a = rng.uniform(-np.pi, np.pi)
    return np.array([r * np.cos(a), r * np.sin(a)])
