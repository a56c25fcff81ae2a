"""Keyframe generators by name (:data:`GENERATORS`, the dict registry). Heavy imports happen only when one is made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from srender_ros.core.ports.generate import KeyframeGenerator
from srender_ros.errors import InputError


def _procedural(**settings: Any) -> KeyframeGenerator:
    from srender_ros.backends.generators.procedural import ProceduralGenerator

    allowed = {"supersample"}
    return ProceduralGenerator(**{k: v for k, v in settings.items() if k in allowed})


def _diffusers(**settings: Any) -> KeyframeGenerator:
    from srender_ros.backends.generators.diffusers_gen import DiffusersGenerator

    return DiffusersGenerator(**settings)


#: name -> factory(**settings).
GENERATORS: dict[str, Callable[..., KeyframeGenerator]] = {"procedural": _procedural, "diffusers": _diffusers}
#: The names, in the order front ends list them (the first is the default).
GENERATOR_NAMES: tuple[str, ...] = tuple(GENERATORS)


def make_generator(name: str, **settings: Any) -> KeyframeGenerator:
    """Build the generator ``name`` with its settings.

    procedural: ``supersample``. diffusers: ``model_path`` (inpainting pipeline folder),
    ``depth_model_path``, ``t2i_model_path``, ``device``, ``steps``, ``guidance_scale``,
    ``refine_strength``, ``seed`` (see docs/diffusion.md). Unset (None) settings take defaults.

    Raises:
        InputError: unknown generator name.
        ModelLoadError / BackendUnavailableError: from the diffusers generator.
    """
    factory = GENERATORS.get(name)
    if factory is None:
        raise InputError(f"unknown generator {name!r}; choose one of: {', '.join(GENERATOR_NAMES)}")
    return factory(**{k: v for k, v in settings.items() if v is not None})
