"""One error family for the whole project.

Every error a user can cause is a :class:`SrenderError` whose message says what was wrong and
what to do. Front ends (CLI, node, bag replay) catch ``SrenderError``, report its message without a
traceback and carry on (node) or exit non-zero (CLI).
"""

from __future__ import annotations


class SrenderError(Exception):
    """Base class of every error srender raises on purpose."""


class InputError(SrenderError, ValueError):
    """Bad user input: a value, shape, file content or argument that cannot be used."""


class TrajectoryError(InputError):
    """A trajectory that is empty, non-finite, badly stamped or unreadable."""


class WorldFormatError(SrenderError):
    """A world file (PLY, manifest, keyframe image) that is corrupt, truncated or of a wrong format."""


class BackendUnavailableError(SrenderError):
    """A backend that cannot run here (gsplat without CUDA, a missing optional package)."""


class ModelLoadError(SrenderError):
    """A model folder that is missing, incomplete, of the wrong type, or cannot be loaded."""


class BagError(SrenderError):
    """A rosbag2 problem: unreadable input, unknown topic or frame, output exists."""


class TfError(BagError):
    """A TF lookup that cannot be answered: unknown frame, unconnected trees, a time outside the data
    (raised by the shared TF buffer for bag replay and the node's sensor cameras alike)."""
