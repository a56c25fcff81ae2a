"""Trajectory files in, optical-convention :class:`Trajectory` out (and TUM back out).

Formats (see docs/trajectories.md):

=============  ==============================================  ======================  ==================
name           content                                         stamps                  default pose frame
=============  ==============================================  ======================  ==================
``tum``        ``timestamp tx ty tz qx qy qz qw`` per line      seconds (decimal text)  optical
``kitti``      12 numbers per line: 3x4 row-major T_world_cam  none: ``fps`` required  optical
``euroc``      ``#timestamp [ns], p_RS_R_x..z, q_RS_w,x,y,z``  integer nanoseconds     body (see below)
               (17-column ground truth or 8-column pose only)
``path-yaml``  nav_msgs/Path as ``ros2 topic echo`` prints it  header.stamp per pose   body (REP 103)
=============  ==============================================  ======================  ==================

EuRoC ground truth is the pose of the IMU body, not of a camera. By default it is read as a REP 103
body (x forward, z up): right for odometry CSVs from ROS robots. The EuRoC MAV's own IMU frame has
x pointing up; pass ``T_body_cam=EUROC_MAV_T_BODY_CAM0`` to get the real cam0 optical poses.

Every error names the file, the line (text formats) and the field, and says what to do.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import ArrayLike, NDArray

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

log = logging.getLogger(__name__)

_INT64_MAX = np.iinfo(np.int64).max
#: Rotations read from text are re-orthonormalized when off by at most this (file rounding); beyond: error.
ROTATION_REPAIR_TOL = 1e-2


class TrajectoryFormat(str, Enum):
    """Trajectory file formats :func:`load_trajectory` reads."""

    TUM = "tum"
    KITTI = "kitti"
    EUROC = "euroc"
    PATH_YAML = "path-yaml"


#: Pose convention assumed for each format when the caller does not say.
DEFAULT_POSE_FRAME: dict[TrajectoryFormat, PoseFrame] = {
    TrajectoryFormat.TUM: PoseFrame.OPTICAL,
    TrajectoryFormat.KITTI: PoseFrame.OPTICAL,
    TrajectoryFormat.EUROC: PoseFrame.BODY,
    TrajectoryFormat.PATH_YAML: PoseFrame.BODY,
}

#: EuRoC MAV cam0 extrinsic T_body_cam0 (``T_BS`` in mav0/cam0/sensor.yaml): cam0 optical frame in the IMU frame.
EUROC_MAV_T_BODY_CAM0: NDArray[np.float64] = np.array(
    [
        [0.0148655429818, -0.999880929698, 0.00414029679422, -0.0216401454975],
        [0.999557249008, 0.0149672133247, 0.025715529948, -0.064676986768],
        [-0.0257744366974, 0.00375618835797, 0.999660727178, 0.00981073058949],
        [0.0, 0.0, 0.0, 1.0],
    ]
)

_FORMATS_HELP = ", ".join(f.value for f in TrajectoryFormat)
_TUM_FIELDS = ("timestamp", "tx", "ty", "tz", "qx", "qy", "qz", "qw")
_KITTI_FIELDS = tuple(f"r{r}{c}" if c < 3 else f"t{r}" for r in range(3) for c in range(4))
_EUROC_FIELDS = ("timestamp", "p_RS_R_x", "p_RS_R_y", "p_RS_R_z", "q_RS_w", "q_RS_x", "q_RS_y", "q_RS_z")
_EUROC_COLUMNS = (8, 17)


# ---------------------------------------------------------------------------------------------------------------
# Arrays -> Trajectory (shared by the file loaders, the ROS node and bag replay)
# ---------------------------------------------------------------------------------------------------------------


def _labels(n: int, row_labels: Sequence[str] | None) -> Sequence[str]:
    if row_labels is None:
        return [f"pose #{i}" for i in range(n)]
    if len(row_labels) != n:
        raise InputError(f"row_labels: {len(row_labels)} labels for {n} poses")
    return row_labels


def _as_stamps_ns(stamps_ns: ArrayLike) -> NDArray[np.int64]:
    s = np.asarray(stamps_ns)
    if s.ndim != 1:
        raise TrajectoryError(f"stamps_ns: expected shape [N], got {list(s.shape)}")
    if s.size and not np.issubdtype(s.dtype, np.integer):
        # Floats are accepted only when they hold whole nanoseconds; seconds as float would lose precision.
        f = s.astype(np.float64)
        if not (np.isfinite(f).all() and (f == np.round(f)).all()):
            raise TrajectoryError("stamps_ns must be whole nanoseconds (int64); convert seconds with round(s * 1e9)")
    return s.astype(np.int64)


def _check_stamps(stamps_ns: NDArray[np.int64], labels: Sequence[str]) -> None:
    d = np.diff(stamps_ns)
    if (d <= 0).any():
        i = int(np.argmax(d <= 0)) + 1
        kind = "duplicates" if d[i - 1] == 0 else "is before"
        # "file: line 7" after "file: line 8" reads better as just "line 7".
        prev, head = labels[i - 1], labels[i].split(": ")[0] + ": "
        prev = prev[len(head):] if prev.startswith(head) else prev
        raise TrajectoryError(
            f"{labels[i]}: field 'timestamp': stamp {int(stamps_ns[i])} ns {kind} the previous pose's "
            f"({prev}: {int(stamps_ns[i - 1])} ns); stamps must increase strictly: sort the file or drop repeats"
        )


def _check_count(n: int, what: str) -> None:
    if n == 0:
        raise TrajectoryError(f"{what}: the trajectory is empty; it needs at least one pose")


def trajectory_from_quat_poses(
    stamps_ns: ArrayLike,
    positions_m: ArrayLike,
    quats_wxyz: ArrayLike,
    pose_frame: PoseFrame | str,
    frame_id: str = "world",
    *,
    row_labels: Sequence[str] | None = None,
) -> Trajectory:
    """Stamped position + quaternion poses -> an optical-convention Trajectory, validated.

    Args:
        stamps_ns: [N] int64 nanoseconds, strictly increasing (floats only if whole numbers).
        positions_m: [N, 3] camera positions in the world frame, metres.
        quats_wxyz: [N, 4] camera-to-world rotations as (w, x, y, z); convert ROS/TUM order with
            geometry.xyzw_to_wxyz first. Zero quaternions are rejected; non-unit ones are normalized,
            with a logged warning when the norm is off by more than geometry.QUAT_NORM_WARN_TOL.
        pose_frame: which camera axes the rotations describe (PoseFrame.BODY for REP 103 poses such as
            nav_msgs/Path, PoseFrame.OPTICAL for TUM-style camera poses). No default on purpose.
        frame_id: the world frame the poses are expressed in.
        row_labels: [N] names for each pose in error messages (e.g. "traj.txt: line 12"); "pose #i" if None.
    Returns:
        Trajectory with optical-frame T_world_cam.
    Raises:
        TrajectoryError: empty input, wrong shapes, NaN/inf, zero quaternion, non-increasing stamps.
    """
    frame = _pose_frame(pose_frame)
    stamps = _as_stamps_ns(stamps_ns)
    n = len(stamps)
    _check_count(n, "stamps_ns")
    labels = _labels(n, row_labels)
    p = np.asarray(positions_m, dtype=np.float64)
    q = np.asarray(quats_wxyz, dtype=np.float64)
    if p.shape != (n, 3):
        raise TrajectoryError(f"positions_m: expected shape [{n}, 3] (one xyz per stamp), got {list(p.shape)}")
    if q.shape != (n, 4):
        raise TrajectoryError(f"quats_wxyz: expected shape [{n}, 4] (one w,x,y,z per stamp), got {list(q.shape)}")
    for arr, names, what in ((p, "xyz", "position"), (q, "wxyz", "orientation")):
        bad = ~np.isfinite(arr)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise TrajectoryError(f"{labels[i]}: field '{what}.{names[j]}' is {arr[i, j]}; every value must be finite")
    zero = np.linalg.norm(q, axis=1) < 1e-8
    if zero.any():
        i = int(np.argmax(zero))
        raise TrajectoryError(f"{labels[i]}: field 'orientation' is a zero quaternion; a rotation needs a unit "
                              "quaternion (identity is w=1, x=y=z=0)")
    _check_stamps(stamps, labels)
    try:
        q_unit, n_off = validate_quaternions_wxyz(q, "orientation")
    except InputError as exc:  # pre-checked above; kept so a future check there still surfaces as ours
        raise TrajectoryError(str(exc)) from exc
    if n_off:
        i = int(np.argmax(np.abs(np.linalg.norm(q, axis=1) - 1.0) > 1e-3))
        log.warning("%d of %d orientation quaternions were not unit (first: %s, norm %.6f); normalized them",
                    n_off, n, labels[i], float(np.linalg.norm(q[i])))
    T = to_optical(make_transform(quat_wxyz_to_matrix(q_unit), p), frame)
    return Trajectory(stamps, T, frame_id or "world")


def trajectory_from_matrices(
    stamps_ns: ArrayLike,
    T_world_cam: ArrayLike,
    pose_frame: PoseFrame | str,
    frame_id: str = "world",
    *,
    row_labels: Sequence[str] | None = None,
) -> Trajectory:
    """Stamped 4x4 (or 3x4) pose matrices -> an optical-convention Trajectory, validated.

    Rotations a little off orthonormal (text rounding, up to ROTATION_REPAIR_TOL) are projected back
    onto rotations; worse ones, and reflections, are rejected.

    Args:
        stamps_ns: [N] int64 nanoseconds, strictly increasing.
        T_world_cam: [N, 4, 4] or [N, 3, 4] camera-to-world transforms in ``pose_frame`` convention.
        pose_frame: PoseFrame.OPTICAL or PoseFrame.BODY.
        frame_id: world frame name.
        row_labels: [N] names for each pose in error messages.
    Returns:
        Trajectory with optical-frame T_world_cam.
    """
    frame = _pose_frame(pose_frame)
    stamps = _as_stamps_ns(stamps_ns)
    n = len(stamps)
    _check_count(n, "stamps_ns")
    labels = _labels(n, row_labels)
    M = np.asarray(T_world_cam, dtype=np.float64)
    if M.shape not in ((n, 4, 4), (n, 3, 4)):
        raise TrajectoryError(f"T_world_cam: expected shape [{n}, 4, 4] or [{n}, 3, 4], got {list(M.shape)}")
    bad = ~np.isfinite(M[:, :3, :]).reshape(n, -1)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise TrajectoryError(f"{labels[i]}: field '{_KITTI_FIELDS[j]}' is {M[i, j // 4, j % 4]}; every value must be finite")
    R = M[:, :3, :3]
    U, _, Vt = np.linalg.svd(R)
    R_fixed = U @ Vt
    err = np.abs(R - R_fixed).max(axis=(1, 2))
    det = np.linalg.det(R)
    worst = (err > ROTATION_REPAIR_TOL) | (det <= 0)
    if worst.any():
        i = int(np.argmax(worst))
        why = "is a reflection (determinant <= 0)" if det[i] <= 0 else f"is not a rotation (off by {err[i]:.3g})"
        raise TrajectoryError(f"{labels[i]}: the 3x3 rotation block (fields r00..r22) {why}; "
                              "check the column order (row-major 3x4 [R | t])")
    _check_stamps(stamps, labels)
    T = to_optical(make_transform(R_fixed, M[:, :3, 3]), frame)
    return Trajectory(stamps, T, frame_id or "world")


# ---------------------------------------------------------------------------------------------------------------
# Text parsing helpers
# ---------------------------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark
    except FileNotFoundError as exc:
        raise TrajectoryError(f"{path}: no such trajectory file") from exc
    except IsADirectoryError as exc:
        raise TrajectoryError(f"{path}: is a directory, not a trajectory file") from exc
    except UnicodeDecodeError as exc:
        raise TrajectoryError(f"{path}: not a text file (byte {exc.start} is not UTF-8); "
                              f"expected a trajectory in one of: {_FORMATS_HELP}") from exc
    except OSError as exc:
        raise TrajectoryError(f"{path}: cannot read trajectory file: {exc.strerror or exc}") from exc


def _data_lines(text: str) -> list[tuple[int, list[str]]]:
    """(1-based line number, fields) for every line that is not blank or a '#' comment."""
    rows = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # Commas separate fields in CSV; an empty field between two commas stays as "" and is reported.
        fields = [f.strip() for f in line.split(",")] if "," in line else line.split()
        rows.append((lineno, fields))
    return rows


def _where(path: Path, lineno: int) -> str:
    return f"{path}: line {lineno}"


def _parse_float(token: str, where: str, field: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise TrajectoryError(f"{where}: field '{field}': {token!r} is not a number") from None
    if not np.isfinite(value):
        raise TrajectoryError(f"{where}: field '{field}' is {token}; every value must be finite")
    return value


def parse_stamp_ns(token: str, unit_ns: int, where: str = "stamp", field: str = "timestamp") -> int:
    """A decimal stamp string -> int nanoseconds, exactly (no float rounding).

    Args:
        token: decimal text, e.g. "1305031098.6659" (seconds, unit_ns=10**9) or "1403636579758555392" (ns, unit_ns=1).
        unit_ns: nanoseconds per unit of ``token``.
        where, field: location for error messages.
    Returns:
        Nanoseconds, rounded half-even to a whole nanosecond, in [0, int64 max].
    """
    try:
        d = Decimal(token)
    except InvalidOperation:
        raise TrajectoryError(f"{where}: field '{field}': {token!r} is not a number") from None
    if not d.is_finite():
        raise TrajectoryError(f"{where}: field '{field}' is {token}; stamps must be finite")
    ns = int((d * unit_ns).to_integral_value(rounding=ROUND_HALF_EVEN))
    if ns < 0:
        raise TrajectoryError(f"{where}: field '{field}' is negative ({token}); ROS stamps start at 0")
    if ns > _INT64_MAX:
        raise TrajectoryError(f"{where}: field '{field}' ({token}) is too large for int64 nanoseconds; "
                              "check the unit (seconds vs nanoseconds)")
    return ns


def _check_columns(path: Path, lineno: int, fields: list[str], expected: Sequence[int], layout: str) -> None:
    if len(fields) not in expected:
        want = " or ".join(str(e) for e in expected)
        raise TrajectoryError(f"{_where(path, lineno)}: {len(fields)} columns, expected {want} ({layout})")


def _pose_frame(pose_frame: PoseFrame | str | None, default: PoseFrame = PoseFrame.OPTICAL) -> PoseFrame:
    if pose_frame is None:
        return default
    try:
        return PoseFrame(pose_frame.lower() if isinstance(pose_frame, str) else pose_frame)
    except ValueError:
        raise TrajectoryError(f"pose_frame: {pose_frame!r} is not one of: "
                              f"{', '.join(f.value for f in PoseFrame)}") from None


# ---------------------------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------------------------


def load_tum(path: str | Path, pose_frame: PoseFrame | str | None = None, frame_id: str = "world") -> Trajectory:
    """Read a TUM trajectory: ``timestamp tx ty tz qx qy qz qw`` per line (seconds, metres, x y z w).

    '#' comments and blank lines are skipped; fields may also be comma separated. Stamps are parsed
    from their decimal text, so 19-digit nanosecond precision survives.

    Args:
        path: the file.
        pose_frame: convention of the file's rotations; default PoseFrame.OPTICAL (TUM camera poses).
        frame_id: world frame name for the result.
    Returns:
        Trajectory in optical convention, one pose per data line.
    """
    path = Path(path)
    rows = _data_lines(_read_text(path))
    _check_count(len(rows), str(path))
    stamps, values, labels = [], [], []
    for lineno, fields in rows:
        where = _where(path, lineno)
        _check_columns(path, lineno, fields, (8,), "TUM: " + " ".join(_TUM_FIELDS))
        stamps.append(parse_stamp_ns(fields[0], 10**9, where))
        values.append([_parse_float(t, where, f) for t, f in zip(fields[1:], _TUM_FIELDS[1:])])
        labels.append(where)
    v = np.asarray(values, dtype=np.float64)
    return trajectory_from_quat_poses(np.asarray(stamps, dtype=np.int64), v[:, :3], xyzw_to_wxyz(v[:, 3:7]),
                                      _pose_frame(pose_frame), frame_id, row_labels=labels)


def load_kitti(path: str | Path, fps: float | None = None, pose_frame: PoseFrame | str | None = None,
               frame_id: str = "world") -> Trajectory:
    """Read a KITTI odometry pose file: 12 numbers per line, the row-major 3x4 [R | t] of T_world_cam.

    Args:
        path: the file.
        fps: frame rate; required because KITTI files carry no stamps (pose i gets stamp i / fps;
            the KITTI odometry sequences are 10 fps).
        pose_frame: default PoseFrame.OPTICAL (KITTI poses are left-camera optical poses).
        frame_id: world frame name.
    Returns:
        Trajectory in optical convention.
    """
    path = Path(path)
    if fps is None:
        raise TrajectoryError(f"{path}: KITTI files carry no timestamps: pass fps (e.g. --fps 10 for KITTI odometry)")
    fps = _check_fps(fps)
    rows = _data_lines(_read_text(path))
    _check_count(len(rows), str(path))
    mats, labels = [], []
    for lineno, fields in rows:
        where = _where(path, lineno)
        _check_columns(path, lineno, fields, (12,), "KITTI: 3x4 row-major [R | t]")
        mats.append([_parse_float(t, where, f) for t, f in zip(fields, _KITTI_FIELDS)])
        labels.append(where)
    stamps = np.round(np.arange(len(mats)) * (1e9 / fps)).astype(np.int64)
    M = np.asarray(mats, dtype=np.float64).reshape(-1, 3, 4)
    return trajectory_from_matrices(stamps, M, _pose_frame(pose_frame), frame_id, row_labels=labels)


def load_euroc(path: str | Path, pose_frame: PoseFrame | str | None = None, frame_id: str = "world",
               T_body_cam: ArrayLike | None = None) -> Trajectory:
    """Read an EuRoC ground-truth CSV (``state_groundtruth_estimate0/data.csv``) or its 8-column pose-only variant.

    Columns: ``#timestamp [ns], p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w [], q_RS_x [], q_RS_y [],
    q_RS_z []`` then (17-column file) velocity and IMU biases, which are ignored. Note the w-first quaternion.

    Args:
        path: the file.
        pose_frame: convention of the body pose when ``T_body_cam`` is None; default PoseFrame.BODY (REP 103).
        frame_id: world frame name.
        T_body_cam: [4, 4] optional camera extrinsic (camera optical frame in the body frame), e.g.
            EUROC_MAV_T_BODY_CAM0; the result is then T_world_body @ T_body_cam and ``pose_frame`` must
            be None or optical.
    Returns:
        Trajectory in optical convention.
    """
    path = Path(path)
    rows = _data_lines(_read_text(path))
    _check_count(len(rows), str(path))
    stamps, values, labels = [], [], []
    for lineno, fields in rows:
        where = _where(path, lineno)
        _check_columns(path, lineno, fields, _EUROC_COLUMNS, "EuRoC: timestamp [ns], p x y z, q w x y z[, v, b_w, b_a]")
        stamps.append(parse_stamp_ns(fields[0], 1, where))
        values.append([_parse_float(t, where, f) for t, f in zip(fields[1:8], _EUROC_FIELDS[1:])])
        labels.append(where)
    v = np.asarray(values, dtype=np.float64)
    frame = _pose_frame(pose_frame, PoseFrame.BODY)
    if T_body_cam is None:
        return trajectory_from_quat_poses(np.asarray(stamps, dtype=np.int64), v[:, :3], v[:, 3:7], frame,
                                          frame_id, row_labels=labels)
    if pose_frame is not None and frame is not PoseFrame.OPTICAL:
        raise TrajectoryError("T_body_cam already gives camera optical poses; leave pose_frame unset (or optical)")
    E = np.asarray(T_body_cam, dtype=np.float64)
    if E.shape != (4, 4) or not np.isfinite(E).all():
        raise TrajectoryError(f"T_body_cam: expected a finite [4, 4] transform, got shape {list(E.shape)}")
    # Validate the raw body poses first (errors then point at file lines), then attach the camera.
    body = trajectory_from_quat_poses(np.asarray(stamps, dtype=np.int64), v[:, :3], v[:, 3:7], PoseFrame.OPTICAL,
                                      frame_id, row_labels=labels)
    return trajectory_from_matrices(body.stamps_ns, body.T_world_cam @ E, PoseFrame.OPTICAL, body.frame_id,
                                    row_labels=labels)


# libyaml's parser when present (faster on long paths); both are safe loaders (no arbitrary objects).
_SafeLoaderBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoaderBase):
    """Safe YAML loader that records 1-based line numbers: the mapping's under '__line__', each key's under '__lines__'."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping: dict[Any, Any] = dict(super().construct_mapping(node, deep=deep))
        mapping["__line__"] = node.start_mark.line + 1
        mapping["__lines__"] = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
        return mapping


