"""ProceduralGenerator: the embedded, weight-free keyframe source, and exact ground truth.

It is not a generative model: the prompt picks and seeds a deterministic procedural world (see
docs/procedural.md), and a "keyframe" is that world ray-cast at the requested pose. Because the
world is known exactly, the same object also renders ground truth for measuring reconstructions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.generators.procedural.cells import CellCache
from srender_ros.backends.generators.procedural.render import MAX_SUPERSAMPLE, render_scene
from srender_ros.backends.generators.procedural.scene import GRAMMAR_VERSION, SceneSpec, normalize_prompt, scene_from_prompt
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.generate import Keyframe, KeyframeRequest
from srender_ros.core.ports.render import RenderOutput
from srender_ros.errors import InputError

#: Default anti-aliasing: 2x2 rays per pixel. Ground truth with aliased edges and texture would
#: punish a (smooth) Gaussian render for the ground truth's own sampling noise and lower PSNR
#: unfairly; textures are already band-limited to the footprint, so 2x2 mostly serves geometry
#: edges (docs/procedural.md weighs its cost against its effect on PSNR).
DEFAULT_SUPERSAMPLE = 2
#: Scenes (with their built cells) kept per generator; older prompts are rebuilt on demand.
MAX_CACHED_SCENES = 4


class _SceneCache:
    """prompt -> (SceneSpec, CellCache), least recently used dropped first; thread-safe."""

    def __init__(self, capacity: int = MAX_CACHED_SCENES) -> None:
        self._items: OrderedDict[str, tuple[SceneSpec, CellCache]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, scene_or_prompt: SceneSpec | str) -> tuple[SceneSpec, CellCache]:
        if isinstance(scene_or_prompt, SceneSpec):
            key = f"{scene_or_prompt.family.value}|{scene_or_prompt.seed}|{scene_or_prompt.sky_distance_m}"
        else:
            key = normalize_prompt(scene_or_prompt)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        scene = scene_or_prompt if isinstance(scene_or_prompt, SceneSpec) else scene_from_prompt(scene_or_prompt)
        item = (scene, CellCache(scene))
        with self._lock:
            item = self._items.setdefault(key, item)
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return item


_DEFAULT_CACHE = _SceneCache()


def render_ground_truth(prompt: str | SceneSpec, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating],
                        supersample: int = DEFAULT_SUPERSAMPLE) -> RenderOutput:
    """Exact render of the procedural world of ``prompt`` (or a SceneSpec).

    Args:
        prompt: environment prompt or an explicit scene.
        intrinsics: pinhole camera (pixel centres at +0.5).
        T_world_cam: [B, 4, 4] optical camera-to-world poses in the z-up world, metres.
        supersample: s x s rays per pixel for RGB (1..4).
    Returns:
        RenderOutput: rgb [B, H, W, 3] float32 in [0, 1]; depth_m [B, H, W] float32 z-depth along the
        optical axis, finite everywhere (sky at 400 m ray length); alpha [B, H, W] float32, all 1.
    """
    scene, cells = _DEFAULT_CACHE.get(prompt)
    return render_scene(scene, cells, intrinsics, T_world_cam, supersample)


class ProceduralGenerator:
    """KeyframeGenerator backed by the procedural world of the prompt.

    ``generate`` ignores ``request.world_view`` and ``request.initial_image`` (the world is already
    complete and consistent everywhere, so there is nothing to inpaint and nothing to follow) and
    ``request.seed`` (the prompt alone fixes the world).
    """

    name = "procedural"

    def __init__(self, supersample: int = DEFAULT_SUPERSAMPLE) -> None:
        if isinstance(supersample, bool) or not isinstance(supersample, (int, np.integer)) \
                or not 1 <= int(supersample) <= MAX_SUPERSAMPLE:
            raise InputError(f"procedural generator: supersample={supersample!r} must be an integer in 1..{MAX_SUPERSAMPLE}")
        self.supersample = int(supersample)
        self._scenes = _SceneCache()

    def scene(self, prompt: str) -> SceneSpec:
        """The scene description a prompt maps to (family, seed, layout)."""
        return self._scenes.get(prompt)[0]

    def generate(self, request: KeyframeRequest) -> Keyframe:
        """Ray-cast the prompt's world at ``request.T_world_cam`` with ``request.intrinsics``."""
        T = np.asarray(request.T_world_cam, dtype=np.float64)
        if T.shape != (4, 4):
            raise InputError(f"keyframe request: T_world_cam must be [4, 4], got {list(T.shape)}")
        out = self.ground_truth(request.prompt, request.intrinsics, T[None])
        return Keyframe(rgb=out.rgb[0], depth_m=out.depth_m[0], T_world_cam=T.copy(), intrinsics=request.intrinsics,
                        pose_index=request.pose_index)

    def ground_truth(self, prompt: str, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]) -> RenderOutput:
        """Exact RGB, z-depth and alpha (= 1) of the prompt's world at [B, 4, 4] optical poses."""
        scene, cells = self._scenes.get(prompt)
        return render_scene(scene, cells, intrinsics, T_world_cam, self.supersample)

    def settings(self) -> dict[str, object]:
        """JSON-able settings recorded in the world manifest."""
        return {"generator": self.name, "grammar_version": GRAMMAR_VERSION, "supersample": self.supersample}
