"""launch, launch_ros, launch_testing and the ros2 CLI for tests, set up in a temporary folder.

They are not on PyPI. ../shared/ros2-tools holds wheels built from their sources and the interface
definitions of composition_interfaces (which launch_ros imports). :func:`install` puts the wheels
in ``<tmp>/site`` (pip --target, nothing goes into the project's venv) and generates
composition_interfaces with rosidl (CMake, like our own messages) into ``<tmp>/prefix``. Their
PyPI dependencies (osrf-pycommon, psutil, argcomplete; lark comes with rosidl's lark-parser) are
pinned in requirements.txt. :class:`Ros2Tools` gives the environment in which ``ros2`` finds
them, our package through the ament index of the venv (``make setup`` installs it there), and
the worktree's sources first on PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]



def _find_tools() -> Path:
    # ../shared beside the clone (CI, the lead's checkout); a git worktree one level deeper
    # (/work/wt/<branch>) looks one more level up; SRENDER_ROS2_TOOLS overrides both.
    if os.environ.get("SRENDER_ROS2_TOOLS"):
        return Path(os.environ["SRENDER_ROS2_TOOLS"])
    for base in (REPO.parent, REPO.parent.parent):
        if (base / "shared" / "ros2-tools").is_dir():
            return base / "shared" / "ros2-tools"
    return REPO.parent / "shared" / "ros2-tools"


TOOLS = _find_tools()

_CMAKE = """cmake_minimum_required(VERSION 3.21)
project(composition_interfaces)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(rcl_interfaces REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "srv/ListNodes.srv" "srv/LoadNode.srv" "srv/UnloadNode.srv"
  DEPENDENCIES rcl_interfaces)
include("@REPOINT@")
ament_export_dependencies(rosidl_default_runtime)
ament_package()
"""

_PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>composition_interfaces</name>
  <version>2.3.0</version>
  <description>Services to load and unload composable nodes (generated for tests).</description>
  <maintainer email="maintainers@srender-ros.dev">srender_ros maintainers</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>rcl_interfaces</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
"""


class ToolsUnavailable(Exception):
    """The tools cannot be set up here (folder absent, cmake missing): tests skip with this text."""


@dataclass(frozen=True)
class Ros2Tools:
    """Where the tools were put and how to call them.

    Attributes:
        root: the temporary folder.
        env: environment for subprocesses (PYTHONPATH, AMENT_PREFIX_PATH, LD_LIBRARY_PATH).
        setup_s: seconds the set-up took (pip + rosidl generation).
    """

    root: Path
    env: dict[str, str]
    setup_s: float

    def ros2(self, *args: str) -> list[str]:
        """Command line of ``ros2 ARGS`` with this interpreter."""
        return [sys.executable, str(self.root / "site" / "bin" / "ros2"), *args]

    def run(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``ros2 ARGS`` to completion; stdout and stderr together in ``.stdout``."""
        return subprocess.run(self.ros2(*args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout_s)

    def popen(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start ``ros2 ARGS`` in its own process group (stop it with :func:`stop`), output to ``log``."""
        with open(log, "wb") as out:
            return subprocess.Popen(self.ros2(*args), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)


def install(root: Path) -> Ros2Tools:
    """Install the wheels and generate composition_interfaces under ``root`` (~30-60 s on 2 cores).

    Raises:
        ToolsUnavailable: ../shared/ros2-tools is absent or cmake is not installed.
        subprocess.CalledProcessError: pip or the generation failed (a real error: not skipped).
    """
    wheels = sorted((TOOLS / "wheels").glob("*.whl"))
    if not wheels:
        raise ToolsUnavailable(f"{TOOLS}/wheels not present (launch and ros2cli are not on PyPI)")
    if shutil.which("cmake") is None:
        raise ToolsUnavailable("cmake not installed (needed to generate composition_interfaces)")
    t0 = time.perf_counter()
    site, prefix, build = root / "site", root / "prefix", root / "build"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    *map(str, wheels)], check=True, capture_output=True, text=True)
    src = root / "composition_interfaces"
    shutil.copytree(TOOLS / "interfaces" / "composition_interfaces", src)
    (src / "CMakeLists.txt").write_text(_CMAKE.replace("@REPOINT@", str(REPO / "cmake" / "repoint_wheel_includes.cmake")))
    (src / "package.xml").write_text(_PACKAGE_XML)
    venv = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv))
    log = root / "composition_interfaces.log"
    with open(log, "w") as out:
        for cmd in (["cmake", "-S", str(src), "-B", str(build), "-DBUILD_TESTING=OFF", f"-DCMAKE_PREFIX_PATH={venv}",
                     f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DPython3_EXECUTABLE={sys.executable}"],
                    ["cmake", "--build", str(build), "-j2"], ["cmake", "--install", str(build)]):
            code = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
            if code != 0:
                raise subprocess.CalledProcessError(code, cmd, output=log.read_text()[-3000:])
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    paths = [str(REPO), str(site), str(prefix / "lib" / py / "site-packages")]
    old = os.environ.get("PYTHONPATH")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))
    # Our package is found through the venv's ament index (installed by `make setup`).
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), str(venv)])
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(prefix / "lib"), os.environ.get("LD_LIBRARY_PATH", "")])
    env["ROS_HOME"] = str(root / "ros_home")  # launch logs stay in the temporary folder
    env["PYTHONUNBUFFERED"] = "1"
    return Ros2Tools(root, env, time.perf_counter() - t0)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGINT the process group of ``proc`` (what Ctrl-C does to ros2 launch) and wait; kill if stuck."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait()
    return int(proc.returncode)
