"""Keyframe generators by name. Heavy imports happen only when a generator is made."""

from __future__ import annotations

from typing import Any

from srender_ros.errors import InputError
from srender_ros.generators.protocol import KeyframeGenerator

GENERATORS = ("procedural", "diffusers")


def make_generator(name: str, **settings: Any) -> KeyframeGenerator:
    """Build the generator ``name`` with its settings.

    procedural: ``supersample``. diffusers: ``model_path`` (inpainting pipeline folder),
    ``depth_model_path``, ``t2i_model_path``, ``device``, ``steps``, ``guidance_scale``,
    ``refine_strength``, ``seed`` (see docs/diffusion.md). Unset (None) settings take defaults.

    Raises:
        InputError: unknown generator name.
        ModelLoadError / BackendUnavailableError: from the diffusers generator.
    """
    settings = {k: v for k, v in settings.items() if v is not None}
    if name == "procedural":
        from srender_ros.generators.procedural import ProceduralGenerator

        allowed = {"supersample"}
        return ProceduralGenerator(**{k: v for k, v in settings.items() if k in allowed})
    if name == "diffusers":
        from srender_ros.generators.diffusers_gen import DiffusersGenerator

        return DiffusersGenerator(**settings)
    raise InputError(f"unknown generator {name!r}; choose one of: {', '.join(GENERATORS)}")
