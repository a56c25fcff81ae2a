"""Refining a stored world in place, without blocking renders of it meanwhile."""

from __future__ import annotations

import dataclasses
import logging

from srender_ros.core.ports.refine import RefineConfig, Refiner, RefineReport
from srender_ros.core.store import WorldState
from srender_ros.errors import InputError

log = logging.getLogger(__name__)


def refine_state(state: WorldState, refiner: Refiner, config: RefineConfig | None = None) -> RefineReport:
    """Refine ``state.world`` against ``state.keyframes`` and swap the result in (marks it dirty).

    The optimization runs without holding ``state.lock``, so renders of the current world go on
    meanwhile; if the world changed in the meantime (a new keyframe was merged), the result is
    dropped, the world left as it is, and the report says ``applied=False``.

    Args:
        state: a loaded world from the WorldStore.
        refiner: the refinement backend.
        config: refinement settings (defaults when None).
    Returns:
        The report (also logged by the backend).
    """
    if not isinstance(state, WorldState):
        raise InputError(f"refine_state: expected a WorldState, got {type(state).__name__}")
    with state.lock:
        world, keyframes, version = state.world, list(state.keyframes), state.version
    new, report = refiner.refine(world, keyframes, config or RefineConfig())
    if report.iterations == 0 and report.backend == "none":
        return dataclasses.replace(report, applied=False)
    with state.lock:
        if state.version != version:
            log.warning("refine: world %s changed during refinement; result dropped", state.world_id)
            return dataclasses.replace(report, applied=False, note="the world changed during refinement; result dropped")
        state.replace_world(new)
    return report
