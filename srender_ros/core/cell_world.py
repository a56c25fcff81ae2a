"""Whole-world operations on a world stored by cells (format 2): open, verify, stream out as one PLY.

Opening reads the manifest and the keyframes, and the cells only when asked (all of them for a world
that fits the memory budget; the store loads the rest near the camera later). A damaged cell does
not stop the others: it is reported (naming its file) and left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

from srender_ros.core import cell_store as cs
from srender_ros.core.atomic import atomic_write
from srender_ros.core.cells import CellGrid, CellKey
from srender_ros.core.manifest import MANIFEST_NAME, KeyframeRecord, read_world_files
from srender_ros.core.ply import encode_ply
from srender_ros.core.world import GaussianWorld, num_sh_coeffs
from srender_ros.errors import WorldFormatError

log = logging.getLogger(__name__)


class OpenedWorld(NamedTuple):
    """What :func:`open_world` read. ``manifest`` is None for a format-1 world (all of it in ``world``)."""

    prompt: str
    world_id: str
    world: GaussianWorld
    keyframes: list[KeyframeRecord]
    generator_name: str
    generator_settings: dict[str, Any]
    created_utc: str
    updated_utc: str
    manifest: dict[str, Any] | None
    grid: CellGrid
    stored: dict[CellKey, cs.CellEntry]
    loaded: set[CellKey]
    damaged: dict[CellKey, str]


def stored_bytes(m: dict[str, Any]) -> int:
    """Memory the Gaussians of a manifest would take once loaded, bytes (4 x (14 + 3K) each)."""
    deg = m["counts"].get("sh_degree", 0)
    deg = deg if isinstance(deg, int) and 0 <= deg <= 3 else 3
    return int(m["counts"]["gaussians"]) * 4 * (14 + 3 * num_sh_coeffs(deg))


def open_world(directory: Path, load_cells: bool | None = None, budget_bytes: int | None = None) -> OpenedWorld:
    """Read a stored world of either format, checksums verified.

    Args:
        load_cells: load every cell (True), none (False), or all when they fit ``budget_bytes`` (None).
    Raises:
        WorldFormatError: manifest or keyframe damage (naming the file). Damaged cells are not
            raised: they are logged and listed in ``damaged``.
    """
    m = cs.read_cells_manifest(directory)
    if m["format_version"] < cs.CELLS_FORMAT_VERSION:
        snap = read_world_files(directory, verify=True)
        return OpenedWorld(snap.prompt, snap.world_id, snap.world, list(snap.keyframes), snap.generator_name,
                           snap.generator_settings, snap.created_utc, snap.updated_utc, None,
                           CellGrid(cs.STORAGE_CELL_SIZE_M), {}, set(), {})
    try:
        grid = CellGrid(float(m["cell_size_m"]))
    except Exception as exc:
        raise WorldFormatError(f"{directory / MANIFEST_NAME}: bad cell_size_m ({exc})") from None
    stored = cs.cell_entries(directory, m)
    keyframes = cs.load_keyframes(directory, m)
    if load_cells is None:
        load_cells = budget_bytes is None or stored_bytes(m) <= budget_bytes
    parts: list[GaussianWorld] = []
    loaded: set[CellKey] = set()
    damaged: dict[CellKey, str] = {}
    if load_cells:
        for key, entry in sorted(stored.items()):
            try:
                parts.append(cs.load_cell(directory, key, entry))
                loaded.add(key)
            except WorldFormatError as exc:
                damaged[key] = str(exc)
                log.error("world %s: cell %s not loaded: %s (the rest of the world is used)", m["world_id"], key, exc)
    world = GaussianWorld.empty().concat(*parts) if parts else GaussianWorld.empty()
    gen = m["generator"]
    settings = gen.get("settings", {})
    return OpenedWorld(m["prompt"], m["world_id"], world, keyframes, str(gen.get("name", "")),
                       settings if isinstance(settings, dict) else {}, m["created_utc"], m["updated_utc"], m, grid,
                       stored, loaded, damaged)


def verify_world(directory: Path) -> None:
    """Check every file of a stored world (either format) and decode it, one cell at a time.

    Raises:
        WorldFormatError: naming the first damaged file.
    """
    m = cs.read_cells_manifest(directory)
    if m["format_version"] < cs.CELLS_FORMAT_VERSION:
        read_world_files(directory, verify=True)
        return
    for key, entry in sorted(cs.cell_entries(directory, m).items()):
        cs.load_cell(directory, key, entry)
    cs.load_keyframes(directory, m)


def export_cells(directory: Path, out: Path, memory_parts: list[GaussianWorld] | None = None,
                 skip: set[CellKey] | None = None) -> int:
    """Stream a format-2 world into one 3DGS PLY at ``out``, cell by cell (bounded memory).

    Args:
        memory_parts: Gaussians to write besides the stored cells (e.g. the loaded ones).
        skip: stored cells not to read (their Gaussians are in ``memory_parts``).
    Returns:
        Gaussians written.
    """
    m = cs.read_cells_manifest(directory)
    stored = {k: e for k, e in cs.cell_entries(directory, m).items() if not skip or k not in skip}
    parts = memory_parts or []
    deg = max([int(m["counts"].get("sh_degree", 0))] + [p.sh_degree for p in parts])
    total = sum(e.gaussians for e in stored.values()) + sum(len(p) for p in parts)
    header, _ = encode_ply(GaussianWorld.empty(deg))
    header = header.replace(b"element vertex 0\n", f"element vertex {total}\n".encode("ascii"))
    written = 0
    with atomic_write(out) as f:
        f.write(header)
        for part in parts:
            f.write(encode_ply(part.with_sh_degree(deg))[1].tobytes())
            written += len(part)
        for key, entry in sorted(stored.items()):
            cell = cs.load_cell(directory, key, entry).with_sh_degree(deg)
            f.write(encode_ply(cell)[1].tobytes())
            written += len(cell)
    if written != total:
        raise WorldFormatError(f"{directory}: wrote {written} Gaussians, manifest counts {total}")
    return written
