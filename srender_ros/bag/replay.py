"""Bag replay: a recorded robot run in, the same bag plus synthesized camera streams out.

Two passes over the input: the first reads the pose data (TF or a pose topic) and plans the render
times; the second copies every input message (raw bytes, same topic, type and log time) while the
pipeline renders chunk by chunk, merging both streams in log-time order into the output bag. A ROS 1
input is read through ``ros1.Ros1InputBag``, which hands over ROS 2 types and CDR bytes instead.

Times: render times are pose stamps (``header.stamp`` of the TF / pose messages), either one per
pose message or ``rate_hz`` over the span where the pose is known; ``start_s``/``end_s`` cut that
window (seconds relative to the first pose stamp). A time outside the data is refused, or held at
the nearest pose with ``outside=clamp``. Each rendered message is logged at its stamp.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.bag import messages as m
from srender_ros.bag.pose_sources import TF_STATIC_TOPIC, CameraTrack, parse_extrinsic, track_from_pose_topic, track_from_tf
from srender_ros.bag.reader import open_input_bag
from srender_ros.bag.writer import OutputBag, Storage, check_output_path
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import PoseFrame
from srender_ros.core.trajectory import Trajectory
from srender_ros.engine.tf_buffer import NS_PER_S, OutsidePolicy
from srender_ros.errors import BagError, InputError

if TYPE_CHECKING:
    from srender_ros.engine.pipeline import Pipeline, PipelineRun

log = logging.getLogger(__name__)

#: More frames than this in one replay is almost certainly a wrong --rate (or stamp units).
MAX_FRAMES = 1_000_000


@dataclass(frozen=True)
class ReplayConfig:
    """One replay (one-to-one with ``srender bag`` flags).

    Attributes:
        input, output: bag paths: input a rosbag2 (folder, .mcap, .db3) or a ROS 1 .bag; output a
            rosbag2 folder that must not exist unless ``overwrite``.
        prompt: environment prompt of the world to render.
        intrinsics: the camera.
        fixed_frame, camera_frame: TF route (camera pose = fixed_frame <- camera_frame).
        pose_topic: pose-topic route (instead of camera_frame).
        extrinsic: "x y z qx qy qz qw" or "x y z roll pitch yaw" from the TF / pose frame to the camera.
        camera_convention: axes of the camera frame; None = optical if its name contains "optical"
            and no extrinsic is given, else body (REP 103).
        optical_frame: frame_id of the images (None = derived, see pose_sources).
        rate_hz: frames per second over the known span; None = one frame per pose message.
        start_s, end_s: render window in seconds after the first pose stamp (None = the data's ends).
        outside: what happens at times outside the pose data.
        topic_prefix: images go to <prefix>/image_raw etc.
        storage: output storage; depth: also write <prefix>/depth/image_raw.
        progress: show a progress bar.
    """

    input: Path
    output: Path
    prompt: str
    intrinsics: Intrinsics
    fixed_frame: str | None = None
    camera_frame: str | None = None
    pose_topic: str | None = None
    extrinsic: str | None = None
    camera_convention: PoseFrame | None = None
    optical_frame: str | None = None
    rate_hz: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    outside: OutsidePolicy = OutsidePolicy.REFUSE
    topic_prefix: str = "camera"
    storage: Storage = Storage.MCAP
    overwrite: bool = False
    depth: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "outside", OutsidePolicy(self.outside))
        object.__setattr__(self, "storage", Storage(self.storage))
        if self.camera_convention is not None:
            object.__setattr__(self, "camera_convention", PoseFrame(self.camera_convention))
        if (self.camera_frame is None) == (self.pose_topic is None):
            raise InputError("say where the camera is: either --camera-frame (with --fixed-frame, from TF) or "
                             "--pose-topic, not both")
        if self.rate_hz is not None and not (np.isfinite(self.rate_hz) and 0 < self.rate_hz <= 10_000):
            raise InputError(f"--rate {self.rate_hz}: must be a frame rate in (0, 10000] Hz")
        if not self.topic_prefix.strip("/"):
            raise InputError("--topic-prefix must not be empty (e.g. camera)")
        if self.start_s is not None and self.end_s is not None and self.end_s < self.start_s:
            raise InputError(f"--end {self.end_s} s is before --start {self.start_s} s")

    def topic(self, name: str) -> str:
        """Absolute output topic ``/<prefix>/<name>``."""
        return "/" + "/".join(p for p in (self.topic_prefix.strip("/"), name) if p)


@dataclass(frozen=True)
class ReplayPlan:
    """What will be rendered: the camera track and the trajectory at the render times."""

    track: CameraTrack
    trajectory: Trajectory  # optical poses in track.fixed_frame, stamps = render times
    input_messages: int
    input_span_ns: tuple[int, int]


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay wrote (printed at the end by the CLI)."""

    output: Path
    storage: Storage
    input_messages: int
    frames: int
    keyframes: int
    keyframe_indices: list[int]
    topics: dict[str, int]
    span_s: float
    pose_source: str
    optical_frame: str
    fixed_frame: str
    seconds: float
    render_seconds: dict[str, float]
    input_notes: tuple[str, ...] = ()  # how the input was read (ROS 1: conversions, skipped topics)

    def format(self) -> str:
        """Readable multi-line summary."""
        rows = [
            ("output", f"{self.output} ({self.storage.value})"),
            ("copied", f"{self.input_messages} input messages" + (" unchanged" if not self.input_notes else "")),
            ("rendered", f"{self.frames} frames over {self.span_s:.2f} s, {self.keyframes} keyframes"),
            ("camera", f"{self.pose_source}; images in frame {self.optical_frame!r}, poses in {self.fixed_frame!r}"),
            ("time", f"{self.seconds:.1f} s total, render {self.render_seconds.get('render', 0.0):.1f} s, "
                     f"generate {self.render_seconds.get('generate', 0.0):.1f} s"),
        ]
        rows[2:2] = [("input", note) for note in self.input_notes]
        rows += [(t, f"{n} messages") for t, n in sorted(self.topics.items())]
        w = max(len(k) for k, _ in rows)
        return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)


