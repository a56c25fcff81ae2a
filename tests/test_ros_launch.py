"""`ros2 launch srender_ros srender.launch.py` and `ros2 param` for real, as a user runs them.

launch, launch_ros and ros2cli come from ../shared/ros2-tools (set up once per session in a
temporary folder, see tests/ros2_tools.py; skipped when absent). Our package is found through the
ament index of the venv, where `make setup` installs launch/, config/ and lib/srender_ros/.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rclpy")

import ros2_tools as tools

pytestmark = pytest.mark.ros

#: Start-up waits, not speed assertions (the node imports torch; 2 shared cores).
START_TIMEOUT_S = 120.0


def _prefixes() -> list[Path]:
    raw = os.environ.get("AMENT_PREFIX_PATH") or sys.prefix
    return [Path(p) for p in raw.split(os.pathsep) if p]


def test_package_is_installed_where_ros_tools_look_it_up() -> None:
    """`make setup` (venv) and colcon both put these under a prefix in the ament index."""
    found = [p for p in _prefixes() if (p / "share/ament_index/resource_index/packages/srender_ros").is_file()]
    assert found, f"srender_ros not in the ament index of {_prefixes()}: run `make setup` (or source the workspace)"
    prefix = found[0]
    for rel in ("share/srender_ros/package.xml", "share/srender_ros/launch/srender.launch.py",
                "share/srender_ros/config/srender.yaml"):
        assert (prefix / rel).is_file(), f"{prefix / rel} missing: `make setup` installs it"
    for exe in ("srender_node", "srender"):
        path = prefix / "lib" / "srender_ros" / exe
        assert path.is_file() and os.access(path, os.X_OK), f"{path} missing or not executable"
        first = path.read_text().splitlines()[0]
        # The venv route names the venv's interpreter, so `ros2 run` works without activating it.
        if sys.prefix != sys.base_prefix and prefix == Path(sys.prefix):
            assert first == f"#!{Path(sys.prefix) / 'bin' / 'python'}", first


class Launched:
    """A `ros2 launch` (or `ros2 run`) in its own process group, with its output in a log file."""

    def __init__(self, t: tools.Ros2Tools, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.t, self.log = t, log
        run_env = dict(env or t.env)
        self.proc = tools.subprocess.Popen(t.ros2(*args), env=run_env, stdout=open(log, "wb"),
                                           stderr=tools.subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout_s: float = START_TIMEOUT_S) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        m = re.search(pattern, self.output())
        assert m, f"{pattern!r} not in the launch output:\n{self.output()[-3000:]}"
        return m

    def stop(self) -> int:
        return tools.stop(self.proc)


def _env_with(t: tools.Ros2Tools, **extra: str) -> dict[str, str]:
    return dict(t.env, **extra)


@pytest.fixture
def world_env(ros2_tools: tools.Ros2Tools, tmp_path: Path) -> dict[str, str]:
    # world_dir is empty in the default YAML: $SRENDER_WORLD_DIR keeps worlds out of ~/.cache.
    return _env_with(ros2_tools, SRENDER_WORLD_DIR=str(tmp_path / "worlds"))


def _param(t: tools.Ros2Tools, env: dict[str, str], *args: str, discovery_s: float = 60.0) -> Any:
    """``ros2 param ARGS``, repeated while the CLI has not discovered the node yet.

    "ready" in the node's log says its parameter services exist, not that a fresh ``ros2`` process has seen them over
    DDS: on a loaded 2-core machine discovery can take seconds (CI once got "Node not found" right after "ready").
    """
    deadline = time.monotonic() + discovery_s
    while True:
        res = tools.subprocess.run(t.ros2("param", *args), env=env,
                                   stdout=tools.subprocess.PIPE, stderr=tools.subprocess.STDOUT, text=True, timeout=60)
        if "Node not found" not in res.stdout or time.monotonic() > deadline:
            return res
        time.sleep(1.0)


def _eventually(t: tools.Ros2Tools, env: dict[str, str], args: tuple[str, ...], ok: Any, tries: int = 5) -> str:
    """Output of ``ros2 ARGS``, repeated while ``ok(output)`` is false (discovery takes a moment)."""
    out = ""
    for _ in range(tries):
        out = tools.subprocess.run(t.ros2(*args), env=env, capture_output=True, text=True, timeout=60).stdout
        if ok(out):
            break
        time.sleep(1.0)
    return out


@pytest.fixture
def launched_default(ros2_tools: tools.Ros2Tools, world_env: dict[str, str], tmp_path: Path) -> Iterator[Launched]:
    run = Launched(ros2_tools, tmp_path / "launch.log", "launch", "srender_ros", "srender.launch.py", env=world_env)
    run.env = world_env  # type: ignore[attr-defined]
    yield run
    run.stop()


def test_launch_with_the_default_yaml_and_param_set_refusals(launched_default: Launched,
                                                              ros2_tools: tools.Ros2Tools) -> None:
    run, env = launched_default, launched_default.env  # type: ignore[attr-defined]
    run.wait_for_output(r"\[srender\]: ready: environment 'a cluttered warehouse aisle', generator procedural")
    assert "640x480 fov 90.0 deg" in run.output()  # the installed config/srender.yaml was loaded

    bad = _param(ros2_tools, env, "set", "/srender", "width", "0")
    assert "Setting parameter failed" in bad.stdout and "width" in bad.stdout, bad.stdout
    bad = _param(ros2_tools, env, "set", "/srender", "publish_mode", "slowly")
    assert "Setting parameter failed" in bad.stdout and "expected one of ['fast', 'paced']" in bad.stdout, bad.stdout
    bad = _param(ros2_tools, env, "set", "/srender", "image_qos", "sensor_data")
    assert "Setting parameter failed" in bad.stdout and "read-only" in bad.stdout, bad.stdout
    ok = _param(ros2_tools, env, "set", "/srender", "fov_deg", "60.0")
    assert "Set parameter successful" in ok.stdout, ok.stdout
    assert "60.0" in _param(ros2_tools, env, "get", "/srender", "fov_deg").stdout

    assert run.stop() == 0, run.output()[-3000:]
    out = run.output()
    assert "Traceback" not in out, out[-3000:]
    assert re.search(r"srender_node-1\]: process has finished cleanly", out), out[-3000:]


def test_launch_with_namespace_and_sim_time(ros2_tools: tools.Ros2Tools, world_env: dict[str, str],
                                            tmp_path: Path) -> None:
    run = Launched(ros2_tools, tmp_path / "launch.log", "launch", "srender_ros", "srender.launch.py",
                   "namespace:=robot1", "use_sim_time:=true", env=world_env)
    try:
        run.wait_for_output(r"\[robot1\.srender\]: ready")
        nodes = _eventually(ros2_tools, world_env, ("node", "list"), lambda out: "/robot1/srender" in out.split())
        assert "/robot1/srender" in nodes.split(), nodes
        topics = _eventually(ros2_tools, world_env, ("topic", "list"), lambda out: "/robot1/camera/image_raw" in out)
        for name in ("/robot1/trajectory", "/robot1/camera/image_raw", "/robot1/srender/world_status"):
            assert name in topics.split(), topics
        actions = _eventually(ros2_tools, world_env, ("action", "list"), lambda out: "/robot1/render" in out)
        assert "/robot1/render" in actions.split(), actions
        sim = _param(ros2_tools, world_env, "get", "/robot1/srender", "use_sim_time")
        assert "True" in sim.stdout, sim.stdout
    finally:
        assert run.stop() == 0, run.output()[-3000:]


def test_launch_with_a_bad_argument_reports_it_and_ends(ros2_tools: tools.Ros2Tools, world_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    run = Launched(ros2_tools, tmp_path / "launch.log", "launch", "srender_ros", "srender.launch.py",
                   "generator:=bogus", env=world_env)
    try:
        code = run.proc.wait(timeout=START_TIMEOUT_S)
    finally:
        run.stop()
    out = run.output()
    assert "cannot start: parameter generator='bogus': expected one of ['procedural', 'diffusers']" in out, out[-3000:]
    assert re.search(r"srender_node-1\]: process has died .*exit code 2", out), out[-3000:]
    assert "Traceback" not in out
    assert code == 0 or code is not None  # launch itself ends once its only process is gone


def test_ros2_run_starts_the_installed_executable(ros2_tools: tools.Ros2Tools, world_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    run = Launched(ros2_tools, tmp_path / "run.log", "run", "srender_ros", "srender_node", "--ros-args",
                   "-p", "width:=64", "-p", "height:=48", "-r", "__node:=srender_run", env=world_env)
    try:
        run.wait_for_output(r"\[srender_run\]: ready: .* 64x48 ")
    finally:
        code = run.stop()
    assert code == 0, run.output()[-3000:]


def test_launch_lifecycle_and_ros2_lifecycle_set(ros2_tools: tools.Ros2Tools, world_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    run = Launched(ros2_tools, tmp_path / "launch.log", "launch", "srender_ros", "srender.launch.py",
                   "lifecycle:=true", env=world_env)
    try:
        run.wait_for_output(r"\[srender\]: unconfigured")

        def lifecycle(*args: str) -> str:
            return tools.subprocess.run(ros2_tools.ros2("lifecycle", *args), env=world_env, capture_output=True,
                                        text=True, timeout=120).stdout

        got = _eventually(ros2_tools, world_env, ("lifecycle", "get", "/srender"), lambda out: "unconfigured" in out)
        assert "unconfigured [1]" in got, got
        # Each ros2 call costs ~2 s of start-up here: check the state after activate and cleanup only.
        for transition, state in (("configure", ""), ("activate", "active [3]"), ("deactivate", ""),
                                  ("cleanup", "unconfigured [1]")):
            out = lifecycle("set", "/srender", transition)
            assert "Transitioning successful" in out, (transition, out, run.output()[-2000:])
            if state:
                out = lifecycle("get", "/srender")
                assert out.startswith(state), (transition, out)
    finally:
        code = run.stop()
    assert code == 0, run.output()[-3000:]
    assert "Traceback" not in run.output()


def test_launch_testing_file_passes(ros2_tools: tools.Ros2Tools, world_env: dict[str, str]) -> None:
    """tests/launch_testing/srender_ready_launch.py under `launch_test` (launch_testing's runner)."""
    test_file = Path(__file__).parent / "launch_testing" / "srender_ready_launch.py"
    run = tools.subprocess.run([sys.executable, str(ros2_tools.root / "site" / "bin" / "launch_test"), str(test_file)],
                               env=world_env, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "test_node_says_ready" in out and "test_exit_code" in out and "FAILED" not in out, out[-3000:]
