"""Pure core: cameras, poses, trajectories, Gaussian worlds, scheduling, lifting, the pipeline.

Nothing here imports rclpy, gsplat or diffusers at module top.
"""
