"""What the viewer shows, read through the world store: a whole, verified world, and a path's coverage.

``trajectory_coverage`` is the one place the viewer builds a pipeline (today through
``cli/render_session.build_pipeline``); switch it to the composition root when that lands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.manifest import WorldSnapshot, is_world_id
from srender_ros.core.trajectory import Trajectory
from srender_ros.errors import InputError, WorldFormatError


def load_world(world_dir: str | Path | None, *, prompt: str | None = None, world_id: str | None = None) -> WorldSnapshot:
    """The complete world of a prompt or id, every file checked against its checksum.

    Nothing is returned half-loaded: a damaged world raises before anything is shown.

    Args:
        world_dir: the store root (None: ``$SRENDER_WORLD_DIR`` or ``~/.cache/srender/worlds``).
        prompt / world_id: exactly one of them.
    Raises:
        InputError: no such world (the message points at ``srender world list``).
        WorldFormatError: a file of the world is damaged (named in the message).
    """
    from srender_ros.core.store import WorldStore

    if (prompt is None) == (world_id is None):
        raise InputError("give exactly one of --prompt and --id")
    store = WorldStore(world_dir)
    if world_id is not None:
        wid = world_id.strip()
        if not is_world_id(wid):
            raise InputError(f"--id {world_id!r}: expected 16 hex digits (see `srender world list`)")
        wid = wid.removeprefix("w-")
        if not store.world_dir(wid).is_dir():
            raise InputError(f"no world with id {wid} under {store.root}; `srender world list` shows the stored worlds")
        info = store.info(wid)
        if info.error:
            raise WorldFormatError(info.error)
        prompt = info.prompt
    assert prompt is not None
    state = store.get(prompt)
    if state is None:
        raise InputError(f"no world for prompt {prompt!r} under {store.root}; `srender world list` shows the "
                         "stored worlds (or make one with `srender render --prompt ...`)")
    snap, _version = state.snapshot()
    return snap


def trajectory_coverage(world_dir: str | Path | None, prompt: str, trajectory: Trajectory, intrinsics: Intrinsics,
                        renderer: str = "auto") -> NDArray[np.float64]:
    """[B] covered fraction of each pose's view in the stored world of ``prompt`` (no generation).

    The same measure the coverage scheduler uses (``Pipeline.coverage_of``: low-resolution alpha,
    with too-coarse pixels counting partly as uncovered).
    """
    from srender_ros.app.compose import AppConfig, build_pipeline

    pipeline = build_pipeline(AppConfig(world_dir=world_dir, renderer=renderer))
    return np.asarray(pipeline.coverage_of(prompt, intrinsics, trajectory.T_world_cam), dtype=np.float64)