def render_stamps(track: CameraTrack, input_span_ns: tuple[int, int], rate_hz: float | None, start_s: float | None,
                  end_s: float | None, outside: OutsidePolicy) -> NDArray[np.int64]:
    """The render times (ns, ascending, unique). See the module docstring for the rules.

    Raises:
        BagError: an empty window, too many frames, or (REFUSE) a window reaching outside the data.
    """
    span = track.span_ns if track.span_ns is not None else input_span_ns  # all-static: the bag's own span
    t0 = span[0] if start_s is None else span[0] + int(round(start_s * NS_PER_S))
    t1 = span[1] if end_s is None else span[0] + int(round(end_s * NS_PER_S))
    if t1 < t0:
        raise BagError(f"render window [{t0 / NS_PER_S:.3f}, {t1 / NS_PER_S:.3f}] s is empty")
    if track.span_ns is not None and (t0 < span[0] or t1 > span[1]) and outside is OutsidePolicy.REFUSE:
        raise BagError(
            f"requested times [{(t0 - span[0]) / NS_PER_S:.3f}, {(t1 - span[0]) / NS_PER_S:.3f}] s reach outside the pose "
            f"data, which covers [0, {(span[1] - span[0]) / NS_PER_S:.3f}] s (from {track.description}); keep --start/--end "
            "inside it, or pass --outside clamp to hold the first/last pose")
    if rate_hz is not None:
        period = NS_PER_S / rate_hz
        n = int(np.floor((t1 - t0) / period + 1e-9)) + 1
        if n > MAX_FRAMES:
            raise BagError(f"--rate {rate_hz} Hz over {(t1 - t0) / NS_PER_S:.1f} s gives {n} frames (> {MAX_FRAMES}); "
                           "lower the rate or cut the window with --start/--end")
        return np.unique(t0 + np.rint(np.arange(n) * period).astype(np.int64))
    stamps = track.natural_stamps_ns
    if track.span_ns is None:
        stamps = np.array([t0], dtype=np.int64)
    stamps = stamps[(stamps >= t0) & (stamps <= t1)]
    if len(stamps) == 0:
        raise BagError(f"no pose messages between {(t0 - span[0]) / NS_PER_S:.3f} s and {(t1 - span[0]) / NS_PER_S:.3f} s "
                       "after the first pose; widen --start/--end or give --rate")
    return stamps.astype(np.int64)