def _yaml_get(m: Any, key: str, where: str, name: str) -> Any:
    if not isinstance(m, dict):
        raise TrajectoryError(f"{where}: field '{name}' should be a mapping, got {type(m).__name__}")
    if key not in m:
        raise TrajectoryError(f"{where}: field '{name}.{key}' is missing (expected nav_msgs/Path as `ros2 topic echo` prints it)")
    return m[key]


def _yaml_number(m: Any, key: str, path: Path, name: str) -> float:
    where = _where(path, int(m.get("__line__", 0))) if isinstance(m, dict) else str(path)
    v = _yaml_get(m, key, where, name)
    where = _where(path, int(m.get("__lines__", {}).get(key, m.get("__line__", 0))))
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise TrajectoryError(f"{where}: field '{name}.{key}': {v!r} is not a number")
    return _parse_float(str(v), where, f"{name}.{key}")


def load_path_yaml(path: str | Path, pose_frame: PoseFrame | str | None = None, fps: float | None = None) -> Trajectory:
    """Read a nav_msgs/Path saved as YAML (``ros2 topic echo --once /path > path.yaml``).

    The world frame_id is the Path's ``header.frame_id``; a pose whose own non-empty frame_id differs is
    rejected (no tf here). Stamps are each pose's ``header.stamp``. Planners often leave those at zero:
    then ``fps`` is required and pose i gets ``header.stamp + i / fps``; when the poses carry stamps,
    ``fps`` is ignored (use resample to change the rate).

    Args:
        path: the file (the first YAML document is read; a trailing ``---`` is fine).
        pose_frame: default PoseFrame.BODY (REP 103: a Path holds robot/body poses).
        fps: rate for stamping a Path whose pose stamps are all zero.
    Returns:
        Trajectory in optical convention.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        docs = [d for d in yaml.load_all(text, Loader=_LineLoader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = _where(path, mark.line + 1) if mark is not None else str(path)
        raise TrajectoryError(f"{loc}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not docs or not isinstance(docs[0], dict):
        raise TrajectoryError(f"{path}: expected a nav_msgs/Path mapping with 'header' and 'poses'")
    msg = docs[0]
    top = _where(path, int(msg.get("__line__", 1)))
    poses = _yaml_get(msg, "poses", top, "path")
    if not isinstance(poses, list):
        raise TrajectoryError(f"{top}: field 'poses' should be a list, got {type(poses).__name__}")
    _check_count(len(poses), f"{path}: field 'poses'")
    header = msg.get("header") or {}
    frame_id = str(header.get("frame_id", "") or "") if isinstance(header, dict) else ""
    stamps, values, labels = [], [], []
    for i, ps in enumerate(poses):
        name = f"poses[{i}]"
        line = int(ps.get("__line__", 0)) if isinstance(ps, dict) else 0
        where = f"{_where(path, line)} ({name})"
        pose = _yaml_get(ps, "pose", where, name)
        pos = _yaml_get(pose, "position", where, f"{name}.pose")
        ori = _yaml_get(pose, "orientation", where, f"{name}.pose")
        values.append([_yaml_number(pos, k, path, f"{name}.pose.position") for k in "xyz"]
                      + [_yaml_number(ori, k, path, f"{name}.pose.orientation") for k in "wxyz"])
        ph = ps.get("header") or {}
        stamps.append(_path_stamp_ns(ph.get("stamp") if isinstance(ph, dict) else None, path, where, name))
        pf = str(ph.get("frame_id", "") or "") if isinstance(ph, dict) else ""
        if pf and frame_id and pf != frame_id:
            raise TrajectoryError(f"{where}: field '{name}.header.frame_id' is {pf!r} but the path's is {frame_id!r}; "
                                  "transform the poses into one frame first")
        frame_id = frame_id or pf
        labels.append(where)
    stamps_ns = np.asarray(stamps, dtype=np.int64)
    if len(stamps_ns) > 1 and (stamps_ns == 0).all():
        if fps is None:
            raise TrajectoryError(f"{path}: every pose stamp is zero (common for planner paths): pass fps to stamp "
                                  "pose i at header.stamp + i / fps")
        t0 = _path_stamp_ns(header.get("stamp") if isinstance(header, dict) else None, path, top, "header")
        stamps_ns = t0 + np.round(np.arange(len(stamps_ns)) * (1e9 / _check_fps(fps))).astype(np.int64)
    elif fps is not None:
        log.info("%s: poses carry stamps; fps=%s ignored (use resample to change the rate)", path, fps)
    v = np.asarray(values, dtype=np.float64)
    return trajectory_from_quat_poses(stamps_ns, v[:, :3], v[:, 3:7], _pose_frame(pose_frame, PoseFrame.BODY),
                                      frame_id or "world", row_labels=labels)


def _path_stamp_ns(stamp: Any, path: Path, where: str, name: str) -> int:
    if stamp is None:
        return 0
    if not isinstance(stamp, dict):
        raise TrajectoryError(f"{where}: field '{name}.header.stamp' should have 'sec' and 'nanosec'")
    w = _where(path, int(stamp.get("__line__", 0)))
    sec, nsec = stamp.get("sec", 0), stamp.get("nanosec", 0)
    for key, v in (("sec", sec), ("nanosec", nsec)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TrajectoryError(f"{w}: field '{name}.header.stamp.{key}': {v!r} is not an integer")
    if not 0 <= nsec < 10**9 or sec < 0:
        raise TrajectoryError(f"{w}: field '{name}.header.stamp' ({sec} s, {nsec} ns) is out of range; "
                              "sec >= 0 and 0 <= nanosec < 1e9")
    return int(sec) * 10**9 + int(nsec)


def _check_fps(fps: float) -> float:
    f = float(fps)
    if not np.isfinite(f) or f <= 0:
        raise TrajectoryError(f"fps: {fps!r} is not a positive frame rate")
    return f


# ---------------------------------------------------------------------------------------------------------------
# Dispatch and writing
# ---------------------------------------------------------------------------------------------------------------


def parse_format(fmt: TrajectoryFormat | str) -> TrajectoryFormat:
    """A format name ('tum', 'kitti', 'euroc', 'path-yaml'; case and '_' tolerated) -> TrajectoryFormat."""
    try:
        return TrajectoryFormat(fmt.lower().replace("_", "-") if isinstance(fmt, str) else fmt)
    except ValueError:
        raise TrajectoryError(f"unknown trajectory format {fmt!r}; valid formats: {_FORMATS_HELP}") from None


def detect_format(path: str | Path) -> TrajectoryFormat:
    """Guess a file's format from its extension (.csv euroc, .yaml/.yml path-yaml), else from its first data line."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".csv":
        return TrajectoryFormat.EUROC
    if ext in (".yaml", ".yml"):
        return TrajectoryFormat.PATH_YAML
    text = _read_text(path)
    rows = _data_lines(text)
    if not rows:
        raise TrajectoryError(f"{path}: the trajectory is empty; it needs at least one pose")
    lineno, fields = rows[0]
    first = text.splitlines()[lineno - 1]
    if re.match(r"^\s*[A-Za-z_]+\s*:", first):
        return TrajectoryFormat.PATH_YAML
    if "," in first and len(fields) in _EUROC_COLUMNS:
        return TrajectoryFormat.EUROC
    if len(fields) == 8:
        return TrajectoryFormat.TUM
    if len(fields) == 12:
        return TrajectoryFormat.KITTI
    raise TrajectoryError(f"{_where(path, lineno)}: cannot tell the trajectory format ({len(fields)} columns); "
                          f"pass the format explicitly, one of: {_FORMATS_HELP}")


