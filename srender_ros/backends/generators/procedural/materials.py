"""Primitive record layout and material codes shared by the cell builders and the ray caster.

A cell's content is a float32 array [K, NF] of primitives. Field meaning per row:

- ``R_TYPE``: T_BOX (axis-aligned), T_CYL (vertical cylinder with caps) or T_ELL (axis-aligned ellipsoid).
- ``R_G0..R_G0+5`` geometry: box (x0, y0, z0, x1, y1, z1); cylinder (cx, cy, r, z0, z1, -);
  ellipsoid (cx, cy, cz, rx, ry, rz). World metres.
- ``R_MAT`` material code (M_*), ``R_CA`` / ``R_CB`` two RGB colours, ``R_P0`` a material variant,
  ``R_P1`` a per-object random number in [0, 1).

Every primitive lies inside its own cell (builders guarantee it), which is what lets the ray caster
stop at the first cell with a hit.
"""

from __future__ import annotations

NF = 16
R_TYPE, R_G0, R_MAT, R_CA, R_CB, R_P0, R_P1 = 0, 1, 7, 8, 11, 14, 15

T_BOX, T_CYL, T_ELL = 0, 1, 2

# Object materials.
M_PAINT = 0
M_ROOMWALL = 1  # indoor wall whose style follows the room it faces
M_BRICK = 2
M_WOOD = 3
M_FABRIC = 4
M_BOOKS = 5
M_CARDBOARD = 6
M_METAL = 7
M_CONCRETE = 8
M_FACADE = 9
M_BARK = 10
M_FOLIAGE = 11
M_ROCK = 12
M_PICTURE = 13
M_TILE = 14
M_STONE = 15
M_CABINET = 16
M_SCREEN = 17
M_CAR = 18
M_HAY = 19
M_LAMP = 20
M_PLASTIC = 21
M_WRAP = 22
M_SIDEWALK = 23

# What a ray hit, besides an object.
K_SKY, K_FLOOR, K_CEILING, K_ROOF, K_OBJECT, K_TERRAIN = 0, 1, 2, 3, 4, 5
