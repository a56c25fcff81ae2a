"""Pure conversions between ROS messages and numpy / srender values.

Message classes are imported inside the functions, so this module imports without ROS; message
arguments are used duck-typed. Images go through cv_bridge when a working one is installed (a ROS
install), else through our own converter (fills ``msg.data`` with ``bytes``: rclpy copies other
buffers element by element, see notes/ros-env.md).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import (
    PoseFrame,
    from_optical,
    make_transform,
    matrix_to_quat_wxyz,
    quat_wxyz_to_matrix,
    to_optical,
    validate_quaternions_wxyz,
    wxyz_to_xyzw,
    xyzw_to_wxyz,
)
from srender_ros.core.trajectory import Trajectory
from srender_ros.errors import InputError, TrajectoryError

_NS = 1_000_000_000


# ---- stamps ---------------------------------------------------------------------------------
def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> Any:
    """Integer nanoseconds -> builtin_interfaces/Time (floor division keeps nanosec in [0, 1e9))."""
    from builtin_interfaces.msg import Time

    return Time(sec=int(stamp_ns) // _NS, nanosec=int(stamp_ns) % _NS)


def _header(stamp_ns: int, frame_id: str) -> Any:
    from std_msgs.msg import Header

    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


# ---- images ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _cv_bridge() -> Any | None:
    """A working ROS 2 CvBridge, or None (PyPI's ``cv-bridge`` is a ROS 1 port broken on numpy 2)."""
    try:
        from cv_bridge import CvBridge

        bridge = CvBridge()
        probe = bridge.cv2_to_imgmsg(np.zeros((1, 2, 3), np.uint8), encoding="rgb8")
        if bridge.imgmsg_to_cv2(probe, desired_encoding="rgb8").shape != (1, 2, 3):
            return None
        return bridge
    except Exception:
        return None


def to_uint8_rgb(rgb: NDArray[Any]) -> NDArray[np.uint8]:
    """[H, W, 3] float in [0, 1] (clipped) or uint8 -> C-contiguous uint8 [H, W, 3]."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"rgb image: expected shape [H, W, 3], got {list(a.shape)}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    h, w = a.shape[:2]
    flat = np.ascontiguousarray(a, dtype=np.float32).reshape(h, w * 3)
    try:
        import cv2

        # One pass with saturation (negative and NaN -> 0, > 1 -> 255), much faster than numpy's
        # clip/scale/cast chain, which cost a third of a 30 Hz frame budget at 640x480.
        # (OpenCV's stubs do not list the scalar overload of multiply.)
        u8 = cv2.multiply(flat, 255.0, dtype=cv2.CV_8U)  # type: ignore[call-overload]
        return np.ascontiguousarray(np.asarray(u8).reshape(h, w, 3))
    except ImportError:
        return (np.clip(np.nan_to_num(flat, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(h, w, 3)


def rgb_to_image_msg(rgb: NDArray[Any], stamp_ns: int, frame_id: str, use_cv_bridge: bool = True) -> Any:
    """[H, W, 3] RGB (float 0..1 or uint8) -> sensor_msgs/Image rgb8."""
    from sensor_msgs.msg import Image

    a = to_uint8_rgb(rgb)
    bridge = _cv_bridge() if use_cv_bridge else None
    if bridge is not None:
        msg = bridge.cv2_to_imgmsg(a, encoding="rgb8", header=_header(stamp_ns, frame_id))
        return msg
    h, w = a.shape[:2]
    return Image(header=_header(stamp_ns, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0,
                 step=3 * w, data=a.tobytes())


def depth_to_image_msg(depth_m: NDArray[Any], stamp_ns: int, frame_id: str) -> Any:
    """[H, W] z-depth in metres (NaN = nothing) -> sensor_msgs/Image 32FC1 (REP 118)."""
    from sensor_msgs.msg import Image

    d = np.ascontiguousarray(np.asarray(depth_m, dtype="<f4"))
    if d.ndim != 2:
        raise InputError(f"depth image: expected shape [H, W], got {list(d.shape)}")
    h, w = d.shape
    return Image(header=_header(stamp_ns, frame_id), height=h, width=w, encoding="32FC1", is_bigendian=0,
                 step=4 * w, data=d.tobytes())


_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "32FC1": 1}


def image_msg_to_array(msg: Any) -> NDArray[Any]:
    """sensor_msgs/Image -> numpy without colour surprises.

    Returns:
        rgb8/bgr8/rgba8/bgra8 -> [H, W, 3] uint8 RGB (alpha dropped); mono8 -> [H, W] uint8;
        32FC1 -> [H, W] float32.
    Raises:
        InputError: unsupported encoding, or a data size that does not match height/step.
    """
    enc = str(msg.encoding)
    if enc not in _CHANNELS:
        raise InputError(f"image encoding {enc!r} is not supported; use one of {sorted(_CHANNELS)}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    ch = _CHANNELS[enc]
    itemsize = 4 if enc == "32FC1" else 1
    if h <= 0 or w <= 0 or step < w * ch * itemsize:
        raise InputError(f"image {w}x{h} {enc}: step {step} is smaller than a row ({w * ch * itemsize} bytes)")
    data = msg.data
    buf = np.asarray(data, dtype=np.uint8) if isinstance(data, list) else np.frombuffer(data, np.uint8)
    if buf.size < h * step:
        raise InputError(f"image {w}x{h} {enc}: data has {buf.size} bytes, expected {h * step}")
    rows = buf[: h * step].reshape(h, step)[:, : w * ch * itemsize]
    if enc == "32FC1":
        dtype = np.dtype(">f4" if msg.is_bigendian else "<f4")
        return rows.copy().view(dtype).reshape(h, w).astype(np.float32)
    px = rows.reshape(h, w, ch)
    if enc == "mono8":
        return px[..., 0].copy()
    if enc.startswith("bgr"):
        return np.ascontiguousarray(px[..., 2::-1])
    return np.ascontiguousarray(px[..., :3])


def image_msg_to_rgb_float(msg: Any) -> NDArray[np.float32]:
    """A colour sensor_msgs/Image -> [H, W, 3] float32 RGB in [0, 1] (e.g. a request's initial image)."""
    a = image_msg_to_array(msg)
    if a.ndim != 3:
        raise InputError(f"image encoding {msg.encoding!r}: a colour image (rgb8 or bgr8) is needed")
    return a.astype(np.float32) / 255.0


# ---- cameras --------------------------------------------------------------------------------
def camera_info_from_intrinsics(intrinsics: Intrinsics, stamp_ns: int, frame_id: str) -> Any:
    """Intrinsics -> sensor_msgs/CameraInfo: K, R (identity), P filled, plumb_bob with zero D."""
    from sensor_msgs.msg import CameraInfo

    K = intrinsics.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraInfo(header=_header(stamp_ns, frame_id), width=intrinsics.width_px, height=intrinsics.height_px,
                      distortion_model="plumb_bob", d=[0.0] * 5, k=K.reshape(-1).tolist(),
                      r=np.eye(3).reshape(-1).tolist(), p=P.reshape(-1).tolist())


def intrinsics_from_camera_info(msg: Any) -> Intrinsics:
    """sensor_msgs/CameraInfo -> Intrinsics (pinhole; K, width and height are read).

    Raises:
        InputError: naming the field, for a non-zero distortion, a K that is not a camera matrix or
            absurd values (checked by Intrinsics).
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(K).all() or K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1 or K[0, 1] != 0:
        raise InputError(f"camera.k={K.reshape(-1).tolist()} is not a pinhole camera matrix "
                         "[fx 0 cx; 0 fy cy; 0 0 1]")
    d = np.asarray(msg.d, dtype=np.float64)
    if d.size and np.any(d != 0):
        raise InputError(f"camera.d={d.tolist()}: distortion is not supported; send a rectified pinhole camera "
                         "(zero D)")
    try:
        return Intrinsics.from_K(K, int(msg.width), int(msg.height))
    except InputError as exc:
        raise InputError(f"request camera: {exc}") from exc


# ---- poses ----------------------------------------------------------------------------------
def pose_msg_to_matrix(pose: Any) -> NDArray[np.float64]:
    """geometry_msgs/Pose -> [4, 4] transform (quaternion validated and normalized).

    Raises:
        InputError: NaN/inf position or orientation, or a zero quaternion.
    """
    p = np.array([pose.position.x, pose.position.y, pose.position.z], dtype=np.float64)
    if not np.isfinite(p).all():
        raise TrajectoryError(f"pose position {p.tolist()} is not finite")
    o = pose.orientation
    q, _ = validate_quaternions_wxyz(xyzw_to_wxyz(np.array([[o.x, o.y, o.z, o.w]], dtype=np.float64)),
                                     "pose orientation")
    return make_transform(quat_wxyz_to_matrix(q[0]), p)


def matrix_to_pose_msg(T: NDArray[np.floating]) -> Any:
    """[4, 4] transform -> geometry_msgs/Pose."""
    from geometry_msgs.msg import Point, Pose, Quaternion

    T = np.asarray(T, dtype=np.float64)
    x, y, z, w = wxyz_to_xyzw(matrix_to_quat_wxyz(T[:3, :3])).tolist()
    return Pose(position=Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                orientation=Quaternion(x=x, y=y, z=z, w=w))


class PathArrays(NamedTuple):
    """A nav_msgs/Path as arrays, poses still in the sender's convention.

    Attributes:
        stamps_ns: [N] int64 pose stamps.
        T_world_pose: [N, 4, 4] poses as sent.
        frame_id: the world frame.
        off_norm_quaternions: how many quaternions were not unit length (normalized here).
    """

    stamps_ns: NDArray[np.int64]
    T_world_pose: NDArray[np.float64]
    frame_id: str
    off_norm_quaternions: int


def _clean_frame(frame_id: str) -> str:
    return str(frame_id).strip().lstrip("/")


def path_msg_to_arrays(path: Any, what: str = "trajectory") -> PathArrays:
    """nav_msgs/Path -> stamps, poses and world frame, validated.

    Raises:
        TrajectoryError: empty path, non-finite position, bad quaternion, empty frame id, or a pose
            whose frame id differs from the path's; the message names the pose index.
    """
    n = len(path.poses)
    if n == 0:
        raise TrajectoryError(f"{what} is empty: it needs at least one pose")
    frame = _clean_frame(path.header.frame_id)
    if not frame:
        raise TrajectoryError(f"{what}: header.frame_id is empty; set it to the world frame the poses are in")
    pos = np.empty((n, 3), np.float64)
    q_xyzw = np.empty((n, 4), np.float64)
    stamps = np.empty(n, np.int64)
    for i, ps in enumerate(path.poses):
        pf = _clean_frame(ps.header.frame_id)
        if pf and pf != frame:
            raise TrajectoryError(f"{what} pose #{i}: frame_id {pf!r} differs from the path's {frame!r}; "
                                  "all poses must be in the path's frame (the node has no tf lookup)")
        p, o = ps.pose.position, ps.pose.orientation
        pos[i] = (p.x, p.y, p.z)
        q_xyzw[i] = (o.x, o.y, o.z, o.w)
        stamps[i] = stamp_to_ns(ps.header.stamp)
    bad = ~np.isfinite(pos).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise TrajectoryError(f"{what} pose #{i}: position {pos[i].tolist()} is not finite")
    try:
        q, off = validate_quaternions_wxyz(xyzw_to_wxyz(q_xyzw), f"{what} orientation")
    except InputError as exc:
        raise TrajectoryError(str(exc)) from exc
    return PathArrays(stamps, make_transform(quat_wxyz_to_matrix(q), pos), frame, off)


def synthesize_stamps(stamps_ns: NDArray[np.int64], start_ns: int, rate_hz: float) -> NDArray[np.int64]:
    """Stamps for a path whose poses all carry one stamp (planners often do): start + i / rate.

    Args:
        stamps_ns: [N] the poses' stamps.
        start_ns: stamp of the first pose when synthesizing (the path header's stamp, say).
        rate_hz: frames per second.
    Returns:
        [N] the input when its stamps differ, else evenly spaced stamps.
    """
    if len(stamps_ns) > 1 and np.all(stamps_ns == stamps_ns[0]):
        step = _NS / float(rate_hz)
        return (int(start_ns) + np.round(np.arange(len(stamps_ns)) * step)).astype(np.int64)
    return np.asarray(stamps_ns, dtype=np.int64)


def trajectory_from_path(path: Any, pose_frame: PoseFrame | str, rate_hz: float = 30.0,
                         world_frame_id: str = "", what: str = "trajectory") -> Trajectory:
    """nav_msgs/Path (poses in ``pose_frame`` convention) -> optical-frame Trajectory.

    Args:
        path: the message.
        pose_frame: convention of the incoming poses (body or optical).
        rate_hz: used only when every pose carries the same stamp (see :func:`synthesize_stamps`).
        world_frame_id: required frame of the path; empty accepts any non-empty frame.
    Raises:
        TrajectoryError: as :func:`path_msg_to_arrays`, a frame other than ``world_frame_id``, or
            stamps that are neither all equal nor strictly increasing.
    """
    arr = path_msg_to_arrays(path, what)
    want = _clean_frame(world_frame_id)
    if want and arr.frame_id != want:
        raise TrajectoryError(f"{what}: frame_id {arr.frame_id!r} is not the world frame {want!r} "
                              "(parameter world_frame_id)")
    stamps = synthesize_stamps(arr.stamps_ns, arr.stamps_ns[0] if arr.stamps_ns[0] else stamp_to_ns(path.header.stamp),
                               rate_hz)
    return Trajectory(stamps, to_optical(arr.T_world_pose, pose_frame), arr.frame_id)


def path_from_arrays(stamps_ns: NDArray[np.integer], T_world_cam: NDArray[np.floating], frame_id: str,
                     pose_frame: PoseFrame | str = PoseFrame.OPTICAL) -> Any:
    """Optical-frame poses -> nav_msgs/Path with poses in ``pose_frame`` convention.

    Args:
        stamps_ns: [N] stamps. T_world_cam: [N, 4, 4] optical camera-to-world poses.
        frame_id: world frame written to the path and every pose.
        pose_frame: convention the receiver expects (the node's ``pose_frame`` parameter).
    """
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path

    T = from_optical(np.asarray(T_world_cam, dtype=np.float64), pose_frame)
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    poses = [PoseStamped(header=_header(int(s), frame_id), pose=matrix_to_pose_msg(t)) for s, t in zip(stamps, T)]
    return Path(header=_header(int(stamps[0]) if len(stamps) else 0, frame_id), poses=poses)


def pose_stamped_to_optical(msg: Any, pose_frame: PoseFrame | str,
                            world_frame_id: str = "") -> tuple[int, NDArray[np.float64], str]:
    """geometry_msgs/PoseStamped -> (stamp_ns, [4, 4] optical T_world_cam, world frame).

    Raises:
        TrajectoryError: empty or unexpected frame id, non-finite position, zero quaternion.
    """
    frame = _clean_frame(msg.header.frame_id)
    if not frame:
        raise TrajectoryError("camera_pose: header.frame_id is empty; set it to the world frame")
    want = _clean_frame(world_frame_id)
    if want and frame != want:
        raise TrajectoryError(f"camera_pose: frame_id {frame!r} is not the world frame {want!r} (parameter world_frame_id)")
    try:
        T = pose_msg_to_matrix(msg.pose)
    except InputError as exc:
        raise TrajectoryError(f"camera_pose: {exc}") from exc
    return stamp_to_ns(msg.header.stamp), to_optical(T, pose_frame), frame


def pose_stamped_from_optical(stamp_ns: int, T_world_cam: NDArray[np.floating], frame_id: str,
                              pose_frame: PoseFrame | str = PoseFrame.OPTICAL) -> Any:
    """[4, 4] optical pose -> geometry_msgs/PoseStamped in ``pose_frame`` convention."""
    from geometry_msgs.msg import PoseStamped

    return PoseStamped(header=_header(stamp_ns, frame_id), pose=matrix_to_pose_msg(from_optical(T_world_cam, pose_frame)))


class PathRequest(NamedTuple):
    """What a RenderRequest message or a RenderTrajectory goal asks for, validated.

    Attributes:
        environment: the prompt (stripped, non-empty).
        trajectory: optical camera poses.
        intrinsics: the message's camera, or ``default_camera``.
        initial_image: [H, W, 3] float32 in [0, 1] at the camera's size, or None.
    """

    environment: str
    trajectory: Trajectory
    intrinsics: Intrinsics
    initial_image: NDArray[np.float32] | None


def path_request_from_msg(msg: Any, pose_frame: PoseFrame | str, rate_hz: float, world_frame_id: str,
                          default_camera: Intrinsics, what: str) -> PathRequest:
    """Validate a message with ``environment``, ``trajectory`` (nav_msgs/Path), optional ``camera``
    (CameraInfo) and optional ``initial_image`` fields.

    Args:
        what: the message's name in errors ("render_request", "goal").
    Raises:
        InputError / TrajectoryError: naming ``what`` and the field.
    """
    env = msg.environment.strip()
    if not env:
        raise InputError(f"{what}.environment is empty: name the environment, e.g. 'a cluttered warehouse aisle'")
    traj = trajectory_from_path(msg.trajectory, pose_frame, rate_hz, world_frame_id, f"{what}.trajectory")
    intr = intrinsics_from_camera_info(msg.camera) if msg.has_camera else default_camera
    image = None
    if msg.has_initial_image:
        image = image_msg_to_rgb_float(msg.initial_image)
        if image.shape[:2] != (intr.height_px, intr.width_px):
            raise InputError(f"{what}.initial_image is {image.shape[1]}x{image.shape[0]} but the camera is "
                             f"{intr.width_px}x{intr.height_px}; send them at the same size")
    return PathRequest(env, traj, intr, image)