def plan_replay(config: ReplayConfig, store: Any | None = None) -> ReplayPlan:
    """Pass 1: read the pose data and compute the camera trajectory at the render times.

    Raises:
        BagError: unreadable input, unknown topic or frame, times outside the data.
    """
    store = store or m.make_typestore()
    extrinsic = parse_extrinsic(config.extrinsic) if config.extrinsic else None
    name = config.topic_prefix.strip("/").replace("/", "_")
    with open_input_bag(config.input) as bag:
        if config.pose_topic is not None:
            track = track_from_pose_topic(bag, store, config.pose_topic, config.fixed_frame, extrinsic,
                                          config.camera_convention, config.optical_frame, name)
        else:
            assert config.camera_frame is not None
            track = track_from_tf(bag, store, config.fixed_frame or "odom", config.camera_frame, extrinsic,
                                  config.camera_convention, config.optical_frame, name)
        n_in, span = bag.message_count, bag.span_ns
        ours = [config.topic(t) for t in ("image_raw", "camera_info", "depth/image_raw", "keyframe_schedule")]
        clash = [t for t in ours if t in bag.topics]
        if clash:
            raise BagError(f"input bag {config.input} already has {', '.join(clash)}; pick another --topic-prefix "
                           f"(now {config.topic_prefix!r}) so the rendered streams do not mix with recorded ones")
    stamps = render_stamps(track, span, config.rate_hz, config.start_s, config.end_s, config.outside)
    T = track.poses(stamps, config.outside)
    return ReplayPlan(track, Trajectory(stamps, T, track.fixed_frame), n_in, span)


def _rendered_records(run: PipelineRun, config: ReplayConfig, plan: ReplayPlan, out: OutputBag,
                      bar: Any) -> Iterator[tuple[int, int, Any, bytes | memoryview]]:
    """(log time ns, 1, connection, bytes) for every rendered message, in time order; the schedule last."""
    store, fid = out.typestore, plan.track.optical_frame
    c_img = out.add_topic(config.topic("image_raw"), m.IMAGE)
    c_info = out.add_topic(config.topic("camera_info"), m.CAMERA_INFO)
    c_depth = out.add_topic(config.topic("depth/image_raw"), m.IMAGE) if config.depth else None
    c_sched = out.add_topic(config.topic("keyframe_schedule"), m.KEYFRAME_SCHEDULE)
    last = int(plan.trajectory.stamps_ns[0])
    for chunk in run:
        for j, stamp in enumerate(chunk.stamps_ns.tolist()):
            rgb = m.rgb_to_uint8(chunk.render.rgb[j])
            yield stamp, 1, c_img, store.serialize_cdr(m.image_rgb8(store, rgb, stamp, fid), m.IMAGE)
            yield stamp, 1, c_info, store.serialize_cdr(m.camera_info(store, config.intrinsics, stamp, fid), m.CAMERA_INFO)
            if c_depth is not None:
                yield stamp, 1, c_depth, store.serialize_cdr(m.image_depth32(store, chunk.render.depth_m[j], stamp, fid),
                                                             m.IMAGE)
            last = stamp
        bar.update(len(chunk.indices))
    s = run.schedule
    msg = m.keyframe_schedule(store, int(plan.trajectory.stamps_ns[0]), plan.track.fixed_frame, run.job.request_id,
                              config.prompt, s.scheduler.value, s.coverage, s.keyframe_indices,
                              [k.reason for k in s.keyframes], s.predicted_count, s.coverage_threshold)
    # Complete only after the last chunk, so it is logged at the last frame's time (header: first pose).
    yield last, 1, c_sched, store.serialize_cdr(msg, m.KEYFRAME_SCHEDULE)


