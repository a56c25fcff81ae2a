"""The package files a ROS workspace and pip rely on are valid and agree with each other."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_valid_format3_ament_cmake() -> None:
    pkg = parse_package(str(ROOT / "package.xml"))
    pkg.validate()
    assert pkg.name == "srender_ros"
    assert pkg.package_format == 3
    assert [e.content for e in pkg.exports if e.tagname == "build_type"] == ["ament_cmake"]
    deps = {d.name for d in pkg.build_depends + pkg.exec_depends + pkg.buildtool_depends}
    # Every package CMake finds is declared, and the runtime pieces the node imports are too.
    cmake = (ROOT / "CMakeLists.txt").read_text()
    found = set(re.findall(r"find_package\((\w+) REQUIRED", cmake)) - {"Python3"}
    assert found <= deps, f"CMakeLists finds packages package.xml does not declare: {found - deps}"
    assert {"rclpy", "sensor_msgs", "nav_msgs", "geometry_msgs", "std_msgs", "rosidl_default_runtime",
            "launch", "launch_ros"} <= deps
    assert "rosidl_interface_packages" in [g.name for g in pkg.member_of_groups]


def test_versions_agree() -> None:
    pkg = parse_package(str(ROOT / "package.xml"))
    setup_py = (ROOT / "setup.py").read_text()
    assert f'version="{pkg.version}"' in setup_py
    import srender_ros

    assert srender_ros.__version__ == pkg.version


def test_messages_listed_in_cmake_exist() -> None:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    listed = set(re.findall(r'"(msg/\w+\.msg)"', cmake))
    on_disk = {f"msg/{p.name}" for p in (ROOT / "msg").glob("*.msg")}
    assert listed == on_disk


def test_generated_messages_import_with_fields() -> None:
    from srender_ros.msg import KeyframeSchedule, RenderRequest, WorldStatus

    assert {"environment", "trajectory", "camera", "initial_image", "request_id"} <= set(
        RenderRequest.get_fields_and_field_types())
    assert {"coverage", "keyframe_indices", "reasons", "predicted_count"} <= set(
        KeyframeSchedule.get_fields_and_field_types())
    assert WorldStatus.STATE_READY == 2


def _env_with_path(tmp_path: Path, tools: list[str]) -> dict[str, str]:
    """A PATH holding only ``tools`` (symlinked), to simulate a machine that lacks the others."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in tools:
        # python3 may be a shell shim (pyenv): link the real interpreter instead.
        target = str(Path(sys.executable).resolve()) if tool == "python3" else shutil.which(tool)
        assert target, tool
        (bindir / tool).symlink_to(target)
    env = dict(os.environ)
    env["PATH"] = str(bindir)
    env.pop("CC", None)
    env.pop("CXX", None)
    return env


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(ROOT / "scripts/check_env.sh")], env=env, capture_output=True, text=True)


def test_setup_check_passes_here(tmp_path: Path) -> None:
    res = _check(_env_with_path(tmp_path, ["python3", "cmake", "cc", "c++"]))
    assert res.returncode == 0, res.stderr


def test_setup_check_names_missing_cmake(tmp_path: Path) -> None:
    res = _check(_env_with_path(tmp_path, ["python3", "cc", "c++"]))
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "cmake" in res.stderr and "apt-get install cmake" in res.stderr


def test_setup_check_names_missing_compiler(tmp_path: Path) -> None:
    res = _check(_env_with_path(tmp_path, ["python3", "cmake"]))
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "compiler" in res.stderr


def test_setup_check_refuses_old_python(tmp_path: Path) -> None:
    env = _env_with_path(tmp_path, ["cmake", "cc", "c++"])
    fake = tmp_path / "bin" / "python3"
    fake.write_text("#!/bin/sh\ncase \"$1\" in -V) echo 'Python 3.8.10';; *) exit 1;; esac\n")
    fake.chmod(0o755)
    res = _check(env)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "Python >= 3.10" in res.stderr and "3.8.10" in res.stderr
