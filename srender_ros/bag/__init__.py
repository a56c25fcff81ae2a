"""Bag replay: read a recorded run (rosbag2 MCAP / sqlite3, or a ROS 1 bag), render a camera along it,
write a rosbag2.

Modules: ``pose_sources`` (camera poses from TF or a pose topic; the TF buffer itself is
``srender_ros.engine.tf_buffer``, shared with the node's sensor cameras), ``reader`` /
``writer`` (bag IO with clear errors and safe output), ``ros1`` (a ROS 1 bag read as ROS 2 types
and CDR), ``messages`` (message values through rosbags' typestore), ``replay`` (the two-pass
replay itself).
"""

from __future__ import annotations

from srender_ros.engine.tf_buffer import OutsidePolicy, TfBuffer

__all__ = ["OutsidePolicy", "TfBuffer"]
