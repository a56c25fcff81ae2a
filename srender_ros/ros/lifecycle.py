"""The managed (lifecycle) variant of the srender node: ``srender_node --lifecycle``.

States (https://design.ros2.org/articles/node_lifecycle.html), driven by ``ros2 lifecycle set``:

- unconfigured: parameters only (settable; validated on configure).
- configure: validates the parameters, opens the world store, builds the renderer and loads the
  generator's models; creates publishers, subscriptions, workers and the ``render`` action. A
  failure (e.g. a model folder without a model) logs the reason, frees what was built and goes
  through ErrorProcessing back to unconfigured: fix the parameter and configure again.
- activate: requests are served and outputs published; the world of ``environment`` is announced.
- deactivate: requests are refused with a log line, nothing is published; a request in progress
  stops at its next frame.
- cleanup / shutdown: workers stopped, changed worlds saved, models and store freed, entities
  destroyed.
"""

from __future__ import annotations

import threading
from typing import Any

from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn

from srender_ros.errors import SrenderError
from srender_ros.ros.config import PARAM_NAMES, NodeConfig
from srender_ros.ros.node import SrenderNode, _Stopped

_ENTITY_KINDS = ("publishers", "subscriptions", "services", "clients", "timers")


class SrenderLifecycleNode(LifecycleNodeMixin, SrenderNode):
    """Node ``srender`` as a managed node. Construct after ``rclpy.init``; starts unconfigured."""

    def __init__(self, **kwargs: Any) -> None:
        self._configuring = False
        self._configured = False
        self._active = False
        self._created: dict[str, list[Any]] = {}
        #: Why the last configure failed ('' after a successful one); also logged.
        self.last_error = ""
        SrenderNode.__init__(self, **kwargs)  # declares the parameters; _setup waits for configure
        LifecycleNodeMixin.__init__(self, enable_communication_interface=True)
        self.get_logger().info("unconfigured: `ros2 lifecycle set <node> configure`, then `activate`")

    # ---- SrenderNode hooks -----------------------------------------------------------------------
    def _setup(self) -> None:
        if self._configuring:
            SrenderNode._setup(self)

    @property
    def accepting(self) -> bool:
        return self._active and super().accepting

    def _publish(self, publisher: Any, msg: Any) -> None:
        if not self._active:
            raise _Stopped  # nothing goes out unless active; a path in progress stops here
        super()._publish(publisher, msg)

    def _inactive(self, what: str) -> bool:
        if self._active:
            return False
        self.get_logger().warning(f"{what} ignored: the node is not active (`ros2 lifecycle set` it active)",
                                  throttle_duration_sec=1.0)
        return True

    def _on_trajectory(self, msg: Any) -> None:
        if not self._inactive("trajectory"):
            super()._on_trajectory(msg)

    def _on_render_request(self, msg: Any) -> None:
        if not self._inactive("render_request"):
            super()._on_render_request(msg)

    def _on_camera_pose(self, msg: Any) -> None:
        if not self._inactive("camera_pose"):
            super()._on_camera_pose(msg)

    # ---- transitions -----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        before = self._entities()
        self._configuring = True
        try:
            self._config = NodeConfig.from_params({n: self.get_parameter(n).value for n in PARAM_NAMES})
            SrenderNode._setup(self)
            self._backend.pipeline(self._config)  # loads the generator's models now, not at the first request
        except Exception as exc:
            text = str(exc) if isinstance(exc, SrenderError) else f"{type(exc).__name__}: {exc}"
            self.last_error = f"configure failed: {text}"
            self.get_logger().error(self.last_error)
            self._created = self._new_entities(before)
            self._configured = hasattr(self, "_path_worker")
            self._teardown()
            return TransitionCallbackReturn.ERROR
        finally:
            self._configuring = False
        self._created = self._new_entities(before)
        self._configured = True
        self.last_error = ""
        self.get_logger().info("configured: models loaded, world store open")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        threading.Thread(target=self._announce, args=(self._config.environment,), daemon=True).start()
        self.get_logger().info("active: serving requests")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.get_logger().info("inactive: requests are ignored until activated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.get_logger().info("cleaned up: worlds saved, models freed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Whatever failed has been freed (on_configure tears down itself): back to unconfigured.
        self._active = False
        self._teardown()
        self.get_logger().error(f"error processing: back to unconfigured ({self.last_error or 'see above'})")
        return TransitionCallbackReturn.SUCCESS

    # ---- helpers -----------------------------------------------------------------------------------
    def _entities(self) -> dict[str, set[int]]:
        return {k: {id(e) for e in getattr(self, k)} for k in _ENTITY_KINDS}

    def _new_entities(self, before: dict[str, set[int]]) -> dict[str, list[Any]]:
        return {k: [e for e in getattr(self, k) if id(e) not in before[k]] for k in _ENTITY_KINDS}

    def _teardown(self) -> None:
        """Stop workers, save worlds, free backend and models, destroy what configure created."""
        self._active = False
        if self._configured:
            SrenderNode.shutdown(self)
            action = getattr(self, "_action", None)
            if action is not None:
                action.destroy()
            for remove, cb in ((self.remove_on_set_parameters_callback, self._validate_parameters),
                               (self.remove_post_set_parameters_callback, self._apply_parameters)):
                try:
                    remove(cb)
                except ValueError:  # configure failed before adding it
                    pass
        for kind, items in self._created.items():
            destroy = getattr(self, "destroy_" + kind[:-1])
            for entity in items:
                destroy(entity)
        self._created = {}
        for name in ("_backend", "_action", "_path_worker", "_view_worker"):
            self.__dict__.pop(name, None)
        self._configured = False

    def shutdown(self) -> None:
        """Called by main() at exit: save and stop when configured."""
        self._active = False
        if self._configured:
            self._teardown()
