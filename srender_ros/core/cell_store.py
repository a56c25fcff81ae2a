"""On-disk format 2 of a stored world: Gaussians in one PLY per spatial cell, updated in place.

Layout (docs/worlds.md)::

    w-<world_id>/
        manifest.json                 format_version 2: cells, keyframes, checksums (the commit point)
        cells/c_I_J_K-<tag>.ply       Gaussians whose means lie in cell (I, J, K) of the CellGrid, 3DGS PLY
        keyframes/kf-0000-rgb.png     as in format 1
        keyframes/kf-0000-depth.npy

A save changes only what changed: the cells a keyframe touched are written under *new* names
(``<tag>`` is random, the file is created exclusively and fsynced), the new keyframe files are
written, and then ``manifest.json`` is replaced atomically (temporary name, fsync, rename, fsync
of the directory). The manifest is the only commit point: before its rename the previous manifest
still lists only complete, unchanged files; after it, the new one does. Files no manifest lists
(replaced cells, leftovers of a crash) are deleted after the commit, under the world's exclusive
lock. So a kill -9 at any moment leaves the last committed world loadable, checksums intact.

Format 1 (one ``gaussians.ply``, :mod:`srender_ros.core.manifest`) is still read; the first save
migrates it (:func:`write_full`: a complete format-2 copy is built beside it and swapped in, the old
directory is kept until the new one is complete).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.atomic import TMP_PREFIX, atomic_write_bytes, fsync_dir
from srender_ros.core.cells import DEFAULT_CELL_SIZE_M, CellGrid, CellKey, cell_name, parse_cell_name
from srender_ros.core.manifest import (
    _NUMBER_LIST_RE,
    FORMAT_VERSION,
    KEYFRAMES_DIR,
    MANIFEST_NAME,
    KeyframeRecord,
    WorldSnapshot,
    _keyframe_from_entry,
    _safe_member,
    check_fields,
    keyframe_entry,
    keyframe_files,
    read_manifest,
    sha256_file,
)
from srender_ros.core.ply import encode_ply, read_ply
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError, WorldFormatError

#: Manifest schema of a world stored by cells.
CELLS_FORMAT_VERSION = 2
#: Edge of a storage cell, metres: 8 x 8 x 8 cells of the shared grid (DEFAULT_CELL_SIZE_M = 8 m), so
#: a storage cell is an exact union of render/LOD cells. Lifted far surfaces and sky are sparse (a
#: Gaussian or two per 8 m cell, hundreds of metres away and up to ~250 m high) and every keyframe
#: adds some to many cells: after 3 minutes of the walk benchmark, 64 m cells number 181 where 32 m ones 667
#: (and 8 m cells thousands), which is what a per-keyframe save has to rewrite.
STORAGE_CELL_SIZE_M = 8 * DEFAULT_CELL_SIZE_M
CELLS_DIR = "cells"


class CellEntry(NamedTuple):
    """One stored cell: relative file name, its Gaussian count, sha256 and size in bytes."""

    file: str
    gaussians: int
    sha256: str
    bytes: int

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "gaussians": self.gaussians, "sha256": self.sha256, "bytes": self.bytes}


def manifest_version(directory: Path) -> int:
    """``format_version`` of ``directory/manifest.json`` (WorldFormatError when unreadable)."""
    path = directory / MANIFEST_NAME
    try:
        m = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise WorldFormatError(f"{path}: missing (the world directory is incomplete)") from None
    except OSError as exc:
        raise WorldFormatError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorldFormatError(f"{path}: corrupt JSON ({exc}); restore it or remove the world") from None
    version = m.get("format_version") if isinstance(m, dict) else None
    if not isinstance(version, int) or version < 1:
        raise WorldFormatError(f"{path}: 'format_version' missing or invalid ({version!r})")
    return version


def read_cells_manifest(directory: Path) -> dict[str, Any]:
    """Parse and check a format-2 manifest (no checksums). Format-1 manifests are returned as read
    by :func:`srender_ros.core.manifest.read_manifest` (they have ``gaussians_file``, no ``cells``).

    Raises:
        WorldFormatError: naming the manifest.
    """
    version = manifest_version(directory)
    path = directory / MANIFEST_NAME
    if version < CELLS_FORMAT_VERSION:
        return read_manifest(directory)
    if version > CELLS_FORMAT_VERSION:
        raise WorldFormatError(f"{path}: format_version {version} is newer than this srender supports "
                               f"({CELLS_FORMAT_VERSION}); upgrade srender_ros")
    m: dict[str, Any] = json.loads(path.read_bytes().decode("utf-8"))
    expect: dict[str, type | tuple[type, ...]] = {
        "world_id": str, "prompt": str, "generator": dict, "created_utc": str, "updated_utc": str,
        "counts": dict, "cells": dict, "cell_size_m": (int, float), "keyframes": list, "files": dict}
    check_fields(path, m, expect)
    return m


def cell_entries(directory: Path, m: dict[str, Any]) -> dict[CellKey, CellEntry]:
    """The ``cells`` of a format-2 manifest as {cell key: entry} (WorldFormatError on a bad entry)."""
    path = directory / MANIFEST_NAME
    out: dict[CellKey, CellEntry] = {}
    for name, e in m["cells"].items():
        try:
            key = parse_cell_name(name)
            entry = CellEntry(str(e["file"]), int(e["gaussians"]), str(e["sha256"]), int(e["bytes"]))
        except (InputError, KeyError, TypeError, ValueError) as exc:
            raise WorldFormatError(f"{path}: cell entry {name!r} is malformed ({exc})") from None
        _safe_member(directory, entry.file, path)
        out[key] = entry
    return out


def check_file(path: Path, sha256: str, size: int) -> None:
    """WorldFormatError naming ``path`` unless it exists with ``size`` bytes and that sha256."""
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        raise WorldFormatError(f"{path}: missing (listed in {MANIFEST_NAME})") from None
    except OSError as exc:
        raise WorldFormatError(f"{path}: cannot read: {exc.strerror}") from None
    if actual != size:
        raise WorldFormatError(f"{path}: {actual} bytes, but the manifest recorded {size} "
                               f"({'truncated' if actual < size else 'altered'})")
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise WorldFormatError(f"{path}: cannot read: {exc.strerror}") from None
    if digest != sha256:
        raise WorldFormatError(f"{path}: sha256 checksum mismatch (file corrupt or edited after saving)")


def load_cell(directory: Path, key: CellKey, entry: CellEntry) -> GaussianWorld:
    """The Gaussians of one stored cell, checksum verified first.

    Raises:
        WorldFormatError: naming the cell's file (missing, truncated, altered, undecodable).
    """
    path = _safe_member(directory, entry.file, directory / MANIFEST_NAME)
    check_file(path, entry.sha256, entry.bytes)
    world = read_ply(path)
    if len(world) != entry.gaussians:
        raise WorldFormatError(f"{path}: {len(world)} Gaussians, manifest says {entry.gaussians}")
    return world


def write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (must not exist) with ``data``, not yet flushed: see :func:`flush_files`."""
    with open(path, "xb") as f:
        f.write(data)


