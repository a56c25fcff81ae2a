"""3DGS PLY: lossless round trips, the exact field layout, robust header parsing and clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srender_ros.core import ply
from srender_ros.core.ply import property_names, read_ply, write_ply
from srender_ros.core.world import GaussianWorld, num_sh_coeffs
from srender_ros.errors import WorldFormatError

FIELDS = ("means", "quats_wxyz", "log_scales", "opacity_logits", "sh")


def random_world(n: int, sh_degree: int, seed: int = 0) -> GaussianWorld:
    rng = np.random.default_rng(seed)
    return GaussianWorld(rng.normal(size=(n, 3)) * 10, rng.normal(size=(n, 4)), rng.normal(-3, 1, size=(n, 3)),
                         rng.normal(size=n) * 4, rng.normal(size=(n, num_sh_coeffs(sh_degree), 3)))


def assert_bitwise_equal(a: GaussianWorld, b: GaussianWorld) -> None:
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape, f
        assert x.tobytes() == y.tobytes(), f"{f} differs"


def write_custom_ply(path: Path, columns: dict[str, np.ndarray], types: dict[str, str] | None = None,
                     fmt: str = "binary_little_endian", before: str = "", before_bytes: bytes = b"",
                     after: str = "", after_bytes: bytes = b"", eol: str = "\n") -> None:
    """A PLY with the given vertex properties in the given order (types default to float)."""
    types = types or {}
    code = {"float": "<f4", "double": "<f8", "uchar": "u1", "int": "<i4"}
    n = len(next(iter(columns.values())))
    dtype = np.dtype([(k, code[types.get(k, "float")]) for k in columns])
    rec = np.empty(n, dtype)
    for k, v in columns.items():
        rec[k] = v
    lines = ["ply", f"format {fmt} 1.0", "comment made by a test", before.strip(), f"element vertex {n}"]
    lines += [f"property {types.get(k, 'float')} {k}" for k in columns]
    lines += [after.strip(), "end_header"]
    header = eol.join(line for line in lines if line) + eol
    path.write_bytes(header.encode() + before_bytes + rec.tobytes() + after_bytes)


def standard_columns(w: GaussianWorld) -> dict[str, np.ndarray]:
    """What 3DGS's save_ply writes, computed independently of ply.encode_ply."""
    n, k = len(w), w.sh.shape[1]
    cols = {"x": w.means[:, 0], "y": w.means[:, 1], "z": w.means[:, 2]}
    cols |= {f"f_dc_{c}": w.sh[:, 0, c] for c in range(3)}
    # features_rest [N, K-1, 3] -> transpose(1, 2) -> [N, 3, K-1] -> flatten
    rest = np.transpose(w.sh[:, 1:, :], (0, 2, 1)).reshape(n, -1)
    cols |= {f"f_rest_{i}": rest[:, i] for i in range(3 * (k - 1))}
    cols["opacity"] = w.opacity_logits
    cols |= {f"scale_{i}": w.log_scales[:, i] for i in range(3)}
    cols |= {f"rot_{i}": w.quats_wxyz[:, i] for i in range(4)}
    return cols


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_round_trip_is_bitwise_lossless(tmp_path: Path, sh_degree: int) -> None:
    w = random_world(257, sh_degree, seed=sh_degree)
    path = tmp_path / "w.ply"
    write_ply(path, w)
    back = read_ply(path)
    assert back.sh_degree == sh_degree
    assert_bitwise_equal(w, back)
    # Writing again gives identical bytes.
    write_ply(tmp_path / "again.ply", back)
    assert (tmp_path / "again.ply").read_bytes() == path.read_bytes()


