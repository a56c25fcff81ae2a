"""Picks up keyframes other writers (nodes of other robots, the CLI) saved to the shared world_dir.

A daemon thread asks the store every ``period_s`` whether the current environment's stored world
changed (a manifest read: cheap); when it did, the store merges it into the loaded world
(:meth:`srender_ros.core.store.WorldStore.refresh`) and ``on_change(environment)`` is called (the
node then publishes WorldStatus). Nothing here runs on the executor or the publishing path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from srender_ros.core.store import WorldStore
from srender_ros.errors import SrenderError

#: Seconds between checks of the stored world.
WORLD_SYNC_S = 2.0

_log = logging.getLogger(__name__)


class WorldSync:
    """Background refresh of one environment's world (the one ``environment()`` names now)."""

    def __init__(self, store: WorldStore, environment: Callable[[], str], on_change: Callable[[str], None],
                 period_s: float = WORLD_SYNC_S) -> None:
        self._store = store
        self._environment = environment
        self._on_change = on_change
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="srender-world-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self._period_s):
            env = self._environment()
            try:
                if self._store.refresh(env):
                    self._on_change(env)
            except SrenderError as exc:
                _log.warning("world sync of %r failed: %s", env, exc)
            except Exception:  # never let the thread die
                _log.exception("world sync of %r failed", env)
