"""Where the camera is: from the bag's TF tree or from a pose topic, plus a fixed base->camera extrinsic.

Both routes end in a :class:`CameraTrack`: a TF buffer path (fixed frame -> source frame), a fixed
transform from the source frame to the camera's optical frame, and the times the data covers. A pose
topic becomes a one-link TF buffer, so both share the same interpolation (linear + slerp) and the
same handling of times outside the data.

Camera convention: a pose's rotation describes either an optical frame (z forward) or a ROS body
frame (REP 103, x forward). Unless told (``convention``), a frame whose name contains "optical" is
optical and anything else (base_link, camera_link, an --extrinsic target, a pose topic) is body.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rosbags.typesys.store import Typestore

from srender_ros.bag import messages as m
from srender_ros.bag.reader import BagSource
from srender_ros.core.geometry import PoseFrame, make_transform, quat_wxyz_to_matrix, to_optical, xyzw_to_wxyz
from srender_ros.engine.tf_buffer import NS_PER_S, OutsidePolicy, TfBuffer
from srender_ros.errors import BagError, InputError

log = logging.getLogger(__name__)

TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
#: The moving frame of a pose topic whose messages name no child frame (PoseStamped, Path).
POSE_TOPIC_FRAME = "srender_pose"
POSE_TYPES = (
    "nav_msgs/msg/Odometry",
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
    "geometry_msgs/msg/TransformStamped",
    "nav_msgs/msg/Path",
)


def parse_extrinsic(text: str) -> NDArray[np.float64]:
    """``"x y z qx qy qz qw"`` or ``"x y z roll pitch yaw"`` (metres, radians) -> [4, 4] T_base_camera.

    Roll, pitch, yaw are ROS's fixed-axis convention (R = Rz(yaw) Ry(pitch) Rx(roll)), as in
    ``static_transform_publisher``. Commas are accepted as separators.
    """
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"--extrinsic {text!r}: not numbers; expected 'x y z qx qy qz qw' or 'x y z roll pitch yaw'") from None
    if len(vals) not in (6, 7) or not all(math.isfinite(v) for v in vals):
        raise InputError(f"--extrinsic {text!r}: expected 7 finite numbers 'x y z qx qy qz qw' or 6 'x y z roll pitch "
                         f"yaw' (metres, radians), got {len(vals)}")
    t = np.array(vals[:3])
    if len(vals) == 7:
        q_xyzw = np.array(vals[3:])
        norm = float(np.linalg.norm(q_xyzw))
        if norm < 1e-8:
            raise InputError(f"--extrinsic {text!r}: zero quaternion; identity is '0 0 0 0 0 0 1'")
        if abs(norm - 1.0) > 1e-3:
            log.warning("--extrinsic quaternion has norm %.4f; normalizing it", norm)
        R = quat_wxyz_to_matrix(xyzw_to_wxyz(q_xyzw))
    else:
        r, p, y = vals[3:]
        cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
        Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
        Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        R = Rz @ Ry @ Rx
    return make_transform(R, t)


def choose_convention(frame: str, has_extrinsic: bool, explicit: PoseFrame | str | None) -> PoseFrame:
    """The convention of the camera frame's axes: ``explicit`` if given; else optical when no extrinsic
    is given and ``frame`` contains "optical"; else body (REP 103)."""
    if explicit is not None:
        return PoseFrame(explicit)
    if not has_extrinsic and "optical" in frame:
        return PoseFrame.OPTICAL
    return PoseFrame.BODY


def optical_frame_name(frame: str) -> str:
    """Name for the optical frame of a body frame: ``camera_link`` -> ``camera_optical_frame``."""
    base = frame[: -len("_link")] if frame.endswith("_link") and len(frame) > len("_link") else frame
    return f"{base.strip('/')}_optical_frame"


@dataclass(frozen=True, eq=False)
class CameraTrack:
    """Optical camera poses at any time: T_fixed_optical(t) = T_fixed_source(t) @ T_source_optical.

    Attributes:
        buffer: transforms the source frame's pose is looked up in.
        fixed_frame: world frame of the output poses (the trajectory's frame).
        source_frame: frame in ``buffer`` the camera is rigidly attached to.
        T_source_optical: [4, 4] fixed source -> camera optical frame (extrinsic + axis convention).
        optical_frame: frame_id the images carry.
        convention: axis convention of the camera frame the user named.
        natural_stamps_ns: [K] ascending stamps of the pose data (one frame per pose message).
        span_ns: (first, last) time every moving link has data; None when the path is all static.
        static_link: (parent, child, [4, 4]) to add to /tf_static so viewers can place the images, or None.
        description: how the pose was found, for the summary.
    """

    buffer: TfBuffer
    fixed_frame: str
    source_frame: str
    T_source_optical: NDArray[np.float64]
    optical_frame: str
    convention: PoseFrame
    natural_stamps_ns: NDArray[np.int64]
    span_ns: tuple[int, int] | None
    static_link: tuple[str, str, NDArray[np.float64]] | None
    description: str

    def poses(self, stamps_ns: NDArray[np.integer], policy: OutsidePolicy | str = OutsidePolicy.REFUSE) -> NDArray[np.float64]:
        """[N] stamps (ns) -> [N, 4, 4] optical camera-to-fixed-frame poses."""
        T_fixed_source = self.buffer.lookup(self.fixed_frame, self.source_frame, stamps_ns, policy)
        return T_fixed_source @ self.T_source_optical


def _finish(buffer: TfBuffer, fixed: str, source: str, extrinsic: NDArray[np.float64] | None, convention: PoseFrame,
            optical_frame: str, stamps: NDArray[np.int64], span: tuple[int, int] | None, link_parent: str | None,
            description: str) -> CameraTrack:
    T_source_cam = np.eye(4) if extrinsic is None else extrinsic
    T_source_optical = to_optical(T_source_cam, convention)
    static_link = None
    if link_parent is not None and optical_frame != link_parent and optical_frame not in buffer.frames:
        static_link = (link_parent, optical_frame, T_source_optical)
    return CameraTrack(buffer, fixed, source, T_source_optical, optical_frame, convention, stamps, span, static_link,
                       description)


# -- from TF ----------------------------------------------------------------------------------
def read_tf(bag: BagSource, store: Typestore) -> TfBuffer:
    """All transforms on /tf (moving, stamped by header.stamp) and /tf_static (static) of the bag."""
    buf = TfBuffer()
    conns = [c for c in bag.connections if c.topic in (TF_TOPIC, TF_STATIC_TOPIC)]
    for c in conns:
        if c.msgtype != m.TF_MESSAGE:
            raise BagError(f"topic {c.topic} in {bag.path} has type {c.msgtype}, expected {m.TF_MESSAGE}")
    if not conns:
        return buf
    for conn, t_ns, raw in bag.messages(conns):
        msg = _deserialize(store, raw, conn.msgtype, conn.topic, t_ns)
        for tr in msg.transforms:
            try:
                T = m.transform_to_matrix(tr.transform)
            except ValueError as exc:
                raise BagError(f"{conn.topic} at log time {t_ns / NS_PER_S:.3f} s: transform {tr.header.frame_id!r} -> "
                               f"{tr.child_frame_id!r}: {exc}") from None
            parent, child = tr.header.frame_id.lstrip("/"), tr.child_frame_id.lstrip("/")
            if conn.topic == TF_STATIC_TOPIC:
                buf.add_static(parent, child, T)
            else:
                buf.add_dynamic(parent, child, m.stamp_to_ns(tr.header.stamp), T)
    return buf


def track_from_tf(
    bag: BagSource,
    store: Typestore,
    fixed_frame: str,
    camera_frame: str,
    extrinsic: NDArray[np.float64] | None = None,
    convention: PoseFrame | str | None = None,
    optical_frame: str | None = None,
    camera_name: str = "camera",
) -> CameraTrack:
    """The camera rigidly attached to ``camera_frame`` (optionally offset by ``extrinsic``), in ``fixed_frame``.

    Raises:
        BagError: no TF in the bag, an unknown frame, or frames in unconnected trees.
    """
    fixed_frame, camera_frame = fixed_frame.lstrip("/"), camera_frame.lstrip("/")
    buf = read_tf(bag, store)
    if not buf.frames:
        raise BagError(f"input bag {bag.path} has no /tf or /tf_static transforms; topics present: "
                       f"{', '.join(bag.topics) or '(none)'}. Use --pose-topic for a pose topic instead")
    span = buf.span_ns(fixed_frame, camera_frame)  # also checks the frames and their connection
    up, down = buf.chain(fixed_frame, camera_frame)
    stamps = np.unique(np.concatenate([buf.link_stamps_ns(c) for c in up + down] + [np.zeros(0, np.int64)]))
    if span is not None:
        stamps = stamps[(stamps >= span[0]) & (stamps <= span[1])]
    conv = choose_convention(camera_frame, extrinsic is not None, convention)
    if optical_frame is None:
        if extrinsic is not None:
            optical_frame = f"{camera_name.strip('/').replace('/', '_')}_optical_frame"
        else:
            optical_frame = camera_frame if conv is PoseFrame.OPTICAL else optical_frame_name(camera_frame)
    desc = f"TF {fixed_frame} -> {camera_frame}" + (" + extrinsic" if extrinsic is not None else "") + f" ({conv.value})"
    return _finish(buf, fixed_frame, camera_frame, extrinsic, conv, optical_frame, stamps.astype(np.int64), span,
                   camera_frame, desc)


# -- from a pose topic ------------------------------------------------------------------------
def _deserialize(store: Typestore, raw: bytes, msgtype: str, topic: str, t_ns: int) -> Any:
    try:
        return store.deserialize_cdr(raw, msgtype)
    except Exception as exc:
        raise BagError(f"message on {topic} at log time {t_ns / NS_PER_S:.3f} s cannot be decoded as {msgtype} "
                       f"({type(exc).__name__}: {exc}); the bag may be corrupt") from exc


def _poses_of(msg: Any, msgtype: str) -> list[tuple[int, str, str, Any, bool]]:
    """(stamp_ns, frame_id, child_frame_id, geometry, is_transform) for each pose a message holds."""
    if msgtype == "nav_msgs/msg/Odometry":
        return [(m.stamp_to_ns(msg.header.stamp), msg.header.frame_id, msg.child_frame_id, msg.pose.pose, False)]
    if msgtype == "geometry_msgs/msg/PoseStamped":
        return [(m.stamp_to_ns(msg.header.stamp), msg.header.frame_id, "", msg.pose, False)]
    if msgtype == "geometry_msgs/msg/PoseWithCovarianceStamped":
        return [(m.stamp_to_ns(msg.header.stamp), msg.header.frame_id, "", msg.pose.pose, False)]
    if msgtype == "geometry_msgs/msg/TransformStamped":
        return [(m.stamp_to_ns(msg.header.stamp), msg.header.frame_id, msg.child_frame_id, msg.transform, True)]
    if msgtype == "nav_msgs/msg/Path":
        return [(m.stamp_to_ns(p.header.stamp), p.header.frame_id or msg.header.frame_id, "", p.pose, False)
                for p in msg.poses]
    raise AssertionError(msgtype)


def track_from_pose_topic(
    bag: BagSource,
    store: Typestore,
    topic: str,
    fixed_frame: str | None = None,
    extrinsic: NDArray[np.float64] | None = None,
    convention: PoseFrame | str | None = None,
    optical_frame: str | None = None,
    camera_name: str = "camera",
) -> CameraTrack:
    """The camera at the poses of ``topic`` (one of POSE_TYPES), offset by ``extrinsic``.

    Poses of all messages are merged by stamp (a later message wins on equal stamps); a Path's own
    poses must be strictly increasing in time.

    Raises:
        BagError: unknown topic (lists the topics), unsupported type, no poses, inconsistent or
        unexpected frame ids, non-finite poses, a Path with unordered stamps.
    """
    conns = bag.require_topic(topic)
    types = {c.msgtype for c in conns}
    bad = sorted(types - set(POSE_TYPES))
    if bad:
        hint = "; for TF use --fixed-frame and --camera-frame" if m.TF_MESSAGE in bad else ""
        raise BagError(f"--pose-topic {topic} has type {', '.join(bad)}; supported: {', '.join(POSE_TYPES)}{hint}")
    samples: list[tuple[int, str, str, Any, bool]] = []
    for conn, t_ns, raw in bag.messages(conns):
        msg = _deserialize(store, raw, conn.msgtype, topic, t_ns)
        got = _poses_of(msg, conn.msgtype)
        if conn.msgtype == "nav_msgs/msg/Path" and len(got) > 1:
            st = np.array([g[0] for g in got])
            if (np.diff(st) <= 0).any():
                i = int(np.argmax(np.diff(st) <= 0)) + 1
                raise BagError(f"nav_msgs/Path on {topic} at log time {t_ns / NS_PER_S:.3f} s: pose #{i} is not stamped "
                               f"after pose #{i - 1} ({int(st[i])} ns vs {int(st[i - 1])} ns); a camera path needs strictly "
                               "increasing pose stamps (header.stamp of each PoseStamped)")
        samples.extend(got)
    if not samples:
        raise BagError(f"--pose-topic {topic} has no poses in {bag.path}")
    frames = sorted({s[1].lstrip("/") for s in samples})
    if len(frames) > 1:
        raise BagError(f"--pose-topic {topic}: poses are in several frames ({', '.join(map(repr, frames))}); "
                       "srender needs one fixed frame")
    frame = frames[0]
    if not frame:
        if not fixed_frame:
            raise BagError(f"--pose-topic {topic}: header.frame_id is empty; pass --fixed-frame to name the world frame")
        frame = fixed_frame
    if fixed_frame and fixed_frame.lstrip("/") != frame:
        raise BagError(f"--fixed-frame {fixed_frame!r} differs from the frame of --pose-topic {topic} ({frame!r}); "
                       "drop --fixed-frame or use the topic's frame")
    children = sorted({s[2].lstrip("/") for s in samples})
    child = children[0] if len(children) == 1 and children[0] else POSE_TOPIC_FRAME
    buf = TfBuffer()
    for stamp_ns, _, _, geom, is_tf in samples:
        try:
            T = m.transform_to_matrix(geom) if is_tf else m.pose_to_matrix(geom)
        except ValueError as exc:
            raise BagError(f"--pose-topic {topic}: pose stamped {stamp_ns / NS_PER_S:.3f} s: {exc}") from None
        buf.add_dynamic(frame, child, stamp_ns, T)
    stamps = buf.link_stamps_ns(child)
    conv = choose_convention(child, extrinsic is not None, convention)
    if optical_frame is None:
        if extrinsic is None and child != POSE_TOPIC_FRAME:
            optical_frame = child if conv is PoseFrame.OPTICAL else optical_frame_name(child)
        else:
            optical_frame = f"{camera_name.strip('/').replace('/', '_')}_optical_frame"
    span = (int(stamps[0]), int(stamps[-1]))
    desc = f"{topic} ({types.pop().split('/')[-1]}, {len(stamps)} poses)" + (" + extrinsic" if extrinsic is not None else "")
    return _finish(buf, frame, child, extrinsic, conv, optical_frame, stamps, span,
                   None if child == POSE_TOPIC_FRAME else child, desc + f" ({conv.value})")
