"""The learned keyframe-count predictor (SRENDER section 3.1).

A small transformer reads a trajectory (one token per pose) and, optionally, the first view of the
world, and predicts how many keyframes the coverage scheduler would need. The pipeline uses it for
``scheduler=learned`` on a new world: the count sets the budget and a uniform placement, and the
coverage rule still adds keyframes where holes remain. See docs/learned.md.

Submodules import torch; import them directly (``srender_ros.backends.learned.predictor``) where needed.
"""

from __future__ import annotations
