"""Training data for the keyframe-count model: labels from our own coverage oracle.

A label is the number of keyframes the coverage scheduler (``Pipeline`` with ``scheduler=coverage``)
picks when it walks a trajectory through a brand-new procedural world. Each sample draws a
trajectory family (orbit, walk, pan, drone, car, handheld, random_smooth) with parameters suited
to its scene family (indoor scenes get slower, lower, shorter motions than streets and fields), a
duration of 2..60 s (log-uniform), and a fresh world (a prompt naming the scene family plus a
sample id, so every sample sees a different world).

Labels are run at a low resolution (default 80x60, coverage at half of it) with the pipeline's
default field of view, tau and keyframe overscan: coverage is a fraction of the view, so the count
depends little on resolution, except for fast drives, where the low-resolution oracle asks for up
to 1.8x more keyframes than at 320x240 (docs/learned.md has the check).

Label sets are cached as ``.npz`` (no pickle, no object arrays): ragged trajectories are stored
concatenated with offsets, per-sample metadata as one JSON string.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.learned.features import IMAGE_SIDE_PX, prepare_image
from srender_ros.core.camera import Intrinsics
from srender_ros.core.trajectory import Trajectory
from srender_ros.engine.config import PipelineConfig
from srender_ros.errors import InputError, TrajectoryError

log = logging.getLogger(__name__)

TRAJECTORY_FAMILIES = ("orbit", "walk", "pan", "drone", "car", "handheld", "random_smooth")
SCENE_FAMILIES = ("room", "office", "kitchen", "warehouse", "street", "forest", "field")
INDOOR_SCENES = frozenset({"room", "office", "kitchen", "warehouse"})
#: Format version of the label cache (bump when fields change).
LABELS_FORMAT = 1


#: The oracle follows the pipeline: its defaults are the pipeline's.
_PIPELINE = PipelineConfig()

@dataclass(frozen=True)
class LabelConfig:
    """How labels are made (recorded in the cache and in training_config.json).

    Attributes:
        coverage_threshold: tau of the oracle (the pipeline's default).
        coverage_scale: coverage render resolution relative to the label camera.
        keyframe_overscan: the pipeline's keyframe overscan.
        width_px, height_px, hfov_deg: the label camera (the CLI's default field of view).
        fps: pose rate of the generated trajectories.
        min_duration_s, max_duration_s: duration range (log-uniform).
        max_keyframes: the pipeline's per-request cap (labels saturate there).
        families: trajectory families to draw from.
        scenes: scene families to draw from.
    """

    coverage_threshold: float = _PIPELINE.coverage_threshold
    coverage_scale: float = _PIPELINE.coverage_scale
    keyframe_overscan: float = _PIPELINE.keyframe_overscan
    width_px: int = 80
    height_px: int = 60
    hfov_deg: float = 90.0
    fps: float = 10.0
    min_duration_s: float = 2.0
    max_duration_s: float = 60.0
    max_keyframes: int = _PIPELINE.max_keyframes_per_request
    families: tuple[str, ...] = TRAJECTORY_FAMILIES
    scenes: tuple[str, ...] = SCENE_FAMILIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "families", tuple(self.families))
        object.__setattr__(self, "scenes", tuple(self.scenes))
        bad = [f for f in self.families if f not in TRAJECTORY_FAMILIES]
        if bad or not self.families:
            raise InputError(f"label families {bad or '(none)'}: choose from {', '.join(TRAJECTORY_FAMILIES)}")
        bad = [s for s in self.scenes if s not in SCENE_FAMILIES]
        if bad or not self.scenes:
            raise InputError(f"label scenes {bad or '(none)'}: choose from {', '.join(SCENE_FAMILIES)}")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise InputError(f"label durations {self.min_duration_s}..{self.max_duration_s} s: need 0 < min <= max")
        if self.fps <= 0:
            raise InputError(f"label fps={self.fps}: must be > 0")

    @property
    def intrinsics(self) -> Intrinsics:
        return Intrinsics.from_fov(self.width_px, self.height_px, self.hfov_deg)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["families"], d["scenes"] = list(self.families), list(self.scenes)
        return d


@dataclass(frozen=True)
class LabelSpec:
    """The recipe of one sample: which trajectory, which world."""

    family: str
    scene: str
    duration_s: float
    seed: int
    params: dict[str, float] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        # Only the scene word is a keyword of the procedural grammar; the id makes every world new.
        return f"{self.scene} sample {self.seed}"


@dataclass(frozen=True, eq=False)
class Sample:
    """One labelled trajectory.

    Attributes:
        trajectory: the optical-frame poses.
        intrinsics: the camera the label was made with.
        count: keyframes the coverage oracle chose (the label).
        image: [S, S, 3] uint8 first rendered view (the appearance input), or None.
        spec: how the sample was drawn.
        keyframe_indices: where the oracle put them.
        seconds: wall time of the oracle run.
    """

    trajectory: Trajectory
    intrinsics: Intrinsics
    count: int
    image: NDArray[np.uint8] | None
    spec: LabelSpec
    keyframe_indices: tuple[int, ...] = ()
    seconds: float = 0.0


# ---- drawing trajectories ---------------------------------------------------------------------------------------

def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _trajectory_params(family: str, indoor: bool, rng: np.random.Generator) -> dict[str, float]:
    """Random keyword arguments of ``make_trajectory`` that fit the scene (indoor: small and slow)."""
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if family == "orbit":
        if indoor:
            return {"radius_m": _u(rng, 0.5, 3.0), "height_m": _u(rng, 1.0, 2.0), "target_height_m": _u(rng, 0.5, 1.5),
                    "revolutions": sign * _u(rng, 0.1, 1.0), "start_angle_deg": _u(rng, 0, 360)}
        return {"radius_m": _u(rng, 2.0, 15.0), "height_m": _u(rng, 1.5, 8.0), "target_height_m": _u(rng, 0.5, 3.0),
                "revolutions": sign * _u(rng, 0.1, 1.0), "start_angle_deg": _u(rng, 0, 360)}
    if family == "walk":
        return {"speed_mps": _u(rng, 0.4, 1.5) if indoor else _u(rng, 0.8, 2.0), "meander_deg": _u(rng, 5, 60),
                "head_turn_deg": _u(rng, 0, 30)}
    if family == "pan":
        return {"sweep_deg": sign * _u(rng, 20, 360), "pitch_deg": _u(rng, -20, 10),
                "height_m": _u(rng, 0.5, 2.0) if indoor else _u(rng, 1.0, 5.0), "start_yaw_deg": _u(rng, 0, 360)}
    if family == "drone":
        if indoor:
            return {"speed_mps": _u(rng, 0.5, 3.0), "altitude_m": _u(rng, 1.2, 2.0), "altitude_var_m": _u(rng, 0.0, 0.3),
                    "max_turn_rate_dps": _u(rng, 5, 45), "camera_pitch_deg": _u(rng, -20, 5)}
        return {"speed_mps": _u(rng, 3.0, 12.0), "altitude_m": _u(rng, 5.0, 40.0), "altitude_var_m": _u(rng, 0.0, 5.0),
                "max_turn_rate_dps": _u(rng, 3, 25), "camera_pitch_deg": _u(rng, -40, 0)}
    if family == "car":
        if indoor:
            return {"speed_mps": _u(rng, 0.5, 3.0), "height_m": _u(rng, 0.3, 1.2), "max_curvature_per_m": _u(rng, 0.02, 0.2)}
        return {"speed_mps": _u(rng, 3.0, 15.0), "height_m": _u(rng, 1.0, 2.0), "max_curvature_per_m": _u(rng, 0.002, 0.03)}
    if family == "handheld":
        return {"amplitude_m": _u(rng, 0.02, 0.4), "rotation_deg": _u(rng, 2, 20), "look_distance_m": _u(rng, 1.0, 5.0),
                "height_m": _u(rng, 1.0, 1.8)}
    if family == "random_smooth":
        return {"speed_mps": _u(rng, 0.3, 1.5) if indoor else _u(rng, 0.5, 4.0), "height_m": _u(rng, 0.8, 1.8),
                "height_var_m": _u(rng, 0.0, 0.4), "max_turn_deg": _u(rng, 10, 90), "look_var_deg": _u(rng, 0, 25)}
    raise InputError(f"unknown trajectory family {family!r}; choose from {', '.join(TRAJECTORY_FAMILIES)}")


def draw_specs(n: int, seed: int, config: LabelConfig) -> list[LabelSpec]:
    """``n`` sample recipes, deterministic in ``seed`` (families and scenes cycle, so the mix is balanced)."""
    if n < 0:
        raise InputError(f"samples={n}: must be >= 0")
    rng = np.random.default_rng(seed)
    fams, scenes = config.families, config.scenes
    fam_order = rng.permutation(max(n, 1))
    scene_order = rng.permutation(max(n, 1))
    specs = []
    lo, hi = math.log(config.min_duration_s), math.log(config.max_duration_s)
    for i in range(n):
        fam = fams[int(fam_order[i]) % len(fams)]
        scene = scenes[int(scene_order[i]) % len(scenes)]
        duration = round(math.exp(rng.uniform(lo, hi)), 2)
        sample_seed = int(rng.integers(0, 2**31 - 1))
        params = _trajectory_params(fam, scene in INDOOR_SCENES, np.random.default_rng(sample_seed))
        specs.append(LabelSpec(fam, scene, duration, sample_seed, params))
    return specs


def spec_trajectory(spec: LabelSpec, fps: float) -> Trajectory:
    """The trajectory a spec describes (``core.trajectory_gen.make_trajectory``)."""
    from srender_ros.core.trajectory_gen import make_trajectory

    return make_trajectory(spec.family, fps=fps, duration_s=spec.duration_s, seed=spec.seed, **spec.params)


# ---- the oracle ---------------------------------------------------------------------------------------------------

class FramesNotDrawn:
    """A renderer for label runs: coverage and keyframe views are drawn, the trajectory's frames are not.

    A label needs only ``Pipeline.run``'s keyframe decisions, and drawing every frame is about 40%
    of a run. Frames are the renders at the trajectory's own camera; keyframe views use the
    overscanned camera (``keyframe_overscan`` > 1 is required) and coverage has its own call, so
    both still reach the real renderer and the decisions are exactly the pipeline's (checked
    against a real run in tests/test_learned.py).

    Args:
        inner: the real renderer.
        frame_intrinsics: the trajectory's camera, whose renders are skipped.
    """

    name = "frames-not-drawn"

    def __init__(self, inner: Any, frame_intrinsics: Intrinsics) -> None:
        self.inner = inner
        self.frame_intrinsics = frame_intrinsics
        self.frames_skipped = 0

    def render(self, world: Any, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating],
               background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Any:
        from srender_ros.core.ports.render import RenderOutput

        if intrinsics != self.frame_intrinsics:
            return self.inner.render(world, intrinsics, T_world_cam, background_rgb)
        b, h, w = len(np.asarray(T_world_cam).reshape(-1, 4, 4)), intrinsics.height_px, intrinsics.width_px
        self.frames_skipped += b
        return RenderOutput(np.zeros((b, h, w, 3), np.float32), np.full((b, h, w), np.nan, np.float32),
                            np.zeros((b, h, w), np.float32))

    def coverage(self, world: Any, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]) -> NDArray[np.float32]:
        alpha: NDArray[np.float32] = self.inner.coverage(world, intrinsics, T_world_cam)
        return alpha


def label_pipeline_config(config: LabelConfig) -> Any:
    """The oracle: the pipeline's defaults (tau, lookahead, overscan, chunking, lifting geometry) with
    the label's coverage resolution, keyframe cap, and no colour correction (colours never change
    coverage, and skipping it saves a render per keyframe)."""
    from dataclasses import replace

    from srender_ros.engine.config import PipelineConfig
    from srender_ros.engine.scheduler import SchedulerKind

    base = PipelineConfig()
    return PipelineConfig(scheduler=SchedulerKind.COVERAGE, coverage_threshold=config.coverage_threshold,
                          coverage_scale=config.coverage_scale, keyframe_overscan=config.keyframe_overscan,
                          max_keyframes_per_request=config.max_keyframes,
                          lift=replace(base.lift, colour_iterations=0))


def describe_pipeline_config(pcfg: Any) -> dict[str, Any]:
    """JSON-able fields of a PipelineConfig (recorded with labels: which oracle made them)."""
    out: dict[str, Any] = {}
    for k, v in asdict(pcfg).items():
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = getattr(v, "value", v)  # Enums by value
        elif isinstance(v, dict):
            out[k] = {kk: vv for kk, vv in v.items() if isinstance(vv, (bool, int, float, str))}
    return out


def oracle_label(spec: LabelSpec, config: LabelConfig, workdir: Path, renderer: Any = None,
                 generator: Any = None) -> Sample:
    """Run the coverage scheduler (``Pipeline.run``) on a new procedural world and count its keyframes.

    Args:
        spec: the sample's recipe.
        config: label settings (camera, tau, ...).
        workdir: scratch folder for the world store (the world is saved there by the pipeline).
        renderer, generator: reuse backends across samples (default: cpu renderer, procedural
            generator without supersampling, which changes keyframe colours only).
    Returns:
        The labelled Sample, with the exact first view of the world as its appearance image.
    """
    from srender_ros.app.compose import AppConfig, build_generator, build_pipeline, build_renderer
    from srender_ros.core.store import WorldStore
    from srender_ros.engine.job import RenderJob

    if config.keyframe_overscan <= 1.0:
        raise InputError("labels need keyframe_overscan > 1 (frames and keyframe views are told apart by their camera)")
    traj = spec_trajectory(spec, config.fps)
    K = config.intrinsics
    gen: Any = generator or build_generator("procedural", {"supersample": 1})  # procedural: has ground_truth
    pipe = build_pipeline(AppConfig(pipeline=label_pipeline_config(config)),
                          store=WorldStore(workdir / f"w{spec.seed}", 256 * 2**20),
                          renderer=FramesNotDrawn(renderer or build_renderer("cpu"), K), generator=gen)
    t0 = time.perf_counter()
    run = pipe.run(RenderJob(prompt=spec.prompt, trajectory=traj, intrinsics=K))
    for _ in run:
        pass
    seconds = time.perf_counter() - t0
    kf = tuple(sorted(int(i) for i in run.schedule.keyframe_indices))
    # The appearance input stands for a user's first image: the exact view at the first pose.
    first = gen.ground_truth(spec.prompt, K, traj.T_world_cam[:1]).rgb[0]
    return Sample(traj, K, len(kf), to_uint8_image(first), spec, kf, seconds)


def to_uint8_image(rgb: NDArray[np.floating]) -> NDArray[np.uint8]:
    """[H, W, 3] float in [0, 1] -> [S, S, 3] uint8 at the appearance encoder's size."""
    small = prepare_image(rgb, IMAGE_SIDE_PX)
    return np.round(small.transpose(1, 2, 0) * 255.0).astype(np.uint8)


