"""Labels (the coverage oracle) and training of the keyframe-count predictor. See docs/learned.md."""
