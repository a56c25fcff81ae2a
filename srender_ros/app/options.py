"""Which PipelineConfig fields users tune, under which CLI flag and node parameter.

Every field of :class:`~srender_ros.engine.config.PipelineConfig` is either listed in
:data:`PIPELINE_OPTIONS` (exposed by ``srender render``/``bag``/``batch`` and by the node under the
field's own name) or in :data:`INTERNAL_FIELDS` with the reason it is not exposed; a test fails
when a new field is in neither. Defaults are read from PipelineConfig, never written here.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from srender_ros.core.ports.refine import KeyframeRefineConfig, RefineConfig
from srender_ros.engine.config import DEPTH_SOURCES, PipelineConfig
from srender_ros.engine.inbetween import InbetweenKind
from srender_ros.engine.scheduler import SchedulerKind

__all__ = ["INTERNAL_FIELDS", "PIPELINE_OPTIONS", "PipelineOption", "add_pipeline_arguments",
           "pipeline_config_from_args", "pipeline_config_from_values", "pipeline_default"]

_DEFAULTS = PipelineConfig()
#: Steps of the refinement run after every chunk that added keyframes (``--refine``): shorter than a
#: whole-world RefineConfig() run, since it repeats along the path.
REFINE_ITERATIONS_PER_CHUNK = 200


@dataclass(frozen=True)
class PipelineOption:
    """One user-facing pipeline setting.

    Attributes:
        field: the PipelineConfig field, which is also the node parameter's name.
        cli_flag: the CLI flag.
        kind: the value type on the command line and as a ROS parameter.
        help: one line for ``--help`` and ``ros2 param describe``.
        off_value: for an optional number, the value that means None (off).
        choices: the allowed values of a string option (empty = any).
    """

    field: str
    cli_flag: str
    kind: type
    help: str
    off_value: float | None = None
    choices: tuple[str, ...] = ()


PIPELINE_OPTIONS: tuple[PipelineOption, ...] = (
    PipelineOption("scheduler", "--scheduler", str, "keyframe scheduler: " + " | ".join(k.value for k in SchedulerKind)),
    PipelineOption("coverage_threshold", "--coverage-threshold", float,
                   "tau: uncovered fraction of a view that triggers a keyframe"),
    PipelineOption("uniform_keyframes", "--keyframes", int, "keyframe count of the uniform scheduler"),
    PipelineOption("coverage_scale", "--coverage-scale", float, "resolution of coverage renders relative to the camera"),
    PipelineOption("coverage_alpha", "--coverage-alpha", float, "alpha from which a coverage pixel counts as covered"),
    PipelineOption("chunk_size", "--chunk-size", int, "poses rendered per chunk"),
    PipelineOption("max_keyframes_per_request", "--max-keyframes-per-request", int,
                   "cap on keyframes per request (0 = none; raised to keyframe_share x poses on long requests)"),
    PipelineOption("keyframe_share", "--keyframe-share", float,
                   "keyframe budget as a share of the request's poses, paced: by pose i at most "
                   "keyframe_burst + (cap - keyframe_burst) x i / (poses - 1) (0 = flat max_keyframes_per_request, no pacing)"),
    PipelineOption("keyframe_burst", "--keyframe-burst", int, "keyframes a request may make before pacing holds it back"),
    PipelineOption("keyframe_overscan", "--keyframe-overscan", float,
                   "keyframes are generated this much wider than the camera (same focal length)"),
    PipelineOption("keyframe_lookahead", "--keyframe-lookahead", int,
                   "place a triggered keyframe up to this many poses ahead (0 = at the pose)"),
    PipelineOption("lookahead_max_uncovered", "--lookahead-max-uncovered", float,
                   "how uncovered a pose ahead may be to take the keyframe"),
    PipelineOption("max_footprint_px", "--max-footprint-px", float,
                   "detail rule: Gaussians larger than this many pixels count as uncovered (0 = alpha only)", off_value=0.0),
    PipelineOption("coarse_weight", "--coarse-weight", float, "weight of a too-coarse pixel relative to an empty one"),
    PipelineOption("fill_holes", "--fill-holes", bool, "composite frames over the world's surrounding colour"),
    PipelineOption("seed", "--seed", int, "base seed of keyframe generation"),
    PipelineOption("inbetween", "--inbetween", str, "frames between keyframes: render (3D world) | interpolate "
                   "(2D optical flow between the neighbouring keyframes, a baseline)", choices=InbetweenKind.ALL),
    PipelineOption("depth_source", "--depth-source", str, "depth of procedural keyframes: exact | monocular "
                   "(simulated monocular estimate aligned like the diffusers path)", choices=DEPTH_SOURCES),
    PipelineOption("camera_height_m", "--camera-height", float, "camera height above the ground in metres, when "
                   "known: scales a new world's first monocular-depth keyframe by its ground plane (0 = unknown: "
                   "metric prior)", off_value=0.0),
)

#: PipelineConfig fields not exposed on purpose, with the reason. ``refine`` is exposed as the flag
#: ``--refine`` / parameter ``refine`` plus ``refine_iterations`` (it is a nested config).
INTERNAL_FIELDS: dict[str, str] = {
    "lift": "lifting internals (footprint, stretch, edges) are part of the method, tuned with the detail rule; "
            "docs/pipeline.md",
    "refine": "exposed as refine (bool) + refine_iterations, since it is a nested RefineConfig",
    "dedup": "how a merged keyframe prunes the world (engine/dedup.py) is part of the method, like lift; "
             "docs/pipeline.md",
    "grazing_detail": "part of the detail rule (engine/resolution.py grazing_stretch), like lift; docs/pipeline.md",

    "keyframe_refine": "exposed as --keyframe-refine-iterations (0 = off), since it is a nested KeyframeRefineConfig",
}
#: Default steps of the fast refinement after each keyframe (``--keyframe-refine-iterations``).
KEYFRAME_REFINE_ITERATIONS = _DEFAULTS.keyframe_refine.iterations if _DEFAULTS.keyframe_refine is not None else 0


def pipeline_default(name: str) -> Any:
    """The default of a PipelineConfig field as a plain value (None -> the option's off value)."""
    value = getattr(_DEFAULTS, name)
    if isinstance(value, SchedulerKind):
        return value.value
    if value is None:
        off = next(o.off_value for o in PIPELINE_OPTIONS if o.field == name)
        return off
    return value


def _from_plain(option: PipelineOption, value: Any) -> Any:
    if option.off_value is not None and value is not None and float(value) == option.off_value:
        return None
    return value


def pipeline_config_from_values(values: Mapping[str, Any], refine: bool = False, refine_iterations: int | None = None,
                                refine_device: str = "auto", keyframe_refine_iterations: int | None = None) -> PipelineConfig:
    """A PipelineConfig from option values by field name (missing ones default).

    ``keyframe_refine_iterations``: steps of the fast refinement after each keyframe (None: the
    default, 0: off).

    Raises:
        InputError: a value PipelineConfig refuses (the message names the field).
    """
    kwargs = {o.field: _from_plain(o, values[o.field]) for o in PIPELINE_OPTIONS if o.field in values}
    refine_cfg = None
    if refine:
        refine_cfg = (RefineConfig(device=refine_device) if refine_iterations is None
                      else RefineConfig(iterations=refine_iterations, device=refine_device))
    if keyframe_refine_iterations is None:
        return PipelineConfig(**kwargs, refine=refine_cfg)
    kf_cfg = (None if keyframe_refine_iterations == 0
              else KeyframeRefineConfig(iterations=keyframe_refine_iterations, device=refine_device))
    return PipelineConfig(**kwargs, refine=refine_cfg, keyframe_refine=kf_cfg)


def add_pipeline_arguments(group: argparse._ArgumentGroup) -> None:
    """Add every option's flag to an argparse group, with PipelineConfig's defaults."""
    for o in PIPELINE_OPTIONS:
        default = pipeline_default(o.field)
        if o.kind is bool:
            group.add_argument(o.cli_flag, dest=o.field, action=argparse.BooleanOptionalAction, default=default,
                               help=f"{o.help} (default {'on' if default else 'off'})")
        elif o.choices:
            group.add_argument(o.cli_flag, dest=o.field, choices=list(o.choices), default=default,
                               help=f"{o.help} (default {default})")
        elif o.field == "scheduler":
            group.add_argument(o.cli_flag, dest=o.field, choices=[k.value for k in SchedulerKind], default=default,
                               help=f"{o.help} (default {default})")
        else:
            group.add_argument(o.cli_flag, dest=o.field, type=o.kind, default=default, help=f"{o.help} (default {default})")
    group.add_argument("--refine", action="store_true",
                       help="photometric refinement of the world against its keyframes after new keyframes (slow on CPU)")
    group.add_argument("--refine-iterations", type=int, default=REFINE_ITERATIONS_PER_CHUNK,
                       help=f"optimizer steps per refinement (default {REFINE_ITERATIONS_PER_CHUNK})")
    group.add_argument("--keyframe-refine-iterations", type=int, default=KEYFRAME_REFINE_ITERATIONS,
                       help="steps of the fast refinement of each new keyframe's Gaussians (colours, opacities) "
                            f"right after lifting; 0 = off (default {KEYFRAME_REFINE_ITERATIONS})")


def pipeline_config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig of parsed CLI arguments (see :func:`add_pipeline_arguments`)."""
    values = {o.field: getattr(args, o.field) for o in PIPELINE_OPTIONS if hasattr(args, o.field)}
    return pipeline_config_from_values(values, refine=bool(getattr(args, "refine", False)),
                                       refine_iterations=getattr(args, "refine_iterations", None),
                                       refine_device=getattr(args, "device", "auto"),
                                       keyframe_refine_iterations=getattr(args, "keyframe_refine_iterations", None))


def exposed_fields() -> set[str]:
    """PipelineConfig fields a user can set (through an option or the refine flags)."""
    return {o.field for o in PIPELINE_OPTIONS} | {"refine", "keyframe_refine"}


def all_fields() -> set[str]:
    """Every PipelineConfig field."""
    return {f.name for f in fields(PipelineConfig)}
