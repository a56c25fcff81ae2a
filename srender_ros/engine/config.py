"""The pipeline's settings (one frozen dataclass; defaults live here and nowhere else)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from srender_ros.core.ports.refine import KeyframeRefineConfig, RefineConfig
from srender_ros.engine.dedup import DedupConfig
from srender_ros.engine.inbetween import InbetweenKind
from srender_ros.engine.lifting import LiftConfig
from srender_ros.engine.scheduler import SchedulerKind, WalkSettings, check_pacing
from srender_ros.errors import InputError

__all__ = ["DEPTH_SOURCES", "PipelineConfig"]

#: Values of ``PipelineConfig.depth_source``.
DEPTH_SOURCES = ("exact", "monocular")


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of the pipeline: the one place their defaults live.

    Front ends expose every field a user tunes (CLI flags and node parameters of the same names;
    ``srender_ros/app/options.py`` lists them); the few that are internal on purpose are listed
    there too, and a test checks that no field is forgotten.

    Attributes:
        scheduler: coverage | uniform | learned.
        coverage_threshold: tau; a pose whose uncovered fraction exceeds it becomes a keyframe.
        uniform_keyframes: keyframe count of the uniform scheduler.
        coverage_scale: resolution of coverage renders relative to the camera.
        coverage_alpha: a low-resolution coverage pixel counts as covered from this alpha up.
            Keep it at the lifting's ``empty_alpha``: where coverage demands more than lifting
            fills, a keyframe cannot cover its own view and the rule would fire again and again.
        chunk_size: poses rendered per chunk.
        max_keyframes_per_request: cap on generation for one request (0: none at all); a long request
            may make up to ``ceil(keyframe_share * poses)`` when that is more.
        keyframe_share: the cap scales with the request: at least this share of its poses may become
            keyframes, and by pose i at most ``keyframe_burst + (cap - keyframe_burst) * i / (poses - 1)``
            have been made (pacing: the cap spread evenly, so a long request cannot spend its budget at
            the start and leave its end unlifted; engine/scheduler.py). 0 = a flat
            ``max_keyframes_per_request``, no pacing.
        keyframe_burst: keyframes a request may make before pacing holds it back.
        keyframe_overscan: keyframes are generated with this much wider image (same focal length),
            so content just outside the view is already in the world when the camera turns.
        keyframe_lookahead: when pose i triggers the coverage rule, the keyframe is made at the
            farthest pose j in [i, i + keyframe_lookahead] of the same chunk whose uncovered
            fraction is still below ``lookahead_max_uncovered``: the camera is moving into new
            territory, and a view further along covers pose i's missing part and the poses on the
            way, so fewer keyframes cover the same path. 0 = the paper's rule (keyframe at i).
        lookahead_max_uncovered: how far ahead a keyframe may be placed, as the uncovered fraction
            of its view in the current world.
        max_footprint_px: a covered pixel also needs detail: where the world's Gaussians appear
            larger than this (pixels of the camera's own resolution; lifting makes them about 0.5),
            the pixel counts as uncovered, and the keyframe made there replaces the coarse
            Gaussians it sees with its own (engine/resolution.py). It is what makes a camera that
            walks up to a wall it first saw from afar get a new, closer keyframe. None = alpha only.
        fill_holes: composite frames over the world's own surrounding colour instead of black
            (core/holes.py): partly covered pixels (silhouettes, borders, small disocclusions) are
            not darkened. Depth and alpha are untouched, so holes still show in depth and metrics.
        coarse_weight: what a too-coarse pixel counts for in the uncovered fraction, relative to an
            empty one (a blur is less glaring than a hole: at 0.1, tau = 0.02 asks for a keyframe
            when 20 % of the view is coarse, or 2 % is empty, or a mix).
        seed: base seed; keyframe seeds derive from it, the world id and the keyframe count.
        lift: how keyframes become Gaussians.
        refine: photometric refinement of the world against its keyframes after every chunk that
            added keyframes (None = off; see docs/refine.md for what it costs and gains).
        dedup: what a merged keyframe prunes from the world: Gaussians its new ones make redundant,
            ones hidden for good, near-transparent ones (engine/dedup.py; None = keep them).
        grazing_detail: the detail rule's limit grows with the grazing stretch a keyframe at the
            pose would lift a pixel with (``max_footprint_px * sqrt(stretch)``), so roads and
            floors seen at grazing angles are not re-lifted at every step (engine/resolution.py).
        keyframe_refine: the fast refinement right after each keyframe is lifted: the new
            keyframe's Gaussians and their neighbours fitted to it and its nearest earlier
            keyframes for a fixed number of steps (colours and opacities; docs/refine.md). None = off.
        inbetween: how frames between keyframes are made: ``render`` (the 3D Gaussian world) or
            ``interpolate`` (2D optical-flow interpolation of the two neighbouring keyframes, the
            FusionFrames / RIFE-style baseline; engine/inbetween.py, docs/quality.md). Keyframes are
            the same in both.
        depth_source: depth of procedural keyframes: ``exact`` (ray-cast) or ``monocular`` (a
            simulated monocular estimate, aligned to the world by the diffusers generator's own
            code; backends/generators/monocular.py). Applied by the composition root (app/compose.py).
        camera_height_m: the camera's height above the ground, metres, when known (None =
            unknown). Generators with monocular depth (``depth_source = monocular``, the diffusers
            generator) scale a new world's first keyframe so the ground plane it sees lies this far
            below the camera, instead of the fixed metric prior (docs/quality.md).
    """

    scheduler: SchedulerKind = SchedulerKind.COVERAGE
    coverage_threshold: float = 0.02
    uniform_keyframes: int = 8
    coverage_scale: float = 0.5
    coverage_alpha: float = 0.5
    chunk_size: int = 30
    max_keyframes_per_request: int = 64
    keyframe_share: float = 0.1
    keyframe_burst: int = 8
    keyframe_overscan: float = 1.25
    keyframe_lookahead: int = 8
    lookahead_max_uncovered: float = 0.1
    max_footprint_px: float | None = 2.0
    coarse_weight: float = 0.1
    fill_holes: bool = True
    seed: int = 0
    lift: LiftConfig = field(default_factory=LiftConfig)
    refine: RefineConfig | None = None
    dedup: DedupConfig | None = field(default_factory=DedupConfig)
    grazing_detail: bool = False
    keyframe_refine: KeyframeRefineConfig | None = field(default_factory=KeyframeRefineConfig)
    inbetween: str = InbetweenKind.RENDER
    depth_source: str = "exact"
    camera_height_m: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheduler", SchedulerKind(self.scheduler))
        if not 0.0 <= self.coverage_threshold < 1.0:
            raise InputError(f"coverage_threshold={self.coverage_threshold}: must be in [0, 1)")
        if self.uniform_keyframes < 1:
            raise InputError(f"uniform_keyframes={self.uniform_keyframes}: must be >= 1")
        if not 0.01 <= self.coverage_scale <= 1.0:
            raise InputError(f"coverage_scale={self.coverage_scale}: must be in [0.01, 1]")
        if not 0.0 < self.coverage_alpha < 1.0:
            raise InputError(f"coverage_alpha={self.coverage_alpha}: must be in (0, 1)")
        if self.chunk_size < 1:
            raise InputError(f"chunk_size={self.chunk_size}: must be >= 1")
        if self.max_keyframes_per_request < 0:
            raise InputError("max_keyframes_per_request must be >= 0")
        check_pacing(self.keyframe_share, self.keyframe_burst)
        if self.keyframe_lookahead < 0:
            raise InputError(f"keyframe_lookahead={self.keyframe_lookahead}: must be >= 0")
        if not 0.0 <= self.lookahead_max_uncovered < 1.0:
            raise InputError(f"lookahead_max_uncovered={self.lookahead_max_uncovered}: must be in [0, 1)")
        if self.max_footprint_px is not None and not self.max_footprint_px > 0.0:
            raise InputError(f"max_footprint_px={self.max_footprint_px}: must be > 0 (or None to ignore detail)")
        if not 0.0 <= self.coarse_weight <= 1.0:
            raise InputError(f"coarse_weight={self.coarse_weight}: must be in [0, 1]")
        if self.inbetween not in InbetweenKind.ALL:
            raise InputError(f"inbetween={self.inbetween!r}: choose one of {', '.join(InbetweenKind.ALL)}")
        if self.depth_source not in DEPTH_SOURCES:
            raise InputError(f"depth_source={self.depth_source!r}: choose one of {', '.join(DEPTH_SOURCES)}")
        if self.camera_height_m is not None and not (math.isfinite(self.camera_height_m) and self.camera_height_m > 0):
            raise InputError(f"camera_height_m={self.camera_height_m}: must be > 0 metres (or unset / 0 for unknown)")
        if self.inbetween == InbetweenKind.INTERPOLATE and (
                (self.scheduler is SchedulerKind.UNIFORM and self.uniform_keyframes < 2)
                or self.max_keyframes_per_request < 2):
            made = self.uniform_keyframes if self.scheduler is SchedulerKind.UNIFORM else self.max_keyframes_per_request
            raise InputError(f"--inbetween interpolate needs at least 2 keyframes, but the settings allow {made}; use "
                             "--keyframes 2 (or more), or --inbetween render")
        if not 1.0 <= self.keyframe_overscan <= 2.0:
            raise InputError(f"keyframe_overscan={self.keyframe_overscan}: must be in [1, 2]")

    def walk_settings(self) -> WalkSettings:
        """The scheduler's part of these settings."""
        return WalkSettings(scheduler=self.scheduler, coverage_threshold=self.coverage_threshold,
                            uniform_keyframes=self.uniform_keyframes, max_keyframes=self.max_keyframes_per_request,
                            keyframe_share=self.keyframe_share, keyframe_burst=self.keyframe_burst,
                            lookahead=self.keyframe_lookahead, lookahead_max_uncovered=self.lookahead_max_uncovered,
                            coarse_weight=self.coarse_weight, detail_in_reasons=self.max_footprint_px is not None)
