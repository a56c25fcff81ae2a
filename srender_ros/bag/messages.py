"""ROS message values for bags, through rosbags' typestore (no rclpy needed).

One typestore (ROS 2 kilted) plus our own messages, registered from the ``msg/*.msg`` text the
ROS build uses, so a bag we write carries the same definitions and hashes rosidl generates.
Builders here turn numpy images into sensor_msgs/Image and CameraInfo, and message values into
4x4 transforms.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import make_transform, matrix_to_quat_wxyz, quat_wxyz_to_matrix, xyzw_to_wxyz
from srender_ros.errors import BagError

NS_PER_S = 1_000_000_000
OUR_MESSAGES = ("KeyframeSchedule", "RenderRequest", "WorldStatus")
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
KEYFRAME_SCHEDULE = "srender_ros/msg/KeyframeSchedule"


def _msg_dirs() -> list[Path]:
    """Where ``KeyframeSchedule.msg`` may live: the source tree, then installed share/ folders."""
    here = Path(__file__).resolve().parents[2]
    dirs = [here / "msg", Path(sys.prefix) / "share" / "srender_ros" / "msg"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share" / "srender_ros" / "msg")
    return dirs


def find_msg_file(name: str) -> Path:
    """Path of our ``<name>.msg``; raises BagError listing the folders searched."""
    dirs = _msg_dirs()
    for d in dirs:
        if (d / f"{name}.msg").is_file():
            return d / f"{name}.msg"
    raise BagError(f"cannot find srender_ros message definition {name}.msg; searched {', '.join(map(str, dirs))}. "
                   "Run from the source tree or install the package (make setup / colcon build)")


@lru_cache(maxsize=1)
def _our_types() -> dict[str, Any]:
    types: dict[str, Any] = {}
    for name in OUR_MESSAGES:
        types.update(get_types_from_msg(find_msg_file(name).read_text(), f"srender_ros/msg/{name}"))
    return types


def make_typestore() -> Typestore:
    """A fresh ROS 2 kilted typestore with srender_ros messages registered."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(_our_types())
    return store


# -- stamps -----------------------------------------------------------------------------------
def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(store: Typestore, stamp_ns: int) -> Any:
    """Integer nanoseconds (>= 0) -> builtin_interfaces/Time."""
    Time = store.types["builtin_interfaces/msg/Time"]
    sec, nsec = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=sec, nanosec=nsec)


