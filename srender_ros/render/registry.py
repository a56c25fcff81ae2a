"""Renderers by name: ``cpu``, ``gsplat`` and ``auto`` (gsplat where CUDA works, else cpu)."""

from __future__ import annotations

import logging

from srender_ros.errors import InputError
from srender_ros.render.protocol import Renderer

logger = logging.getLogger(__name__)

#: Every name :func:`get_renderer` accepts.
RENDERER_NAMES: tuple[str, ...] = ("auto", "cpu", "gsplat")


def available_renderers() -> list[str]:
    """Backend names that can run on this machine (``cpu`` always; ``gsplat`` with CUDA + gsplat)."""
    from srender_ros.render.gsplat_backend import gsplat_status

    names = ["cpu"]
    if gsplat_status()[0]:
        names.append("gsplat")
    return names


def get_renderer(name: str = "auto") -> Renderer:
    """A renderer instance by name.

    Args:
        name: "cpu", "gsplat" or "auto" (gsplat when CUDA is usable and gsplat imports, else cpu;
            the choice is logged at INFO).
    Returns:
        A new renderer.
    Raises:
        InputError: an unknown name (the message lists the valid ones).
        BackendUnavailableError: "gsplat" asked for explicitly where it cannot run.
    """
    key = str(name).strip().lower()
    if key == "cpu":
        from srender_ros.render.cpu import CpuRenderer

        return CpuRenderer()
    if key == "gsplat":
        from srender_ros.render.gsplat_backend import GsplatRenderer

        return GsplatRenderer()
    if key == "auto":
        from srender_ros.render.gsplat_backend import GsplatRenderer, gsplat_status

        ok, why = gsplat_status()
        if ok:
            logger.info("renderer auto -> gsplat (%s)", why)
            return GsplatRenderer()
        from srender_ros.render.cpu import CpuRenderer

        logger.info("renderer auto -> cpu (gsplat unavailable: %s)", why)
        return CpuRenderer()
    raise InputError(f"unknown renderer {name!r}; valid names: {', '.join(RENDERER_NAMES)}")
