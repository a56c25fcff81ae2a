"""Three-way merge of worlds written by several processes (numpy only).

Several nodes (robots) or cameras may grow one environment's world at once, each from its own
copy. When a writer saves and finds that the stored world changed since it last read it, it merges:

- Gaussians: ``theirs - (removed by us) + (added by us)``, where "added" and "removed" compare our
  world with the *base* (the stored world we last read or wrote). Gaussians are identified by the
  exact float32 bytes of their position, log-scales, opacity and SH (stored exactly in the PLY, so
  identity survives a save and load). So the other writer's keyframes stay, ours are added, and a
  Gaussian either side replaced (a coarse one dropped by a finer keyframe) stays dropped.
- Keyframes: ``theirs`` followed by ours that they do not have, identified by pose and depth bytes.

Two writers that lift the same unseen region at the same time both keep their Gaussians there
(some overlap); nothing is lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.world import GaussianWorld

_MIX = np.uint64(0x9E3779B97F4A7C15)


def gaussian_keys(world: GaussianWorld) -> NDArray[np.uint64]:
    """[N] 64-bit identity of each Gaussian (hash of its position, scale, opacity and DC colour bytes)."""
    n = len(world)
    if n == 0:
        return np.zeros(0, np.uint64)
    rows = np.concatenate([world.means, world.log_scales, world.opacity_logits[:, None],
                           world.sh[:, 0, :]], axis=1).astype(np.float32)
    words = np.ascontiguousarray(rows).view(np.uint32).astype(np.uint64)  # [N, 10]
    h = np.full(n, 0xCBF29CE484222325, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h = (h ^ words[:, j]) * np.uint64(0x100000001B3)
            h ^= h >> np.uint64(29)
            h *= _MIX
    return h


def keyframe_key(record: KeyframeRecord) -> str:
    """Identity of a keyframe: its pose (to 1e-9) and depth image bytes (stored exactly)."""
    h = hashlib.sha1(np.round(np.asarray(record.T_world_cam, np.float64), 9).tobytes())
    h.update(np.ascontiguousarray(record.depth_m, dtype=np.float32).tobytes())
    h.update(str(record.pose_index).encode())
    return h.hexdigest()


def merge_gaussians(base: GaussianWorld, ours: GaussianWorld, theirs: GaussianWorld) -> GaussianWorld:
    """``theirs`` minus what ``ours`` removed from ``base``, plus what ``ours`` added to it."""
    kb, ko, kt = gaussian_keys(base), gaussian_keys(ours), gaussian_keys(theirs)
    added = ~np.isin(ko, kb)
    removed = kb[~np.isin(kb, ko)]
    keep = ~np.isin(kt, removed) if len(removed) else np.ones(len(kt), bool)
    if keep.all() and not added.any():
        return theirs
    return theirs.select(keep).concat(ours.select(added))


def merge_keyframes(ours: Sequence[KeyframeRecord], theirs: Sequence[KeyframeRecord]) -> list[KeyframeRecord]:
    """``theirs`` followed by the keyframes of ``ours`` they do not have (order kept)."""
    have = {keyframe_key(k) for k in theirs}
    return list(theirs) + [k for k in ours if keyframe_key(k) not in have]
