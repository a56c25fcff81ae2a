"""2D in-between interpolators (the baseline against 3D rendering between keyframes)."""
