"""NodeConfig: the srender node's parameters as one validated, frozen value (no rclpy here).

Every field of :class:`NodeConfig` is one ROS parameter of the node, with the same name, type and
default; :data:`PARAM_SPECS` carries each parameter's description, choices or range and whether it
may change while the node runs. ``config/srender.yaml`` lists the same names with the same
defaults (a test checks all three agree).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from srender_ros.app.options import REFINE_ITERATIONS_PER_CHUNK, pipeline_default
from srender_ros.backends.generators.registry import GENERATOR_NAMES
from srender_ros.backends.render.registry import RENDERER_NAMES
from srender_ros.engine.scheduler import SchedulerKind
from srender_ros.errors import InputError

GENERATORS = GENERATOR_NAMES
RENDERERS = RENDERER_NAMES
SCHEDULERS = tuple(k.value for k in SchedulerKind)
POSE_FRAMES = ("body", "optical")
PUBLISH_MODES = ("fast", "paced")
IMAGE_QOS = ("reliable", "sensor_data")
COMPRESSED_FORMATS = ("jpeg", "png")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class NodeConfig:
    """The node's configuration; field = ROS parameter (see PARAM_SPECS for the descriptions)."""

    environment: str = "a cluttered warehouse aisle"
    generator: str = "procedural"
    model_path: str = ""
    depth_model_path: str = ""
    t2i_model_path: str = ""
    device: str = "auto"
    renderer: str = "auto"
    world_dir: str = ""
    memory_budget_mb: int = 2048
    width: int = 640
    height: int = 480
    fov_deg: float = 90.0
    camera_frame_id: str = "camera_optical_frame"
    world_frame_id: str = ""
    pose_frame: str = "body"
    path_rate_hz: float = 30.0
    # The pipeline's settings: defaults come from PipelineConfig (app/options.py maps them).
    scheduler: str = pipeline_default("scheduler")
    coverage_threshold: float = pipeline_default("coverage_threshold")
    uniform_keyframes: int = pipeline_default("uniform_keyframes")
    max_keyframes_per_request: int = pipeline_default("max_keyframes_per_request")
    keyframe_share: float = pipeline_default("keyframe_share")
    keyframe_burst: int = pipeline_default("keyframe_burst")
    chunk_size: int = pipeline_default("chunk_size")
    seed: int = pipeline_default("seed")
    coverage_scale: float = pipeline_default("coverage_scale")
    coverage_alpha: float = pipeline_default("coverage_alpha")
    keyframe_overscan: float = pipeline_default("keyframe_overscan")
    keyframe_lookahead: int = pipeline_default("keyframe_lookahead")
    lookahead_max_uncovered: float = pipeline_default("lookahead_max_uncovered")
    max_footprint_px: float = pipeline_default("max_footprint_px")
    coarse_weight: float = pipeline_default("coarse_weight")
    fill_holes: bool = pipeline_default("fill_holes")
    inbetween: str = pipeline_default("inbetween")
    depth_source: str = pipeline_default("depth_source")
    camera_height_m: float = pipeline_default("camera_height_m")
    refine: bool = False
    refine_iterations: int = REFINE_ITERATIONS_PER_CHUNK
    publish_mode: str = "fast"
    image_qos: str = "reliable"
    qos_depth: int = 100
    publish_depth: bool = True
    queue_depth: int = 2
    camera_pose_generate: bool = True
    compressed_format: str = "jpeg"
    jpeg_quality: int = 80
    viewer_port: int = 0

    def __post_init__(self) -> None:
        for spec in PARAM_SPECS:
            spec.check(getattr(self, spec.name))
        if not self.environment.strip():
            raise InputError("parameter environment: must not be empty (it is the prompt of the world to render)")
        if not self.camera_frame_id.strip():
            raise InputError("parameter camera_frame_id: must not be empty (it is the images' optical frame)")
        if not _DEVICE_RE.match(self.device):
            raise InputError(f"parameter device={self.device!r}: expected auto, cpu, cuda or cuda:N")
        if self.generator == "diffusers":
            for name in ("model_path", "depth_model_path"):
                if not getattr(self, name).strip():
                    raise InputError(f"parameter {name}: generator 'diffusers' needs a local model folder here "
                                     "(set it, or use generator 'procedural')")

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_params(cls, values: dict[str, Any]) -> NodeConfig:
        """Build from a name -> value mapping (unknown names are an error, missing ones default)."""
        unknown = sorted(set(values) - set(PARAM_NAMES))
        if unknown:
            raise InputError(f"unknown parameter(s) {unknown}; known: {list(PARAM_NAMES)}")
        return cls(**{k: _coerce(SPEC_BY_NAME[k], v) for k, v in values.items()})

    def with_changes(self, changes: dict[str, Any]) -> NodeConfig:
        """A copy with ``changes`` applied and validated (raises InputError naming the parameter)."""
        unknown = sorted(set(changes) - set(PARAM_NAMES))
        if unknown:
            raise InputError(f"unknown parameter(s) {unknown}")
        return replace(self, **{k: _coerce(SPEC_BY_NAME[k], v) for k, v in changes.items()})

    def as_params(self) -> dict[str, Any]:
        """name -> value, in declaration order (what config/srender.yaml holds)."""
        return asdict(self)

    # ---- derived values -----------------------------------------------------------------------
    @property
    def world_path(self) -> Path | None:
        """world_dir with ``~`` and environment variables expanded; None = the store's default root."""
        if not self.world_dir.strip():
            return None
        return Path(os.path.expandvars(os.path.expanduser(self.world_dir)))

    @property
    def memory_budget_bytes(self) -> int:
        return self.memory_budget_mb * 1024 * 1024

    def check_model_folders(self) -> None:
        """Raise InputError when a model folder the generator needs does not exist.

        Only existence is checked here (cheap, safe in a parameter callback); whether the folder
        holds a loadable model is found out when the generator is built.
        """
        if self.generator != "diffusers":
            return
        for name in ("model_path", "depth_model_path", "t2i_model_path"):
            value = getattr(self, name)
            if value and not Path(os.path.expanduser(value)).is_dir():
                raise InputError(f"parameter {name}={value!r}: no such folder; point it at a local model "
                                 "folder (models are never downloaded)")


