from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from srender_ros.core import geometry as g
from srender_ros.core.resample import resample
from srender_ros.core.trajectory_io import (
    DEFAULT_POSE_FRAME,
    EUROC_MAV_T_BODY_CAM0,
    TrajectoryFormat,
    detect_format,
    load_euroc,
    load_kitti,
    load_path_yaml,
    load_trajectory,
    parse_stamp_ns,
    save_tum,
    trajectory_from_matrices,
    trajectory_from_quat_poses,
)
from srender_ros.errors import TrajectoryError

DATA = Path(__file__).parent / "data"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _rot_z(rad: float) -> np.ndarray:
    return g.quat_wxyz_to_matrix(np.array([np.cos(rad / 2), 0, 0, np.sin(rad / 2)]))


# ---------------------------------------------------------------------------------------------------------------
# Good files
# ---------------------------------------------------------------------------------------------------------------


def test_tum_sample_values_and_exact_stamps() -> None:
    t = load_trajectory(DATA / "sample_tum.txt")
    assert len(t) == 5 and t.frame_id == "world"
    # Parsed from the decimal text: a float64 of 1305031098.665900123 cannot hold the last digits.
    assert int(t.stamps_ns[0]) == 1305031098665900123
    assert int(t.stamps_ns[2]) == 1305031098865900124
    assert int(t.stamps_ns[3]) == 1305031098965900000
    np.testing.assert_allclose(t.positions_m[4], [0.4, 0.15, 0.01])
    np.testing.assert_allclose(t.T_world_cam[4, :3, :3], _rot_z(0.6), atol=1e-8)
    np.testing.assert_allclose(t.T_world_cam[0], np.eye(4))


def test_parse_stamp_ns_units_and_rounding() -> None:
    assert parse_stamp_ns("1.5", 10**9) == 1_500_000_000
    assert parse_stamp_ns("1e-9", 10**9) == 1
    assert parse_stamp_ns("1403636579758555392", 1) == 1403636579758555392
    assert parse_stamp_ns("0.0000000015", 10**9) == 2  # half-even
    with pytest.raises(TrajectoryError, match="too large for int64"):
        parse_stamp_ns("1e12", 10**9)


