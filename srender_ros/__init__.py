"""srender_ros: sparse diffusion keyframes + 3D Gaussian worlds + splat rendering, as a ROS 2 node."""

from __future__ import annotations

import pkgutil

# The generated messages (srender_ros.msg) may be installed in another directory than these
# sources (pip editable install + messages built into the venv). Let the package span both.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"
