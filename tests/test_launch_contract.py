"""What launch/srender.launch.py relies on (launch itself is not on PyPI, so the file is not run here):
the executable it names is installed by setup.py and CMake, its arguments exist, the params file
it loads is installed and loads into the real node with exactly the node's declared parameters."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from srender_ros.ros.config import PARAM_NAMES, SPEC_BY_NAME

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "srender.launch.py"
PARAMS = REPO / "config" / "srender.yaml"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def _kw(call: ast.Call, key: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


def _const(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def test_launch_file_starts_our_executable_under_the_node_name(launch_tree: ast.Module) -> None:
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in launch_tree.body)
    nodes = _calls(launch_tree, "Node")
    assert len(nodes) == 1
    node = nodes[0]
    assert (_const(_kw(node, "package")), _const(_kw(node, "executable")), _const(_kw(node, "name"))) == \
        ("srender_ros", "srender_node", "srender")

    setup = ast.parse((REPO / "setup.py").read_text())
    scripts = [_const(e) for call in _calls(setup, "setup") for k in call.keywords if k.arg == "entry_points"
               for v in ast.walk(k.value) if isinstance(v, ast.List) for e in v.elts]
    entry = next(s for s in scripts if isinstance(s, str) and s.split("=")[0].strip() == "srender_node")
    module, func = entry.split("=")[1].strip().split(":")
    assert (module, func) == ("srender_ros.ros.node", "main")
    mod = __import__(module, fromlist=[func])
    assert callable(getattr(mod, func))

    cmake = (REPO / "CMakeLists.txt").read_text()
    # colcon route: scripts/srender_node as is; venv route: a copy naming the venv's interpreter.
    programs = re.findall(r"install\(PROGRAMS([^)]*)DESTINATION\s+lib/\$\{PROJECT_NAME\}", cmake)
    assert any("scripts/srender_node" in p.split() for p in programs)
    script = REPO / "scripts" / "srender_node"
    assert os.access(script, os.X_OK) and "from srender_ros.ros.node import main" in script.read_text()


def test_launch_arguments_and_overrides_match_the_node(launch_tree: ast.Module) -> None:
    args = {_const(c.args[0]) for c in _calls(launch_tree, "DeclareLaunchArgument")}
    assert {"namespace", "params_file", "use_sim_time", "generator", "device", "environment", "width", "height",
            "fov_deg", "camera_frame_id", "cameras_file"} <= args
    # Optional overrides (applied only when given) are listed in OPTIONAL_OVERRIDES = {name: type}.
    optional = next(n.value for n in launch_tree.body if isinstance(n, ast.Assign)
                    and getattr(n.targets[0], "id", None) == "OPTIONAL_OVERRIDES")
    assert isinstance(optional, ast.Dict)
    optional_keys = {_const(k) for k in optional.keys}
    used = {_const(c.args[0]) for c in _calls(launch_tree, "LaunchConfiguration")} - {None} | optional_keys
    assert used == args, "every declared argument is used and every used one declared"
    overrides = [d for d in ast.walk(launch_tree) if isinstance(d, ast.Dict) and d is not optional]
    keys = {_const(k) for d in overrides for k in d.keys} | optional_keys
    assert keys and keys <= set(PARAM_NAMES) | {"use_sim_time"}
    for k, v in zip(optional.keys, optional.values, strict=True):
        assert getattr(v, "id", None) == SPEC_BY_NAME[str(_const(k))].kind.__name__, "converted to the node's type"
    # The default params file is the installed config/srender.yaml: both build routes install it.
    text = LAUNCH.read_text()
    assert 'get_package_share_directory("srender_ros"), "config", "srender.yaml"' in text
    assert re.search(r"install\(DIRECTORY[^)]*\bconfig\b[^)]*DESTINATION share/\$\{PROJECT_NAME\}",
                     (REPO / "CMakeLists.txt").read_text())
    assert '(f"share/{package_name}/config", glob("config/*.yaml"))' in (REPO / "setup.py").read_text()


@pytest.mark.ros
def test_params_file_loads_into_the_node_with_exactly_its_declared_parameters(tmp_path: Path) -> None:
    rclpy = pytest.importorskip("rclpy")
    from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import parameter_value_to_python

    yaml_params = yaml.safe_load(PARAMS.read_text())["/**"]["ros__parameters"]
    ns = f"/contract{os.getpid()}"
    cmd = [sys.executable, "-m", "srender_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}",
           "--params-file", str(PARAMS), "-p", f"world_dir:={tmp_path}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    probe = rclpy.create_node("srender_contract_probe", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(probe)
    spinner = threading.Thread(target=lambda: executor.spin(), daemon=True)
    spinner.start()

    def call(srv_type: type, name: str, req: object) -> object:
        client = probe.create_client(srv_type, f"{ns}/srender/{name}")
        deadline = time.monotonic() + 120
        while not client.service_is_ready():
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            assert time.monotonic() < deadline, f"{name} service never appeared"
            time.sleep(0.05)
        fut = client.call_async(req)
        while not fut.done():
            assert time.monotonic() < deadline, f"{name} call timed out"
            time.sleep(0.02)
        return fut.result()

    try:
        names = set(call(ListParameters, "list_parameters", ListParameters.Request()).result.names)
        declared = names - {"use_sim_time", "start_type_description_service"}
        from srender_ros.ros.sensor_config import SENSOR_PARAMS

        assert declared == set(yaml_params) == set(PARAM_NAMES) | set(SENSOR_PARAMS)
        order = list(PARAM_NAMES)
        values = call(GetParameters, "get_parameters", GetParameters.Request(names=order)).values
        got = {n: parameter_value_to_python(v) for n, v in zip(order, values)}
        expected = {k: v for k, v in dict(yaml_params, world_dir=str(tmp_path)).items() if k in PARAM_NAMES}
        assert got == expected
        descs = call(DescribeParameters, "describe_parameters", DescribeParameters.Request(names=order)).descriptors
        for d in descs:
            spec = SPEC_BY_NAME[d.name]
            assert d.description == spec.description and d.read_only == (not spec.runtime)
            if spec.kind is int and spec.min_value is not None:
                assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == (spec.min_value, spec.max_value)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
        executor.shutdown(timeout_sec=1.0)
        probe.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert proc.returncode == 0 and "Traceback" not in out, out
