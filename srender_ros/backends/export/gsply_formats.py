"""Compressed splat files through gsply (maintained, MIT): Niantic SPZ and PlayCanvas compressed PLY.

Both are lossy (quantized); read them back with ``gsply.read_spz`` / ``gsply.plyread``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from srender_ros.core.world import GaussianWorld


def to_gsdata(world: GaussianWorld) -> Any:
    """The world as a ``gsply.GSData`` in PLY convention (log-scales, opacity logits, wxyz, SH)."""
    import gsply

    degree = world.sh_degree
    # The format is given explicitly: gsply would otherwise guess log vs linear from the values.
    return gsply.GSData(means=np.ascontiguousarray(world.means), scales=np.ascontiguousarray(world.log_scales),
                        quats=np.ascontiguousarray(world.quats_wxyz),
                        opacities=np.ascontiguousarray(world.opacity_logits),
                        sh0=np.ascontiguousarray(world.sh[:, 0]), shN=np.ascontiguousarray(world.sh[:, 1:]),
                        _format=gsply.create_ply_format(sh_degree=degree))


def write_spz(world: GaussianWorld, path: Path) -> None:
    """Niantic SPZ v3: gzip container, 12 fractional bits for positions (~0.24 mm), 8-bit colour and scales."""
    import gsply

    gsply.write_spz(path, to_gsdata(world), version=3)


def write_compressed_ply(world: GaussianWorld, path: Path) -> None:
    """PlayCanvas / SuperSplat compressed PLY (chunks of 256 with per-chunk bounds; 11/10/11-bit fields).

    ``path`` must end in ``.compressed.ply`` (gsply appends it otherwise).
    """
    import gsply

    if not str(path).endswith(".compressed.ply"):
        raise ValueError(f"{path}: compressed PLY files must end in .compressed.ply")
    gsply.plywrite(path, to_gsdata(world), compressed=True)
