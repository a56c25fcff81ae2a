"""The on-disk format of one stored world: a directory with PLY, keyframes and a JSON manifest.

Layout (see docs/worlds.md)::

    w-<world_id>/
        manifest.json           format version, prompt, generator, counts, keyframes, checksums
        gaussians.ply           3DGS PLY (srender_ros.core.ply)
        keyframes/
            kf-0000-rgb.png     8-bit RGB
            kf-0000-depth.npy   float32 [H, W] z-depth in metres, NaN where unknown

This module writes such a directory's contents into a given (scratch) directory and reads and
verifies one; publishing it atomically is the store's job (srender_ros.core.store).
Only safe formats: JSON, PLY, PNG and ``.npy`` loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.atomic import fsync_dir, write_synced
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ply import read_ply, write_ply
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError, WorldFormatError

#: Version of the manifest schema written; readers refuse newer versions.
FORMAT_VERSION = 1
WORLD_DIR_PREFIX = "w-"
MANIFEST_NAME = "manifest.json"
PLY_NAME = "gaussians.ply"
KEYFRAMES_DIR = "keyframes"
_ID_RE = re.compile(r"^[0-9a-f]{16}$")
#: An innermost JSON list of numbers spread over lines by ``indent`` (collapsed to one line: pose rows).
_NUMBER_LIST_RE = re.compile(r"\[\s*(-?[0-9][0-9.eE+-]*(?:,\s*-?[0-9][0-9.eE+-]*)*)\s*\]")


def normalize_prompt(prompt: str) -> str:
    """The form of a prompt that identifies a world: stripped, whitespace collapsed, casefolded."""
    if not isinstance(prompt, str):
        raise InputError(f"prompt must be a string, got {type(prompt).__name__}")
    norm = " ".join(prompt.split()).casefold()
    if not norm:
        raise InputError("prompt is empty; give a text describing the environment")
    return norm


def world_id_for_prompt(prompt: str) -> str:
    """16 hex digits naming the world of ``prompt``: the start of sha256(normalized prompt, UTF-8)."""
    return hashlib.sha256(normalize_prompt(prompt).encode("utf-8")).hexdigest()[:16]


def is_world_id(text: str) -> bool:
    """True for a 16-hex-digit world id (with or without the ``w-`` directory prefix)."""
    return bool(_ID_RE.match(text.removeprefix(WORLD_DIR_PREFIX)))


def utc_now_iso() -> str:
    """Current UTC time as ISO 8601 with a ``Z`` suffix, second resolution."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, eq=False)