def generate_labels(n: int, seed: int, config: LabelConfig, progress: Callable[[int, Sample], None] | None = None,
                    workdir: Path | None = None) -> list[Sample]:
    """``n`` oracle-labelled samples (slow: one coverage walk on a new world each)."""
    from srender_ros.app.compose import build_generator, build_renderer

    renderer, generator = build_renderer("cpu"), build_generator("procedural", {"supersample": 1})
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="srender-labels-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        for i, spec in enumerate(draw_specs(n, seed, config)):
            s = oracle_label(spec, config, root, renderer, generator)
            samples.append(s)
            if progress is not None:
                progress(i, s)
    return samples


def prefix_samples(samples: Sequence[Sample], per_sample: int, seed: int, min_poses: int = 2) -> list[Sample]:
    """Extra labelled samples from prefixes of oracle-labelled ones (free training data).

    The coverage walk is causal up to its lookahead: a keyframe triggered at pose i may be placed
    up to ``keyframe_lookahead`` poses later (same chunk), never earlier, and nothing else depends
    on later poses. So the label of a prefix of L poses is the number of the full walk's keyframes
    before L, exact except that one placed ahead across L would have been placed at most at L - 1.

    Args:
        samples: oracle samples with their ``keyframe_indices``; others are skipped.
        per_sample: prefixes drawn per sample (lengths uniform in min_poses..N-1).
        seed: seed of the drawn lengths.
        min_poses: shortest prefix.
    Returns:
        The prefix samples (not including the originals).
    """
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    for s in samples:
        n = len(s.trajectory)
        if len(s.keyframe_indices) != s.count or n <= min_poses or per_sample < 1:
            continue
        kf = np.asarray(s.keyframe_indices, dtype=np.int64)
        for length in rng.integers(min_poses, n, per_sample):
            L = int(length)
            idx = tuple(int(i) for i in kf[kf < L])
            out.append(Sample(s.trajectory.subset(np.arange(L)), s.intrinsics, len(idx), s.image, s.spec, idx, 0.0))
    return out


