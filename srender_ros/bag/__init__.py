"""Rosbag2 replay: read a recorded run (MCAP or sqlite3), render a camera along it, write a bag.

Modules: ``pose_sources`` (camera poses from TF or a pose topic; the TF buffer itself is
``srender_ros.engine.tf_buffer``, shared with the node's sensor cameras), ``reader`` /
``writer`` (bag IO with clear errors and safe output), ``messages`` (message values through
rosbags' typestore), ``replay`` (the two-pass replay itself).
"""

from __future__ import annotations

from srender_ros.engine.tf_buffer import OutsidePolicy, TfBuffer

__all__ = ["OutsidePolicy", "TfBuffer"]
