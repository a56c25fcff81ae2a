"""Shared test fixtures. Tests never download anything and never need a GPU unless marked `gpu`."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# Offline by construction: any hub access in a test is a bug.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Keep DDS traffic on this machine and away from other test runs sharing it.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data with real recordings; skips when absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


requires_cuda = pytest.mark.skipif(not cuda_available(), reason="CUDA not available")


@pytest.fixture(scope="session")
def ros2_tools(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """launch, launch_ros and the ros2 CLI in a temporary folder, once per test session (~20-50 s),
    with a ros2 daemon for this session's ROS_DOMAIN_ID (stopped at the end).

    Skips when ../shared/ros2-tools is absent (a user's fresh clone) or rclpy is missing; see
    tests/ros2_tools.py.
    """
    pytest.importorskip("rclpy")
    import ros2_tools as tools

    try:
        t = tools.install(tmp_path_factory.mktemp("ros2_tools"))
    except tools.ToolsUnavailable as exc:
        pytest.skip(str(exc))
    t.run("daemon", "start")
    yield t
    t.run("daemon", "stop")


def wait_for(pred: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``pred`` every 20 ms until it holds or ``timeout_s`` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())
