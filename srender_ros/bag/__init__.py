"""Rosbag2 replay: read a recorded run (MCAP or sqlite3), render a camera along it, write a bag.

Modules: ``tf_tree`` (a pure TF buffer), ``pose_sources`` (camera poses from TF or a pose topic),
``reader`` / ``writer`` (bag IO with clear errors and safe output), ``messages`` (message values
through rosbags' typestore), ``replay`` (the two-pass replay itself).
"""

from __future__ import annotations

from srender_ros.bag.tf_tree import OutsidePolicy, TfBuffer

__all__ = ["OutsidePolicy", "TfBuffer"]
