"""Browser viewer of stored worlds (viser): splats, keyframes, paths with coverage, live cameras.

``srender world view`` (cli/world_cmd.py) and the node's ``viewer_port`` parameter both use
:class:`WorldViewer`. Importing this package does not import viser (that happens when a viewer starts).
"""

from __future__ import annotations

from srender_ros.viewer.scene import DEFAULT_MAX_SPLATS, MAX_SPLATS_LIMIT
from srender_ros.viewer.server import PortInUseError, ViewerConfig, WorldViewer

__all__ = ["DEFAULT_MAX_SPLATS", "MAX_SPLATS_LIMIT", "PortInUseError", "ViewerConfig", "WorldViewer"]
