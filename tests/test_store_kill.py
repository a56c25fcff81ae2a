"""kill -9 of a long `srender render` at several points: the world on disk loads, its checksums
verify, and it holds every keyframe completed before the kill (issue 15 item 6)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory_gen import make_trajectory
from srender_ros.core.trajectory_io import save_tum

PROMPT = "a quiet city street"
KEYFRAME_LINE = re.compile(r"keyframe at pose (\d+) ")


def _render_and_kill(tmp: Path, traj: Path, after_keyframes: int, delay_s: float) -> list[int]:
    """Start a CLI render, SIGKILL it ``delay_s`` after its ``after_keyframes``-th keyframe log line.

    Returns the pose indices of the keyframes it logged before the kill (a keyframe is logged once
    merged, then saved: all but the last logged one are certainly saved).
    """
    cmd = [sys.executable, "-m", "srender_ros.cli.main", "render", "--prompt", PROMPT, "--trajectory", str(traj),
           "--width", "48", "--height", "36", "--renderer", "cpu", "--world-dir", str(tmp / "worlds"), "--no-progress",
           "--metrics-json", str(tmp / "metrics.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    logged: list[int] = []
    line = ""
    deadline = time.monotonic() + 240
    try:
        while len(logged) < after_keyframes:
            assert proc.poll() is None or not lines.empty(), f"render ended before the kill point: {line!r}"
            assert time.monotonic() < deadline, "no keyframes logged in time"
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if m := KEYFRAME_LINE.search(line):
                logged.append(int(m.group(1)))
        time.sleep(delay_s)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    while not lines.empty():  # lines written before the kill, still in the pipe
        if m := KEYFRAME_LINE.search(lines.get()):
            logged.append(int(m.group(1)))
    assert proc.returncode == -signal.SIGKILL
    return logged


@pytest.mark.parametrize(("after_keyframes", "delay_s"), [(1, 0.0), (3, 0.15), (6, 0.4)])
def test_kill_9_loses_at_most_the_keyframe_in_progress(tmp_path: Path, after_keyframes: int, delay_s: float) -> None:
    traj = tmp_path / "drive.tum"
    save_tum(traj, make_trajectory("car", fps=10.0, duration_s=40.0, seed=0))  # 400 poses, far more keyframes
    logged = _render_and_kill(tmp_path, traj, after_keyframes, delay_s)
    store = WorldStore(tmp_path / "worlds")
    if not store.world_dir(store.resolve_id(PROMPT)).is_dir():  # killed during the world's very first save
        assert len(logged) <= 1
        return
    info = store.info(PROMPT, verify=True)  # every file's size and sha256, every cell decoded
    state = store.get(PROMPT)
    assert state is not None and info.keyframes == len(state.keyframes)
    stored = [k.pose_index for k in state.keyframes]
    assert stored == logged[:len(stored)]  # in order, nothing invented
    assert len(stored) >= len(logged) - 1  # at most the keyframe in progress is lost
    assert len(state.world) == info.gaussians > 0
    leftovers = [p for p in (tmp_path / "worlds").iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert len(leftovers) <= 1  # at most the scratch copy of a first save in progress (cleaned up later)
