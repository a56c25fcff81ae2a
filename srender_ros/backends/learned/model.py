"""The keyframe-count transformer (SRENDER section 3.1) in torch.

One token per pose (features from :mod:`srender_ros.backends.learned.features` through a 2-layer MLP), one
global appearance token (built-in CNN of the first keyframe, a projected DINOv2 class token, or a
learned default token when no image is known), 4 pre-norm transformer encoder layers with 4 heads,
and a scalar per pose token.

Count head. The paper averages per-token scalars into the count. We keep the average but read each
token's scalar as "new keyframes needed in this token's stretch of the trajectory" (>= 0 through a
softplus) and multiply the mean by the token count, plus the one keyframe every new world needs:

    count = 1 + n_tokens * mean_i softplus(s_i)

Because the trajectory is always resampled to ``n_tokens`` poses the multiplier is a constant (so
this IS the paper's average up to an affine map), but the reading matters for training: a token
covering a long, fast stretch should emit a large number, and the count grows with the motion
rather than being bounded by a single token's output range.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from srender_ros.backends.learned.features import DEFAULT_N_TOKENS, IMAGE_SIDE_PX, N_TOKEN_FEATURES
from srender_ros.errors import InputError, ModelLoadError

APPEARANCE_KINDS = ("none", "cnn", "dinov2")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`KeyframeCountModel` (saved as config.json next to the weights).

    Attributes:
        n_tokens: pose tokens per trajectory.
        n_features: features per pose token.
        width: transformer width (d_model).
        layers: transformer encoder layers.
        heads: attention heads.
        ff_mult: feed-forward width as a multiple of ``width``.
        dropout: dropout inside the transformer (training only).
        appearance: "none" (learned default token only), "cnn" (built-in encoder of the first
            keyframe image) or "dinov2" (projected DINOv2 class token).
        appearance_dim: DINOv2 hidden size (only for appearance="dinov2").
        image_side_px: side of the square image the CNN reads.
        max_keyframes: predictions are clamped to 1..max_keyframes.
    """

    n_tokens: int = DEFAULT_N_TOKENS
    n_features: int = N_TOKEN_FEATURES
    width: int = 64
    layers: int = 4
    heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.0
    appearance: str = "cnn"
    appearance_dim: int = 0
    image_side_px: int = IMAGE_SIDE_PX
    max_keyframes: int = 64

    def __post_init__(self) -> None:
        if self.appearance not in APPEARANCE_KINDS:
            raise InputError(f"appearance={self.appearance!r}: choose one of {', '.join(APPEARANCE_KINDS)}")
        if self.appearance == "dinov2" and self.appearance_dim < 1:
            raise InputError("appearance='dinov2' needs appearance_dim (the DINOv2 hidden size)")
        for name in ("n_tokens", "n_features", "width", "layers", "heads", "ff_mult", "image_side_px", "max_keyframes"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"model config {name}={getattr(self, name)}: must be >= 1")
        if self.width % self.heads:
            raise InputError(f"model config width={self.width} must be a multiple of heads={self.heads}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        """Build from a JSON dict, refusing unknown keys (a config from another model is an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelLoadError(f"{source}: unknown model config keys {unknown}; is this a keyframe-count model config?")
        try:
            return cls(**data)
        except (TypeError, InputError) as exc:
            raise ModelLoadError(f"{source}: invalid model config: {exc}") from exc


class ImageEncoder(nn.Module):
    """A small CNN: [B, 3, S, S] image in [0, 1] -> [B, width] appearance token."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(32, 48, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(48, width, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image * 2.0 - 1.0)


class KeyframeCountModel(nn.Module):
    """Pose tokens + appearance token -> keyframe count (a float >= 1 per trajectory)."""

    feat_mean: torch.Tensor  # [n_features] buffer
    feat_std: torch.Tensor  # [n_features] buffer

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        w = c.width
        # Standardization of the raw features, fitted on the training set and saved with the weights.
        self.register_buffer("feat_mean", torch.zeros(c.n_features))
        self.register_buffer("feat_std", torch.ones(c.n_features))
        self.pose_mlp = nn.Sequential(nn.Linear(c.n_features, w), nn.GELU(), nn.Linear(w, w))
        self.pos_embed = nn.Parameter(torch.zeros(c.n_tokens, w))
        self.default_token = nn.Parameter(torch.zeros(w))
        self.appearance_type = nn.Parameter(torch.zeros(w))
        self.image_encoder: nn.Module | None = None
        if c.appearance == "cnn":
            self.image_encoder = ImageEncoder(w)
        elif c.appearance == "dinov2":
            self.image_encoder = nn.Sequential(nn.LayerNorm(c.appearance_dim), nn.Linear(c.appearance_dim, w))
        layer = nn.TransformerEncoderLayer(w, c.heads, w * c.ff_mult, c.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, 1))
        nn.init.normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.default_token, std=0.02)
        nn.init.normal_(self.appearance_type, std=0.02)

    def set_output_bias(self, mean_count: float) -> None:
        """Start training near the mean label: softplus(bias) * n_tokens + 1 = mean_count."""
        per_token = max(mean_count - 1.0, 0.05) / self.config.n_tokens
        bias = math.log(math.expm1(per_token))
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.bias.fill_(bias)
            last.weight.mul_(0.1)

    def forward(self, tokens: torch.Tensor, appearance: torch.Tensor | None = None,
                has_appearance: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted keyframe counts.

        Args:
            tokens: [B, n_tokens, n_features] raw pose features.
            appearance: [B, 3, S, S] images (cnn) or [B, appearance_dim] class tokens (dinov2), or None.
            has_appearance: [B] bool, False where ``appearance`` holds no real input (use the default token).
        Returns:
            [B] float counts (>= 1, not rounded).
        """
        b = tokens.shape[0]
        x = self.pose_mlp((tokens - self.feat_mean) / self.feat_std) + self.pos_embed
        app = self.default_token.expand(b, -1)
        if appearance is not None and self.image_encoder is not None:
            enc = self.image_encoder(appearance)
            mask = torch.ones(b, dtype=torch.bool) if has_appearance is None else has_appearance.bool()
            app = torch.where(mask[:, None], enc, app)
        app = (app + self.appearance_type)[:, None, :]
        h = self.encoder(torch.cat([app, x], dim=1))[:, 1:]
        per_token = nn.functional.softplus(self.head(h)[..., 0])       # [B, n_tokens] keyframes per stretch
        return 1.0 + per_token.mean(dim=1) * self.config.n_tokens


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
