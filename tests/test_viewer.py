"""World viewer without a browser: the arrays it draws, loading, the server, the CLI and the node bridge."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from srender_ros.cli.main import main
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import quat_wxyz_to_matrix
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.store import WorldStore, world_id_for_prompt
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError, WorldFormatError
from srender_ros.ros.viewer_bridge import NodeViewer
from srender_ros.viewer import PortInUseError, ViewerConfig, WorldViewer
from srender_ros.viewer.data import load_world
from srender_ros.viewer.scene import (
    camera_pose,
    coverage_colours,
    frustum_fov_aspect,
    splats_for_browser,
    subsample_path,
    thumbnail,
)

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a viewer test room"


def random_world(n: int, seed: int = 0) -> GaussianWorld:
    rng = np.random.default_rng(seed)
    return GaussianWorld(rng.normal(size=(n, 3)), rng.normal(size=(n, 4)), rng.normal(-3, 0.5, size=(n, 3)),
                         rng.normal(size=n), rng.normal(size=(n, 4, 3)) * 0.3)


def keyframe(i: int) -> KeyframeRecord:
    rng = np.random.default_rng(i)
    T = np.eye(4)
    T[:3, 3] = [i * 0.5, 0.0, 1.0]
    cam = Intrinsics.from_fov(32, 24, 90.0)
    return KeyframeRecord(i * 3, T, cam, rng.uniform(size=(24, 32, 3)).astype(np.float32),
                          np.full((24, 32), 2.0, np.float32), f"coverage {0.1 * i:.1f}")


def save_world(root: Path, prompt: str = PROMPT, n: int = 500, keyframes: int = 3) -> WorldStore:
    store = WorldStore(root)
    state = store.get_or_create(prompt, {"name": "test"})
    state.replace_world(random_world(n))
    for i in range(keyframes):
        state.add_keyframe(keyframe(i))
    store.save(state)
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()


# ---- the arrays drawn ------------------------------------------------------------------------------
def test_splats_match_the_world_and_subsample_to_the_cap() -> None:
    w = random_world(400, seed=3)
    s = splats_for_browser(w, max_splats=1000)
    assert s.shown == s.total == 400
    R = quat_wxyz_to_matrix(w.quats_wxyz)
    S2 = np.exp(2 * w.log_scales.astype(np.float64))
    expect = R @ (S2[:, :, None] * np.transpose(R, (0, 2, 1)))
    np.testing.assert_allclose(s.covariances, expect, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(s.opacities[:, 0], 1 / (1 + np.exp(-w.opacity_logits)), rtol=1e-6)
    assert s.rgbs.min() >= 0 and s.rgbs.max() <= 1
    small = splats_for_browser(w, max_splats=100)
    again = splats_for_browser(w, max_splats=100)
    assert small.shown == 100 and small.total == 400
    np.testing.assert_array_equal(small.centers, again.centers)  # seeded: the same subset every time
    assert len({tuple(c) for c in small.centers.tolist()}) == 100  # no Gaussian twice
    with pytest.raises(InputError, match="at most"):
        splats_for_browser(w, max_splats=10_000_000)


def test_camera_helpers() -> None:
    T = np.eye(4)
    T[:3, :3] = quat_wxyz_to_matrix(np.array([0.9, 0.1, -0.3, 0.2]))
    T[:3, 3] = [1, 2, 3]
    pose = camera_pose(T)
    np.testing.assert_allclose(quat_wxyz_to_matrix(pose.wxyz), T[:3, :3], atol=1e-12)
    np.testing.assert_array_equal(pose.position, [1, 2, 3])
    fov, aspect = frustum_fov_aspect(Intrinsics.from_fov(640, 480, 90.0))
    assert aspect == pytest.approx(4 / 3) and fov == pytest.approx(2 * np.arctan(0.75))
    assert thumbnail(np.ones((480, 640, 3)), 160).shape == (120, 160, 3)
    cols = coverage_colours(np.array([0.0, 0.5, 1.0, np.nan]))
    assert cols[0].tolist() == [220, 0, 0] and cols[1].tolist() == [220, 220, 0] and cols[2].tolist() == [0, 220, 0]
    assert cols[3].tolist() == [128, 128, 128]
    idx = subsample_path(1000, 10)
    assert idx[0] == 0 and idx[-1] == 999 and len(idx) == 10
    with pytest.raises(InputError):
        camera_pose(np.eye(3))


# ---- loading -------------------------------------------------------------------------------------------
def test_load_world_by_prompt_and_id_and_bad_input(tmp_path: Path) -> None:
    save_world(tmp_path)
    snap = load_world(tmp_path, prompt=PROMPT)
    assert len(snap.world) == 500 and len(snap.keyframes) == 3
    assert load_world(tmp_path, world_id=world_id_for_prompt(PROMPT)).prompt == PROMPT
    with pytest.raises(InputError, match=r"no world for prompt 'nowhere'.*srender world list"):
        load_world(tmp_path, prompt="nowhere")
    with pytest.raises(InputError, match=r"no world with id 0123456789abcdef.*srender world list"):
        load_world(tmp_path, world_id="0123456789abcdef")
    with pytest.raises(InputError, match="16 hex digits"):
        load_world(tmp_path, world_id="xyz")


def test_corrupt_world_is_named_and_nothing_is_served(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_world(tmp_path)
    png = tmp_path / f"w-{world_id_for_prompt(PROMPT)}" / "keyframes" / "kf-0001-rgb.png"
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF
    png.write_bytes(bytes(data))
    with pytest.raises(WorldFormatError, match=r"kf-0001-rgb\.png"):
        load_world(tmp_path, prompt=PROMPT)
    port = free_port()
    rc = main(["world", "view", "--prompt", PROMPT, "--world-dir", str(tmp_path), "--port", str(port),
               "--exit-after", "30"])
    err = capsys.readouterr().err
    assert rc == 2 and "kf-0001-rgb.png" in err and err.count("\n") == 1
    with socket.socket() as s:  # nothing was left listening
        assert s.connect_ex(("127.0.0.1", port)) != 0


# ---- the server -------------------------------------------------------------------------------------------
def test_viewer_serves_the_page_and_redraws(tmp_path: Path) -> None:
    save_world(tmp_path, n=2000)
    snap = load_world(tmp_path, prompt=PROMPT)
    with WorldViewer(ViewerConfig(port=0, max_splats=1500)) as v:
        assert v.url.startswith("http://127.0.0.1:") and v.port > 0
        status, body = get(v.url)
        assert status == 200 and b"<html" in body.lower()
        v.show_world(snap)
        assert v.shown_splats == 1500
        v.show_world(snap)  # again: replaces, does not add
        v.select_keyframe(1)
        v.select_keyframe(99)  # out of range: ignored
        T = np.stack([k.T_world_cam for k in snap.keyframes])
        v.show_trajectory("path", T, np.array([1.0, 0.5, 0.0]), threshold=0.02)
        with pytest.raises(InputError, match="coverage values"):
            v.show_trajectory("path", T, np.array([1.0]))
        v.update_camera("front", T[0], Intrinsics.from_fov(64, 48, 60.0))
        v.update_camera("front", T[1])
        v.set_splats_visible(False)
    with pytest.raises(OSError):
        get(v.url)  # stopped


def test_port_in_use_is_refused_naming_the_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_world(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"port {port} on 127.0.0.1 is in use.*--port"):
            WorldViewer(ViewerConfig(port=port))
        rc = main(["world", "view", "--prompt", PROMPT, "--world-dir", str(tmp_path), "--port", str(port)])
        err = capsys.readouterr().err
        assert rc == 2 and f"port {port}" in err and "--port" in err
    with pytest.raises(InputError, match=r"0\.\.65535"):
        ViewerConfig(port=70000)


def test_cli_unknown_world_suggests_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["world", "view", "--prompt", "no such place", "--world-dir", str(tmp_path), "--port", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "no world for prompt 'no such place'" in err and "srender world list" in err


def test_cli_serves_until_ctrl_c(tmp_path: Path) -> None:
    save_world(tmp_path)
    tum = tmp_path / "path.tum"
    tum.write_text("".join(f"{i * 0.1:.1f} {i * 0.2:.2f} 0 1 0 0 0 1\n" for i in range(6)))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "srender_ros.cli.main", "world", "view", "--prompt", PROMPT,
                             "--world-dir", str(tmp_path), "--port", "0", "--trajectory", str(tum),
                             "--width", "32", "--height", "24", "--renderer", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        text = "".join(lines)
        assert "coverage of 6 poses" in text, text
        assert "3 keyframes) at http://127.0.0.1:" in text, text
        url = text.split(" at ", 1)[1].split()[0]
        assert get(url)[0] == 200
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- the node's viewer (no ROS needed) -----------------------------------------------------------------------
def test_node_viewer_follows_the_store(tmp_path: Path) -> None:
    store = save_world(tmp_path, keyframes=1)
    assert not NodeViewer(0, store, lambda: PROMPT).enabled  # off: nothing served
    NodeViewer(0, store, lambda: PROMPT).camera_pose("cam", np.eye(4))  # and harmless
    lines: list[str] = []
    env = {"prompt": PROMPT}
    with NodeViewer(free_port(), store, lambda: env["prompt"], poll_s=0.05, announce=lines.append) as nv:
        assert nv.enabled and "world viewer at http://127.0.0.1:" in lines[0]
        assert get(nv.url)[0] == 200
        assert not nv.refresh()  # drawn at start, unchanged since
        state = store.get(PROMPT)
        assert state is not None
        state.add_keyframe(keyframe(5))
        assert nv.refresh()  # a new keyframe: redrawn
        nv.camera_pose("trajectory", np.eye(4), Intrinsics.from_fov(64, 48, 90.0))
        nv.camera_pose("bad", np.full((4, 4), np.nan))  # logged, not raised
        env["prompt"] = "a world that does not exist"
        assert not nv.refresh()


def test_node_viewer_port_in_use_names_the_parameter(tmp_path: Path) -> None:
    store = save_world(tmp_path, keyframes=0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(PortInUseError, match="viewer_port"):
            NodeViewer(busy.getsockname()[1], store, lambda: PROMPT)
