"""Procedural worlds: a deterministic, unbounded, textured 3D scene per prompt, ray-cast exactly.

The default keyframe source (``--generator procedural``) and the ground truth for measuring
reconstruction quality. It is a stand-in for a generative model, not one: see docs/procedural.md.
"""

from __future__ import annotations

from srender_ros.backends.generators.procedural.generator import (
    DEFAULT_SUPERSAMPLE,
    ProceduralGenerator,
    render_ground_truth,
)
from srender_ros.backends.generators.procedural.scene import (
    GRAMMAR_VERSION,
    SKY_DISTANCE_M,
    Family,
    SceneSpec,
    family_from_prompt,
    normalize_prompt,
    prompt_seed,
    scene_from_prompt,
)

__all__ = [
    "DEFAULT_SUPERSAMPLE",
    "GRAMMAR_VERSION",
    "SKY_DISTANCE_M",
    "Family",
    "ProceduralGenerator",
    "SceneSpec",
    "family_from_prompt",
    "normalize_prompt",
    "prompt_seed",
    "render_ground_truth",
    "scene_from_prompt",
]