def test_written_layout_matches_3dgs(tmp_path: Path) -> None:
    w = random_world(5, 3)
    path = tmp_path / "w.ply"
    write_ply(path, w)
    data = path.read_bytes()
    header, body = data.split(b"end_header\n", 1)
    lines = header.decode().splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    assert "element vertex 5" in lines
    props = [ln.split()[2] for ln in lines if ln.startswith("property float ")]
    assert props == property_names(3)
    assert props[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert props[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert props[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    table = np.frombuffer(body, dtype="<f4").reshape(5, 62)
    expect = standard_columns(w)
    for j, name in enumerate(props):
        if name in ("nx", "ny", "nz"):
            assert not table[:, j].any()
        else:
            np.testing.assert_array_equal(table[:, j], expect[name], err_msg=name)
    # Channel-major f_rest: f_rest_0..14 are red coefficients 1..15, f_rest_15 is green coefficient 1.
    np.testing.assert_array_equal(table[:, 9], w.sh[:, 1, 0])
    np.testing.assert_array_equal(table[:, 9 + 14], w.sh[:, 15, 0])
    np.testing.assert_array_equal(table[:, 9 + 15], w.sh[:, 1, 1])
    np.testing.assert_array_equal(table[:, 9 + 44], w.sh[:, 15, 2])


def test_empty_and_single_gaussian_worlds(tmp_path: Path) -> None:
    for n in (0, 1):
        w = random_world(n, 1)
        write_ply(tmp_path / f"{n}.ply", w)
        back = read_ply(tmp_path / f"{n}.ply")
        assert len(back) == n and back.sh_degree == 1
        assert_bitwise_equal(w, back)


def test_reads_any_property_order_extra_properties_and_doubles(tmp_path: Path) -> None:
    w = random_world(20, 2, seed=4)
    cols = standard_columns(w)
    names = list(cols)
    rng = np.random.default_rng(0)
    order = [names[i] for i in rng.permutation(len(names))]
    shuffled = {k: cols[k] for k in order}
    shuffled["red"] = np.arange(20) % 256  # an extra uchar property, as some exporters add
    shuffled["confidence"] = np.linspace(0, 1, 20)
    types = {"red": "uchar", "confidence": "double", "x": "double", "opacity": "double"}
    path = tmp_path / "shuffled.ply"
    write_custom_ply(path, shuffled, types, eol="\r\n")
    back = read_ply(path)
    assert_bitwise_equal(w, back)  # doubles of float32 values convert back exactly


def test_quaternions_from_training_code_are_normalized(tmp_path: Path) -> None:
    w = random_world(3, 0)
    cols = standard_columns(w)
    for i in range(4):
        cols[f"rot_{i}"] = cols[f"rot_{i}"] * 7.0  # 3DGS stores unnormalized rotations
    write_custom_ply(tmp_path / "q.ply", cols)
    np.testing.assert_allclose(read_ply(tmp_path / "q.ply").quats_wxyz, w.quats_wxyz, atol=1e-6)


def test_skips_other_elements_and_trailing_bytes(tmp_path: Path) -> None:
    w = random_world(7, 1)
    cam = np.arange(6, dtype="<f4")  # element camera 2 with 3 float properties, before vertex
    write_custom_ply(tmp_path / "e.ply", standard_columns(w),
                     before="element camera 2\nproperty float a\nproperty float b\nproperty float c",
                     before_bytes=cam.tobytes(), after="element face 1\nproperty list uchar int vertex_indices",
                     after_bytes=b"\x03" + np.arange(3, dtype="<i4").tobytes())
    assert_bitwise_equal(w, read_ply(tmp_path / "e.ply"))


def test_refuses_ascii_and_big_endian(tmp_path: Path) -> None:
    w = random_world(2, 0)
    for fmt, why in (("ascii", "ASCII PLY is not supported"), ("binary_big_endian", "big-endian")):
        path = tmp_path / f"{fmt}.ply"
        write_custom_ply(path, standard_columns(w), fmt=fmt)
        with pytest.raises(WorldFormatError, match=why) as exc:
            read_ply(path)
        assert str(path) in str(exc.value)


def test_missing_required_properties_are_named(tmp_path: Path) -> None:
    cols = standard_columns(random_world(2, 0))
    del cols["scale_1"], cols["rot_3"]
    path = tmp_path / "missing.ply"
    write_custom_ply(path, cols)
    with pytest.raises(WorldFormatError, match=r"missing\.ply: vertex element lacks required properties \['scale_1', 'rot_3'\]"):
        read_ply(path)


def test_bad_f_rest_counts_and_types(tmp_path: Path) -> None:
    cols = standard_columns(random_world(2, 1))
    del cols["f_rest_8"]
    write_custom_ply(tmp_path / "eight.ply", cols)
    with pytest.raises(WorldFormatError, match="8 f_rest properties; expected 0, 9, 24 or 45"):
        read_ply(tmp_path / "eight.ply")
    cols = standard_columns(random_world(2, 1))
    del cols["f_rest_3"]
    write_custom_ply(tmp_path / "gap.ply", cols)
    with pytest.raises(WorldFormatError, match=r"not numbered 0..8; missing \[3\]"):
        read_ply(tmp_path / "gap.ply")
    cols = standard_columns(random_world(2, 0))
    cols["opacity"] = np.array([1, 2])
    write_custom_ply(tmp_path / "int.ply", cols, {"opacity": "int"})
    with pytest.raises(WorldFormatError, match=r"\['opacity'\] must be float or double"):
        read_ply(tmp_path / "int.ply")


def test_truncated_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "t.ply"
    write_ply(path, random_world(100, 3))
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(WorldFormatError, match=r"t\.ply: truncated: \d+ bytes, but the header announces 100 vertices"):
        read_ply(path)
    path.write_bytes(data[: data.index(b"end_header") - 3])
    with pytest.raises(WorldFormatError, match="no 'end_header'"):
        read_ply(path)


@pytest.mark.parametrize(("content", "why"), [
    (b"", "not a PLY file"),
    (b"hello world\n", "not a PLY file"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex x\nend_header\n", "malformed element line"),
    (b"ply\nformat binary_little_endian 1.0\nproperty float x\nend_header\n", "property before any element"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty half x\nend_header\n", "unsupported property"),
    (b"ply\nelement vertex 0\nend_header\n", "no 'format' line"),
    (b"ply\nformat binary_little_endian 1.0\nelement face 0\nend_header\n", "no 'vertex' element"),
    (b"ply\nformat binary_little_endian 1.0\nbogus 1\nend_header\n", "unknown keyword 'bogus'"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty double x\nend_header\n",
     "property 'x' appears twice"),
    (b"ply\nformat binary_little_endian 1.0\ncomment \xff\xfe\nend_header\n", "line 3 is not ASCII"),
])
def test_malformed_headers(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(WorldFormatError, match=why) as exc:
        read_ply(path)
    assert str(path) in str(exc.value)


def test_invalid_values_and_missing_file_name_the_file(tmp_path: Path) -> None:
    w = random_world(4, 0)
    cols = standard_columns(w)
    cols["scale_2"] = cols["scale_2"].copy()
    cols["scale_2"][2] = np.nan
    write_custom_ply(tmp_path / "nan.ply", cols)
    with pytest.raises(WorldFormatError, match=r"nan\.ply: GaussianWorld\.log_scales: Gaussian #2 has NaN"):
        read_ply(tmp_path / "nan.ply")
    cols = standard_columns(w)
    for i in range(4):
        cols[f"rot_{i}"] = np.zeros(4, np.float32)
    write_custom_ply(tmp_path / "zeroq.ply", cols)
    with pytest.raises(WorldFormatError, match=r"zeroq\.ply: .*zero quaternion"):
        read_ply(tmp_path / "zeroq.ply")
    with pytest.raises(WorldFormatError, match=r"nope\.ply: no such file"):
        read_ply(tmp_path / "nope.ply")
    with pytest.raises(WorldFormatError, match="is a directory"):
        read_ply(tmp_path)


def test_write_is_atomic_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.ply"
    old = random_world(50, 1, seed=1)
    write_ply(path, old)
    before = path.read_bytes()

    def half_then_fail(f: object, records: np.ndarray) -> None:
        f.write(records.view(np.uint8)[: records.nbytes // 2].tobytes())  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ply, "_write_records", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_ply(path, random_world(80, 3, seed=2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.ply"]  # no temporary file left behind
    assert_bitwise_equal(old, read_ply(path))