def test_kitti_sample_needs_fps_and_stamps_i_over_fps() -> None:
    with pytest.raises(TrajectoryError, match=r"sample_kitti.txt: KITTI files carry no timestamps: pass fps"):
        load_kitti(DATA / "sample_kitti.txt")
    with pytest.raises(TrajectoryError, match="no timestamps"):
        load_trajectory(DATA / "sample_kitti.txt")
    t = load_trajectory(DATA / "sample_kitti.txt", fps=10.0)
    np.testing.assert_array_equal(t.stamps_ns, [0, 100_000_000, 200_000_000])
    np.testing.assert_allclose(t.positions_m, [[0, 0, 0], [0, 0, 1], [1, 0, 2]])
    np.testing.assert_allclose(t.T_world_cam[2, :3, :3], [[0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    with pytest.raises(TrajectoryError, match=r"fps: -1\.0 is not a positive frame rate"):
        load_kitti(DATA / "sample_kitti.txt", fps=-1.0)


def test_euroc_both_layouts_w_first_quaternions_body_default() -> None:
    full = load_trajectory(DATA / "sample_euroc.csv")
    assert len(full) == 4 and int(full.stamps_ns[1]) == 1403636580843555328
    np.testing.assert_allclose(full.positions_m[0], [4.688319, -1.786938, 0.783338])
    pose = load_trajectory(DATA / "sample_euroc_pose.csv")
    assert len(pose) == 3
    # Row 3: q = (w, x, y, z) = (cos 45, 0, 0, sin 45): body x (forward) is world +y; the default is body,
    # so the optical z axis (forward) must be world +y too.
    np.testing.assert_allclose(pose.T_world_cam[2, :3, 2], [0, 1, 0], atol=1e-9)
    assert DEFAULT_POSE_FRAME[TrajectoryFormat.EUROC] is g.PoseFrame.BODY


def test_euroc_with_camera_extrinsic() -> None:
    body = load_euroc(DATA / "sample_euroc_pose.csv", pose_frame="optical")  # raw T_world_body
    cam = load_euroc(DATA / "sample_euroc_pose.csv", T_body_cam=EUROC_MAV_T_BODY_CAM0)
    np.testing.assert_allclose(cam.T_world_cam, body.T_world_cam @ EUROC_MAV_T_BODY_CAM0, atol=1e-9)
    with pytest.raises(TrajectoryError, match="leave pose_frame unset"):
        load_euroc(DATA / "sample_euroc_pose.csv", pose_frame="body", T_body_cam=EUROC_MAV_T_BODY_CAM0)


def test_path_yaml_sample_body_default_frame_and_stamps() -> None:
    t = load_trajectory(DATA / "sample_path.yaml")
    assert t.frame_id == "map" and len(t) == 3
    np.testing.assert_array_equal(t.stamps_ns, [1_700_000_000_000_000_000, 1_700_000_000_500_000_000,
                                                1_700_000_001_000_000_000])
    # Identity body orientation: the camera looks along world +x with its image "down" along world -z.
    np.testing.assert_allclose(t.T_world_cam[0, :3, :3], g.R_BODY_OPTICAL, atol=1e-12)
    np.testing.assert_allclose(t.T_world_cam[2, :3, 2], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(t.positions_m[2], [1.5, 0.5, 0.5])


def test_path_yaml_zero_stamps_need_fps(tmp_path: Path) -> None:
    text = (DATA / "sample_path.yaml").read_text()
    text = text.replace("sec: 1700000001", "sec: 0").replace("sec: 1700000000", "sec: 0").replace("nanosec: 500000000",
                                                                                                  "nanosec: 0")
    p = _write(tmp_path, "planner.yaml", text)
    with pytest.raises(TrajectoryError, match=r"planner.yaml: every pose stamp is zero .*pass fps"):
        load_path_yaml(p)
    t = load_path_yaml(p, fps=4.0)
    np.testing.assert_array_equal(t.stamps_ns, [0, 250_000_000, 500_000_000])


def test_detect_format_by_extension_and_content(tmp_path: Path) -> None:
    assert detect_format(DATA / "sample_tum.txt") is TrajectoryFormat.TUM
    assert detect_format(DATA / "sample_kitti.txt") is TrajectoryFormat.KITTI
    assert detect_format(DATA / "sample_euroc.csv") is TrajectoryFormat.EUROC
    assert detect_format(DATA / "sample_path.yaml") is TrajectoryFormat.PATH_YAML
    # Without a telling extension the content decides.
    for name, fmt in [("sample_euroc_pose.csv", TrajectoryFormat.EUROC), ("sample_path.yaml", TrajectoryFormat.PATH_YAML)]:
        p = _write(tmp_path, name + ".dat", (DATA / name).read_text())
        assert detect_format(p) is fmt
    p = _write(tmp_path, "odd.txt", "1 2 3 4 5\n")
    with pytest.raises(TrajectoryError, match=r"odd.txt: line 1: cannot tell .*tum, kitti, euroc, path-yaml"):
        load_trajectory(p)


def test_unknown_format_lists_valid_ones() -> None:
    with pytest.raises(TrajectoryError, match="unknown trajectory format 'colmap'; valid formats: tum, kitti, euroc, path-yaml"):
        load_trajectory(DATA / "sample_tum.txt", fmt="colmap")
    with pytest.raises(TrajectoryError, match="pose_frame: 'camera' is not one of: optical, body"):
        load_trajectory(DATA / "sample_tum.txt", pose_frame="camera")


def test_tum_save_load_round_trip(tmp_path: Path) -> None:
    t = load_trajectory(DATA / "sample_tum.txt")
    out = tmp_path / "out.txt"
    save_tum(out, t)
    back = load_trajectory(out)
    np.testing.assert_array_equal(back.stamps_ns, t.stamps_ns)
    np.testing.assert_allclose(back.T_world_cam, t.T_world_cam, atol=1e-12)
    # Written in body convention, read back as body: the same optical poses.
    save_tum(out, t, pose_frame="body")
    np.testing.assert_allclose(load_trajectory(out, pose_frame="body").T_world_cam, t.T_world_cam, atol=1e-12)


def test_body_and_optical_readings_differ_by_T_body_optical() -> None:
    opt = load_trajectory(DATA / "sample_tum.txt", pose_frame="optical")
    body = load_trajectory(DATA / "sample_tum.txt", pose_frame=g.PoseFrame.BODY)
    np.testing.assert_allclose(body.T_world_cam, opt.T_world_cam @ g.T_BODY_OPTICAL, atol=1e-12)
    np.testing.assert_allclose(body.positions_m, opt.positions_m)
    assert not np.allclose(body.T_world_cam[:, :3, :3], opt.T_world_cam[:, :3, :3])


def test_real_tum_freiburg1_xyz(shared_data: Path) -> None:
    t = load_trajectory(shared_data / "tum_freiburg1_xyz_groundtruth.txt")
    assert len(t) == 3000
    assert 29.0 < t.duration_s < 31.0
    assert int(t.stamps_ns[0]) == 1305031098665900000
    span = t.positions_m.max(axis=0) - t.positions_m.min(axis=0)
    assert (span > 0.2).all() and (span < 1.0).all()  # handheld: tens of centimetres per axis
    r = resample(t, rate_hz=30.0)
    assert abs(len(r) - 30.0 * t.duration_s) <= 1.5
    np.testing.assert_array_equal(np.unique(np.diff(r.stamps_ns)), [33_333_333, 33_333_334])
    # Resampled poses stay on the original path: within a 100 Hz step of motion (< 1 cm) of a neighbour.
    d = np.linalg.norm(r.positions_m[:, None, :] - t.positions_m[None, ::1, :], axis=2).min(axis=1)
    assert d.max() < 0.01


# ---------------------------------------------------------------------------------------------------------------
# Bad input: every error names the file, the line and the field
# ---------------------------------------------------------------------------------------------------------------

_TUM_OK = "1.0 0 0 0 0 0 0 1\n"


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("", r"bad.txt: the trajectory is empty"),
        ("# only a comment\n\n", r"bad.txt: the trajectory is empty"),
        (_TUM_OK + "2.0 0 nan 0 0 0 0 1\n", r"bad.txt: line 2: field 'ty' is nan"),
        (_TUM_OK + "2.0 0 0 0 0 0 0 inf\n", r"bad.txt: line 2: field 'qw' is inf"),
        (_TUM_OK + "2.0 0 0 0 0 0 abc 1\n", r"bad.txt: line 2: field 'qz': 'abc' is not a number"),
        (_TUM_OK + "nan 0 0 0 0 0 0 1\n", r"bad.txt: line 2: field 'timestamp' is nan"),
        ("# c\n" + _TUM_OK + "2.0 0 0 0 0 0 0 0\n", r"bad.txt: line 3: field 'orientation' is a zero quaternion"),
        (_TUM_OK + "1.0 1 0 0 0 0 0 1\n", r"bad.txt: line 2: field 'timestamp': .* duplicates the previous pose's \(line 1: "),
        (_TUM_OK + "0.5 1 0 0 0 0 0 1\n", r"bad.txt: line 2: field 'timestamp': .* is before .*line 1"),
        (_TUM_OK + "2.0 0 0 0 0 0 1\n", r"bad.txt: line 2: 7 columns, expected 8 \(TUM: timestamp tx ty tz qx qy qz qw\)"),
        ("-1.0 0 0 0 0 0 0 1\n", r"bad.txt: line 1: field 'timestamp' is negative"),
    ],
)
def test_tum_bad_input(tmp_path: Path, content: str, pattern: str) -> None:
    p = _write(tmp_path, "bad.txt", content)
    with pytest.raises(TrajectoryError, match=pattern):
        load_trajectory(p, fmt="tum")


def test_single_pose_is_a_valid_trajectory(tmp_path: Path) -> None:
    t = load_trajectory(_write(tmp_path, "one.txt", _TUM_OK))
    assert len(t) == 1 and t.duration_s == 0.0


def test_non_unit_quaternion_is_normalized_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = _write(tmp_path, "scaled.txt", _TUM_OK + "2.0 0 0 0 0 0 0 2\n")
    with caplog.at_level(logging.WARNING):
        t = load_trajectory(p)
    np.testing.assert_allclose(t.T_world_cam[1, :3, :3], np.eye(3))
    assert "1 of 2 orientation quaternions were not unit" in caplog.text and "scaled.txt: line 2" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_trajectory(_write(tmp_path, "fine.txt", _TUM_OK + "2.0 0 0 0 0 0 0 1.0001\n"))
    assert "not unit" not in caplog.text  # within tolerance: normalized silently


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("1 0 0 0 0 1 0 0 0 0 1\n", r"bad.txt: line 1: 11 columns, expected 12"),
        ("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0 0 1 0 nan 0 0 1 0\n", r"bad.txt: line 2: field 't1' is nan"),
        ("1 0 0 0 0 1 0 0 0 0 1 0\n2 0 0 0 0 1 0 0 0 0 1 0\n", r"bad.txt: line 2: the 3x3 rotation block .* is not a rotation"),
        ("-1 0 0 0 0 1 0 0 0 0 1 0\n", r"bad.txt: line 1: the 3x3 rotation block .* is a reflection"),
    ],
)
def test_kitti_bad_input(tmp_path: Path, content: str, pattern: str) -> None:
    with pytest.raises(TrajectoryError, match=pattern):
        load_trajectory(_write(tmp_path, "bad.txt", content), fmt="kitti", fps=10)


