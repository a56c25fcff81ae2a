"""Crash-safe file and directory writes.

A reader must see either the old content or the complete new content, never a torn mix: new data
goes to a temporary name in the *same* directory (``os.replace`` is atomic only within one file
system), is fsynced, then renamed over the target, and the directory entry is fsynced too so the
rename itself survives a power cut.

A directory cannot be replaced atomically by ``rename`` when the target exists (POSIX refuses to
rename over a non-empty directory), so :func:`swap_dir` moves the old one aside first; readers that
find the target missing recover it with :func:`recover_dir` (see docs/worlds.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: Prefixes of the scratch names this module creates beside a target (never loaded as data).
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
#: Directories being deleted: never restored, unlike ``OLD_PREFIX`` copies.
DEL_PREFIX = ".del-"


def fsync_dir(path: Path | str) -> None:
    """Flush a directory's entries (renames, new files) to disk; a no-op where unsupported."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def scratch_name(target: Path, prefix: str) -> Path:
    """A unique hidden sibling of ``target``: ``<parent>/<prefix><name>-<random>``."""
    return target.parent / f"{prefix}{target.name}-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def atomic_write(path: Path | str) -> Iterator[BinaryIO]:
    """Open a binary file that appears at ``path`` only once the ``with`` block completes.

    On an exception inside the block the temporary file is removed and ``path`` is untouched.

    Example::

        with atomic_write("out.ply") as f:
            f.write(header)
            f.write(body)
    """
    target = Path(path)
    tmp = scratch_name(target, TMP_PREFIX)
    f = open(tmp, "xb")  # closed in both branches below
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, target)
    except BaseException:
        f.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as f:
        f.write(data)


def write_synced(path: Path | str, data: bytes) -> None:
    """Create ``path`` (must not exist) with ``data`` and fsync it.

    For files inside a scratch directory that is itself published atomically, where a per-file
    rename would buy nothing.
    """
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_tree(root: Path) -> None:
    """fsync every file and directory below ``root`` (files first, then their directories)."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def swap_dir(new_dir: Path, target: Path) -> None:
    """Publish the complete directory ``new_dir`` as ``target``, replacing any existing one.

    Steps: rename ``target`` aside to ``.old-<name>-<random>``, rename ``new_dir`` to ``target``,
    fsync the parent, delete the old copy. A crash between the two renames leaves ``target``
    missing and the old copy beside it, which :func:`recover_dir` puts back. A failure of the second
    rename puts the old copy back at once.

    Args:
        new_dir: a fully written (and fsynced) directory in the same parent as ``target``.
        target: the directory to create or replace.
    """
    parent = target.parent
    old: Path | None = None
    if target.exists():
        old = scratch_name(target, OLD_PREFIX)
        os.rename(target, old)
    try:
        os.rename(new_dir, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    fsync_dir(parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_dir(target: Path) -> None:
    """Delete a directory so that no half-deleted copy is ever visible under its name."""
    doomed = scratch_name(target, DEL_PREFIX)
    os.rename(target, doomed)
    fsync_dir(target.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def recover_dir(target: Path) -> bool:
    """Undo an interrupted :func:`swap_dir`: if ``target`` is missing, restore the newest old copy.

    Returns:
        True when a copy was restored.
    """
    if target.exists():
        return False
    olds = sorted(target.parent.glob(f"{OLD_PREFIX}{target.name}-*"), key=lambda p: p.stat().st_mtime)
    if not olds:
        return False
    os.rename(olds[-1], target)
    fsync_dir(target.parent)
    return True
