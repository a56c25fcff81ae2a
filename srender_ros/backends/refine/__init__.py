"""Photometric refinement of a world against its keyframes (the ``Refiner`` port). Imports torch."""
