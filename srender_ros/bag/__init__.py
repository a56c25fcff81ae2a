"""Bag replay: read a recorded run (rosbag2 MCAP / sqlite3, or a ROS 1 bag), render a camera along it,
write a rosbag2.

Modules: ``tf_tree`` (a pure TF buffer), ``pose_sources`` (camera poses from TF or a pose topic),
``reader`` / ``writer`` (bag IO with clear errors and safe output), ``ros1`` (a ROS 1 bag read as
ROS 2 types and CDR), ``messages`` (message values through rosbags' typestore), ``replay`` (the
two-pass replay itself).
"""

from __future__ import annotations

from srender_ros.bag.tf_tree import OutsidePolicy, TfBuffer

__all__ = ["OutsidePolicy", "TfBuffer"]
