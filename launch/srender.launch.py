"""Start the srender node: `ros2 launch srender_ros srender.launch.py [namespace:=robot1] [generator:=diffusers] ...`

Arguments:
  namespace     namespace of the node and its relative topics (default: none)
  params_file   parameter YAML (default: the installed config/srender.yaml)
  use_sim_time  follow /clock (publish_mode paced then paces on simulation time)
  generator     keyframe generator: procedural | diffusers (overrides the YAML)
  device        torch device: auto | cpu | cuda | cuda:N (overrides the YAML)
  lifecycle     true: start the managed (lifecycle) node, unconfigured; drive it with `ros2 lifecycle set`
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("srender_ros"), "config", "srender.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node and its topics"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="Parameter YAML file"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Use /clock as the node clock"),
        DeclareLaunchArgument("generator", default_value="procedural",
                              description="Keyframe generator: procedural | diffusers"),
        DeclareLaunchArgument("device", default_value="auto", description="Torch device: auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="true: managed node (configure/activate with `ros2 lifecycle set`)"),
        Node(
            package="srender_ros",
            executable="srender_node",
            name="srender",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            arguments=[["--lifecycle=", LaunchConfiguration("lifecycle")]],
            parameters=[
                LaunchConfiguration("params_file"),
                {
                    "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                    "generator": LaunchConfiguration("generator"),
                    "device": LaunchConfiguration("device"),
                },
            ],
        ),
    ])