def load_trajectory(path: str | Path, fmt: TrajectoryFormat | str | None = None,
                    pose_frame: PoseFrame | str | None = None, fps: float | None = None) -> Trajectory:
    """Read a trajectory file of any supported format into an optical-convention Trajectory.

    Args:
        path: the file.
        fmt: 'tum', 'kitti', 'euroc' or 'path-yaml'; None detects it (see :func:`detect_format`).
        pose_frame: convention of the file's rotations; None uses the format's DEFAULT_POSE_FRAME.
        fps: stamps for formats without them (kitti: required; path-yaml: used when all stamps are zero);
            ignored, with a log line, for tum and euroc files, which carry stamps (use resample instead).
    Returns:
        Trajectory in optical convention.
    Raises:
        TrajectoryError: unknown format, unreadable file, or bad content (naming file, line and field).
    """
    path = Path(path)
    f = detect_format(path) if fmt is None else parse_format(fmt)
    frame = _pose_frame(pose_frame, DEFAULT_POSE_FRAME[f])
    if fps is not None and f in (TrajectoryFormat.TUM, TrajectoryFormat.EUROC):
        log.info("%s: %s files carry stamps; fps=%s ignored (use resample to change the rate)", path, f.value, fps)
    if f is TrajectoryFormat.TUM:
        return load_tum(path, frame)
    if f is TrajectoryFormat.KITTI:
        return load_kitti(path, fps, frame)
    if f is TrajectoryFormat.EUROC:
        return load_euroc(path, frame)
    return load_path_yaml(path, frame, fps)


