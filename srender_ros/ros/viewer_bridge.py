"""The node's browser viewer (parameter ``viewer_port``; 0 = off): its current world and live camera poses.

Kept apart from node.py so the node only makes one of these, reports camera poses to it, and
closes it. No rclpy here: it watches the world store and is tested without ROS.

The world shown is the one of the node's current ``environment``; a thread checks the store every
``poll_s`` seconds and redraws when the world changed (new keyframes, another environment). Camera
poses are drawn as they are reported (cheap: a frustum moves).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.errors import SrenderError

if TYPE_CHECKING:
    from srender_ros.core.store import WorldStore
    from srender_ros.viewer.server import WorldViewer

log = logging.getLogger(__name__)


class NodeViewer:
    """A :class:`~srender_ros.viewer.WorldViewer` kept in step with a node, or nothing when ``port`` is 0.

    Args:
        port: TCP port; 0 disables the viewer (every method is then a no-op).
        store: the node's world store.
        environment: returns the node's current environment prompt.
        host: interface to bind (127.0.0.1: this machine only).
        poll_s: how often the store is checked for a changed world, seconds.
        max_splats: Gaussians sent to the browser at most.
        announce: called once with a line giving the URL (e.g. the node logger's ``info``).
    Raises:
        PortInUseError: the port is taken (naming the parameter). BackendUnavailableError: viser is not installed.
    """

    def __init__(self, port: int, store: WorldStore, environment: Callable[[], str], host: str = "127.0.0.1",
                 poll_s: float = 1.0, max_splats: int = 300_000, announce: Callable[[str], Any] | None = None) -> None:
        self._viewer: WorldViewer | None = None
        self._stop = threading.Event()
        self._store = store
        self._environment = environment
        self._poll_s = float(poll_s)
        self._shown: tuple[str, int, int] | None = None  # (environment, id of its state, state version)
        self._last_error = ""
        self._thread: threading.Thread | None = None
        if port == 0:
            return
        from srender_ros.viewer.server import PortInUseError, ViewerConfig, WorldViewer

        try:
            self._viewer = WorldViewer(ViewerConfig(host=host, port=port, max_splats=max_splats))
        except PortInUseError:
            raise PortInUseError(f"viewer_port {port}: the port is in use on {host} by another program; set the "
                                 "parameter viewer_port to a free port (or 0 for no viewer)") from None
        if announce is not None:
            announce(f"world viewer at {self._viewer.url} (the current environment's world, live camera poses)")
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="srender-viewer", daemon=True)
        self._thread.start()

    @property
    def enabled(self) -> bool:
        """True when a viewer is serving."""
        return self._viewer is not None

    @property
    def url(self) -> str:
        """Address of the page ('' when disabled)."""
        return self._viewer.url if self._viewer is not None else ""

    def camera_pose(self, name: str, T_world_cam: NDArray[np.floating], intrinsics: Intrinsics | None = None) -> None:
        """Show camera ``name`` at an optical [4, 4] pose (errors are logged, never raised: a view must not
        stop the node's publishing)."""
        if self._viewer is None:
            return
        try:
            self._viewer.update_camera(name, np.asarray(T_world_cam, dtype=np.float64), intrinsics)
        except Exception as exc:  # the browser side is best effort
            self._report(f"camera {name}: {type(exc).__name__}: {exc}")

    def refresh(self) -> bool:
        """Redraw the world if it changed since last shown; returns True when it redrew."""
        if self._viewer is None:
            return False
        env = self._environment()
        try:
            state = self._store.get(env)
        except SrenderError as exc:
            self._report(f"world of {env!r}: {exc}")
            return False
        if state is None:
            return False
        key = (env, id(state), state.version)
        if key == self._shown:
            return False
        snap, version = state.snapshot()
        self._viewer.show_world(snap)
        self._shown = (env, id(state), version)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.refresh()
            except Exception as exc:  # keep watching: the next change may draw fine
                self._report(f"redraw failed: {type(exc).__name__}: {exc}")

    def _report(self, text: str) -> None:
        if text != self._last_error:  # once per distinct problem, not once per poll
            log.warning("viewer: %s", text)
            self._last_error = text

    def close(self) -> None:
        """Stop watching and serving (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._viewer is not None:
            self._viewer.close()

    def __enter__(self) -> NodeViewer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
