"""Start the srender node: `ros2 launch srender_ros srender.launch.py [namespace:=robot1] [generator:=diffusers] ...`

Arguments:
  namespace     namespace of the node and its relative topics (default: none)
  params_file   parameter YAML (default: the installed config/srender.yaml)
  use_sim_time  follow /clock (publish_mode paced then paces on simulation time)
  generator     keyframe generator: procedural | diffusers (overrides the YAML)
  device        torch device: auto | cpu | cuda | cuda:N (overrides the YAML)
  environment, width, height, fov_deg, camera_frame_id
                override the YAML when given (empty: keep the YAML's value)
  cameras_file  a sensor rig YAML (e.g. config/rig_mobile_base.yaml) loaded after params_file
                (empty: no rig file)
  lifecycle     true: start the managed (lifecycle) node, unconfigured; drive it with `ros2 lifecycle set`
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


#: Optional overrides: applied only when the argument is given (non-empty), with the node's type.
OPTIONAL_OVERRIDES = {"environment": str, "width": int, "height": int, "fov_deg": float, "camera_frame_id": str}


def _node(context):
    params = [LaunchConfiguration("params_file").perform(context)]
    rig = LaunchConfiguration("cameras_file").perform(context)
    if rig:
        params.append(rig)
    overrides = {
        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
        "generator": LaunchConfiguration("generator"),
        "device": LaunchConfiguration("device"),
    }
    for name, kind in OPTIONAL_OVERRIDES.items():
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = kind(value)
    params.append(overrides)
    return [Node(
        package="srender_ros",
        executable="srender_node",
        name="srender",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        arguments=[f"--lifecycle={LaunchConfiguration('lifecycle').perform(context)}"],
        parameters=params,
    )]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("srender_ros"), "config", "srender.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node and its topics"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="Parameter YAML file"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Use /clock as the node clock"),
        DeclareLaunchArgument("generator", default_value="procedural",
                              description="Keyframe generator: procedural | diffusers"),
        DeclareLaunchArgument("device", default_value="auto", description="Torch device: auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("environment", default_value="", description="Environment prompt (empty: the YAML's)"),
        DeclareLaunchArgument("width", default_value="", description="Image width, pixels (empty: the YAML's)"),
        DeclareLaunchArgument("height", default_value="", description="Image height, pixels (empty: the YAML's)"),
        DeclareLaunchArgument("fov_deg", default_value="", description="Horizontal field of view (empty: the YAML's)"),
        DeclareLaunchArgument("camera_frame_id", default_value="",
                              description="Optical frame id of path/pose images (empty: the YAML's)"),
        DeclareLaunchArgument("cameras_file", default_value="",
                              description="Sensor rig YAML loaded after params_file (empty: none)"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="true: managed node (configure/activate with `ros2 lifecycle set`)"),
        OpaqueFunction(function=_node),
    ])
