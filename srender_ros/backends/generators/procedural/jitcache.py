"""numba compile options and an on-disk cache that is invalidated by any change to this package.

numba's cache checks only the source file of the cached function, but the ray caster is compiled
together with the textures and builders it calls from other files: editing ``textures.py`` would
leave a stale kernel in the cache. The locators below stamp every cache entry of this package with
one hash over all of its modules, so any edit recompiles everything (once).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

from numba.core import caching

NJIT: dict[str, Any] = {"cache": True, "error_model": "numpy", "fastmath": False}

_PKG_DIR = Path(__file__).resolve().parent


@functools.cache
def package_stamp() -> str:
    """sha256 over the names and contents of every module of this package."""
    h = hashlib.sha256()
    for path in sorted(_PKG_DIR.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _in_package(py_file: str) -> bool:
    return Path(os.path.abspath(py_file)).parent == _PKG_DIR


class _PackageStamp:
    """Mixin: accept only this package's functions; stamp them with the whole package's hash."""

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        if not _in_package(py_file):
            return None
        return super().from_function(py_func, py_file)  # type: ignore[misc]

    def get_source_stamp(self) -> str:
        return package_stamp()


class _UserProvided(_PackageStamp, caching.UserProvidedCacheLocator):
    pass


class _InTree(_PackageStamp, caching.InTreeCacheLocator):
    pass


class _UserWide(_PackageStamp, caching.UserWideCacheLocator):
    pass


def install() -> None:
    """Put the package-stamped locators first (same order of preference as numba's own)."""
    classes = caching.CacheImpl._locator_classes
    for cls in (_UserWide, _InTree, _UserProvided):
        if cls not in classes:
            classes.insert(0, cls)


install()
