"""The /diagnostics statuses as plain values (no ROS): levels and messages from the camera statistics."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from srender_ros.ros.diagnostics import CameraStats, Level, Status, to_msg


def test_camera_that_keeps_up_is_ok_and_one_that_falls_behind_warns() -> None:
    ok = CameraStats("srender: camera", "cam", window_s=5.0)
    ok.asked(50)
    ok.published(0.02, n=50)
    (s,) = ok.diagnostics()
    assert s.level == Level.OK and dict(s.values)["achieved rate (Hz)"] == "10.00"

    slow = CameraStats("srender: camera", "cam", window_s=5.0)
    slow.asked(150)
    slow.published(0.2, n=50)
    slow.skipped(100)
    (s,) = slow.diagnostics()
    assert s.level == Level.WARN and s.message.startswith("falling behind: achieved 10.0 Hz of 30.0 Hz asked")
    values = dict(s.values)
    assert values["frames skipped"] == "100" and values["render latency mean (ms)"] == "200.0"

    idle = CameraStats("srender: camera", "cam")
    assert idle.diagnostics()[0].message.startswith("idle")
    idle.last_error = "renderer failed"
    assert idle.diagnostics()[0].level == Level.ERROR


def test_statuses_become_a_diagnostic_array() -> None:
    from builtin_interfaces.msg import Time

    arr = to_msg([Status("srender: camera", Level.WARN, "slow", "cam", (("a", "1"),))], Time(sec=3))
    (st,) = arr.status
    assert (arr.header.stamp.sec, st.level, st.name, st.message, st.hardware_id) == (3, bytes([1]), "srender: camera",
                                                                                    "slow", "cam")
    assert [(kv.key, kv.value) for kv in st.values] == [("a", "1")]