@dataclass(frozen=True)
class ParamSpec:
    """How one NodeConfig field is declared as a ROS parameter.

    Attributes:
        name: parameter (and field) name.
        kind: Python type of the value: str, int, float or bool.
        description: shown by ``ros2 param describe``.
        choices: allowed values of a string parameter (empty = any).
        min_value, max_value: inclusive range of a numeric parameter (None = unbounded).
        runtime: whether it may change while the node runs (False -> declared read-only).
    """

    name: str
    kind: type
    description: str
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    runtime: bool = True

    def check(self, value: Any) -> None:
        """Raise InputError when ``value`` is not acceptable for this parameter."""
        ok_type = isinstance(value, self.kind) and not (self.kind is not bool and isinstance(value, bool))
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok_type = True
        if not ok_type:
            raise InputError(f"parameter {self.name}={value!r}: expected a {self.kind.__name__}")
        if self.choices and value not in self.choices:
            raise InputError(f"parameter {self.name}={value!r}: expected one of {list(self.choices)}")
        if self.kind in (int, float):
            if not math.isfinite(float(value)):
                raise InputError(f"parameter {self.name}={value!r}: must be finite")
            too_low = self.min_value is not None and value < self.min_value
            too_high = self.max_value is not None and value > self.max_value
            if too_low or too_high:
                raise InputError(f"parameter {self.name}={value!r}: must lie in [{self.min_value}, {self.max_value}]")

    @property
    def range_text(self) -> str:
        """Human-readable allowed values (for docs and descriptors)."""
        if self.choices:
            return " | ".join(self.choices)
        if self.min_value is not None or self.max_value is not None:
            return f"{self.min_value} .. {self.max_value}"
        return ""


