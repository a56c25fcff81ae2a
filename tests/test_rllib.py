"""One tiny PPO iteration of examples/rllib_ppo.py with a remote env runner on a local Ray cluster.

ray[rllib] is pinned in requirements.txt; where it is not installed the test skips and says so.
Takes ~20-30 s on 2 cores (Ray start-up dominates).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from test_envs import ring_room

from srender_ros.core.store import WorldStore

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray.rllib") is None,
                                reason="ray[rllib] is not installed (pip install 'ray[rllib]')")


def test_one_ppo_iteration_with_an_env_runner(tmp_path: Path) -> None:
    store = WorldStore(tmp_path / "worlds")
    state = store.get_or_create("a ring room")
    state.replace_world(ring_room(0))
    store.save(state)
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    r = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "rllib_ppo.py"), "--world-dir",
                        str(tmp_path / "worlds"), "--prompt", "a ring room", "--iterations", "1", "--env-runners", "1",
                        "--envs-per-runner", "2", "--rollout-steps", "8", "--epochs", "1", "--width", "16", "--height",
                        "12", "--json", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert rows[0]["iteration"] == 1 and rows[0]["env_steps"] >= 16
