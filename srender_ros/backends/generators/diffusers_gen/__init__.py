"""Diffusion keyframes from local diffusers / transformers model folders.

Importing this package is cheap: torch, diffusers and transformers load only when a generator is
made. ``DiffusersGenerator`` is the ``--generator diffusers`` backend; ``multiview`` holds the
plug-in point for camera-conditioned (multi-view) generators. See docs/diffusion.md.
"""

from __future__ import annotations

from srender_ros.backends.generators.diffusers_gen.depth import DepthEstimator, MetricPrior, align_depth, prior_depth
from srender_ros.backends.generators.diffusers_gen.generator import DiffusersGenerator
from srender_ros.backends.generators.diffusers_gen.loading import choose_device, clear_model_cache

__all__ = [
    "DepthEstimator",
    "DiffusersGenerator",
    "MetricPrior",
    "align_depth",
    "choose_device",
    "clear_model_cache",
    "prior_depth",
]