def _coerce(spec: ParamSpec, value: Any) -> Any:
    # ROS delivers integers for float parameters written without a decimal point in YAML.
    if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("environment", str, "Environment prompt of `trajectory` and `camera_pose` requests; one world per "
              "prompt. May change while running."),
    ParamSpec("generator", str, "Keyframe generator: procedural (built-in, no model) or diffusers (local model).",
              choices=GENERATORS),
    ParamSpec("model_path", str, "Local diffusers inpainting model folder (generator diffusers)."),
    ParamSpec("depth_model_path", str, "Local monocular depth model folder (generator diffusers)."),
    ParamSpec("t2i_model_path", str, "Optional local text-to-image model folder for the first keyframe of a new world."),
    ParamSpec("device", str, "Torch device of the diffusion and depth models: auto, cpu, cuda or cuda:N.", runtime=False),
    ParamSpec("renderer", str, "Renderer backend: auto (gsplat on CUDA, else cpu), cpu or gsplat.",
              choices=RENDERERS, runtime=False),
    ParamSpec("world_dir", str, "Folder where worlds are loaded from and saved to (one sub-folder per world); "
              "empty: $SRENDER_WORLD_DIR, else ~/.cache/srender/worlds (shared with the srender CLI).", runtime=False),
    ParamSpec("memory_budget_mb", int, "Memory for worlds kept loaded at once, MiB; least recently used are "
              "saved and unloaded beyond it.", min_value=16, max_value=1048576, runtime=False),
    ParamSpec("width", int, "Image width, pixels (requests without a camera).", min_value=8, max_value=8192),
    ParamSpec("height", int, "Image height, pixels (requests without a camera).", min_value=8, max_value=8192),
    ParamSpec("fov_deg", float, "Horizontal field of view, degrees (square pixels, centred principal point).",
              min_value=1.0, max_value=179.0),
    ParamSpec("camera_frame_id", str, "frame_id of published images and CameraInfo (the optical frame)."),
    ParamSpec("world_frame_id", str, "Frame poses must be expressed in; empty accepts any one non-empty frame "
              "per request (there is no tf lookup)."),
    ParamSpec("pose_frame", str, "Convention of incoming poses: body (REP 103, x forward) or optical (z forward).",
              choices=POSE_FRAMES),
    ParamSpec("path_rate_hz", float, "Frame rate used to stamp a path whose poses all carry the same stamp.",
              min_value=0.1, max_value=10000.0),
    ParamSpec("scheduler", str, "Keyframe scheduler: coverage, uniform or learned.", choices=SCHEDULERS),
    ParamSpec("coverage_threshold", float, "A pose whose uncovered fraction exceeds this becomes a keyframe.",
              min_value=0.0, max_value=0.999),
    ParamSpec("uniform_keyframes", int, "Keyframes per request for scheduler uniform.", min_value=1, max_value=10000),
    ParamSpec("max_keyframes_per_request", int, "Upper bound on new keyframes per request (0: render only what "
              "the world has); a long request may make up to keyframe_share x its poses.", min_value=0, max_value=10000),
    ParamSpec("keyframe_share", float, "Keyframe budget as a share of a request's poses, paced: by pose i at most "
              "keyframe_burst + (cap - keyframe_burst) x i / (poses - 1) keyframes, the cap spread evenly "
              "(0: flat max_keyframes_per_request, no pacing).",
              min_value=0.0, max_value=1.0),
    ParamSpec("keyframe_burst", int, "Keyframes a request may make before pacing by keyframe_share holds it back.",
              min_value=1, max_value=10000),
    ParamSpec("chunk_size", int, "Poses rendered and published per chunk.", min_value=1, max_value=10000),
    ParamSpec("seed", int, "Seed of keyframe generation.", min_value=0, max_value=2**31 - 1),
    ParamSpec("coverage_scale", float, "Resolution of coverage renders relative to the camera.",
              min_value=0.01, max_value=1.0),
    ParamSpec("coverage_alpha", float, "Alpha from which a coverage pixel counts as covered (keep it at lifting's "
              "0.5).", min_value=0.01, max_value=0.99),
    ParamSpec("keyframe_overscan", float, "Keyframes are generated this much wider than the camera (same focal "
              "length), so content just outside the view is in the world when the camera turns.",
              min_value=1.0, max_value=2.0),
    ParamSpec("keyframe_lookahead", int, "A triggered keyframe may be placed up to this many poses ahead "
              "(0: at the pose).", min_value=0, max_value=10000),
    ParamSpec("lookahead_max_uncovered", float, "How uncovered a pose ahead may be to take the keyframe.",
              min_value=0.0, max_value=0.999),
    ParamSpec("max_footprint_px", float, "Detail rule: world Gaussians appearing larger than this many pixels "
              "count as uncovered (0: alpha only).", min_value=0.0, max_value=1000.0),
    ParamSpec("coarse_weight", float, "Weight of a too-coarse pixel relative to an empty one.",
              min_value=0.0, max_value=1.0),
    ParamSpec("fill_holes", bool, "Composite frames over the world's surrounding colour instead of black "
              "(depth keeps NaN where empty)."),
    ParamSpec("inbetween", str, "Frames between keyframes: render (3D world) or interpolate (2D optical flow "
              "between the neighbouring keyframes, a baseline; docs/quality.md).", choices=("render", "interpolate")),
    ParamSpec("depth_source", str, "Depth of procedural keyframes: exact or monocular (a simulated monocular "
              "estimate aligned like the diffusers path; docs/quality.md).", choices=("exact", "monocular")),
    ParamSpec("camera_height_m", float, "Camera height above the ground in metres, when known: scales a new "
              "world's first monocular-depth keyframe by its ground plane (0: unknown, metric prior; docs/quality.md).",
              min_value=0.0, max_value=1000.0),
    ParamSpec("refine", bool, "Photometric refinement of the world after every chunk that added keyframes "
              "(slow on CPU; docs/refine.md)."),
    ParamSpec("refine_iterations", int, "Optimizer steps per refinement.", min_value=1, max_value=1000000),
    ParamSpec("publish_mode", str, "fast: publish frames as soon as rendered; paced: at their stamps on the "
              "node clock (use_sim_time respected).", choices=PUBLISH_MODES),
    ParamSpec("image_qos", str, "QoS of image, depth and CameraInfo publishers: reliable or sensor_data "
              "(best effort).", choices=IMAGE_QOS, runtime=False),
    ParamSpec("qos_depth", int, "History depth of image, depth and CameraInfo publishers; with reliable QoS the "
              "node waits for acknowledgements every qos_depth/2 frames, so none is dropped from it.",
              min_value=1, max_value=10000, runtime=False),
    ParamSpec("publish_depth", bool, "Publish camera/depth/image_raw (32FC1 metres, NaN empty)."),
    ParamSpec("queue_depth", int, "Path requests waiting behind the running one; beyond it the oldest waiting "
              "request is dropped.", min_value=1, max_value=1000),
    ParamSpec("camera_pose_generate", bool, "camera_pose views the world does not cover generate a keyframe "
              "when no path request is busy; false renders only what exists."),
    ParamSpec("compressed_format", str, "Codec of camera/image_raw/compressed (published only while someone "
              "subscribes): jpeg or png.", choices=COMPRESSED_FORMATS),
    ParamSpec("jpeg_quality", int, "JPEG quality of camera/image_raw/compressed.", min_value=1, max_value=100),
    ParamSpec("viewer_port", int, "Serve a browser view of the current world and the rendered camera poses on "
              "http://127.0.0.1:<port>/ (0: off).", min_value=0, max_value=65535, runtime=False),
)

SPEC_BY_NAME: dict[str, ParamSpec] = {s.name: s for s in PARAM_SPECS}
PARAM_NAMES: tuple[str, ...] = tuple(s.name for s in PARAM_SPECS)

# The two lists must describe the same parameters in the same order (checked at import so a new
# field without a spec, or a spec without a field, fails loudly).
if PARAM_NAMES != tuple(f.name for f in fields(NodeConfig)):  # pragma: no cover - programming error
    raise RuntimeError("srender_ros.ros.config: PARAM_SPECS and NodeConfig fields disagree")
