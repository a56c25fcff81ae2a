"""WorldStore: one Gaussian world per environment prompt, on disk and in an in-memory LRU.

Directory layout and file format: :mod:`srender_ros.core.manifest` and docs/worlds.md.

Crash safety: a save writes the whole world into a scratch directory beside its final place,
fsyncs it, then swaps it in (:func:`srender_ros.core.atomic.swap_dir`). A failed save removes the
scratch directory and leaves the previous copy as it was; an interrupted swap is undone on the next
load. Loading verifies every file's checksum, so a damaged world raises WorldFormatError naming the
file instead of loading half of it, and the other worlds stay usable.

Several writers (processes: nodes of several robots, the CLI) may share a root. Each world has an
inter-process lock (``<root>/.w-<id>.lock``, flock): exclusive while a save reads, merges and swaps,
shared while a load reads. A save that finds the stored world changed since this store last read or
wrote it merges instead of overwriting (:mod:`srender_ros.core.world_merge`: their Gaussians and
keyframes stay, ours are added). :meth:`WorldStore.refresh` picks up what other writers saved.

Threads: all public methods may be called from several threads. Lock order, to stay deadlock
free: the store's map lock is only held briefly; a save takes ``state.lock`` (to snapshot) and the
world's I/O lock one after the other, never nested. Processes: swaps and removals also take an
advisory lock on ``<root>/.lock`` (POSIX), so a CLI and a node may share a root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core import atomic, cell_sync
from srender_ros.core import cell_store as cs
from srender_ros.core.cell_world import export_cells, open_world, verify_world
from srender_ros.core.cells import CellGrid
from srender_ros.core.manifest import (
    MANIFEST_NAME,
    WORLD_DIR_PREFIX,
    KeyframeRecord,
    WorldSnapshot,
    check_json_settings,
    directory_bytes,
    is_world_id,
    normalize_prompt,
    read_world_files,
    utc_now_iso,
    world_id_for_prompt,
)
from srender_ros.core.ply import read_ply, write_ply
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError, SrenderError, WorldFormatError

__all__ = ["ENV_WORLD_DIR", "KeyframeRecord", "WorldInfo", "WorldState", "WorldStore", "WorldWriteError",
           "default_world_root", "world_id_for_prompt"]

log = logging.getLogger(__name__)

#: Environment variable overriding the default store root.
ENV_WORLD_DIR = "SRENDER_WORLD_DIR"
#: Scratch directories older than this are leftovers of a crashed process and get deleted.
STALE_SCRATCH_S = 3600.0
#: Cells within this distance of the camera are kept in memory by :meth:`WorldStore.focus`, metres.
#: Lifting has no depth limit, so far surfaces and sky reach a few hundred metres from their keyframe.
DEFAULT_FOCUS_RADIUS_M = 400.0


class WorldWriteError(SrenderError, OSError):
    """A world could not be written (disk full, permissions); the previously saved copy is intact."""


def default_world_root() -> Path:
    """``$SRENDER_WORLD_DIR`` if set, else ``$XDG_CACHE_HOME/srender/worlds`` (``~/.cache/srender/worlds``)."""
    env = os.environ.get(ENV_WORLD_DIR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "srender" / "worlds"


def _int_or_zero(value: object) -> int:
    return value if isinstance(value, int) else 0


class WorldInfo(NamedTuple):
    """Summary of one world (from its manifest, or from memory for a world not saved yet).

    ``error`` is set (and the counts are 0) when the manifest cannot be read.
    """

    world_id: str
    prompt: str
    gaussians: int
    keyframes: int
    sh_degree: int
    bytes_on_disk: int
    created_utc: str
    updated_utc: str
    generator: str
    path: Path | None
    error: str | None = None


class WorldState:
    """The mutable, loaded state of one environment. Hold ``lock`` while reading several fields
    that must agree; change the world only through :meth:`replace_world` / :meth:`add_keyframe`
    (they mark the state dirty so the store saves it).

    Attributes:
        prompt: the environment prompt as first given.
        world_id: 16 hex digits, :func:`world_id_for_prompt` of the prompt.
        world: the current Gaussians (an immutable value; replaced, never edited).
        keyframes: keyframes merged into the world so far, in order.
        generator_name, generator_settings: what made the keyframes (JSON-able settings).
        created_utc, updated_utc: ISO 8601 times of creation and last save ('' if never saved).
        dirty: True when memory holds changes not yet saved.
        lock: re-entrant lock for callers (and the store while it snapshots).
    """

    def __init__(self, prompt: str, world: GaussianWorld | None = None, keyframes: list[KeyframeRecord] | None = None,
                 generator_name: str = "", generator_settings: dict[str, Any] | None = None,
                 created_utc: str | None = None, updated_utc: str = "", dirty: bool = True) -> None:
        self.prompt = prompt
        self.world_id = world_id_for_prompt(prompt)
        self.world = world if world is not None else GaussianWorld.empty()
        if not isinstance(self.world, GaussianWorld):
            raise InputError(f"world: expected a GaussianWorld, got {type(self.world).__name__}")
        self.keyframes: list[KeyframeRecord] = list(keyframes or [])
        self.generator_name = str(generator_name)
        self.generator_settings = check_json_settings(generator_settings or {})
        self.created_utc = created_utc or utc_now_iso()
        self.updated_utc = updated_utc
        self.dirty = dirty
        self.lock = threading.RLock()
        # Bumped on every change; a save records which version it wrote, so concurrent saves never
        # put an older snapshot over a newer one.
        self.version = 0
        self._written_version = -1 if dirty else 0
        # The stored manifest's digest when this store last read or wrote it (None: nothing stored
        # yet) and the stored cells, which of them are in memory, and the base of merges
        # (srender_ros.core.cell_sync).
        self._base_token: str | None = None
        self.cells = cell_sync.CellIndex()
        if not dirty:
            self.cells.reset_to(self.world, {}, None, len(self.keyframes))

    def replace_world(self, world: GaussianWorld) -> None:
        """Swap in new Gaussians (e.g. after a merge) and mark the state dirty."""
        if not isinstance(world, GaussianWorld):
            raise InputError(f"replace_world: expected a GaussianWorld, got {type(world).__name__}")
        with self.lock:
            self.world = world
            self.version += 1
            self.dirty = True

    def add_keyframe(self, record: KeyframeRecord) -> None:
        """Append a keyframe record and mark the state dirty."""
        if not isinstance(record, KeyframeRecord):
            raise InputError(f"add_keyframe: expected a KeyframeRecord, got {type(record).__name__}")
        with self.lock:
            self.keyframes.append(record)
            self.version += 1
            self.dirty = True

    @property
    def nbytes(self) -> int:
        """Memory held by the Gaussians and keyframe images, bytes."""
        return self.world.nbytes + sum(k.nbytes for k in list(self.keyframes))

    def snapshot(self) -> tuple[WorldSnapshot, int]:
        """An immutable copy of the current contents and the version it reflects."""
        with self.lock:
            snap = WorldSnapshot(self.prompt, self.world_id, self.world, tuple(self.keyframes), self.generator_name,
                                 check_json_settings(self.generator_settings), self.created_utc, utc_now_iso())
            return snap, self.version

    def __repr__(self) -> str:
        return (f"WorldState(world_id={self.world_id!r}, prompt={self.prompt!r}, gaussians={len(self.world)}, "
                f"keyframes={len(self.keyframes)}, dirty={self.dirty})")


class WorldStore:
    """Worlds under ``root``, one directory ``w-<world_id>`` each, with an LRU of loaded ones.

    Args:
        root: directory holding the worlds (created if missing); None for :func:`default_world_root`.
        memory_budget_bytes: loaded worlds (Gaussians + keyframe images) beyond this are evicted,
            least recently used first, dirty ones saved before; the most recent is always kept, and
            within it the cells far from the camera (:meth:`focus`). A stored world larger than
            this is opened without its cells; :meth:`focus` loads those near the camera.
        focus_radius_m: cells within this distance of the camera stay loaded (:meth:`focus`).
    """

    def __init__(self, root: Path | str | None = None, memory_budget_bytes: int = 2 * 1024**3,
                 focus_radius_m: float = DEFAULT_FOCUS_RADIUS_M) -> None:
        self.root = Path(root).expanduser() if root is not None else default_world_root()
        if memory_budget_bytes < 0:
            raise InputError(f"memory_budget_bytes={memory_budget_bytes}: must be >= 0")
        self.memory_budget_bytes = int(memory_budget_bytes)
        if not focus_radius_m > 0:
            raise InputError(f"focus_radius_m={focus_radius_m}: must be > 0 metres")
        self.focus_radius_m = float(focus_radius_m)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorldWriteError(f"cannot create the world directory {self.root}: {exc.strerror}; "
                                  f"choose another (--world-dir or ${ENV_WORLD_DIR})") from None
        self._lock = threading.RLock()
        self._cache: OrderedDict[str, WorldState] = OrderedDict()
        self._evicting: dict[str, WorldState] = {}
        self._io_locks: dict[str, threading.Lock] = {}
        self._cleanup_scratch()

    # ---- paths and locks ----------------------------------------------------------------------
    def world_dir(self, world_id: str) -> Path:
        """The directory of ``world_id`` (whether or not it exists)."""
        return self.root / f"{WORLD_DIR_PREFIX}{world_id}"

    def resolve_id(self, prompt_or_id: str) -> str:
        """World id for a prompt or an id (``0123456789abcdef`` or ``w-0123456789abcdef``).

        A 16-hex-digit string is taken as an id when such a world exists (on disk or in memory),
        otherwise as a prompt.
        """
        text = prompt_or_id.strip() if isinstance(prompt_or_id, str) else prompt_or_id
        if isinstance(text, str) and is_world_id(text):
            wid = text.removeprefix(WORLD_DIR_PREFIX)
            with self._lock:
                known = wid in self._cache or wid in self._evicting
            if known or self.world_dir(wid).is_dir():
                return wid
        return world_id_for_prompt(prompt_or_id)

    def _not_found(self, prompt_or_id: str, world_id: str) -> InputError:
        what = (f"with id {prompt_or_id.strip()}" if is_world_id(prompt_or_id.strip())
                else f"for prompt {prompt_or_id!r} (id {world_id})")
        return InputError(f"no world {what} under {self.root}; `srender world list` shows the stored worlds")

    def _io_lock(self, world_id: str) -> threading.Lock:
        with self._lock:
            return self._io_locks.setdefault(world_id, threading.Lock())

    @contextlib.contextmanager
    def _root_lock(self) -> Iterator[None]:
        """Advisory inter-process lock on the root for directory swaps (no-op without fcntl)."""
        try:
            import fcntl
        except ImportError:  # Windows: one process per root
            yield
            return
        try:
            f = open(self.root / ".lock", "a+b")  # closed by the with below
        except OSError:  # a read-only root: nothing can be swapped there, so nothing to serialize
            yield
            return
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _world_lock(self, world_id: str, exclusive: bool) -> Iterator[None]:
        """Inter-process lock of one world (``<root>/.w-<id>.lock``; no-op without fcntl or on a read-only root)."""
        try:
            import fcntl
        except ImportError:  # Windows: one process per root
            yield
            return
        try:
            f = open(self.root / f".{WORLD_DIR_PREFIX}{world_id}.lock", "a+b")
        except OSError:
            yield
            return
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _disk_token(self, world_id: str) -> str | None:
        """Digest of the stored manifest (changes with every save), or None when nothing is stored."""
        import hashlib

        try:
            return hashlib.sha256((self.world_dir(world_id) / MANIFEST_NAME).read_bytes()).hexdigest()
        except OSError:
            return None

    def _cleanup_scratch(self) -> None:
        """Undo interrupted swaps and delete leftovers of crashed saves and removals."""
        now = time.time()
        with self._root_lock():
            try:
                entries = list(self.root.iterdir())
            except OSError as exc:
                log.debug("world store: cannot scan %s: %s", self.root, exc)
                return
            for p in entries:
                name = p.name
                try:
                    if name.startswith(atomic.OLD_PREFIX):
                        target = self.root / name[len(atomic.OLD_PREFIX):].rsplit("-", 1)[0]
                        if not atomic.recover_dir(target):
                            shutil.rmtree(p, ignore_errors=True)
                        else:
                            log.warning("world store: restored %s after an interrupted save", target)
                    elif name.startswith(atomic.DEL_PREFIX) or (
                            name.startswith(atomic.TMP_PREFIX) and now - p.stat().st_mtime > STALE_SCRATCH_S):
                        shutil.rmtree(p, ignore_errors=True)
                except OSError as exc:  # another process got there first; not our problem
                    log.debug("world store: cleanup of %s skipped: %s", p, exc)

    # ---- loading ------------------------------------------------------------------------------
    def _cached(self, world_id: str) -> WorldState | None:
        """The loaded state of ``world_id`` (marked most recently used), or None. Caller holds _lock."""
        state = self._cache.get(world_id)
        if state is None and world_id in self._evicting:
            state = self._evicting[world_id]  # being saved on its way out: take it back
            self._cache[world_id] = state
        if state is not None:
            self._cache.move_to_end(world_id)
        return state

    def _load_from_disk(self, world_id: str) -> WorldState | None:
        """Read ``w-<world_id>`` (verifying checksums); None if it does not exist."""
        target = self.world_dir(world_id)
        if not target.is_dir():
            try:
                with self._root_lock():
                    if not atomic.recover_dir(target):
                        return None
            except OSError as exc:
                raise WorldFormatError(f"{target}: missing, and restoring its copy from an interrupted save "
                                       f"failed: {exc}") from exc
        with self._world_lock(world_id, exclusive=False):
            token = self._disk_token(world_id)
            snap = open_world(target, budget_bytes=self.memory_budget_bytes)
        if snap.world_id != world_id or world_id_for_prompt(snap.prompt) != world_id:
            raise WorldFormatError(f"{target / MANIFEST_NAME}: its prompt/world_id do not match the directory name "
                                   f"{target.name}; was the directory renamed?")
        state = WorldState(snap.prompt, snap.world, list(snap.keyframes), snap.generator_name,
                           snap.generator_settings, snap.created_utc, snap.updated_utc, dirty=False)
        state._base_token = token
        if snap.manifest is not None:  # format 2: some cells may stay on disk until needed
            state.cells = cell_sync.CellIndex(snap.grid)
            state.cells.reset_to(snap.world, snap.stored, snap.manifest, len(snap.keyframes))
            state.cells.loaded = set(snap.loaded)
            state.cells.damaged = dict(snap.damaged)
        return state

    def _get_by_id(self, world_id: str) -> WorldState | None:
        with self._lock:
            state = self._cached(world_id)
        if state is not None:
            self._enforce_budget(keep=world_id)  # loaded worlds may have grown since the last check
            return state
        with self._io_lock(world_id):
            with self._lock:  # another thread may have loaded it while we waited
                state = self._cached(world_id)
            if state is None:
                state = self._load_from_disk(world_id)
                if state is None:
                    return None
                with self._lock:
                    self._cache[world_id] = state
        self._enforce_budget(keep=world_id)
        return state

    def get(self, prompt: str) -> WorldState | None:
        """The world of ``prompt`` from memory or disk, or None if there is none.

        Raises:
            WorldFormatError: the stored world is damaged (naming the file).
        """
        return self._get_by_id(world_id_for_prompt(prompt))

    def get_or_create(self, prompt: str, generator_settings: dict[str, Any] | None = None, *,
                      generator_name: str | None = None) -> WorldState:
        """The world of ``prompt``: loaded from memory or disk, else a new empty (dirty) one.

        Args:
            prompt: environment text; worlds are keyed by its normalized form.
            generator_settings: JSON-able settings recorded for a new world (an existing world keeps
                its stored ones).
            generator_name: name recorded for a new world (default: ``generator_settings["name"]``, else
                ``generator_settings["generator"]``).
        Raises:
            WorldFormatError: a stored world exists but is damaged; it is not replaced silently
                (remove it with ``srender world rm`` to start over).
        """
        world_id = world_id_for_prompt(prompt)
        settings = check_json_settings(generator_settings or {})
        state = self._get_by_id(world_id)
        if state is not None:
            if generator_settings is not None and settings != state.generator_settings:
                log.debug("world %s: keeping its stored generator settings; new settings differ", world_id)
            return state
        name = generator_name if generator_name is not None else str(settings.get("name") or settings.get("generator") or "")
        with self._lock:
            state = self._cached(world_id)  # created by another thread meanwhile?
            if state is None:
                state = WorldState(prompt, None, None, name, settings)
                self._cache[world_id] = state
        self._enforce_budget(keep=world_id)
        return state

    # ---- memory budget --------------------------------------------------------------------------
    @property
    def memory_bytes(self) -> int:
        """Memory held by the loaded worlds, bytes."""
        with self._lock:
            return sum(s.nbytes for s in self._cache.values())

    def loaded_ids(self) -> list[str]:
        """World ids held in memory, least recently used first."""
        with self._lock:
            return list(self._cache)

    def _enforce_budget(self, keep: str) -> None:
        victims: list[WorldState] = []
        with self._lock:
            total = sum(s.nbytes for s in self._cache.values())
            for wid in list(self._cache):
                if total <= self.memory_budget_bytes:
                    break
                if wid == keep:
                    continue
                state = self._cache.pop(wid)
                total -= state.nbytes
                if state.dirty:
                    self._evicting[wid] = state
                    victims.append(state)
                log.debug("world store: evicted %s from memory (%s)", wid, "saving" if state.dirty else "clean")
        for state in victims:  # saved outside the map lock: saving is slow
            try:
                self.save(state)
            except SrenderError as exc:
                log.error("world store: could not save evicted world %s, keeping it in memory: %s", state.world_id, exc)
                with self._lock:
                    self._cache.setdefault(state.world_id, state)
            finally:
                with self._lock:
                    if self._evicting.get(state.world_id) is state:
                        del self._evicting[state.world_id]

    # ---- saving ------------------------------------------------------------------------------------
    def save(self, state: WorldState) -> None:
        """Write what changed in ``state`` to ``w-<world_id>`` (crash-safe) and mark it clean.

        A world stored by cells (format 2) gets only its changed cells and new keyframes written,
        then its manifest replaced atomically (srender_ros.core.cell_store); a new world, a format-1
        world (migrated here) or an import is written whole beside the old copy and swapped in.

        Raises:
            WorldWriteError: the write failed (disk full, permissions), naming the file; the
                previously saved copy is unchanged and loadable, and the state stays dirty.
        """
        if not isinstance(state, WorldState):
            raise InputError(f"save: expected a WorldState, got {type(state).__name__}")
        target = self.world_dir(state.world_id)
        # Lock order: state.lock, then the world's I/O lock, then its inter-process lock.
        with state.lock:
            version = state.version
            with self._io_lock(state.world_id):
                if version < state._written_version:
                    return  # a newer snapshot of this state is already on disk
                try:
                    with self._world_lock(state.world_id, exclusive=True):
                        snap = self._save_locked(state, target)
                        token = self._disk_token(state.world_id)
                except OSError as exc:
                    raise WorldWriteError(f"could not save world {state.world_id} to {target}: {exc}; "
                                          "the previously saved copy is unchanged") from exc
                state._written_version = version
            state._base_token = token
            state.updated_utc = snap.updated_utc
            if state.version == version:
                state.dirty = False

    def _save_locked(self, state: WorldState, target: Path) -> WorldSnapshot:
        """The body of :meth:`save` (caller holds state.lock and the world's exclusive lock)."""
        idx = state.cells
        token = self._disk_token(state.world_id)
        fmt = 0
        if token is not None and not idx.replace:
            try:
                fmt = cs.manifest_version(target)
            except WorldFormatError as exc:
                log.error("world store: the stored copy of %s is damaged, overwriting it with this one: %s",
                          state.world_id, exc)
        if fmt >= cs.CELLS_FORMAT_VERSION:
            if token != state._base_token:
                theirs = cs.read_cells_manifest(target)
                if idx.manifest is None:
                    idx.grid = CellGrid(float(theirs["cell_size_m"]))
                cell_sync.pull(state, target, theirs)
                state.created_utc = theirs["created_utc"]
                log.info("world store: %s was saved by another writer meanwhile; merged (%d keyframes now)",
                         state.world_id, len(state.keyframes))
            snap, _ = state.snapshot()
            cell_sync.write_changes(state, target, snap.world, snap)
            return snap
        if fmt == 1 and token != state._base_token:  # another writer saved format 1 meanwhile
            try:
                theirs1 = read_world_files(target, verify=True)
            except WorldFormatError as exc:
                log.error("world store: the stored copy of %s is damaged, overwriting it with this one: %s",
                          state.world_id, exc)
            else:
                state.world = cell_sync.merge_by_keys(idx.base_keys, state.world, theirs1.world)
                state.keyframes = list(theirs1.keyframes) + state.keyframes[idx.kf_stored:]
                state.created_utc = theirs1.created_utc
        snap, _ = state.snapshot()
        scratch = atomic.scratch_name(target, atomic.TMP_PREFIX)
        try:
            scratch.mkdir()
            manifest, cells = cs.write_full(scratch, snap, idx.grid)
            with self._root_lock():
                atomic.swap_dir(scratch, target)  # the old copy stays until the new one is complete
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
        if fmt == 1:
            log.info("world store: %s migrated to format %d (cells)", state.world_id, cs.CELLS_FORMAT_VERSION)
        idx.reset_to(snap.world, cells, manifest, len(snap.keyframes))
        return snap

    def refresh(self, prompt: str) -> bool:
        """Pick up what other writers saved for ``prompt``'s loaded world (merged with unsaved changes here).

        Cheap when nothing changed (reads the manifest only). Returns True when the world changed.

        Raises:
            WorldFormatError: the stored world is damaged.
        """
        wid = world_id_for_prompt(prompt)
        with self._lock:
            state = self._cache.get(wid)
        if state is None:
            return False
        token = self._disk_token(wid)
        if token is None or token == state._base_token:
            return False
        d = self.world_dir(wid)
        with state.lock:
            idx = state.cells
            with self._io_lock(wid), self._world_lock(wid, exclusive=False):
                token = self._disk_token(wid)
                if token is None or token == state._base_token:
                    return False
                m = cs.read_cells_manifest(d)
                if m["format_version"] >= cs.CELLS_FORMAT_VERSION:
                    if idx.manifest is None:
                        idx.grid = CellGrid(float(m["cell_size_m"]))
                    cell_sync.pull(state, d, m)
                else:
                    theirs = read_world_files(d, verify=True)
                    ours = state.world
                    base = idx.base_keys
                    unsaved = state.keyframes[idx.kf_stored:]
                    state.keyframes = list(theirs.keyframes) + (unsaved if state.dirty else [])
                    idx.reset_to(theirs.world, {}, None, len(theirs.keyframes))
                    state.world = cell_sync.merge_by_keys(base, ours, theirs.world) if state.dirty else theirs.world
            state._base_token = token
            state.updated_utc = str(m["updated_utc"])
        log.info("world store: %s picked up another writer's save (%d keyframes, %d Gaussians)", wid,
                 len(state.keyframes), len(state.world))
        return True

    # ---- working set: cells near the camera ------------------------------------------------------
    def focus(self, state: WorldState, positions_m: NDArray[np.floating], radius_m: float | None = None) -> None:
        """Load the stored cells within ``radius_m`` of any of ``positions_m`` [P, 3] (world metres) and,
        while the loaded worlds exceed ``memory_budget_bytes``, drop the farthest other cells from
        memory (saving the state first if it has unsaved changes; they load again when needed).

        A no-op for a world not stored by cells yet. Damaged cells are logged and skipped.

        Args:
            radius_m: default ``focus_radius_m``.
        """
        radius = self.focus_radius_m if radius_m is None else float(radius_m)
        wid = state.world_id
        d = self.world_dir(wid)
        with state.lock:
            idx = state.cells
            if not idx.stored:
                return
            with self._io_lock(wid), self._world_lock(wid, exclusive=False):
                token = self._disk_token(wid)
                if token is not None and token != state._base_token \
                        and cs.manifest_version(d) >= cs.CELLS_FORMAT_VERSION:
                    cell_sync.pull(state, d, cs.read_cells_manifest(d))  # their files replace ours on disk
                    state._base_token = token
                dist = cell_sync.cells_near(idx, positions_m, radius)
                cell_sync.load_cells(state, d, [k for k, dd in dist.items() if dd <= radius])
            over = self.memory_bytes - self.memory_budget_bytes
            far = sorted((k for k in idx.loaded if dist.get(k, np.inf) > radius), key=lambda k: -dist.get(k, np.inf))
            if over <= 0 or not far:
                return
            if state.dirty:
                self.save(state)
            per_gaussian = 4 * (14 + 3 * state.world.sh.shape[1])
            drop, freed = [], 0
            for k in far:
                drop.append(k)
                freed += idx.stored[k].gaussians * per_gaussian if k in idx.stored else 0
                if freed >= over:
                    break
            n = cell_sync.evict_cells(state, drop)
            log.debug("world store: %s: evicted %d far cells (%d Gaussians) from memory", wid, len(drop), n)

    def save_all(self) -> int:
        """Save every loaded dirty world; returns how many were saved."""
        with self._lock:
            states = [s for s in list(self._cache.values()) + list(self._evicting.values()) if s.dirty]
        for state in states:
            self.save(state)
        return len(states)

    # ---- listing and management ------------------------------------------------------------------
    def _info_from_disk(self, directory: Path) -> WorldInfo:
        wid = directory.name.removeprefix(WORLD_DIR_PREFIX)
        try:
            m = cs.read_cells_manifest(directory)
        except WorldFormatError as exc:
            return WorldInfo(wid, "", 0, 0, 0, directory_bytes(directory), "", "", "", directory, str(exc))
        return WorldInfo(wid, m["prompt"], m["counts"]["gaussians"], m["counts"]["keyframes"],
                         _int_or_zero(m["counts"].get("sh_degree")), directory_bytes(directory), m["created_utc"],
                         m["updated_utc"], str(m["generator"].get("name", "")), directory)

    @staticmethod
    def _info_from_state(state: WorldState) -> WorldInfo:
        with state.lock:
            return WorldInfo(state.world_id, state.prompt, len(state.world), len(state.keyframes),
                             state.world.sh_degree, 0, state.created_utc, state.updated_utc, state.generator_name, None)

    def list(self) -> list[WorldInfo]:
        """Every world on disk, plus loaded worlds not saved yet, sorted by prompt.

        A world whose manifest is unreadable is listed with ``error`` set instead of failing the list.
        """
        self._cleanup_scratch()
        infos = {}
        for d in sorted(self.root.glob(f"{WORLD_DIR_PREFIX}*")):
            if d.is_dir() and is_world_id(d.name):
                info = self._info_from_disk(d)
                infos[info.world_id] = info
        with self._lock:
            unsaved = [s for s in self._cache.values() if s.world_id not in infos]
        for state in unsaved:
            infos[state.world_id] = self._info_from_state(state)
        return sorted(infos.values(), key=lambda i: (i.prompt.casefold(), i.world_id))

    def info(self, prompt_or_id: str, verify: bool = False) -> WorldInfo:
        """Summary of one world (see :meth:`resolve_id`).

        Args:
            verify: also check every file's checksum and decode the world (slow for big worlds).
        Raises:
            InputError: no such world. WorldFormatError: ``verify`` found damage (naming the file).
        """
        wid = self.resolve_id(prompt_or_id)
        d = self.world_dir(wid)
        if d.is_dir():
            if verify:
                verify_world(d)
            info = self._info_from_disk(d)
            if info.error and verify:
                raise WorldFormatError(info.error)
            return info
        with self._lock:
            state = self._cached(wid)
        if state is None:
            raise self._not_found(prompt_or_id, wid)
        return self._info_from_state(state)

    def remove(self, prompt_or_id: str) -> WorldInfo:
        """Delete a world from memory and disk; returns what it was.

        Raises:
            InputError: no such world.
        """
        wid = self.resolve_id(prompt_or_id)
        d = self.world_dir(wid)
        with self._io_lock(wid):
            with self._lock:
                state = self._cache.pop(wid, None) or self._evicting.pop(wid, None)
            info = self._info_from_disk(d) if d.is_dir() else (self._info_from_state(state) if state else None)
            if info is None:
                raise self._not_found(prompt_or_id, wid)
            if d.is_dir():
                try:
                    with self._root_lock():
                        atomic.remove_dir(d)
                except OSError as exc:
                    raise WorldWriteError(f"could not remove {d}: {exc}") from exc
        return info

    def import_ply(self, path: Path | str, prompt: str) -> WorldState:
        """Make ``path`` (a 3DGS PLY) the world of ``prompt`` and save it.

        An existing world of that prompt gets the new Gaussians and loses its keyframes (they belonged
        to the replaced reconstruction).

        Raises:
            WorldFormatError: the PLY is unreadable (naming it).
        """
        world = read_ply(path)
        source = os.path.abspath(os.fspath(path))
        normalize_prompt(prompt)
        wid = world_id_for_prompt(prompt)
        with self._lock:
            state = self._cached(wid)
        if state is None:
            state = WorldState(prompt, world, [], "import", {"source": source})
            with self._lock:
                state = self._cache.setdefault(wid, state)
        with state.lock:
            state.replace_world(world)
            state.keyframes.clear()
            state.generator_name = "import"
            state.generator_settings = {"source": source}
            state.cells.replace = True  # replace what is stored, do not merge with it
        self.save(state)
        self._enforce_budget(keep=wid)
        return state

    def export_ply(self, prompt_or_id: str, out_path: Path | str) -> Path:
        """Write the world (its in-memory version if loaded) to ``out_path`` as a 3DGS PLY.

        Raises:
            InputError: no such world. WorldFormatError: the stored world is damaged.
        """
        wid = self.resolve_id(prompt_or_id)
        d = self.world_dir(wid)
        with self._lock:
            state = self._cached(wid)
        out = Path(out_path).expanduser()
        try:
            if state is None and d.is_dir() and cs.manifest_version(d) >= cs.CELLS_FORMAT_VERSION:
                with self._world_lock(wid, exclusive=False):  # stream the cells: bounded memory
                    export_cells(d, out)
                return out
            if state is None:
                state = self._get_by_id(wid)
            if state is None:
                raise self._not_found(prompt_or_id, wid)
            with state.lock:
                if not state.cells.unloaded():
                    write_ply(out, state.world)
                    return out
                if state.dirty:
                    self.save(state)
                with self._world_lock(wid, exclusive=False):
                    export_cells(d, out, [state.world], state.cells.loaded)
        except OSError as exc:
            raise WorldWriteError(f"could not write {out}: {exc}") from exc
        return out
