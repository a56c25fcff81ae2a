"""Train PPO on srender/MobileBase-v0 with RLlib env runners (a local Ray cluster, or join one).

Each env runner is a Ray actor that steps ``--envs-per-runner`` envs as ONE batched
MobileBaseVectorEnv (gym_env_vectorize_mode VECTOR_ENTRY_POINT: one render per step). The dict
observation (rgb, depth, pose, goal) is flattened for RLlib's default MLP; for real training at
84x84 use a CNN module instead (see docs/agents.md).

The world must exist in --world-dir (build it once, off-line):
    python -c "from srender_ros.envs import build_world; print(build_world('a small office', 'worlds'))"

Example (2 CPU cores, a few minutes):
    python examples/rllib_ppo.py --world-dir worlds --iterations 5 --env-runners 1 --envs-per-runner 8
On a cluster (srender_ros installed on every node, the world folder on a shared file system):
    python examples/rllib_ppo.py --address ray://head:10001 --world-dir /shared/worlds --env-runners 32
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

#: The id with its module, so RLlib's env-runner processes import (and so register) the envs.
ENV_ID = "srender_ros.envs:srender/MobileBase-v0"


def build_config(args: argparse.Namespace) -> Any:
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations

    env_config = {"world_dir": args.world_dir, "prompts": args.prompt, "width": args.width, "height": args.height,
                  "max_episode_steps": args.max_episode_steps}
    batch = args.rollout_steps * max(1, args.env_runners) * args.envs_per_runner
    return (
        PPOConfig()
        .environment(ENV_ID, env_config=env_config)
        .env_runners(num_env_runners=args.env_runners, num_envs_per_env_runner=args.envs_per_runner,
                     gym_env_vectorize_mode="vector_entry_point", rollout_fragment_length=args.rollout_steps,
                     num_cpus_per_env_runner=1, env_to_module_connector=lambda env, spaces=None, device=None:
                     FlattenObservations())
        .training(train_batch_size_per_learner=batch, minibatch_size=min(batch, 128), num_epochs=args.epochs,
                  lr=3e-4)
        .learners(num_learners=0)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world-dir", required=True, help="world store holding the prompt's world")
    p.add_argument("--prompt", default="a small office", help="environment prompt (its world must be stored)")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: start a local one)")
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--env-runners", type=int, default=1, help="remote env runners (0: sample in the driver)")
    p.add_argument("--envs-per-runner", type=int, default=8, help="envs per runner, one batched render per step")
    p.add_argument("--rollout-steps", type=int, default=64, help="steps per env per iteration")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--height", type=int, default=32)
    p.add_argument("--max-episode-steps", type=int, default=200)
    p.add_argument("--json", default=None, help="write per-iteration results here")
    args = p.parse_args(argv)

    import ray

    if args.address:
        ray.init(address=args.address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=max(2, args.env_runners + 1), include_dashboard=False, logging_level=logging.WARNING)
    algo = build_config(args).build_algo()
    rows = []
    try:
        for it in range(args.iterations):
            t0 = time.perf_counter()
            result = algo.train()
            runners = result.get("env_runners", {})
            row = {"iteration": it + 1, "seconds": round(time.perf_counter() - t0, 2),
                   "env_steps": int(runners.get("num_env_steps_sampled_lifetime", 0)),
                   "episode_return_mean": runners.get("episode_return_mean"),
                   "episodes": runners.get("num_episodes_lifetime")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        algo.stop()
        ray.shutdown()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
