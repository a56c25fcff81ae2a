"""Renderers by name: ``cpu``, ``gsplat`` and ``auto`` (gsplat where CUDA works, else cpu).

:data:`RENDERERS` is the dict registry front ends read their choices from (``auto`` is resolved by
:func:`get_renderer`). Factories import their backend only when called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from srender_ros.core.ports.render import Renderer
from srender_ros.errors import InputError

logger = logging.getLogger(__name__)


def _cpu() -> Renderer:
    from srender_ros.backends.render.cpu import CpuRenderer

    return CpuRenderer()


def _gsplat() -> Renderer:
    from srender_ros.backends.render.gsplat_backend import GsplatRenderer

    return GsplatRenderer()


#: name -> factory of every concrete renderer.
RENDERERS: dict[str, Callable[[], Renderer]] = {"cpu": _cpu, "gsplat": _gsplat}
#: Every name :func:`get_renderer` accepts.
RENDERER_NAMES: tuple[str, ...] = ("auto", *RENDERERS)


def available_renderers() -> list[str]:
    """Backend names that can run on this machine (``cpu`` always; ``gsplat`` with CUDA + gsplat)."""
    from srender_ros.backends.render.gsplat_backend import gsplat_status

    names = ["cpu"]
    if gsplat_status()[0]:
        names.append("gsplat")
    return names


def resolve_renderer_name(name: str) -> str:
    """The concrete backend ``name`` stands for (``auto`` -> gsplat where it runs, else cpu; logged).

    Raises:
        InputError: an unknown name (the message lists the valid ones).
    """
    key = str(name).strip().lower()
    if key in RENDERERS:
        return key
    if key == "auto":
        from srender_ros.backends.render.gsplat_backend import gsplat_status

        ok, why = gsplat_status()
        if ok:
            logger.info("renderer auto -> gsplat (%s)", why)
            return "gsplat"
        logger.info("renderer auto -> cpu (gsplat unavailable: %s)", why)
        return "cpu"
    raise InputError(f"unknown renderer {name!r}; valid names: {', '.join(RENDERER_NAMES)}")


def get_renderer(name: str = "auto") -> Renderer:
    """A new renderer by name ("cpu", "gsplat" or "auto").

    Raises:
        InputError: an unknown name (the message lists the valid ones).
        BackendUnavailableError: "gsplat" asked for explicitly where it cannot run.
    """
    return RENDERERS[resolve_renderer_name(name)]()
