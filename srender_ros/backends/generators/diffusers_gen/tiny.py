"""Tiny random-weight diffusion and depth models built in code, for tests and benchmarks.

Nothing here downloads anything. The components follow the shapes of the real ones (a Stable
Diffusion inpainting / text-to-image pipeline, a Depth Anything V2 depth model) at a size that runs
two denoising steps on 64 px images in a fraction of a second. Their outputs are noise, but every
code path that a real model takes (save_pretrained -> from_pretrained, pipeline calls, image
processing, depth post-processing) is exercised for real.

``save_tiny_models(dir)`` writes the three folders a user would have on disk::

    dir/inpaint/   StableDiffusionInpaintPipeline (model_index.json, unet/, vae/, text_encoder/, ...)
    dir/t2i/       StableDiffusionPipeline
    dir/depth/     DepthAnythingForDepthEstimation + DPT image processor (config.json, model.safetensors)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from transformers import CLIPTokenizer, DepthAnythingForDepthEstimation
    from transformers.image_processing_utils import BaseImageProcessor

#: Hidden size of the tiny CLIP text encoder; the tiny UNet's cross-attention width must match.
TINY_TEXT_HIDDEN = 32


class TinyModelPaths(NamedTuple):
    """Folders written by :func:`save_tiny_models`."""

    inpaint: Path
    t2i: Path
    depth: Path


def byte_level_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer with a byte-level vocabulary and no merges, built offline.

    Every UTF-8 byte is one token (with a ``</w>`` twin at word ends), plus the start and end
    tokens: 514 ids. Real CLIP checkpoints ship a 49408-token BPE vocabulary; this one only has to
    turn any prompt into ids below the text encoder's vocabulary size.
    """
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    for ch in alphabet:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def _tiny_sd_components(in_channels: int, seed: int) -> dict[str, object]:
    """UNet, VAE, CLIP text encoder, tokenizer and DDIM scheduler of a tiny Stable Diffusion."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    # diffusers builds these classes' attributes dynamically; typed as Any so mypy does not guess.
    unet: Any = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        cross_attention_dim=TINY_TEXT_HIDDEN,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        norm_num_groups=8,
    )
    torch.manual_seed(seed + 1)
    # Four levels, like SD's VAE: the latent is the image / 8, so size rounding is exercised for real.
    vae: Any = AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
            hidden_size=TINY_TEXT_HIDDEN,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=5,
            vocab_size=600,
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
        steps_offset=1,
    )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": byte_level_clip_tokenizer(),
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
        "requires_safety_checker": False,
    }


def tiny_inpaint_pipeline(seed: int = 0) -> StableDiffusionInpaintPipeline:
    """A StableDiffusionInpaintPipeline with a 9-channel tiny UNet (latents + mask + masked image)."""
    from diffusers import StableDiffusionInpaintPipeline

    pipe: Any = StableDiffusionInpaintPipeline(**_tiny_sd_components(in_channels=9, seed=seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_t2i_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """A StableDiffusionPipeline (text-to-image) with a 4-channel tiny UNet."""
    from diffusers import StableDiffusionPipeline

    pipe: Any = StableDiffusionPipeline(**_tiny_sd_components(in_channels=4, seed=seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_depth_model(seed: int = 0) -> tuple[DepthAnythingForDepthEstimation, BaseImageProcessor]:
    """A Depth Anything (V2 layout: DINOv2 backbone + DPT head) model and its image processor.

    The processor resizes to 56 px (a multiple of the 14 px patch) keeping the aspect ratio,
    like the real one does at 518 px.
    """
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    backbone = Dinov2Config(  # type: ignore[call-arg]  # out_features is a documented kwarg, not in the stubs
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        mlp_ratio=2,
        patch_size=14,
        image_size=56,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        reassemble_hidden_size=32,
        patch_size=14,
        depth_estimation_type="relative",
    )
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(config).eval()
    # The head ends in a ReLU; random weights leave it almost all zeros. A positive bias makes the
    # prediction vary over the image, so the depth alignment code sees a non-degenerate input.
    with torch.no_grad():
        model.head.conv3.bias.fill_(1.0)
    processor = DPTImageProcessorPil(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        do_pad=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    return model, processor


def save_tiny_models(root: str | Path, seed: int = 0) -> TinyModelPaths:
    """Write the tiny inpainting, text-to-image and depth models as local model folders.

    Args:
        root: folder to create ``inpaint/``, ``t2i/`` and ``depth/`` in (created if missing).
        seed: torch seed for the random weights.
    Returns:
        the three folder paths, loadable with ``from_pretrained(..., local_files_only=True)``.
    """
    root = Path(root)
    paths = TinyModelPaths(root / "inpaint", root / "t2i", root / "depth")
    inpaint: Any = tiny_inpaint_pipeline(seed)
    t2i: Any = tiny_t2i_pipeline(seed)
    inpaint.save_pretrained(paths.inpaint, safe_serialization=True)
    t2i.save_pretrained(paths.t2i, safe_serialization=True)
    model, processor = tiny_depth_model(seed)
    model.save_pretrained(paths.depth, safe_serialization=True)
    processor.save_pretrained(paths.depth)
    return paths
