"""ROS 2 front end: the ``srender`` node (node.py), its config (config.py), message conversions
(conversions.py) and worker queue (worker.py). Only node.py imports rclpy at module level."""
