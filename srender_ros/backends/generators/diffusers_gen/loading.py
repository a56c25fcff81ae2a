"""Loading diffusers pipelines and transformers depth models the way users load them.

Every model goes through ``from_pretrained``: a local folder (what ``save_pretrained`` wrote) is
loaded with ``local_files_only=True``; a Hub id ("org/name") is passed through, offline too when
``HF_HUB_OFFLINE`` is set (then only the local Hub cache is used). Weights are safetensors only:
pickle checkpoints (``.bin``, ``.ckpt``) are refused. Before calling ``from_pretrained`` the folder
is checked so that a missing, incomplete or wrong folder gives one clear :class:`ModelLoadError`
naming the folder and what is missing, instead of a traceback from deep inside a library.

Models are cached per (kind, path, device, dtype): each loads once per process and is shared by
every generator and request that asks for it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from srender_ros.errors import BackendUnavailableError, InputError, ModelLoadError, SrenderError

if TYPE_CHECKING:
    import torch

#: A Hub repository id: "owner/name" (no leading "/" or ".", exactly one slash).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
_DTYPES = ("float32", "float16", "bfloat16")


class PipelineTask(str, Enum):
    """Which diffusers auto-pipeline resolves a folder."""

    INPAINT = "inpaint"
    TEXT2IMAGE = "text2image"


class DeviceDtype(NamedTuple):
    """Where models run and in which precision.

    Attributes:
        device: torch device string ("cpu", "cuda", "cuda:1").
        dtype: one of "float32", "float16", "bfloat16".
    """

    device: str
    dtype: str

    def torch_dtype(self) -> torch.dtype:
        import torch

        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]


class DepthModel(NamedTuple):
    """A transformers depth-estimation model with its image processor."""

    model: Any
    processor: Any
    path: str


_CACHE: dict[tuple[str, str, str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no network access (any value but "", "0", "false")."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off")


def choose_device(device: str = "auto", dtype: str = "auto") -> DeviceDtype:
    """Pick the device and dtype: CUDA in bf16 (fp16 where bf16 is unsupported), else CPU in fp32.

    Args:
        device: "auto", "cpu", "cuda" or "cuda:N".
        dtype: "auto" or one of "float32", "float16", "bfloat16".
    Raises:
        BackendUnavailableError: CUDA asked for but not available.
        InputError: an unknown device or dtype, or float16 on CPU.
    """
    import torch

    device = device.strip().lower()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"device {device!r} was requested but CUDA is not available (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda}); install a CUDA build of torch on a GPU machine, or use "
                "--device cpu (or auto)"
            )
        if device != "cuda":
            m = re.fullmatch(r"cuda:(\d+)", device)
            if m is None:
                raise InputError(f"device {device!r}: expected 'cuda' or 'cuda:N'")
            if int(m.group(1)) >= torch.cuda.device_count():
                raise BackendUnavailableError(
                    f"device {device!r} was requested but only {torch.cuda.device_count()} CUDA device(s) exist"
                )
    elif device != "cpu":
        raise InputError(f"device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")

    dtype = dtype.strip().lower()
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"
    elif dtype not in _DTYPES:
        raise InputError(f"dtype {dtype!r}: expected 'auto' or one of {', '.join(_DTYPES)}")
    if dtype == "float16" and device == "cpu":
        raise InputError("dtype float16 on CPU: many CPU kernels lack float16; use bfloat16 or float32")
    return DeviceDtype(device, dtype)


def _is_hub_id(path: str) -> bool:
    return bool(_HUB_ID.match(path)) and not Path(path).exists()


def _weights_problem(folder: Path) -> str | None:
    """Why ``folder`` (a model with a config.json) cannot be loaded safetensors-only, or None."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if any(n.endswith(".safetensors") or n.endswith(".safetensors.index.json") for n in names):
        return None
    pickles = [n for n in names if n.endswith(_PICKLE_SUFFIXES)]
    if pickles:
        return (f"has only pickle weights ({', '.join(sorted(pickles))}); srender loads safetensors only: "
                "re-save with save_pretrained(dir, safe_serialization=True)")
    return "has no weights (*.safetensors)"