def test_kitti_rounded_rotation_is_repaired(tmp_path: Path) -> None:
    # Six significant digits, as KITTI result files have: close to, not exactly, a rotation.
    c, s = np.cos(0.3), np.sin(0.3)
    line = f"{c:.6f} 0 {s:.6f} 1 0 1 0 2 {-s:.6f} 0 {c:.6f} 3\n"
    t = load_trajectory(_write(tmp_path, "r.txt", line), fmt="kitti", fps=10)
    R = t.T_world_cam[0, :3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(R, [[c, 0, s], [0, 1, 0], [-s, 0, c]], atol=1e-6)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("#timestamp,x,y,z,qw,qx,qy,qz\n100,0,0,0,1,0,0,0\n200,0,0,0,1,0,0\n", r"bad.csv: line 3: 7 columns, expected 8 or 17"),
        ("#h\n100,0,0,0,1,0,0,0\n200,0,,0,1,0,0,0\n", r"bad.csv: line 3: field 'p_RS_R_y': '' is not a number"),
        ("#h\n100,0,0,0,1,0,0,0\n200,0,0,0,0,0,0,0\n", r"bad.csv: line 3: field 'orientation' is a zero quaternion"),
        ("#h\n100,0,0,0,1,0,0,0\n100,0,0,0,1,0,0,0\n", r"bad.csv: line 3: field 'timestamp': .* duplicates"),
        ("#h\n1.5e2,0,0,0,1,0,0,0\n100,0,0,0,1,0,0,0\n", r"bad.csv: line 3: field 'timestamp': stamp 100 ns is before"),
    ],
)
def test_euroc_bad_input(tmp_path: Path, content: str, pattern: str) -> None:
    with pytest.raises(TrajectoryError, match=pattern):
        load_trajectory(_write(tmp_path, "bad.csv", content))