def replay_bag(config: ReplayConfig, pipeline: Pipeline, initial_image: NDArray[np.float32] | None = None) -> ReplaySummary:
    """Render the camera along the recorded run and write input + camera streams to ``config.output``.

    Args:
        config: what to read, render and write.
        pipeline: the configured pipeline (world store, renderer, generator).
        initial_image: [H, W, 3] float32 in [0, 1], first keyframe of a NEW world (None: generated).
    Returns:
        The summary; the output bag exists only if this returns.
    Raises:
        BagError / InputError: bad input or output (see the module docstring); nothing is left at the output.
    """
    from tqdm import tqdm

    from srender_ros.engine.pipeline import RenderJob

    t_start = time.perf_counter()
    check_output_path(config.output, [config.input], config.overwrite)
    store = m.make_typestore()
    plan = plan_replay(config, store)
    job = RenderJob(prompt=config.prompt, trajectory=plan.trajectory, intrinsics=config.intrinsics,
                    initial_image=initial_image, request_id=f"bag:{config.input.name}")
    run = pipeline.run(job)
    n = len(plan.trajectory)
    bar = tqdm(total=n, unit="frame", desc="srender bag", disable=not config.progress, leave=False)
    copied = 0
    try:
        with open_input_bag(config.input) as bag, OutputBag(config.output, store, config.storage, config.overwrite) as out:
            # Input connections first, in the input's order, so the output lists topics the same way.
            conn_map = {c.id: out.add_passthrough(c) for c in bag.connections}
            head: list[tuple[int, int, Any, bytes | memoryview]] = []
            if plan.track.static_link is not None:
                parent, child, T = plan.track.static_link
                stamp = min(plan.input_span_ns[0], int(plan.trajectory.stamps_ns[0])) if plan.input_messages else \
                    int(plan.trajectory.stamps_ns[0])
                c_static = next((conn_map[c.id] for c in bag.connections
                                 if c.topic == TF_STATIC_TOPIC and c.msgtype == m.TF_MESSAGE), None)
                c_static = c_static or out.add_topic(TF_STATIC_TOPIC, m.TF_MESSAGE)
                head.append((stamp, 0, c_static,
                             store.serialize_cdr(m.tf_message(store, stamp, parent, child, T), m.TF_MESSAGE)))
            inputs = ((t, 0, conn_map[c.id], raw) for c, t, raw in bag.messages())
            seq = itertools.count()
            streams = [((t, o, next(seq), c, d) for t, o, c, d in s)
                       for s in (iter(head), inputs, _rendered_records(run, config, plan, out, bar))]
            for t, order, _, conn, data in heapq.merge(*streams):
                out.write_raw(conn, t, bytes(data))
                copied += order == 0
            counts = dict(out.counts)
            notes = tuple(bag.notes)
    finally:
        bar.close()
    copied -= len(head)
    if copied != plan.input_messages:
        log.warning("copied %d input messages, the input's metadata lists %d", copied, plan.input_messages)
    s = run.schedule
    return ReplaySummary(
        output=config.output, storage=config.storage, input_messages=copied, frames=run.stats.frames,
        keyframes=len(s.keyframes), keyframe_indices=list(s.keyframe_indices),
        topics={t: counts.get(t, 0) for t in (config.topic("image_raw"), config.topic("camera_info"),
                                               config.topic("depth/image_raw"), config.topic("keyframe_schedule"))
                if t in counts},
        span_s=plan.trajectory.duration_s, pose_source=plan.track.description, optical_frame=plan.track.optical_frame,
        fixed_frame=plan.track.fixed_frame, seconds=time.perf_counter() - t_start,
        render_seconds=dict(run.stats.seconds), input_notes=notes)


__all__ = ["BagError", "ReplayConfig", "ReplayPlan", "ReplaySummary", "plan_replay", "render_stamps", "replay_bag"]
