"""A launch_testing test of the node, run by tests/test_ros_launch.py with `launch_test` (not collected by
pytest directly: launch_testing is not installed in the venv).

Starts srender_node from the ament index, waits for it to say ready, and checks after shutdown
that it exited cleanly (status 0 on SIGINT).
"""

import unittest

import launch_ros.actions
import launch_testing.actions
import launch_testing.asserts

import launch


def generate_test_description():
    node = launch_ros.actions.Node(package="srender_ros", executable="srender_node", name="srender",
                                   parameters=[{"width": 64, "height": 48}], output="screen")
    return launch.LaunchDescription([node, launch_testing.actions.ReadyToTest()]), {"node": node}


class TestNodeComesUp(unittest.TestCase):
    def test_node_says_ready(self, proc_output, node):
        proc_output.assertWaitFor("ready: environment", process=node, timeout=120)


@launch_testing.post_shutdown_test()
class TestNodeExitsCleanly(unittest.TestCase):
    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