def _path_yaml(poses: str) -> str:
    return "header:\n  stamp:\n    sec: 0\n    nanosec: 0\n  frame_id: map\nposes:\n" + poses


def _pose(sec: int, x: str = "0.0", w: str = "1.0", frame: str = "map") -> str:
    return (f"- header:\n    stamp:\n      sec: {sec}\n      nanosec: 0\n    frame_id: {frame}\n  pose:\n"
            f"    position:\n      x: {x}\n      y: 0.0\n      z: 0.0\n"
            f"    orientation:\n      x: 0.0\n      y: 0.0\n      z: 0.0\n      w: {w}\n")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        # Each pose below is 15 lines after a 6-line header: poses[1] starts on line 22, its position.x on line 29.
        (_path_yaml("").replace("poses:\n", "poses: []\n"), r"bad.yaml: field 'poses': the trajectory is empty"),
        (_path_yaml(_pose(1) + _pose(2, x=".nan")), r"bad.yaml: line 29: field 'poses\[1\].pose.position.x' is nan"),
        (_path_yaml(_pose(1) + _pose(2, w="0.0")), r"bad.yaml: line 22 \(poses\[1\]\): field 'orientation' is a zero quaternion"),
        (_path_yaml(_pose(1) + _pose(1)), r"line 22 \(poses\[1\]\): field 'timestamp': .* duplicates .*\(line 7 \(poses"),
        (_path_yaml(_pose(1) + _pose(2, frame="odom")), r"line 22 \(poses\[1\]\): field 'poses\[1\].header.frame_id' is 'odom'"),
        (_path_yaml(_pose(1).replace("      w: 1.0\n", "")), r"line 18: field 'poses\[0\].pose.orientation.w' is missing"),
        (_path_yaml(_pose(1) + _pose(2, x="true")), r"line 29: field 'poses\[1\].pose.position.x': True is not a number"),
        (_path_yaml(_pose(1)).replace("x: 0.0\n      y", "x: [1\n      y"), r"bad.yaml: line \d+: not valid YAML"),
        ("- 1\n- 2\n", r"bad.yaml: expected a nav_msgs/Path mapping"),
    ],
)
def test_path_yaml_bad_input(tmp_path: Path, content: str, pattern: str) -> None:
    with pytest.raises(TrajectoryError, match=pattern):
        load_trajectory(_write(tmp_path, "bad.yaml", content))


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryError, match=r"missing.txt: no such trajectory file"):
        load_trajectory(tmp_path / "missing.txt")
    with pytest.raises(TrajectoryError, match="is a directory"):
        load_trajectory(tmp_path, fmt="tum")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(TrajectoryError, match=r"blob.txt: not a text file"):
        load_trajectory(binary)