# ---- synthetic labels (tests and smoke runs without the oracle) ---------------------------------------------------

def synthetic_label(trajectory: Trajectory, intrinsics: Intrinsics, metres_per_keyframe: float = 1.5) -> int:
    """A cheap stand-in for the oracle: one keyframe, plus one per ``metres_per_keyframe`` travelled and
    one per field of view turned. Used to test that the model can learn a count from poses."""
    p = trajectory.positions_m
    path = float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) if len(p) > 1 else 0.0
    R = trajectory.T_world_cam[:, :3, :3]
    tr = np.einsum("nji,nji->n", R[:-1], R[1:])
    rot = float(np.arccos(np.clip((tr - 1) / 2, -1, 1)).sum()) if len(R) > 1 else 0.0
    return 1 + int(path / metres_per_keyframe + rot / math.radians(intrinsics.hfov_deg))


def synthetic_samples(n: int, seed: int, config: LabelConfig | None = None) -> list[Sample]:
    """``n`` samples with :func:`synthetic_label` labels and no image (fast)."""
    cfg = config or LabelConfig()
    out = []
    for spec in draw_specs(n, seed, cfg):
        traj = spec_trajectory(spec, cfg.fps)
        out.append(Sample(traj, cfg.intrinsics, synthetic_label(traj, cfg.intrinsics), None, spec))
    return out


