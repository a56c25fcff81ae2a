"""Keeping a loaded world and its cell files in step: what changed, what to load, what to evict.

A :class:`CellIndex` rides along with each loaded world (``WorldState.cells``). It remembers the
stored cells (the manifest as last read or written), which of them are in memory, and the identity
(:func:`srender_ros.core.world_merge.gaussian_keys`) and cell of every stored Gaussian in memory.
From that a save finds the changed cells in O(N) vectorized work without rewriting the others, a
merge with another writer's save is three-way per cell (base = what we last synced), and far cells
can be dropped from memory and loaded again later.

The functions here change a ``WorldState`` in place; the caller (:class:`srender_ros.core.store.
WorldStore`) holds ``state.lock`` and the world's inter-process lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.core import cell_store as cs
from srender_ros.core.atomic import fsync_dir
from srender_ros.core.cells import CellGrid, CellKey
from srender_ros.core.manifest import KEYFRAMES_DIR
from srender_ros.core.world import GaussianWorld
from srender_ros.core.world_merge import gaussian_keys
from srender_ros.errors import WorldFormatError

if TYPE_CHECKING:
    from srender_ros.core.store import WorldState

log = logging.getLogger(__name__)

cell_codes, code_of, key_of = cs.cell_codes, cs.code_of, cs.key_of


Fingerprints = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint64]]


@dataclass
class CellIndex:
    """The stored side of one loaded world (see the module docstring).

    Attributes:
        grid: the world's cell grid (from its manifest once stored).
        stored: {cell: entry} of the manifest last read or written (every stored cell).
        loaded: stored cells whose Gaussians are all in memory.
        base_keys, base_codes: [M] identity and cell code of each stored Gaussian in memory.
        kf_stored: how many of the state's keyframes (a prefix) the stored manifest lists.
        manifest: that manifest (format 2), None when nothing (or only format 1) is stored.
        damaged: {cell: error} cells whose file failed to load; kept on disk as they are.
        replace: the next save replaces the stored world instead of merging (import).
    """

    grid: CellGrid = field(default_factory=lambda: CellGrid(cs.STORAGE_CELL_SIZE_M))
    stored: dict[CellKey, cs.CellEntry] = field(default_factory=dict)
    loaded: set[CellKey] = field(default_factory=set)
    base_keys: NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, np.uint64))
    base_codes: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    kf_stored: int = 0
    manifest: dict[str, Any] | None = None
    damaged: dict[CellKey, str] = field(default_factory=dict)
    replace: bool = False
    #: per-cell fingerprints of (base_codes, base_keys); None: recompute (they changed)
    base_fp: Fingerprints | None = None

    def reset_to(self, world: GaussianWorld, stored: dict[CellKey, cs.CellEntry], manifest: dict[str, Any] | None,
                 keyframes: int) -> None:
        """After a full write or a full load: everything stored is ``world``, all in memory."""
        self.stored = dict(stored)
        self.base_codes = cell_codes(self.grid, world.means)
        self.base_keys = gaussian_keys(world)
        self.base_fp = None
        self.loaded = {key_of(int(c)) for c in np.unique(self.base_codes)} | set(stored)
        self.kf_stored = keyframes
        self.manifest = manifest
        self.damaged = {}
        self.replace = False

    def unloaded(self) -> list[CellKey]:
        """Stored cells not in memory (evicted, not yet needed, or damaged)."""
        return [k for k in self.stored if k not in self.loaded]


_isin_sorted = cs.isin_sorted


def fingerprints(codes: NDArray[np.int64], keys: NDArray[np.uint64]) -> Fingerprints:
    """Per occupied cell: (sorted codes, Gaussian counts, wrap-around sums of Gaussian keys).

    Two states of a cell with the same count and key sum hold the same Gaussians (up to a 2^-64
    collision), whatever their order: a cheap O(N) test of which cells changed.
    """
    if len(codes) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint64)
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    uniq, starts = np.unique(sc, return_index=True)
    counts = np.diff(np.append(starts, len(sc)))
    with np.errstate(over="ignore"):
        sums = np.add.reduceat(keys[order], starts)
    return uniq, counts.astype(np.int64), sums.astype(np.uint64)


def changed_cells(now: Fingerprints, base: Fingerprints) -> set[int]:
    """Codes of the cells whose fingerprint differs (present in one and not the other included)."""
    a = dict(zip(now[0].tolist(), zip(now[1].tolist(), now[2].tolist(), strict=True), strict=True))
    b = dict(zip(base[0].tolist(), zip(base[1].tolist(), base[2].tolist(), strict=True), strict=True))
    return {c for c in a.keys() | b.keys() if a.get(c) != b.get(c)}


def merge_by_keys(base_keys: NDArray[np.uint64], ours: GaussianWorld, theirs: GaussianWorld) -> GaussianWorld:
    """``theirs`` minus what ``ours`` removed from the base, plus what ``ours`` added to it."""
    ko, kt = gaussian_keys(ours), gaussian_keys(theirs)
    added = ~np.isin(ko, base_keys)
    removed = base_keys[~np.isin(base_keys, ko)]
    keep = ~np.isin(kt, removed) if len(removed) else np.ones(len(kt), bool)
    if keep.all() and not added.any():
        return theirs
    return theirs.select(keep).concat(ours.select(added))


def _load_or_mark(state: WorldState, directory: Path, key: CellKey, entry: cs.CellEntry) -> GaussianWorld | None:
    try:
        return cs.load_cell(directory, key, entry)
    except WorldFormatError as exc:
        state.cells.damaged[key] = str(exc)
        log.error("world %s: cell %s not loaded: %s (the rest of the world is used; `srender world rm` or "
                  "restoring the file repairs it)", state.world_id, key, exc)
        return None


def pull(state: WorldState, directory: Path, theirs_m: dict[str, Any]) -> bool:
    """Merge another writer's committed manifest ``theirs_m`` (format 2) into memory.

    Cells they changed that we hold are merged three-way (their additions and removals kept, ours
    kept); cells we do not hold just take their new entries; their new keyframes are loaded and put
    before our unsaved ones. Returns True when memory changed.
    """
    idx = state.cells
    theirs = cs.cell_entries(directory, theirs_m)
    was_whole = not idx.unloaded()  # a world held whole stays whole: their new cells are loaded too
    world = state.world
    codes = cell_codes(idx.grid, world.means)
    changed = False
    for key in set(theirs) | set(idx.stored):
        te, be = theirs.get(key), idx.stored.get(key)
        if te == be or key not in idx.loaded:
            continue
        code = code_of(key)
        their_cell = GaussianWorld.empty(world.sh_degree) if te is None else _load_or_mark(state, directory, key, te)
        if their_cell is None:
            continue
        in_cell = codes == code
        merged = merge_by_keys(idx.base_keys[idx.base_codes == code], world.select(in_cell), their_cell)
        world = world.select(~in_cell).concat(merged)
        codes = cell_codes(idx.grid, world.means)
        base_in = idx.base_codes == code
        idx.base_keys = np.concatenate([idx.base_keys[~base_in], gaussian_keys(their_cell)])
        idx.base_fp = None
        idx.base_codes = np.concatenate([idx.base_codes[~base_in], np.full(len(their_cell), code, np.int64)])
        changed = True
    n_theirs = len(theirs_m["keyframes"])
    start = min(idx.kf_stored, n_theirs)
    if n_theirs > start:
        new = cs.load_keyframes(directory, theirs_m, start)
        state.keyframes[start:start] = new
        changed = True
    idx.kf_stored = n_theirs
    idx.stored = theirs
    idx.manifest = theirs_m
    if changed:
        state.world = world
    if was_whole and load_cells(state, directory, [k for k in theirs if k not in idx.loaded]):
        changed = True
    return changed


def write_changes(state: WorldState, directory: Path, snap_world: GaussianWorld, snap_meta: Any) -> dict[str, Any]:
    """Write the cells of ``snap_world`` that differ from the stored ones, the keyframes not stored
    yet, then commit the manifest and delete unlisted files. ``directory`` holds a format-2 world
    whose manifest equals ``state.cells.manifest`` (the caller pulled first).

    Args:
        snap_meta: the WorldSnapshot (identity, generator, times, keyframes) being saved.
    Returns:
        The committed manifest. ``state.world`` may gain the stored Gaussians of cells that got new
        Gaussians while not in memory.
    Raises:
        OSError: naming the file that failed; nothing is committed then.
    """
    idx = state.cells
    world = snap_world
    codes = cell_codes(idx.grid, world.means)
    keys = gaussian_keys(world)
    if idx.base_fp is None:
        idx.base_fp = fingerprints(idx.base_codes, idx.base_keys)
    now_fp = fingerprints(codes, keys)
    changed = changed_cells(now_fp, idx.base_fp)
    stored = dict(idx.stored)
    extra: list[GaussianWorld] = []
    for code in sorted(changed):
        key = key_of(int(code))
        if key in stored and key not in idx.loaded:
            if key in idx.damaged:
                log.warning("world %s: cell %s is damaged on disk; new Gaussians replace it", state.world_id, key)
            else:
                old = _load_or_mark(state, directory, key, stored[key])
                if old is not None:
                    extra.append(old)
                    idx.base_keys = np.concatenate([idx.base_keys, gaussian_keys(old)])
                    idx.base_fp = None
                    idx.base_codes = np.concatenate([idx.base_codes, np.full(len(old), code, np.int64)])
            idx.loaded.add(key)
    if extra:  # memory now holds these cells whole (also if the writes below fail)
        world = world.concat(*extra)
        state.world = state.world.concat(*extra)
        codes = cell_codes(idx.grid, world.means)
        keys = gaussian_keys(world)
    new_stored = dict(stored)
    kf_entries = list(idx.manifest["keyframes"]) if idx.manifest is not None else []
    files = dict(idx.manifest["files"]) if idx.manifest is not None else {}
    written: list[str] = []  # new files of this save: deleted again if it fails before the commit
    try:
        fresh = cs.write_cells(directory, world, codes, sorted(changed), written)
        for code in changed:
            key = key_of(int(code))
            if key in fresh:
                new_stored[key] = fresh[key]
            else:
                new_stored.pop(key, None)
        cs.flush_files(directory, [directory / rel for rel in written])
        for i in range(idx.kf_stored, len(snap_meta.keyframes)):
            e, f = cs.write_keyframe(directory, i, snap_meta.keyframes[i])
            kf_entries.append(e)
            files.update(f)
            written.extend(f)
        fsync_dir(directory / cs.CELLS_DIR)
        fsync_dir(directory / KEYFRAMES_DIR)
        prev_deg = int(idx.manifest["counts"].get("sh_degree", 0)) if idx.manifest is not None else 0
        manifest = cs.build_manifest(snap_meta, new_stored, kf_entries, files, idx.grid.size_m,
                                     max(prev_deg, world.sh_degree))
        cs.commit_manifest(directory, manifest)
    except BaseException:
        for rel in written:
            try:
                (directory / rel).unlink()
            except OSError:
                pass
        raise
    changed_keys = {key_of(int(c)) for c in changed}
    for key in changed_keys:
        idx.damaged.pop(key, None)  # rewritten from memory
    cs.collect_garbage(directory, manifest)
    idx.stored = new_stored
    idx.loaded |= {k for k in changed_keys if k in new_stored}
    idx.base_keys, idx.base_codes = keys, codes
    idx.base_fp = fingerprints(codes, keys) if extra else now_fp
    idx.kf_stored = len(kf_entries)
    idx.manifest = manifest
    return manifest


def cells_near(idx: CellIndex, positions_m: NDArray[np.floating], radius_m: float) -> dict[CellKey, float]:
    """{stored cell: distance from its box to the nearest position, metres} for every stored cell."""
    keys = list(idx.stored)
    if not keys:
        return {}
    lo = np.asarray(keys, np.float64) * idx.grid.size_m  # [C, 3]
    hi = lo + idx.grid.size_m
    p = np.asarray(positions_m, np.float64).reshape(-1, 3)
    d = np.full(len(keys), np.inf)
    for q in p:
        nearest = np.clip(q, lo, hi)
        d = np.minimum(d, np.sqrt(((nearest - q) ** 2).sum(1)))
    return dict(zip(keys, d.tolist(), strict=True))


def load_cells(state: WorldState, directory: Path, keys: list[CellKey]) -> int:
    """Load stored cells into memory (damaged ones are logged and skipped). Returns Gaussians added."""
    idx = state.cells
    parts, codes_parts, keys_parts = [], [], []
    for key in sorted(keys):  # one order for a given set of cells, however it was reached
        if key in idx.loaded or key in idx.damaged or key not in idx.stored:
            continue
        w = _load_or_mark(state, directory, key, idx.stored[key])
        if w is None:
            continue
        parts.append(w)
        keys_parts.append(gaussian_keys(w))
        codes_parts.append(np.full(len(w), code_of(key), np.int64))
        idx.loaded.add(key)
    if not parts:
        return 0
    state.world = state.world.concat(*parts)
    idx.base_keys = np.concatenate([idx.base_keys, *keys_parts])
    idx.base_fp = None
    idx.base_codes = np.concatenate([idx.base_codes, *codes_parts])
    return sum(len(w) for w in parts)


def evict_cells(state: WorldState, keys: list[CellKey]) -> int:
    """Drop stored, saved cells from memory (the caller saved the state first). Returns Gaussians dropped."""
    idx = state.cells
    drop = [k for k in keys if k in idx.loaded]
    if not drop:
        return 0
    gone = np.asarray([code_of(k) for k in drop], np.int64)
    codes = cell_codes(idx.grid, state.world.means)
    keep = ~np.isin(codes, gone)
    n = int((~keep).sum())
    state.world = state.world.select(keep)
    base_keep = ~np.isin(idx.base_codes, gone)
    idx.base_keys, idx.base_codes = idx.base_keys[base_keep], idx.base_codes[base_keep]
    idx.base_fp = None
    idx.loaded -= set(drop)
    return n
