"""Training and evaluation of the keyframe-count model.

Loss as in SRENDER: 0.1 * MSE between the predicted (unrounded) count and the oracle's count.
AdamW with a short linear warm-up and cosine decay. The appearance token is dropped (replaced by
the learned default token) for a fraction of the samples in every batch, so one model serves both
requests with a first image and requests without one (the pipeline's learned scheduler has none).

Reproducibility: everything random (initialization, shuffling, appearance dropout) is drawn from
``TrainConfig.seed``; the config is written next to the weights as training_config.json.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from srender_ros.backends.learned.features import prepare_image, trajectory_tokens
from srender_ros.backends.learned.files import CONFIG_FILE, TRAINING_CONFIG_FILE, WEIGHTS_FILE
from srender_ros.backends.learned.model import KeyframeCountModel, ModelConfig, count_parameters
from srender_ros.errors import InputError
from srender_ros.tooling.learned.labels import Sample, prefix_samples

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class TrainConfig:
    """Optimization settings (saved as training_config.json).

    Attributes:
        epochs: passes over the training set.
        batch_size: samples per step.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        loss_weight: the paper's 0.1 in 0.1 * MSE.
        loss_space: "count" (the paper: MSE of counts) or "log" (MSE of log counts, which weighs a
            factor-of-2 error the same at 2 and at 40 keyframes).
        appearance_dropout: fraction of samples trained with the default token instead of their image.
        prefixes_per_sample: extra samples per oracle sample from its prefixes (data.prefix_samples;
            drawn once from ``seed``).
        warmup_epochs: linear warm-up before cosine decay.
        grad_clip: max gradient norm.
        seed: seed of initialization, shuffling and dropout.
        threads: torch CPU threads while training (1 is fastest on a shared machine and keeps
            float summation order, hence the weights, reproducible).
        model: the architecture.
    """

    epochs: int = 50
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    loss_weight: float = 0.1
    loss_space: str = "count"
    appearance_dropout: float = 0.5
    prefixes_per_sample: int = 4
    warmup_epochs: int = 10
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 1
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"epochs={self.epochs}, batch_size={self.batch_size}: both must be >= 1")
        if self.warmup_epochs < 0:
            raise InputError(f"warmup_epochs={self.warmup_epochs}: must be >= 0")
        if not self.lr > 0:
            raise InputError(f"lr={self.lr}: must be > 0")
        if self.loss_space not in ("count", "log"):
            raise InputError(f"loss_space={self.loss_space!r}: choose 'count' or 'log'")
        if not 0.0 <= self.appearance_dropout <= 1.0:
            raise InputError(f"appearance_dropout={self.appearance_dropout}: must be in [0, 1]")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_json()
        return d


class Batch(NamedTuple):
    """Tensors of a set of samples.

    Attributes:
        tokens: [S, n_tokens, n_features] float32.
        appearance: [S, 3, side, side] float32 images (zeros where none), or None for appearance="none".
        has_appearance: [S] bool.
        counts: [S] float32 labels.
    """

    tokens: torch.Tensor
    appearance: torch.Tensor | None
    has_appearance: torch.Tensor
    counts: torch.Tensor


def tensorize(samples: Sequence[Sample], config: ModelConfig) -> Batch:
    """Features of ``samples`` for a model with ``config``."""
    if not samples:
        raise InputError("no samples: training and evaluation need at least one labelled trajectory")
    if config.appearance == "dinov2":
        raise InputError("training with DINOv2 features is not wired into tensorize; use appearance 'cnn' or 'none'")
    tokens = np.stack([trajectory_tokens(s.trajectory, s.intrinsics, config.n_tokens) for s in samples])
    has = np.array([s.image is not None for s in samples])
    app = None
    if config.appearance == "cnn":
        side = config.image_side_px
        imgs = np.zeros((len(samples), 3, side, side), dtype=np.float32)
        for i, s in enumerate(samples):
            if s.image is not None:
                imgs[i] = prepare_image(s.image, side)
        app = torch.from_numpy(imgs)
    counts = np.array([s.count for s in samples], dtype=np.float32)
    return Batch(torch.from_numpy(tokens), app, torch.from_numpy(has), torch.from_numpy(counts))


def _lr_factor(epoch: float, cfg: TrainConfig) -> float:
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    span = max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch - cfg.warmup_epochs) / span)))


@dataclass
class TrainResult:
    """A trained model and its loss curve (mean training loss per epoch)."""

    model: KeyframeCountModel
    config: TrainConfig
    history: list[float]
    seconds: float


def fit(samples: Sequence[Sample], config: TrainConfig, on_epoch: Callable[[int, float], None] | None = None,
        init: KeyframeCountModel | None = None) -> TrainResult:
    """Train a model on ``samples``: a fresh one, or a copy of ``init`` (fine-tuning).

    Args:
        samples: labelled trajectories.
        config: optimization and architecture (``config.model`` must equal ``init.config``).
        on_epoch: called with (epoch, mean loss) after every epoch.
        init: trained weights to start from (left unchanged). Its feature standardization is kept,
            so the tokens it learned on keep their meaning; new labels only move the weights.
    """
    if init is not None and init.config != config.model:
        raise InputError(f"the initial model's architecture {init.config} differs from the one asked for "
                         f"{config.model}; drop the architecture options or the initial weights")
    if config.prefixes_per_sample > 0:
        samples = list(samples) + prefix_samples(samples, config.prefixes_per_sample, config.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _fit(samples, config, on_epoch, init)
    finally:
        torch.set_num_threads(threads)


def _fit(samples: Sequence[Sample], config: TrainConfig, on_epoch: Callable[[int, float], None] | None,
         init: KeyframeCountModel | None) -> TrainResult:
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.perf_counter()
    data = tensorize(samples, config.model)
    model = KeyframeCountModel(config.model)
    if init is not None:
        model.load_state_dict(init.state_dict())
    else:
        # Feature standardization from the training set (saved as buffers with the weights).
        flat = data.tokens.reshape(-1, data.tokens.shape[-1])
        model.feat_mean.copy_(flat.mean(0))
        model.feat_std.copy_(flat.std(0).clamp_min(1e-3))
        model.set_output_bias(float(data.counts.mean()))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(data.counts)
    history: list[float] = []
    model.train()
    for epoch in range(config.epochs):
        for g in opt.param_groups:
            g["lr"] = config.lr * _lr_factor(epoch, config)
        perm = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for s in range(0, n, config.batch_size):
            idx = perm[s:s + config.batch_size]
            keep = data.has_appearance[idx] & (torch.rand(len(idx), generator=gen) >= config.appearance_dropout)
            app = None if data.appearance is None else data.appearance[idx]
            pred = model(data.tokens[idx], app, keep)
            target = data.counts[idx]
            if config.loss_space == "log":
                pred, target = torch.log(pred), torch.log(target.clamp_min(1.0))
            loss = config.loss_weight * torch.mean((pred - target) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        history.append(total / seen)
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    model.eval()
    log.info("trained %d parameters on %d samples in %.1f s", count_parameters(model), n, time.perf_counter() - t0)
    return TrainResult(model, config, history, time.perf_counter() - t0)


@torch.no_grad()
def predict_counts(model: KeyframeCountModel, samples: Sequence[Sample], use_appearance: bool = True) -> np.ndarray:
    """[S] float predicted counts (unrounded)."""
    model.eval()
    data = tensorize(samples, model.config)
    has = data.has_appearance if use_appearance else torch.zeros_like(data.has_appearance)
    return model(data.tokens, data.appearance, has).numpy().astype(np.float64)


def count_metrics(pred: np.ndarray, label: np.ndarray, max_keyframes: int = 64) -> dict[str, float]:
    """Errors of rounded predictions (clamped to 1..max_keyframes) against labels.

    Returns:
        mae; ratio_median, ratio_p90 (of max(p/l, l/p), the "factor off"); within_1_5 (fraction of
        samples within a factor of 1.5); bias (mean p - l).
    """
    p = np.clip(np.round(np.asarray(pred, np.float64)), 1, max_keyframes)
    lab = np.maximum(np.asarray(label, np.float64), 1)
    factor = np.maximum(p / lab, lab / p)
    return {"n": int(len(p)), "mae": float(np.mean(np.abs(p - lab))), "bias": float(np.mean(p - lab)),
            "ratio_median": float(np.median(factor)), "ratio_p90": float(np.percentile(factor, 90)),
            "within_1_5": float(np.mean(factor <= 1.5))}


def save_model(model: KeyframeCountModel, out_dir: Path, train_config: TrainConfig | None = None,
               extra: dict[str, Any] | None = None, keep: Sequence[str] = ()) -> Path:
    """Write model.safetensors + config.json (+ training_config.json) as the folder ``out_dir``; returns it.

    The files are written to a temporary sibling folder that then replaces ``out_dir`` (rename,
    old folder renamed aside first and deleted last), so an interrupted run never leaves a
    half-written or empty weights folder: ``out_dir`` is either the old complete folder or the
    new one. Files of the old folder are not carried over, except those named in ``keep`` (e.g.
    the label cache a training run wrote there).
    """
    import shutil
    import tempfile

    from safetensors.torch import save_file

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "srender-keyframe-count-v1"})
        (tmp / WEIGHTS_FILE).chmod(0o644)  # safetensors writes 0600; shipped weights must be readable by all
        (tmp / CONFIG_FILE).write_text(json.dumps(model.config.to_json(), indent=2) + "\n")
        if train_config is not None or extra:
            doc = {"train": train_config.to_json() if train_config else None, **(extra or {})}
            (tmp / TRAINING_CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n")
        for name in keep:
            if (out / name).is_file():
                shutil.copy2(out / name, tmp / name)
        tmp.chmod(0o755)  # mkdtemp makes 0700
        old = None
        if out.exists():
            if not out.is_dir():
                raise InputError(f"--out {out}: exists and is not a folder")
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.replace(old / out.name)
        try:
            tmp.replace(out)
        except OSError:
            if old is not None:  # put the old folder back
                (old / out.name).replace(out)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def with_model(config: TrainConfig, **model_changes: Any) -> TrainConfig:
    """``config`` with some architecture fields replaced."""
    return replace(config, model=replace(config.model, **model_changes))
