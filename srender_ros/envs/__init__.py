"""Gymnasium environments rendered by srender; importing this module registers them.

Ids:
    ``srender/MobileBase-v0``: a camera on a mobile base (action: forward speed, yaw rate) with a
    goal-reaching task. ``gym.make_vec("srender/MobileBase-v0", num_envs=N,
    vectorization_mode="vector_entry_point")`` gives the batched VectorEnv (one render per step).

See docs/agents.md. Worlds come from the world store; build one off-line with
:func:`srender_ros.envs.world_access.build_world` and use ``generate=False`` (the fast path).
"""

from __future__ import annotations

import gymnasium as gym

from srender_ros.envs.sim import EnvConfig
from srender_ros.envs.tasks import BaseState, GoalReachingTask, Task
from srender_ros.envs.world_access import build_world

__all__ = ["ENV_IDS", "BaseState", "EnvConfig", "GoalReachingTask", "Task", "build_world"]

ENV_IDS = ("srender/MobileBase-v0",)

if "srender/MobileBase-v0" not in gym.registry:
    gym.register(
        id="srender/MobileBase-v0",
        entry_point="srender_ros.envs.mobile_base:MobileBaseEnv",
        vector_entry_point="srender_ros.envs.mobile_base:MobileBaseVectorEnv",
    )