def _format_stamp_s(stamp_ns: int) -> str:
    sign = "-" if stamp_ns < 0 else ""
    s, ns = divmod(abs(int(stamp_ns)), 10**9)
    return f"{sign}{s}.{ns:09d}"


def save_tum(path: str | Path, trajectory: Trajectory, pose_frame: PoseFrame | str = PoseFrame.OPTICAL) -> None:
    """Write a trajectory as TUM text: exact nanosecond stamps, floats that round-trip exactly.

    Args:
        path: output file (overwritten).
        trajectory: the poses.
        pose_frame: convention to write the rotations in; default optical (what TUM tools expect).
    """
    T = from_optical(trajectory.T_world_cam, _pose_frame(pose_frame))
    q_xyzw = wxyz_to_xyzw(matrix_to_quat_wxyz(T[:, :3, :3]))
    lines = [f"# srender trajectory, frame_id {trajectory.frame_id}, pose frame {_pose_frame(pose_frame).value}",
             "# timestamp tx ty tz qx qy qz qw"]
    for stamp, t, q in zip(trajectory.stamps_ns, T[:, :3, 3], q_xyzw):
        # repr of a Python float is the shortest text that parses back to the same double.
        lines.append(" ".join([_format_stamp_s(int(stamp))] + [repr(float(v)) for v in (*t, *q)]))
    try:
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise TrajectoryError(f"{path}: cannot write trajectory: {exc.strerror or exc}") from exc
