"""From a prompt to a scene description: family by keywords, seed by a stable hash.

The scene itself is not stored: it is a pure function of (family, seed), evaluated per grid cell
by :mod:`.cells` wherever a camera looks, which is what makes it unbounded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError

#: Version of the scene grammar (families, layouts, textures). Bump it whenever the same prompt
#: would render differently, so that worlds recorded with another version are not silently mixed.
GRAMMAR_VERSION = 1

#: Distance of the sky (ray length, metres): every ray that hits nothing closer ends there, so every
#: pixel has a finite depth. Also the radius beyond which the ground plane is not drawn.
SKY_DISTANCE_M = 400.0


class Family(str, Enum):
    """Kinds of world. The integer code (``FAMILY_CODES``) is what the compiled kernels see."""

    ROOM = "room"
    OFFICE = "office"
    KITCHEN = "kitchen"
    WAREHOUSE = "warehouse"
    STREET = "street"
    FOREST = "forest"
    FIELD = "field"


FAMILY_CODES: dict[Family, int] = {f: i for i, f in enumerate(Family)}
F_ROOM, F_OFFICE, F_KITCHEN, F_WAREHOUSE, F_STREET, F_FOREST, F_FIELD = range(7)

#: Keywords per family: (strong, weak). A strong word (the family itself, near-synonyms) counts 2,
#: a weak one (things typically found there) counts 1; the highest total wins, ties go to the family
#: whose keyword comes first in the prompt. Words are matched whole, singular or with a plural "s".
KEYWORDS: dict[Family, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Family.ROOM: (("room", "bedroom", "livingroom", "apartment", "house", "home", "lounge", "hotel", "interior",
                   "indoor", "indoors", "hallway", "corridor", "studio"),
                  ("sofa", "couch", "bed", "living", "hall", "bookshelf", "carpet", "rug", "furniture", "museum",
                   "gallery", "cozy", "cosy")),
    Family.OFFICE: (("office", "workspace", "cubicle", "coworking", "classroom", "library", "lab", "laboratory"),
                    ("desk", "meeting", "conference", "computer", "monitor", "school", "study", "bank", "chair")),
    Family.KITCHEN: (("kitchen", "restaurant", "cafe", "diner", "bakery", "canteen", "cafeteria", "pantry"),
                     ("cooking", "counter", "fridge", "stove", "oven", "dining", "bar", "coffee")),
    Family.WAREHOUSE: (("warehouse", "factory", "storage", "depot", "hangar", "logistics", "industrial",
                        "workshop", "garage"),
                       ("aisle", "shelf", "shelve", "shelves", "rack", "pallet", "box", "boxes", "crate", "forklift",
                        "cluttered", "store", "supermarket", "shop", "loading")),
    Family.STREET: (("street", "city", "urban", "town", "downtown", "avenue", "boulevard", "road", "village"),
                    ("car", "drive", "driving", "traffic", "building", "skyscraper", "sidewalk", "crossing", "highway",
                     "parking", "block", "alley", "suburb", "neighborhood", "neighbourhood")),
    Family.FOREST: (("forest", "woods", "woodland", "jungle", "grove", "rainforest", "trees"),
                    ("tree", "trail", "pine", "oak", "hiking", "park", "orchard", "moss", "fern", "wilderness")),
    Family.FIELD: (("field", "meadow", "farm", "farmland", "grassland", "prairie", "countryside", "pasture",
                    "steppe", "savanna"),
                   ("grass", "hill", "hills", "crop", "crops", "wheat", "hay", "rural", "plain", "plains", "outdoor",
                    "outdoors", "open", "landscape", "drone", "aerial", "valley")),
}


@dataclass(frozen=True)
class FamilyLayout:
    """Per-family constants of the cell grammar.

    Attributes:
        cell_m: side of one square grid cell, metres.
        grid_origin_m: x (= y) of a cell corner; indoor grids put the origin at a room centre,
            the street grid puts it on a road crossing, so paths starting at the origin start free.
        ceiling_m: height of the ceiling / flat roof plane, or 0 for open sky.
        content_radius_m: cells farther than this (horizontally) from the camera are not drawn.
        max_objects: capacity of one cell's primitive list.
        subdiv: each cell is split into subdiv x subdiv sub-cells for ray traversal (a ray tests
            only the primitives overlapping the sub-cells it crosses).
        terrain_amp_m: depth of the rolling ground below z = 0 (field only), metres.
    """

    cell_m: float
    grid_origin_m: float
    ceiling_m: float
    content_radius_m: float
    max_objects: int
    subdiv: int
    terrain_amp_m: float = 0.0


LAYOUTS: dict[Family, FamilyLayout] = {
    Family.ROOM: FamilyLayout(8.0, -4.0, 2.8, 80.0, 64, 4),
    Family.OFFICE: FamilyLayout(9.0, -4.5, 3.0, 90.0, 64, 4),
    Family.KITCHEN: FamilyLayout(7.0, -3.5, 2.7, 70.0, 48, 4),
    Family.WAREHOUSE: FamilyLayout(8.0, -4.0, 10.0, 160.0, 48, 4),
    Family.STREET: FamilyLayout(40.0, 0.0, 0.0, SKY_DISTANCE_M, 60, 8),
    Family.FOREST: FamilyLayout(10.0, -5.0, 0.0, SKY_DISTANCE_M, 24, 2),
    Family.FIELD: FamilyLayout(16.0, -8.0, 0.0, SKY_DISTANCE_M, 16, 2, terrain_amp_m=3.0),
}

# Index of each value in the float64 parameter vector the kernels receive (see SceneSpec.params).
# P_ZMIN / P_ZMAX bound the height of all primitives the ray caster may meet; the renderer narrows
# them to the cell window it built (so rays leaving that height band stop walking the grid).
P_CELL, P_ORIGIN, P_CEILING, P_CONTENT_R, P_SKY, P_TERRAIN, P_FAMILY, P_SUBDIV, P_ZMIN, P_ZMAX = range(10)
N_PARAMS = 10

_WORD = re.compile(r"[a-z0-9]+")


def normalize_prompt(prompt: str) -> str:
    """Stripped, whitespace collapsed, casefolded: exactly the world store's normalization
    (core.manifest.normalize_prompt), so prompts that share a world id share a procedural world.
    Returns "" for a blank prompt (scene_from_prompt refuses it)."""
    if not isinstance(prompt, str):
        raise InputError(f"prompt must be a string, got {type(prompt).__name__}")
    return " ".join(prompt.split()).casefold()


def prompt_seed(prompt: str) -> int:
    """Stable 64-bit seed of a prompt: the first 8 bytes of sha256(normalized prompt), never Python's hash()."""
    digest = hashlib.sha256(normalize_prompt(prompt).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def family_from_prompt(prompt: str, seed: int | None = None) -> Family:
    """The family whose keywords score highest; an unknown prompt gets one picked by its seed."""
    words = _WORD.findall(normalize_prompt(prompt))
    best: tuple[int, int, int] | None = None  # (score, -first position, -family order)
    choice: Family | None = None
    for order, (fam, (strong, weak)) in enumerate(KEYWORDS.items()):
        score, first = 0, len(words)
        for pos, w in enumerate(words):
            stem = w[:-1] if w.endswith("s") and len(w) > 3 else w
            if w in strong or stem in strong:
                score += 2
            elif w in weak or stem in weak:
                score += 1
            else:
                continue
            first = min(first, pos)
        if score == 0:
            continue
        key = (score, -first, -order)
        if best is None or key > best:
            best, choice = key, fam
    if choice is not None:
        return choice
    families = list(Family)
    s = prompt_seed(prompt) if seed is None else seed
    return families[s % len(families)]


@dataclass(frozen=True)
class SceneSpec:
    """Everything that defines one procedural world.

    Attributes:
        prompt: the normalized prompt it came from.
        family: which cell grammar builds it.
        seed: 64-bit seed (unsigned, < 2**64) of every random choice in the world.
        layout: the family's grid constants.
        sky_distance_m: ray length at which the sky is drawn.
    """

    prompt: str
    family: Family
    seed: int
    layout: FamilyLayout
    sky_distance_m: float = SKY_DISTANCE_M

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**64:
            raise InputError(f"scene seed {self.seed}: must be an unsigned 64-bit integer")
        if not self.sky_distance_m > self.layout.cell_m:
            raise InputError(f"sky_distance_m={self.sky_distance_m}: must exceed the cell size {self.layout.cell_m} m")

    @property
    def family_code(self) -> int:
        return FAMILY_CODES[self.family]

    def params(self) -> NDArray[np.float64]:
        """[N_PARAMS] float64 vector of the constants the compiled kernels need (indices P_*)."""
        p = np.zeros(N_PARAMS, dtype=np.float64)
        lay = self.layout
        p[P_CELL] = lay.cell_m
        p[P_ORIGIN] = lay.grid_origin_m
        p[P_CEILING] = lay.ceiling_m
        p[P_CONTENT_R] = min(lay.content_radius_m, self.sky_distance_m)
        p[P_SKY] = self.sky_distance_m
        p[P_TERRAIN] = lay.terrain_amp_m
        p[P_FAMILY] = self.family_code
        p[P_SUBDIV] = lay.subdiv
        p[P_ZMIN] = -np.inf
        p[P_ZMAX] = np.inf
        return p

    def describe(self) -> dict[str, object]:
        """JSON-able summary (for manifests and logs)."""
        return {"family": self.family.value, "seed": self.seed, "grammar_version": GRAMMAR_VERSION,
                "cell_m": self.layout.cell_m, "ceiling_m": self.layout.ceiling_m, "sky_distance_m": self.sky_distance_m}


def scene_from_prompt(prompt: str, family: Family | str | None = None) -> SceneSpec:
    """The scene a prompt stands for.

    Args:
        prompt: any text; empty or whitespace-only prompts are refused.
        family: force a family instead of choosing one by keywords.
    Raises:
        InputError: empty prompt or unknown family name.
    """
    norm = normalize_prompt(prompt)
    if not norm:
        raise InputError("prompt is empty: describe the environment, e.g. 'a cluttered warehouse aisle'")
    seed = prompt_seed(norm)
    if family is None:
        fam = family_from_prompt(norm, seed)
    else:
        try:
            fam = Family(family)
        except ValueError:
            raise InputError(f"unknown scene family {family!r}; choose one of: "
                             f"{', '.join(f.value for f in Family)}") from None
    return SceneSpec(prompt=norm, family=fam, seed=seed, layout=LAYOUTS[fam])
