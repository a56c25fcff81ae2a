"""File names inside a predictor weights folder (shared by the run time and by training)."""

from __future__ import annotations

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINING_CONFIG_FILE = "training_config.json"