def check_pipeline_folder(path: str | Path) -> dict[str, Any]:
    """Check that ``path`` is a complete diffusers pipeline folder; return its model_index.json.

    Raises:
        ModelLoadError: missing folder, no model_index.json (e.g. a transformers model folder),
            a component listed in model_index.json without its subfolder, or weights that are not
            safetensors.
    """
    folder = Path(path)
    if not folder.exists():
        raise ModelLoadError(f"model folder {str(folder)!r} does not exist: pass a diffusers pipeline folder "
                             "(written by save_pretrained) or a Hub id; see docs/diffusion.md")
    if not folder.is_dir():
        raise ModelLoadError(f"model path {str(folder)!r} is a file, not a folder: pass the pipeline folder "
                             "holding model_index.json (single-file .safetensors checkpoints are not supported)")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        config = folder / "config.json"
        if config.is_file():
            kind = _read_json(config).get("model_type") or _read_json(config).get("_class_name") or "unknown"
            raise ModelLoadError(f"{str(folder)!r} is a single model (config.json, type {kind!r}), not a diffusers "
                                 "pipeline: the diffusion model folder needs a model_index.json (e.g. an inpainting "
                                 "pipeline saved with save_pretrained); did you swap --model and --depth-model?")
        raise ModelLoadError(f"{str(folder)!r} is not a diffusers pipeline folder: model_index.json is missing")
    index = _read_json(index_path)
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or None in spec:
            continue
        sub = folder / name
        if not sub.is_dir():
            raise ModelLoadError(f"model folder {str(folder)!r} is incomplete: model_index.json lists the "
                                 f"component {name!r} ({spec[1]}) but the subfolder {name + '/'!r} is missing; "
                                 "copy the whole pipeline folder")
        if (sub / "config.json").is_file():
            problem = _weights_problem(sub)
            if problem is not None:
                raise ModelLoadError(f"model folder {str(folder)!r} is incomplete: component {name + '/'!r} {problem}")
    return index


def check_depth_folder(path: str | Path) -> dict[str, Any]:
    """Check that ``path`` is a transformers model folder with an image processor; return config.json.

    Raises:
        ModelLoadError: missing folder, a diffusers pipeline folder, missing config.json,
            preprocessor_config.json or safetensors weights.
    """
    folder = Path(path)
    if not folder.exists():
        raise ModelLoadError(f"depth model folder {str(folder)!r} does not exist: pass a transformers "
                             "depth-estimation model folder (e.g. Depth Anything V2) or a Hub id; see docs/diffusion.md")
    if not folder.is_dir():
        raise ModelLoadError(f"depth model path {str(folder)!r} is a file, not a model folder")
    if (folder / "model_index.json").is_file():
        raise ModelLoadError(f"{str(folder)!r} is a diffusers pipeline folder, not a transformers depth-estimation "
                             "model; did you swap --model and --depth-model?")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"depth model folder {str(folder)!r} is incomplete: config.json is missing")
    problem = _weights_problem(folder)
    if problem is not None:
        raise ModelLoadError(f"depth model folder {str(folder)!r} {problem}")
    if not (folder / "preprocessor_config.json").is_file():
        raise ModelLoadError(f"depth model folder {str(folder)!r} is incomplete: preprocessor_config.json (the "
                             "image processor) is missing; save it with processor.save_pretrained(dir)")
    return _read_json(folder / "config.json")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {str(path)!r}: {e}") from e
    if not isinstance(data, dict):
        raise ModelLoadError(f"{str(path)!r} does not hold a JSON object")
    return data