class KeyframeRecord:
    """One keyframe kept with a world (what it was generated from, for provenance and re-lifting).

    Attributes:
        pose_index: index of the pose in the trajectory it was scheduled for (-1: none).
        T_world_cam: [4, 4] float64 optical camera-to-world pose.
        intrinsics: camera of the images.
        rgb: [H, W, 3] float32 in [0, 1]; stored as 8-bit PNG, so it reloads quantized to 1/255.
        depth_m: [H, W] float32 z-depth in metres, NaN where unknown; stored exactly.
        reason: why it was generated (e.g. "coverage 0.41 < 0.8"), free text.
        gaussians_added: Gaussians lifted from it when it was merged (-1: not recorded, e.g. a
            world saved before this was kept).
        gaussians_removed: Gaussians of the world it removed when it was merged (-1: not recorded).
        removed_by: the removed Gaussians by reason (``coarse``, ``redundant``, ``hidden``,
            ``transparent``, ``floating``; engine/lifting.py merge_keyframe and engine/dedup.py).
    """

    pose_index: int
    T_world_cam: NDArray[np.float64]
    intrinsics: Intrinsics
    rgb: NDArray[np.float32]
    depth_m: NDArray[np.float32]
    reason: str = ""
    gaussians_added: int = -1
    gaussians_removed: int = -1
    removed_by: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.pose_index, bool) or not isinstance(self.pose_index, (int, np.integer)) or self.pose_index < -1:
            raise InputError(f"KeyframeRecord.pose_index={self.pose_index!r}: must be an integer >= -1")
        object.__setattr__(self, "pose_index", int(self.pose_index))
        if not isinstance(self.intrinsics, Intrinsics):
            raise InputError(f"KeyframeRecord.intrinsics: expected an Intrinsics, got {type(self.intrinsics).__name__}")
        if not isinstance(self.reason, str):
            raise InputError(f"KeyframeRecord.reason: expected a string, got {type(self.reason).__name__}")
        for name in ("gaussians_added", "gaussians_removed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < -1:
                raise InputError(f"KeyframeRecord.{name}={v!r}: must be an integer >= -1 (-1: not recorded)")
            object.__setattr__(self, name, int(v))
        if not isinstance(self.removed_by, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                for k, v in self.removed_by.items()):
            raise InputError(f"KeyframeRecord.removed_by={self.removed_by!r}: must map reason names to counts >= 0")
        object.__setattr__(self, "removed_by", {str(k): int(v) for k, v in self.removed_by.items()})
        T = np.array(self.T_world_cam, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise InputError(f"KeyframeRecord.T_world_cam: expected a finite [4, 4] matrix, got shape {list(T.shape)}")
        h, w = self.intrinsics.height_px, self.intrinsics.width_px
        rgb = np.array(self.rgb, dtype=np.float32)
        if rgb.shape != (h, w, 3):
            raise InputError(f"KeyframeRecord.rgb: expected shape [{h}, {w}, 3] (from intrinsics), got {list(rgb.shape)}")
        if not np.isfinite(rgb).all():
            raise InputError("KeyframeRecord.rgb: has NaN or inf values")
        depth = np.array(self.depth_m, dtype=np.float32)
        if depth.shape != (h, w):
            raise InputError(f"KeyframeRecord.depth_m: expected shape [{h}, {w}] (from intrinsics), got {list(depth.shape)}")
        known = depth[~np.isnan(depth)]
        if known.size and not (np.isfinite(known).all() and (known >= 0).all()):
            raise InputError("KeyframeRecord.depth_m: values must be finite and >= 0 metres, or NaN where unknown")
        for name, arr in (("T_world_cam", T), ("rgb", rgb), ("depth_m", depth)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def nbytes(self) -> int:
        """Memory held by the images, bytes."""
        return int(self.rgb.nbytes + self.depth_m.nbytes + self.T_world_cam.nbytes)


class WorldSnapshot(NamedTuple):
    """Everything stored for one world, as an immutable value (what the store writes and reads)."""

    prompt: str
    world_id: str
    world: GaussianWorld
    keyframes: tuple[KeyframeRecord, ...]
    generator_name: str
    generator_settings: dict[str, Any]
    created_utc: str
    updated_utc: str


# ---- writing ------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _png_bytes(rgb: NDArray[np.float32]) -> bytes:
    from PIL import Image

    u8 = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8, mode="RGB").save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def _npy_bytes(depth_m: NDArray[np.float32]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(depth_m, dtype="<f4"), allow_pickle=False)
    return buf.getvalue()


def keyframe_entry(index: int, kf: KeyframeRecord) -> dict[str, Any]:
    """Keyframe ``index``'s manifest entry without its file names (both formats write the same fields)."""
    return {
        "index": index,
        "pose_index": kf.pose_index,
        "T_world_cam": kf.T_world_cam.tolist(),
        "intrinsics": {"width_px": kf.intrinsics.width_px, "height_px": kf.intrinsics.height_px,
                       "fx_px": kf.intrinsics.fx_px, "fy_px": kf.intrinsics.fy_px,
                       "cx_px": kf.intrinsics.cx_px, "cy_px": kf.intrinsics.cy_px},
        "reason": kf.reason,
        "gaussians_added": kf.gaussians_added,
        "gaussians_removed": kf.gaussians_removed,
        "removed_by": kf.removed_by,
    }


def keyframe_files(index: int, kf: KeyframeRecord) -> tuple[tuple[str, str, bytes], ...]:
    """(entry key, relative path, bytes) of keyframe ``index``'s image (PNG) and depth (float32 .npy) files."""
    return (("rgb_file", f"{KEYFRAMES_DIR}/kf-{index:04d}-rgb.png", _png_bytes(kf.rgb)),
            ("depth_file", f"{KEYFRAMES_DIR}/kf-{index:04d}-depth.npy", _npy_bytes(kf.depth_m)))


def write_world_files(directory: Path, snap: WorldSnapshot) -> dict[str, Any]:
    """Write the complete contents of a world directory into ``directory`` (empty, existing).

    Every file is fsynced, the manifest last, so a directory with a manifest is complete.

    Returns:
        The manifest written, as a dict.
    """
    kf_dir = directory / KEYFRAMES_DIR
    kf_dir.mkdir()
    files: dict[str, dict[str, Any]] = {}
    write_ply(directory / PLY_NAME, snap.world)
    files[PLY_NAME] = {"sha256": sha256_file(directory / PLY_NAME), "bytes": (directory / PLY_NAME).stat().st_size}
    keyframes = []
    for i, kf in enumerate(snap.keyframes):
        entry = keyframe_entry(i, kf)
        for key, rel, data in keyframe_files(i, kf):
            write_synced(directory / rel, data)
            files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            entry[key] = rel
        keyframes.append(entry)
    fsync_dir(kf_dir)
    manifest = {
        "format_version": FORMAT_VERSION,
        "world_id": snap.world_id,
        "prompt": snap.prompt,
        "generator": {"name": snap.generator_name, "settings": snap.generator_settings},
        "created_utc": snap.created_utc,
        "updated_utc": snap.updated_utc,
        "counts": {"gaussians": len(snap.world), "sh_degree": snap.world.sh_degree, "keyframes": len(keyframes)},
        "gaussians_file": PLY_NAME,
        "keyframes": keyframes,
        "files": files,
    }
    text = _NUMBER_LIST_RE.sub(lambda mt: "[" + ", ".join(x.strip() for x in mt.group(1).split(",")) + "]",
                               json.dumps(manifest, indent=2, allow_nan=False, ensure_ascii=False)) + "\n"
    write_synced(directory / MANIFEST_NAME, text.encode("utf-8"))
    fsync_dir(directory)
    return manifest


# ---- reading ------------------------------------------------------------------------------------
def read_manifest(directory: Path) -> dict[str, Any]:
    """Parse and check the structure of ``directory/manifest.json`` (no file checksums).

    Raises:
        WorldFormatError: naming the manifest, if it is missing, not JSON, of a newer format
            version, or lacks required fields.
    """
    path = directory / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorldFormatError(f"{path}: missing (the world directory is incomplete)") from None
    except OSError as exc:
        raise WorldFormatError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        m = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorldFormatError(f"{path}: corrupt JSON ({exc}); restore it or remove the world") from None
    if not isinstance(m, dict):
        raise WorldFormatError(f"{path}: expected a JSON object at the top level")
    version = m.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise WorldFormatError(f"{path}: 'format_version' missing or invalid ({version!r})")
    if version > FORMAT_VERSION:
        raise WorldFormatError(f"{path}: format_version {version} is newer than this srender supports "
                               f"({FORMAT_VERSION}); upgrade srender_ros")
    expect: dict[str, type | tuple[type, ...]] = {
        "world_id": str, "prompt": str, "generator": dict, "created_utc": str, "updated_utc": str,
        "counts": dict, "gaussians_file": str, "keyframes": list, "files": dict}
    check_fields(path, m, expect)
    return m


def check_fields(path: Path, m: dict[str, Any], expect: dict[str, type | tuple[type, ...]]) -> None:
    """WorldFormatError naming ``path`` and the field when a manifest field is missing or of the wrong
    type; ``counts.gaussians`` and ``counts.keyframes`` must be integers (both world formats)."""
    for key, typ in expect.items():
        if not isinstance(m.get(key), typ):
            raise WorldFormatError(f"{path}: field {key!r} is missing or of the wrong type")
    for key in ("gaussians", "keyframes"):
        if not isinstance(m["counts"].get(key), int):
            raise WorldFormatError(f"{path}: field 'counts.{key}' is missing or not an integer")


def _safe_member(directory: Path, rel: object, manifest_path: Path) -> Path:
    """``directory/rel`` if ``rel`` is a relative path inside ``directory`` (manifests are untrusted)."""
    if not isinstance(rel, str) or not rel or rel.startswith(("/", "\\")) or ".." in Path(rel).parts:
        raise WorldFormatError(f"{manifest_path}: file entry {rel!r} is not a relative path inside the world")
    return directory / rel


def verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Check that every file listed in the manifest exists with its recorded size and sha256.

    Raises:
        WorldFormatError: naming the first file that is missing, truncated or altered.
    """
    mpath = directory / MANIFEST_NAME
    for rel, meta in manifest["files"].items():
        path = _safe_member(directory, rel, mpath)
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or not isinstance(meta.get("bytes"), int):
            raise WorldFormatError(f"{mpath}: checksum entry for {rel!r} is malformed")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise WorldFormatError(f"{path}: missing (listed in {MANIFEST_NAME})") from None
        except OSError as exc:
            raise WorldFormatError(f"{path}: cannot read: {exc.strerror}") from None
        if size != meta["bytes"]:
            raise WorldFormatError(f"{path}: {size} bytes, but the manifest recorded {meta['bytes']} "
                                   f"({'truncated' if size < meta['bytes'] else 'altered'})")
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise WorldFormatError(f"{path}: cannot read: {exc.strerror}") from None
        if digest != meta["sha256"]:
            raise WorldFormatError(f"{path}: sha256 checksum mismatch (file corrupt or edited after saving)")


def _load_png(path: Path, h: int, w: int) -> NDArray[np.float32]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format != "PNG" or im.mode != "RGB":
                raise WorldFormatError(f"{path}: expected an 8-bit RGB PNG, got {im.format} {im.mode}")
            u8 = np.asarray(im)
    except (OSError, ValueError, SyntaxError) as exc:
        raise WorldFormatError(f"{path}: cannot decode PNG ({exc})") from None
    if u8.shape != (h, w, 3):
        raise WorldFormatError(f"{path}: image is {list(u8.shape)}, intrinsics say [{h}, {w}, 3]")
    return (u8.astype(np.float32) / 255.0).astype(np.float32)


def _load_depth(path: Path, h: int, w: int) -> NDArray[np.float32]:
    try:
        d = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise WorldFormatError(f"{path}: cannot load depth ({exc})") from None
    if not isinstance(d, np.ndarray) or d.dtype != np.float32 or d.shape != (h, w):
        raise WorldFormatError(f"{path}: expected float32 [{h}, {w}] depth, got "
                               f"{getattr(d, 'dtype', type(d).__name__)} {list(getattr(d, 'shape', []))}")
    return d


def _keyframe_from_entry(directory: Path, entry: object, i: int) -> KeyframeRecord:
    mpath = directory / MANIFEST_NAME
    where = f"{mpath}: keyframes[{i}]"
    if not isinstance(entry, dict):
        raise WorldFormatError(f"{where}: expected an object")
    try:
        k = entry["intrinsics"]
        intr = Intrinsics(int(k["width_px"]), int(k["height_px"]), float(k["fx_px"]), float(k["fy_px"]),
                          float(k["cx_px"]), float(k["cy_px"]))
        rgb = _load_png(_safe_member(directory, entry["rgb_file"], mpath), intr.height_px, intr.width_px)
        depth = _load_depth(_safe_member(directory, entry["depth_file"], mpath), intr.height_px, intr.width_px)
        return KeyframeRecord(int(entry["pose_index"]), np.asarray(entry["T_world_cam"], dtype=np.float64), intr,
                              rgb, depth, str(entry.get("reason", "")), int(entry.get("gaussians_added", -1)),
                              int(entry.get("gaussians_removed", -1)), dict(entry.get("removed_by", {})))
    except KeyError as exc:
        raise WorldFormatError(f"{where}: field {exc} is missing") from None
    except (InputError, TypeError, ValueError) as exc:
        raise WorldFormatError(f"{where}: {exc}") from None


def read_world_files(directory: Path, verify: bool = True) -> WorldSnapshot:
    """Load a complete world directory.

    Args:
        directory: a ``w-<id>`` directory.
        verify: check every file's size and sha256 against the manifest first.
    Raises:
        WorldFormatError: naming the offending file (manifest, PLY, image, depth).
    """
    m = read_manifest(directory)
    mpath = directory / MANIFEST_NAME
    listed = set(m["files"])
    needed = [m["gaussians_file"]] + [e.get(key) for e in m["keyframes"] if isinstance(e, dict)
                                      for key in ("rgb_file", "depth_file")]
    unlisted = [rel for rel in needed if rel not in listed]
    if unlisted:
        raise WorldFormatError(f"{mpath}: files {unlisted} have no checksum entry")
    if verify:
        verify_files(directory, m)
    world = read_ply(_safe_member(directory, m["gaussians_file"], mpath))
    if len(world) != m["counts"]["gaussians"]:
        raise WorldFormatError(f"{directory / m['gaussians_file']}: {len(world)} Gaussians, manifest says "
                               f"{m['counts']['gaussians']}")
    keyframes = tuple(_keyframe_from_entry(directory, e, i) for i, e in enumerate(m["keyframes"]))
    gen = m["generator"]
    settings = gen.get("settings", {})
    return WorldSnapshot(m["prompt"], m["world_id"], world, keyframes, str(gen.get("name", "")),
                         settings if isinstance(settings, dict) else {}, m["created_utc"], m["updated_utc"])


def check_json_settings(settings: object) -> dict[str, Any]:
    """``settings`` as a JSON-safe dict (a deep copy); InputError naming the problem otherwise."""
    if not isinstance(settings, dict):
        raise InputError(f"generator_settings must be a dict, got {type(settings).__name__}")
    try:
        copied = json.loads(json.dumps(settings, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InputError(f"generator_settings must be JSON-serializable with finite numbers: {exc}") from None
    return dict(copied)


def directory_bytes(directory: Path) -> int:
    """Total size of the regular files below ``directory``, bytes."""
    total = 0
    for dirpath, _dirs, names in os.walk(directory):
        for name in names:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total