def flush_files(directory: Path, paths: list[Path]) -> None:
    """Make the files just written durable before the manifest that lists them is committed.

    One ``syncfs`` of the file system holding ``directory`` (Linux) replaces an fsync per file: a
    keyframe touches up to a few hundred cells (far surfaces and sky spread over many), and one
    fsync costs milliseconds. Elsewhere each file is fsynced.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        syncfs = None
    if syncfs is not None and paths:
        fd = os.open(directory, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_OFF = 1 << 20  # cell indices in [-2^20, 2^20) per axis: +-67,000 km at 64 m cells


def cell_codes(grid: CellGrid, means: NDArray[np.floating]) -> NDArray[np.int64]:
    """[N] one int64 per point naming its cell (i, j, k packed in 21 bits each)."""
    k = grid.keys(means) + _OFF
    return np.asarray((k[:, 0] << 42) | (k[:, 1] << 21) | k[:, 2], dtype=np.int64)


def code_of(key: CellKey) -> int:
    """The code of cell ``key`` (see :func:`cell_codes`)."""
    return ((key[0] + _OFF) << 42) | ((key[1] + _OFF) << 21) | (key[2] + _OFF)


def key_of(code: int) -> CellKey:
    """Inverse of :func:`code_of`."""
    mask = (1 << 21) - 1
    return ((code >> 42) - _OFF, ((code >> 21) & mask) - _OFF, (code & mask) - _OFF)


def isin_sorted(a: NDArray[Any], b_sorted: NDArray[Any]) -> NDArray[np.bool_]:
    """[len(a)] whether each of ``a`` is in the ascending ``b_sorted`` (np.isin, several times faster here)."""
    if len(b_sorted) == 0:
        return np.zeros(len(a), bool)
    i = np.searchsorted(b_sorted, a)
    i[i == len(b_sorted)] = 0
    return np.asarray(b_sorted[i] == a)


def write_cells(directory: Path, world: GaussianWorld, codes: NDArray[np.int64], which: list[int],
                written: list[str]) -> dict[CellKey, CellEntry]:
    """Write cells ``which`` (codes) of ``world`` as new PLYs, encoding only their Gaussians, once.

    Args:
        codes: [N] :func:`cell_codes` of ``world.means``.
        written: the relative names of the files written are appended (for cleanup on failure).
    Returns:
        {cell: entry} for the cells of ``which`` that hold Gaussians (in their ``world`` order).
    """
    want = np.unique(np.asarray(which, np.int64))
    if len(want) == 0 or len(world) == 0:
        return {}
    sel = np.nonzero(isin_sorted(codes, want))[0]
    sub = world.select(sel)
    sub_codes = codes[sel]
    header, records = encode_ply(sub)
    raw = np.ascontiguousarray(records).view(np.uint8).reshape(len(sub), records.dtype.itemsize)
    order = np.argsort(sub_codes, kind="stable")
    sorted_codes = sub_codes[order]
    starts = np.searchsorted(sorted_codes, want, side="left")
    ends = np.searchsorted(sorted_codes, want, side="right")
    count_line = f"element vertex {len(sub)}\n".encode("ascii")
    out: dict[CellKey, CellEntry] = {}
    for code, lo, hi in zip(want.tolist(), starts.tolist(), ends.tolist(), strict=True):
        if hi == lo:
            continue
        key = key_of(int(code))
        data = header.replace(count_line, f"element vertex {hi - lo}\n".encode("ascii")) + raw[order[lo:hi]].tobytes()
        out[key] = _write_cell_bytes(directory, key, data, hi - lo)
        written.append(out[key].file)
    return out


def _write_cell_bytes(directory: Path, key: CellKey, data: bytes, n: int) -> CellEntry:
    """Write ``data`` (a whole PLY of ``n`` Gaussians) as a new, uniquely named cell file."""
    rel = f"{CELLS_DIR}/{cell_name(key)}-{uuid.uuid4().hex[:10]}.ply"
    path = directory / rel
    try:
        write_new_file(path, data)
    except OSError as exc:
        try:
            path.unlink()
        except OSError:
            pass
        raise OSError(exc.errno, f"writing {path}: {exc.strerror or exc}") from exc
    return CellEntry(rel, n, hashlib.sha256(data).hexdigest(), len(data))


def write_cell(directory: Path, key: CellKey, world: GaussianWorld) -> CellEntry:
    """Write one cell's Gaussians to a new, uniquely named PLY under ``directory/cells``.

    The caller makes the written cells durable (:func:`flush_files`), fsyncs ``cells/`` and only
    then commits the manifest.

    Raises:
        OSError: the write failed (naming the file); a partly written file is removed.
    """
    header, records = encode_ply(world)
    return _write_cell_bytes(directory, key, header + np.ascontiguousarray(records).view(np.uint8).tobytes(), len(world))


def write_keyframe(directory: Path, index: int, kf: KeyframeRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write keyframe ``index``'s image files (replacing leftovers of a crashed save atomically).

    Returns:
        (manifest keyframe entry, {relative path: {"sha256", "bytes"}}).
    """
    entry = keyframe_entry(index, kf)
    files: dict[str, Any] = {}
    for key, rel, data in keyframe_files(index, kf):
        path = directory / rel
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise OSError(exc.errno, f"writing {path}: {exc.strerror or exc}") from exc
        files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        entry[key] = rel
    return entry, files