def is_out_of_memory(e: BaseException) -> bool:
    """True for torch's CUDA OOM, a host MemoryError, or a RuntimeError that reports running out of memory."""
    if isinstance(e, MemoryError):
        return True
    try:
        import torch

        if isinstance(e, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a hard dependency of this backend
        pass
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def _hub_hint(path: str) -> str:
    """Extra words for a load failure of something that is not a local folder."""
    if Path(path).is_dir():
        return ""
    where = "in the local Hub cache (HF_HUB_OFFLINE is set)" if hub_offline() else "on the Hub"
    return f" (no such local folder; looked for the Hub id {where})"


def _from_pretrained_kwargs(path: str) -> dict[str, Any]:
    local = Path(path).is_dir() or hub_offline()
    return {"local_files_only": local, "use_safetensors": True}


def _cached(key: tuple[str, str, str, str], load: Any) -> Any:
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load()
        return _CACHE[key]


def clear_model_cache() -> None:
    """Forget every cached model (frees them once no generator holds a reference)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def cached_model_keys() -> list[tuple[str, str, str, str]]:
    """(kind, path, device, dtype) of every model loaded so far in this process."""
    with _CACHE_LOCK:
        return list(_CACHE)


def _canonical(path: str | Path) -> str:
    p = str(path)
    return p if _is_hub_id(p) else str(Path(p).resolve())


def load_pipeline(path: str | Path, task: PipelineTask, where: DeviceDtype) -> Any:
    """Load (once per process) a diffusers pipeline for ``task`` from a folder or Hub id.

    Uses ``AutoPipelineForInpainting`` / ``AutoPipelineForText2Image``, so a text-to-image folder
    also loads as an inpainting pipeline (diffusers maps e.g. StableDiffusionPipeline to
    StableDiffusionInpaintPipeline).

    Raises:
        ModelLoadError: bad folder, a pipeline with no ``task`` variant, or out of memory.
    """
    key_path = _canonical(path)
    if not _is_hub_id(str(path)):
        check_pipeline_folder(path)

    def load() -> Any:
        from diffusers import AutoPipelineForInpainting, AutoPipelineForText2Image

        auto = AutoPipelineForInpainting if task is PipelineTask.INPAINT else AutoPipelineForText2Image
        what = "an inpainting" if task is PipelineTask.INPAINT else "a text-to-image"
        try:
            pipe = auto.from_pretrained(key_path, dtype=where.torch_dtype(), **_from_pretrained_kwargs(key_path))
            pipe = pipe.to(where.device)
        except SrenderError:
            raise
        except Exception as e:
            if is_out_of_memory(e):
                raise ModelLoadError(f"out of memory loading {key_path!r} on {where.device} ({where.dtype}): free "
                                     "memory, use a smaller model or resolution, or --device cpu") from e
            raise ModelLoadError(f"cannot load {key_path!r} as {what} pipeline{_hub_hint(key_path)}: "
                                 f"{type(e).__name__}: {e}") from e
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return _cached((task.value, key_path, where.device, where.dtype), load)


def load_depth_model(path: str | Path, where: DeviceDtype) -> DepthModel:
    """Load (once per process) a transformers depth-estimation model and its image processor.

    The depth model always runs in float32: it is small (25M parameters for Depth Anything V2
    small) and depth precision matters more than its speed.

    Raises:
        ModelLoadError: bad folder, a model that is not a depth-estimation model, or out of memory.
    """
    key_path = _canonical(path)
    if not _is_hub_id(str(path)):
        check_depth_folder(path)

    def load() -> DepthModel:
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        kwargs = _from_pretrained_kwargs(key_path)
        try:
            model = AutoModelForDepthEstimation.from_pretrained(key_path, dtype=torch.float32, **kwargs)
            model = model.to(where.device).eval()
            processor = AutoImageProcessor.from_pretrained(key_path, local_files_only=kwargs["local_files_only"])
        except SrenderError:
            raise
        except Exception as e:
            if is_out_of_memory(e):
                raise ModelLoadError(f"out of memory loading depth model {key_path!r} on {where.device}") from e
            raise ModelLoadError(f"cannot load {key_path!r} as a depth-estimation model{_hub_hint(key_path)}: "
                                 f"{type(e).__name__}: {e}") from e
        return DepthModel(model, processor, key_path)

    return _cached(("depth", key_path, where.device, "float32"), load)
