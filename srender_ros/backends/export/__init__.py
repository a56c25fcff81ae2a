"""World export formats: a name -> exporter registry (``srender world export --format NAME``).

=============== =========================================== ====================== ==========
name            file                                        written with            lossless
=============== =========================================== ====================== ==========
ply             3DGS PLY (graphdeco layout)                 srender_ros.core.ply    yes
spz             Niantic SPZ v3 (gzip, fixed point)          gsply                   no (~1e-3)
compressed-ply  PlayCanvas / SuperSplat compressed PLY      gsply                   no (8-11 bit)
usd             OpenUSD ParticleField3DGaussianSplat        usd-core (pxr)          yes (float32)
=============== =========================================== ====================== ==========

Optional packages are imported when a file is written; a missing one raises
BackendUnavailableError naming the package to install. Every writer replaces its output
atomically (a temporary file beside it, then a rename).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError, WorldFormatError


@dataclass(frozen=True)
class Exporter:
    """One export format.

    Attributes:
        name: the ``--format`` value.
        suffixes: file name endings that select it (first = default when adding one).
        package: pip requirement it needs ('' = none), for error messages.
        module: the importable module that must be present ('' = none).
        writer: (world, path) -> None, writes the file at ``path`` (the temporary name).
    """

    name: str
    suffixes: tuple[str, ...]
    package: str
    module: str
    writer: Callable[[GaussianWorld, Path], None]

    def check_available(self) -> None:
        """Raise BackendUnavailableError (naming the package) when this format cannot be written here."""
        if not self.module:
            return
        from srender_ros.errors import BackendUnavailableError

        try:
            __import__(self.module)
        except ImportError as exc:
            raise BackendUnavailableError(f"export format {self.name!r} needs the Python package {self.package} "
                                          f"(pip install {self.package}); importing {self.module} failed: {exc}") from None

    def write(self, world: GaussianWorld, out: Path | str) -> Path:
        """Write ``world`` to ``out`` atomically; returns the path written."""
        self.check_available()
        path = Path(out).expanduser()
        if path.is_dir():
            raise InputError(f"--out {path}: is a directory; give a file name ending in {self.suffixes[0]}")
        if len(world) == 0:
            raise InputError("the world has no Gaussians; nothing to export")
        parent = path.parent if str(path.parent) else Path(".")
        # Keep the real ending on the temporary name: some writers pick their layout from it.
        ending = next((s for s in self.suffixes if path.name.lower().endswith(s)), self.suffixes[0])
        # Not mkstemp: its 0600 mode would stick to the result; the writer creates the file (umask applies).
        tmp = parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{ending}"
        try:
            self.writer(world, tmp)
            os.replace(tmp, path)
        except OSError as exc:
            raise WorldFormatError(f"could not write {path}: {exc}") from exc
        finally:
            if tmp.exists():
                tmp.unlink()
        return path


def _write_ply(world: GaussianWorld, path: Path) -> None:
    from srender_ros.core.ply import write_ply

    write_ply(path, world)


def _write_spz(world: GaussianWorld, path: Path) -> None:
    from srender_ros.backends.export.gsply_formats import write_spz

    write_spz(world, path)


def _write_compressed_ply(world: GaussianWorld, path: Path) -> None:
    from srender_ros.backends.export.gsply_formats import write_compressed_ply

    write_compressed_ply(world, path)


def _write_usd(world: GaussianWorld, path: Path) -> None:
    from srender_ros.backends.export.usd import write_usd

    write_usd(world, path)


EXPORTERS: dict[str, Exporter] = {
    "ply": Exporter("ply", (".ply",), "", "", _write_ply),
    "spz": Exporter("spz", (".spz",), "gsply==0.4.6", "gsply", _write_spz),
    "compressed-ply": Exporter("compressed-ply", (".compressed.ply",), "gsply==0.4.6", "gsply", _write_compressed_ply),
    "usd": Exporter("usd", (".usd", ".usda", ".usdc", ".usdz"), "usd-core==26.11", "pxr", _write_usd),
}


def get_exporter(name: str) -> Exporter:
    """The exporter called ``name``; InputError listing the known ones otherwise."""
    try:
        return EXPORTERS[name]
    except KeyError:
        raise InputError(f"unknown export format {name!r}; known: {', '.join(EXPORTERS)}") from None


def format_for_path(path: str | Path) -> str:
    """Export format implied by a file name (longest matching ending wins); ``ply`` when none matches."""
    name = str(path).lower()
    best = ("ply", 0)
    for fmt in EXPORTERS.values():
        for suffix in fmt.suffixes:
            if name.endswith(suffix) and len(suffix) > best[1]:
                best = (fmt.name, len(suffix))
    return best[0]


__all__ = ["EXPORTERS", "Exporter", "format_for_path", "get_exporter"]