def load_keyframes(directory: Path, m: dict[str, Any], start: int = 0) -> list[KeyframeRecord]:
    """Keyframes ``start..`` of a manifest (either format), their files' checksums verified first."""
    mpath = directory / MANIFEST_NAME
    out = []
    for i, e in enumerate(m["keyframes"][start:], start):
        if isinstance(e, dict):
            for key in ("rgb_file", "depth_file"):
                rel = e.get(key)
                meta = m["files"].get(rel) if isinstance(rel, str) else None
                if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) \
                        or not isinstance(meta.get("bytes"), int):
                    raise WorldFormatError(f"{mpath}: files [{rel!r}] have no checksum entry")
                check_file(_safe_member(directory, rel, mpath), meta["sha256"], meta["bytes"])
        out.append(_keyframe_from_entry(directory, e, i))
    return out


def build_manifest(snap: WorldSnapshot, cells: dict[CellKey, CellEntry], keyframes: list[dict[str, Any]],
                   files: dict[str, Any], cell_size_m: float, sh_degree: int) -> dict[str, Any]:
    """A format-2 manifest (dict) for ``snap``'s identity with these cells and keyframe entries."""
    return {
        "format_version": CELLS_FORMAT_VERSION,
        "world_id": snap.world_id,
        "prompt": snap.prompt,
        "generator": {"name": snap.generator_name, "settings": snap.generator_settings},
        "created_utc": snap.created_utc,
        "updated_utc": snap.updated_utc,
        "counts": {"gaussians": sum(e.gaussians for e in cells.values()), "sh_degree": sh_degree,
                   "keyframes": len(keyframes), "cells": len(cells)},
        "cell_size_m": cell_size_m,
        "cells": {cell_name(k): e.as_json() for k, e in sorted(cells.items())},
        "keyframes": keyframes,
        "files": files,
    }


