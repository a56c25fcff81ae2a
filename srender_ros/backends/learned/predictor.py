"""Keyframe-count prediction with trained weights (safetensors only; no pickle anywhere).

``load_default_predictor()`` is what ``Pipeline`` uses for ``scheduler=learned``: a callable
(trajectory, intrinsics) -> int built from the weights shipped in ``srender_ros/backends/learned/weights``.
Prediction is deterministic (eval mode, no sampling) and reads at most ``n_tokens`` poses, so its
cost does not grow with the trajectory length.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from srender_ros.backends.learned.features import Dinov2ClassToken, prepare_image, trajectory_tokens
from srender_ros.backends.learned.files import CONFIG_FILE, WEIGHTS_FILE
from srender_ros.backends.learned.model import KeyframeCountModel, ModelConfig
from srender_ros.core.camera import Intrinsics
from srender_ros.core.trajectory import Trajectory
from srender_ros.errors import InputError, ModelLoadError

#: The weights shipped with the package.
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: torch threads during a prediction. The model is tiny (~0.1 GFLOP): a second thread saves little
#: on an idle machine and costs 10-20x on a busy one (OpenMP threads waiting for each other).
PREDICT_THREADS = 1


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    if n < 1 or old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class KeyframeCountPredictor:
    """A trained keyframe-count model, ready to predict.

    Args:
        model: the trained model (put in eval mode here).
        dinov2: class-token extractor, needed only to use images with an appearance="dinov2" model.
        threads: torch threads while predicting (0: leave torch's setting alone).
    """

    def __init__(self, model: KeyframeCountModel, dinov2: Dinov2ClassToken | None = None,
                 threads: int = PREDICT_THREADS) -> None:
        self.model = model.eval()
        self.config = model.config
        self.dinov2 = dinov2
        self.threads = threads

    @classmethod
    def from_dir(cls, path: str | Path, dinov2_dir: str | Path | None = None) -> KeyframeCountPredictor:
        """Load ``model.safetensors`` + ``config.json`` from ``path``.

        Args:
            path: a folder written by ``srender scheduler train`` (or train.save_model).
            dinov2_dir: local DINOv2 folder, for models trained with appearance="dinov2".
        Raises:
            ModelLoadError: missing files, a config of another model, or weights that do not fit it.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(path)
        cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise ModelLoadError(f"keyframe-count model folder {folder}: {p.name} is missing "
                                     "(train one with `srender scheduler train --out DIR`)")
        try:
            cfg_json = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{cfg_path}: not valid JSON ({exc})") from exc
        if not isinstance(cfg_json, dict):
            raise ModelLoadError(f"{cfg_path}: expected a JSON object")
        config = ModelConfig.from_json(cfg_json, str(cfg_path))
        model = KeyframeCountModel(config)
        try:
            state = load_file(str(w_path))
            model.load_state_dict(state, strict=True)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise ModelLoadError(f"{w_path}: weights do not load into the model of {cfg_path.name} ({exc})") from exc
        dino = None
        if dinov2_dir is not None:
            if config.appearance != "dinov2":
                raise ModelLoadError(f"{folder}: model uses appearance={config.appearance!r}, not DINOv2; drop dinov2_dir")
            dino = Dinov2ClassToken(dinov2_dir)
            if dino.hidden_size != config.appearance_dim:
                raise ModelLoadError(f"DINOv2 hidden size {dino.hidden_size} != the model's appearance_dim "
                                     f"{config.appearance_dim}")
        return cls(model, dino)

    def _appearance(self, image: NDArray[np.generic] | None) -> tuple[torch.Tensor | None, torch.Tensor]:
        if image is None or self.config.appearance == "none":
            return None, torch.zeros(1, dtype=torch.bool)
        if self.config.appearance == "cnn":
            return torch.from_numpy(prepare_image(image, self.config.image_side_px))[None], torch.ones(1, dtype=torch.bool)
        if self.dinov2 is None:  # a DINOv2 model without its encoder: fall back to the default token
            return None, torch.zeros(1, dtype=torch.bool)
        return torch.from_numpy(self.dinov2(image))[None], torch.ones(1, dtype=torch.bool)

    @torch.no_grad()
    def predict_float(self, trajectory: Trajectory, intrinsics: Intrinsics, image: NDArray[np.generic] | None = None) -> float:
        """The unrounded count (>= 1).

        Args:
            trajectory: optical-frame poses (at least one).
            intrinsics: the camera.
            image: [H, W, 3] first view of the world (float in [0, 1] or uint8), or None.
        Raises:
            TrajectoryError: not a valid trajectory.
        """
        if not isinstance(intrinsics, Intrinsics):
            raise InputError(f"expected Intrinsics, got {type(intrinsics).__name__}")
        tokens = torch.from_numpy(trajectory_tokens(trajectory, intrinsics, self.config.n_tokens))[None]
        with _torch_threads(self.threads):
            app, has = self._appearance(image)
            return float(self.model(tokens, app, has)[0])

    def predict(self, trajectory: Trajectory, intrinsics: Intrinsics, image: NDArray[np.generic] | None = None) -> int:
        """Keyframe count: the rounded prediction clamped to 1..max_keyframes (see :meth:`predict_float`)."""
        c = self.predict_float(trajectory, intrinsics, image)
        return int(min(max(round(c), 1), self.config.max_keyframes))

    def __call__(self, trajectory: Trajectory, intrinsics: Intrinsics,
                 first_view: NDArray[np.floating] | None = None) -> int:
        """The CountPredictor port: :meth:`predict` with the first keyframe's view as the image."""
        return self.predict(trajectory, intrinsics, first_view)


@functools.lru_cache(maxsize=1)
def load_default_predictor() -> KeyframeCountPredictor:
    """The predictor with the shipped weights (loaded once per process).

    Raises:
        ModelLoadError: the package's weights folder is missing or broken (reinstall the package).
    """
    return KeyframeCountPredictor.from_dir(DEFAULT_WEIGHTS_DIR)