def source_version() -> str | None:
    """``git describe --always --dirty`` of the checkout this code runs from, or None outside git."""
    import subprocess

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# ---- the cache ------------------------------------------------------------------------------------------------------

def save_labels(samples: Sequence[Sample], path: Path, config: LabelConfig, extra: dict[str, Any] | None = None) -> None:
    """Write samples to ``path`` (.npz, no pickle). ``extra`` (e.g. the command's arguments) goes into the metadata."""
    path = Path(path)
    if not samples:
        raise InputError("no samples to save")
    lengths = np.array([len(s.trajectory) for s in samples], dtype=np.int64)
    kf_lengths = np.array([len(s.keyframe_indices) for s in samples], dtype=np.int64)
    side = IMAGE_SIDE_PX
    images = np.zeros((len(samples), side, side, 3), dtype=np.uint8)
    has_image = np.zeros(len(samples), dtype=bool)
    for i, s in enumerate(samples):
        if s.image is not None:
            images[i], has_image[i] = s.image, True
    meta = {
        "format": LABELS_FORMAT, "label_config": config.to_json(), "extra": extra or {},
        "oracle_pipeline_config": describe_pipeline_config(label_pipeline_config(config)),
        "source_version": source_version(),
        "samples": [{"family": s.spec.family, "scene": s.spec.scene, "duration_s": s.spec.duration_s,
                     "seed": s.spec.seed, "params": s.spec.params, "frame_id": s.trajectory.frame_id,
                     "seconds": round(s.seconds, 3)} for s in samples],
    }
    arrays: dict[str, Any] = {
        "stamps_ns": np.concatenate([s.trajectory.stamps_ns for s in samples]),
        "T_world_cam": np.concatenate([s.trajectory.T_world_cam for s in samples]),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "counts": np.array([s.count for s in samples], dtype=np.int64),
        "keyframe_indices": np.concatenate([np.asarray(s.keyframe_indices, dtype=np.int64) for s in samples]),
        "keyframe_offsets": np.concatenate([[0], np.cumsum(kf_lengths)]).astype(np.int64),
        "intrinsics": np.array([[s.intrinsics.width_px, s.intrinsics.height_px, s.intrinsics.fx_px, s.intrinsics.fy_px,
                                 s.intrinsics.cx_px, s.intrinsics.cy_px] for s in samples], dtype=np.float64),
        "images": images, "has_image": has_image, "meta": np.array(json.dumps(meta)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def load_labels(path: Path) -> tuple[list[Sample], dict[str, Any]]:
    """Read a label cache written by :func:`save_labels`: (samples, metadata).

    Raises:
        InputError: missing file, wrong format or inconsistent arrays (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"label file {path} does not exist; make one with `srender scheduler labels --out {path}`")
    try:
        with np.load(path, allow_pickle=False) as z:
            arr = {k: z[k] for k in z.files}
        meta = json.loads(str(arr["meta"]))
        off, koff = arr["offsets"], arr["keyframe_offsets"]
        n = len(arr["counts"])
        if meta.get("format") != LABELS_FORMAT or len(off) != n + 1 or len(meta["samples"]) != n:
            raise InputError(f"label file {path}: format {meta.get('format')} / sizes do not match (expected format "
                             f"{LABELS_FORMAT}); regenerate it with `srender scheduler labels`")
        samples = []
        for i, m in enumerate(meta["samples"]):
            traj = Trajectory(arr["stamps_ns"][off[i]:off[i + 1]], arr["T_world_cam"][off[i]:off[i + 1]], m["frame_id"])
            w, h, fx, fy, cx, cy = arr["intrinsics"][i]
            K = Intrinsics(int(w), int(h), float(fx), float(fy), float(cx), float(cy))
            spec = LabelSpec(m["family"], m["scene"], float(m["duration_s"]), int(m["seed"]), dict(m["params"]))
            img = arr["images"][i] if bool(arr["has_image"][i]) else None
            kf = tuple(int(k) for k in arr["keyframe_indices"][koff[i]:koff[i + 1]])
            samples.append(Sample(traj, K, int(arr["counts"][i]), img, spec, kf, float(m["seconds"])))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, TrajectoryError) as exc:
        if isinstance(exc, InputError) and not isinstance(exc, TrajectoryError):
            raise
        raise InputError(f"label file {path} is unreadable or corrupt ({exc}); regenerate it with "
                         "`srender scheduler labels`") from exc
    return samples, meta
