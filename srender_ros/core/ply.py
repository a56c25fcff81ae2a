"""3D Gaussian Splatting PLY files: read any conforming file, write the standard layout.

Layout written (one ``vertex`` element, ``binary_little_endian``, every property ``float``)::

    x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 f_rest_0 .. f_rest_{3(K-1)-1} opacity scale_0 scale_1 scale_2
    rot_0 rot_1 rot_2 rot_3

as written by the original 3DGS code (graphdeco-inria ``GaussianModel.save_ply``), which is what
common splat viewers read:

- ``x y z``: centre, metres. ``nx ny nz``: unused, written as 0.
- ``f_dc_c``: DC SH coefficient of channel c (R, G, B) = ``sh[:, 0, c]``.
- ``f_rest_*``: higher-order SH, *channel-major*. 3DGS keeps ``features_rest`` as [N, K-1, 3] and
  saves ``features_rest.transpose(1, 2).flatten(1)``, i.e. [N, 3, K-1]: first the K-1 coefficients
  of R, then those of G, then B. So ``f_rest_{c * (K-1) + (k-1)} = sh[:, k, c]`` for k >= 1.
  There are 0, 9, 24 or 45 of them (SH degree 0..3).
- ``opacity``: logit of the opacity. ``scale_i``: natural log of the standard deviation, metres.
- ``rot_0..3``: quaternion (w, x, y, z), not necessarily normalized in files from training code
  (we normalize on load, as the rasterizers do).

Reading accepts any property order, extra properties (ignored), ``double`` as well as ``float``,
other elements before or after ``vertex`` (if they have no list properties before it) and trailing
bytes. It refuses ASCII and big-endian files, missing properties and truncated data with a
:class:`~srender_ros.errors.WorldFormatError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from numpy.lib.recfunctions import structured_to_unstructured
from numpy.typing import NDArray

from srender_ros.core.atomic import atomic_write
from srender_ros.core.world import GaussianWorld, num_sh_coeffs, sh_degree_from_coeffs
from srender_ros.errors import InputError, WorldFormatError

#: PLY scalar type names (both spellings) -> little-endian numpy type codes.
PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}
#: A PLY header longer than this is not a Gaussian splat file (guards against reading junk).
MAX_HEADER_BYTES = 1 << 20
_BASE_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


class PlyProperty(NamedTuple):
    """One property of a PLY element: ``dtype`` is None for list properties (unsupported in data)."""

    name: str
    type_name: str
    dtype: str | None


class PlyElement(NamedTuple):
    """One ``element`` line of a header with its properties, in file order."""

    name: str
    n_items: int
    properties: tuple[PlyProperty, ...]

    @property
    def has_lists(self) -> bool:
        return any(p.dtype is None for p in self.properties)

    def numpy_dtype(self) -> np.dtype:
        """Packed structured dtype of one record (only for elements without list properties)."""
        return np.dtype([(p.name, p.dtype) for p in self.properties if p.dtype is not None])


class PlyHeader(NamedTuple):
    """A parsed PLY header: format string, elements in order, header size in bytes."""

    format: str
    elements: tuple[PlyElement, ...]
    header_bytes: int


def property_names(sh_degree: int) -> list[str]:
    """Vertex property names, in the order :func:`write_ply` writes them, for SH ``sh_degree``."""
    n_rest = 3 * (num_sh_coeffs(sh_degree) - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(n_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


# ---- reading ------------------------------------------------------------------------------------
def read_ply_header(f: BinaryIO, path: Path | str) -> PlyHeader:
    """Parse the header of an open PLY file (positioned at its start).

    Raises:
        WorldFormatError: not a PLY, malformed lines, or a header without ``end_header``.
    """
    name = os.fspath(path)
    if f.read(4) not in (b"ply\n", b"ply\r"):
        raise WorldFormatError(f"{name}: not a PLY file (it does not start with 'ply')")
    f.seek(0)
    fmt: str | None = None
    elements: list[PlyElement] = []
    props: list[PlyProperty] = []
    current: tuple[str, int] | None = None
    consumed = 0
    lineno = 0
    while True:
        raw = f.readline(MAX_HEADER_BYTES)
        consumed += len(raw)
        lineno += 1
        if not raw:
            raise WorldFormatError(f"{name}: the PLY header has no 'end_header' line (file truncated?)")
        if consumed > MAX_HEADER_BYTES:
            raise WorldFormatError(f"{name}: the PLY header is longer than {MAX_HEADER_BYTES} bytes; not a splat file")
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise WorldFormatError(f"{name}: header line {lineno} is not ASCII text") from None
        words = line.split()
        if not words or words[0] in ("ply", "comment", "obj_info"):
            continue
        key = words[0]
        if key == "end_header":
            break
        if key == "format":
            if len(words) != 3:
                raise WorldFormatError(f"{name}: header line {lineno}: malformed format line {line!r}")
            fmt = words[1]
        elif key == "element":
            if current is not None:
                elements.append(PlyElement(current[0], current[1], tuple(props)))
            if len(words) != 3 or not words[2].isdigit():
                raise WorldFormatError(f"{name}: header line {lineno}: malformed element line {line!r}")
            current, props = (words[1], int(words[2])), []
        elif key == "property":
            if current is None:
                raise WorldFormatError(f"{name}: header line {lineno}: property before any element")
            if words[-1] in {q.name for q in props}:
                raise WorldFormatError(f"{name}: header line {lineno}: property {words[-1]!r} appears twice")
            if len(words) == 3 and words[1] in PLY_TYPES:
                props.append(PlyProperty(words[2], words[1], PLY_TYPES[words[1]]))
            elif len(words) == 5 and words[1] == "list":
                props.append(PlyProperty(words[4], "list", None))
            else:
                raise WorldFormatError(f"{name}: header line {lineno}: unsupported property line {line!r}")
        else:
            raise WorldFormatError(f"{name}: header line {lineno}: unknown keyword {key!r}")
    if current is not None:
        elements.append(PlyElement(current[0], current[1], tuple(props)))
    if fmt is None:
        raise WorldFormatError(f"{name}: the PLY header has no 'format' line")
    return PlyHeader(fmt, tuple(elements), consumed)


def _locate_vertex(header: PlyHeader, name: str) -> tuple[PlyElement, int]:
    """The vertex element and the byte offset of its data."""
    if header.format != "binary_little_endian":
        hint = {"ascii": "ASCII PLY is not supported; save it as binary_little_endian (e.g. in CloudCompare or "
                         "with the plyfile package: PlyData(..., text=False, byte_order='<'))",
                "binary_big_endian": "big-endian PLY is not supported; re-save it as binary_little_endian"}
        raise WorldFormatError(f"{name}: format {header.format!r}: "
                               + hint.get(header.format, "expected binary_little_endian"))
    offset = header.header_bytes
    for el in header.elements:
        if el.name == "vertex":
            return el, offset
        if el.has_lists:
            raise WorldFormatError(f"{name}: element {el.name!r} before 'vertex' has list properties; "
                                   "cannot locate the vertex data")
        offset += el.n_items * el.numpy_dtype().itemsize
    raise WorldFormatError(f"{name}: no 'vertex' element in the PLY header; not a Gaussian splat file")


def read_ply(path: Path | str) -> GaussianWorld:
    """Load a 3D Gaussian Splatting PLY file.

    Args:
        path: file in the layout described in this module's docstring.
    Returns:
        The world; float64 properties are rounded to float32, quaternions normalized.
    Raises:
        WorldFormatError: naming the file, for a missing/unreadable file, a wrong format, missing
            properties, a truncated body or invalid values (NaN, zero quaternions).
    """
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            header = read_ply_header(f, name)
            vertex, offset = _locate_vertex(header, name)
            size = os.fstat(f.fileno()).st_size
            if vertex.has_lists:
                raise WorldFormatError(f"{name}: the vertex element has list properties; not a Gaussian splat file")
            dtype = vertex.numpy_dtype()
            need = offset + vertex.n_items * dtype.itemsize
            if size < need:
                raise WorldFormatError(f"{name}: truncated: {size} bytes, but the header announces {vertex.n_items} "
                                       f"vertices needing {need} bytes")
            types = {p.name: p.type_name for p in vertex.properties}
            names = _required_names(vertex, name)
            bad = [n for n in names if PLY_TYPES[types[n]] not in ("<f4", "<f8")]
            if bad:
                raise WorldFormatError(f"{name}: properties {bad} must be float or double, got "
                                       f"{[types[n] for n in bad]}")
            f.seek(offset)
            records = np.fromfile(f, dtype=dtype, count=vertex.n_items)
    except FileNotFoundError:
        raise WorldFormatError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise WorldFormatError(f"{name}: is a directory, expected a .ply file") from None
    except PermissionError as exc:
        raise WorldFormatError(f"{name}: cannot read: {exc.strerror}") from None
    if records.shape[0] != vertex.n_items:  # the file shrank while we read it
        raise WorldFormatError(f"{name}: truncated: read {records.shape[0]} of {vertex.n_items} vertices")
    return _records_to_world(records, names, name)


def _required_names(vertex: PlyElement, name: str) -> list[str]:
    """Names of the properties we read, base ones first then f_rest_0..M-1; checks presence."""
    have = {p.name for p in vertex.properties}
    missing = [n for n in _BASE_REQUIRED if n not in have]
    if missing:
        raise WorldFormatError(f"{name}: vertex element lacks required properties {missing}; not a 3D Gaussian "
                               "Splatting PLY (a compressed or point-cloud PLY must be converted first)")
    rest = sorted(int(n[7:]) for n in have if n.startswith("f_rest_") and n[7:].isdigit())
    if rest != list(range(len(rest))):
        gaps = sorted(set(range(max(rest) + 1)) - set(rest))
        raise WorldFormatError(f"{name}: f_rest properties are not numbered 0..{max(rest)}; missing {gaps[:5]}")
    try:
        sh_degree_from_coeffs(len(rest) // 3 + 1)
        if len(rest) % 3:
            raise InputError("not a multiple of 3")
    except InputError:
        raise WorldFormatError(f"{name}: {len(rest)} f_rest properties; expected 0, 9, 24 or 45 "
                               "(SH degree 0..3, 3 colour channels)") from None
    return list(_BASE_REQUIRED) + [f"f_rest_{i}" for i in range(len(rest))]


def _records_to_world(records: NDArray[np.void], names: list[str], name: str) -> GaussianWorld:
    n = records.shape[0]
    fields = list(records.dtype.names or ())
    if all(records.dtype.fields[f][0] == np.dtype("<f4") for f in fields):  # type: ignore[index]
        # The usual case: every property is a float, so the records are an [N, F] float32 matrix.
        mat = records.view("<f4").reshape(n, len(fields))
    else:
        mat = structured_to_unstructured(records[names], dtype=np.float32)
        fields = names
    col = {f: j for j, f in enumerate(fields)}

    def take(*props: str) -> NDArray[np.float32]:
        js = [col[p] for p in props]
        if js == list(range(js[0], js[0] + len(js))):  # a slice copies far faster than fancy indexing
            return np.array(mat[:, js[0]:js[0] + len(js)], dtype=np.float32, order="C")
        return np.asarray(mat[:, js], dtype=np.float32)

    k = len(names) - len(_BASE_REQUIRED)
    n_coeffs = k // 3 + 1
    sh = np.empty((n, n_coeffs, 3), np.float32)
    sh[:, 0, :] = take("f_dc_0", "f_dc_1", "f_dc_2")
    if k:
        # Channel-major on disk ([N, 3, K-1]) -> our [N, K-1, 3].
        sh[:, 1:, :] = take(*names[len(_BASE_REQUIRED):]).reshape(n, 3, n_coeffs - 1).transpose(0, 2, 1)
    try:
        return GaussianWorld(
            means=take("x", "y", "z"),
            quats_wxyz=take("rot_0", "rot_1", "rot_2", "rot_3"),
            log_scales=take("scale_0", "scale_1", "scale_2"),
            opacity_logits=take("opacity")[:, 0],
            sh=sh,
        )
    except InputError as exc:
        raise WorldFormatError(f"{name}: {exc}") from None


# ---- writing ------------------------------------------------------------------------------------
def encode_ply(world: GaussianWorld) -> tuple[bytes, NDArray[np.void]]:
    """The header and the [N] structured records (all ``<f4``) of ``world`` in the standard layout."""
    names = property_names(world.sh_degree)
    n, k = len(world), world.sh.shape[1]
    flat = np.zeros((n, len(names)), dtype="<f4")
    flat[:, 0:3] = world.means
    # columns 3:6 are the unused normals, left at 0
    flat[:, 6:9] = world.sh[:, 0, :]
    r = 3 * (k - 1)
    # Our [N, K-1, 3] -> channel-major [N, 3, K-1], as 3DGS writes it.
    flat[:, 9:9 + r] = world.sh[:, 1:, :].transpose(0, 2, 1).reshape(n, r)
    flat[:, 9 + r] = world.opacity_logits
    flat[:, 10 + r:13 + r] = world.log_scales
    flat[:, 13 + r:17 + r] = world.quats_wxyz
    dtype = np.dtype([(p, "<f4") for p in names])
    records = flat.reshape(-1).view(dtype)
    lines = ["ply", "format binary_little_endian 1.0",
             "comment 3D Gaussian Splatting layout (srender_ros): opacity=logit, scale=log(m), rot=wxyz, "
             "f_rest channel-major",
             f"element vertex {n}"] + [f"property float {p}" for p in names] + ["end_header"]
    return ("\n".join(lines) + "\n").encode("ascii"), records


def _write_records(f: BinaryIO, records: NDArray[np.void]) -> None:
    """Write the vertex records' bytes (a separate function so tests can make a write fail midway)."""
    f.write(np.ascontiguousarray(records).view(np.uint8).data)


def write_ply(path: Path | str, world: GaussianWorld) -> None:
    """Write ``world`` as a binary little-endian 3DGS PLY, atomically.

    The data goes to a temporary file beside ``path``, is fsynced and renamed over ``path``, so a
    reader (or a crash) never sees a partial file and a failed write leaves an old file intact.

    Args:
        path: destination; its directory must exist.
        world: any SH degree 0..3; written with 3 * ((degree + 1) ** 2 - 1) f_rest properties.
    """
    header, records = encode_ply(world)
    parent = Path(path).parent
    if not parent.is_dir():
        raise InputError(f"{os.fspath(path)}: directory {os.fspath(parent)} does not exist")
    with atomic_write(path) as f:
        f.write(header)
        _write_records(f, records)