def header(store: Typestore, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header."""
    return store.types["std_msgs/msg/Header"](stamp=ns_to_stamp(store, stamp_ns), frame_id=frame_id)


# -- geometry ---------------------------------------------------------------------------------
def pose_to_matrix(pose: Any) -> NDArray[np.float64]:
    """geometry_msgs/Pose -> [4, 4] (position metres, orientation xyzw)."""
    p, o = pose.position, pose.orientation
    return _rt(np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w]))


def transform_to_matrix(tf: Any) -> NDArray[np.float64]:
    """geometry_msgs/Transform -> [4, 4] (translation metres, rotation xyzw)."""
    t, r = tf.translation, tf.rotation
    return _rt(np.array([t.x, t.y, t.z]), np.array([r.x, r.y, r.z, r.w]))


def _rt(t_m: NDArray[np.float64], q_xyzw: NDArray[np.float64]) -> NDArray[np.float64]:
    if not (np.isfinite(t_m).all() and np.isfinite(q_xyzw).all()):
        raise ValueError(f"non-finite pose: translation {t_m.tolist()}, quaternion xyzw {q_xyzw.tolist()}")
    if np.linalg.norm(q_xyzw) < 1e-8:
        raise ValueError("zero quaternion (identity is x=y=z=0, w=1)")
    return make_transform(quat_wxyz_to_matrix(xyzw_to_wxyz(q_xyzw)), t_m)


def matrix_to_transform_msg(store: Typestore, T: NDArray[np.floating]) -> Any:
    """[4, 4] -> geometry_msgs/Transform."""
    q = matrix_to_quat_wxyz(np.asarray(T)[:3, :3])
    Vector3 = store.types["geometry_msgs/msg/Vector3"]
    Quaternion = store.types["geometry_msgs/msg/Quaternion"]
    t = np.asarray(T, dtype=np.float64)[:3, 3]
    return store.types["geometry_msgs/msg/Transform"](
        translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
        rotation=Quaternion(x=float(q[1]), y=float(q[2]), z=float(q[3]), w=float(q[0])),
    )


def tf_message(store: Typestore, stamp_ns: int, parent: str, child: str, T_parent_child: NDArray[np.floating]) -> Any:
    """tf2_msgs/TFMessage with one TransformStamped."""
    ts = store.types["geometry_msgs/msg/TransformStamped"](
        header=header(store, stamp_ns, parent), child_frame_id=child,
        transform=matrix_to_transform_msg(store, T_parent_child))
    return store.types[TF_MESSAGE](transforms=[ts])


# -- images -----------------------------------------------------------------------------------
def rgb_to_uint8(rgb: NDArray[np.floating]) -> NDArray[np.uint8]:
    """[H, W, 3] float in [0, 1] -> [H, W, 3] uint8 (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def image_rgb8(store: Typestore, rgb_u8: NDArray[np.uint8], stamp_ns: int, frame_id: str) -> Any:
    """sensor_msgs/Image rgb8 from [H, W, 3] uint8."""
    h, w = rgb_u8.shape[:2]
    data = np.ascontiguousarray(rgb_u8, dtype=np.uint8).reshape(-1)
    return store.types[IMAGE](header=header(store, stamp_ns, frame_id), height=h, width=w, encoding="rgb8",
                              is_bigendian=0, step=3 * w, data=data)


def image_depth32(store: Typestore, depth_m: NDArray[np.floating], stamp_ns: int, frame_id: str) -> Any:
    """sensor_msgs/Image 32FC1 from [H, W] metres (NaN where nothing was rendered, REP 118)."""
    h, w = depth_m.shape
    raw = np.ascontiguousarray(depth_m, dtype="<f4").view(np.uint8).reshape(-1)
    return store.types[IMAGE](header=header(store, stamp_ns, frame_id), height=h, width=w, encoding="32FC1",
                              is_bigendian=0, step=4 * w, data=raw)


def camera_info(store: Typestore, intrinsics: Intrinsics, stamp_ns: int, frame_id: str) -> Any:
    """sensor_msgs/CameraInfo: plumb_bob with zero D, K, R = I, P = [K | 0]."""
    K = intrinsics.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = store.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return store.types[CAMERA_INFO](
        header=header(store, stamp_ns, frame_id), height=intrinsics.height_px, width=intrinsics.width_px,
        distortion_model="plumb_bob", d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0, roi=roi)


def decode_image(msg: Any) -> NDArray[Any]:
    """sensor_msgs/Image (rgb8 or 32FC1) -> [H, W, 3] uint8 or [H, W] float32 (for tests and tools)."""
    buf = np.asarray(msg.data, dtype=np.uint8)
    if msg.encoding == "rgb8":
        return buf.reshape(msg.height, msg.step)[:, : 3 * msg.width].reshape(msg.height, msg.width, 3)
    if msg.encoding == "32FC1":
        dt = ">f4" if msg.is_bigendian else "<f4"
        return buf.reshape(msg.height, msg.step)[:, : 4 * msg.width].copy().view(dt).astype(np.float32)
    raise BagError(f"image encoding {msg.encoding!r} is not supported here (rgb8 or 32FC1)")


def keyframe_schedule(
    store: Typestore,
    stamp_ns: int,
    frame_id: str,
    request_id: str,
    environment: str,
    scheduler: str,
    coverage: NDArray[np.floating],
    keyframe_indices: list[int],
    reasons: list[str],
    predicted_count: int,
    coverage_threshold: float,
) -> Any:
    """srender_ros/KeyframeSchedule.

    Args:
        coverage: [N] covered fraction of each pose before any new keyframe, pose order.
        keyframe_indices: ascending pose indices that became keyframes; ``reasons`` one per index.
    """
    return store.types[KEYFRAME_SCHEDULE](
        header=header(store, stamp_ns, frame_id), request_id=request_id, environment=environment,
        scheduler=scheduler, coverage=np.asarray(coverage, dtype=np.float32),
        keyframe_indices=np.asarray(keyframe_indices, dtype=np.uint32), reasons=list(reasons),
        predicted_count=int(predicted_count), coverage_threshold=float(coverage_threshold))