def test_from_quat_poses_arrays_contract() -> None:
    stamps = np.array([0, 10, 20], dtype=np.int64)
    p = np.zeros((3, 3))
    q = np.tile([1.0, 0, 0, 0], (3, 1))
    t = trajectory_from_quat_poses(stamps, p, q, g.PoseFrame.BODY, frame_id="odom")
    assert t.frame_id == "odom"
    np.testing.assert_allclose(t.T_world_cam[0, :3, :3], g.R_BODY_OPTICAL)
    with pytest.raises(TrajectoryError, match=r"pose #1: field 'orientation' is a zero quaternion"):
        trajectory_from_quat_poses(stamps, p, np.array([[1.0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]), "optical")
    with pytest.raises(TrajectoryError, match=r"poses\[2\]: field 'position.z' is nan"):
        bad = p.copy()
        bad[2, 2] = np.nan
        trajectory_from_quat_poses(stamps, bad, q, "optical", row_labels=["poses[0]", "poses[1]", "poses[2]"])
    with pytest.raises(TrajectoryError, match=r"quats_wxyz: expected shape \[3, 4\]"):
        trajectory_from_quat_poses(stamps, p, q[:, :3], "optical")
    with pytest.raises(TrajectoryError, match="whole nanoseconds"):
        trajectory_from_quat_poses(np.array([0.0, 0.5, 1.0]), p, q, "optical")
    with pytest.raises(TrajectoryError, match="empty"):
        trajectory_from_quat_poses(np.zeros(0, dtype=np.int64), np.zeros((0, 3)), np.zeros((0, 4)), "optical")


def test_from_matrices_accepts_3x4_and_converts_body() -> None:
    M = np.tile(np.eye(4)[:3], (2, 1, 1))
    t = trajectory_from_matrices(np.array([0, 1]), M, "body")
    np.testing.assert_allclose(t.T_world_cam[1], g.T_BODY_OPTICAL)


def test_windows_line_endings_and_byte_order_mark(tmp_path: Path) -> None:
    p = tmp_path / "win.txt"
    p.write_bytes(b"\xef\xbb\xbf# exported on Windows\r\n1.0 0 0 0 0 0 0 1\r\n2.0 1 0 0 0 0 0 1\r\n")
    t = load_trajectory(p)
    np.testing.assert_array_equal(t.stamps_ns, [1_000_000_000, 2_000_000_000])