def commit_manifest(directory: Path, manifest: dict[str, Any]) -> bytes:
    """Replace ``directory/manifest.json`` atomically (the commit point); returns the bytes written."""
    text = _NUMBER_LIST_RE.sub(lambda mt: "[" + ", ".join(x.strip() for x in mt.group(1).split(",")) + "]",
                               json.dumps(manifest, indent=2, allow_nan=False, ensure_ascii=False)) + "\n"
    data = text.encode("utf-8")
    try:
        atomic_write_bytes(directory / MANIFEST_NAME, data)
    except OSError as exc:
        raise OSError(exc.errno, f"writing {directory / MANIFEST_NAME}: {exc.strerror or exc}") from exc
    return data


def collect_garbage(directory: Path, manifest: dict[str, Any]) -> int:
    """Delete files under ``cells/`` and ``keyframes/`` that ``manifest`` does not list (replaced
    cells, leftovers of crashed saves). Call with the world's exclusive lock held. Returns the count."""
    keep = {e["file"] for e in manifest["cells"].values()} | set(manifest["files"])
    removed = 0
    for sub in (CELLS_DIR, KEYFRAMES_DIR):
        try:
            names = os.listdir(directory / sub)
        except OSError:
            continue
        for name in names:
            if f"{sub}/{name}" not in keep:
                try:
                    os.unlink(directory / sub / name)
                    removed += 1
                except OSError:
                    pass
    return removed


def write_full(directory: Path, snap: WorldSnapshot, grid: CellGrid) -> tuple[dict[str, Any], dict[CellKey, CellEntry]]:
    """Write a complete format-2 world into ``directory`` (empty, existing): every cell, every
    keyframe, the manifest last. Used for a world's first save and for migrating format 1.

    Returns:
        (the manifest, the cell entries).
    """
    (directory / CELLS_DIR).mkdir()
    (directory / KEYFRAMES_DIR).mkdir()
    codes = cell_codes(grid, snap.world.means)
    cells = write_cells(directory, snap.world, codes, np.unique(codes).tolist(), [])
    flush_files(directory, [directory / e.file for e in cells.values()])
    entries, files = [], {}
    for i, kf in enumerate(snap.keyframes):
        e, f = write_keyframe(directory, i, kf)
        entries.append(e)
        files.update(f)
    fsync_dir(directory / CELLS_DIR)
    fsync_dir(directory / KEYFRAMES_DIR)
    manifest = build_manifest(snap, cells, entries, files, grid.size_m, snap.world.sh_degree)
    commit_manifest(directory, manifest)
    return manifest, cells


def is_scratch(name: str) -> bool:
    """True for the temporary names of :mod:`srender_ros.core.atomic` inside a world directory."""
    return name.startswith(TMP_PREFIX)


__all__ = [
    "CELLS_DIR",
    "CELLS_FORMAT_VERSION",
    "DEFAULT_CELL_SIZE_M",
    "FORMAT_VERSION",
    "STORAGE_CELL_SIZE_M",
    "CellEntry",
    "build_manifest",
    "cell_codes",
    "cell_entries",
    "check_file",
    "code_of",
    "collect_garbage",
    "commit_manifest",
    "flush_files",
    "isin_sorted",
    "key_of",
    "load_cell",
    "load_keyframes",
    "manifest_version",
    "read_cells_manifest",
    "write_cell",
    "write_cells",
    "write_full",
    "write_keyframe",
    "write_new_file",
]
