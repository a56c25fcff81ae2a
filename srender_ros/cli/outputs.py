"""Writers for what `srender render` produces: mp4 video, PNG frames, metrics JSON.

Every file is written beside its final name and renamed into place when complete, so an
interrupted run never leaves a file that looks finished but is not.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError


def to_uint8(rgb: NDArray[np.floating]) -> NDArray[np.uint8]:
    """[..., 3] float in [0, 1] -> uint8 (rounded)."""
    return (np.clip(np.asarray(rgb), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: Path, rgb: NDArray[np.floating]) -> None:
    """Write one [H, W, 3] float image as PNG, atomically."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(to_uint8(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"could not encode PNG for {path}")
    atomic_write_bytes(path, buf.tobytes())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Pretty JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


class VideoWriter:
    """H.264 mp4 through imageio-ffmpeg (ffmpeg ships inside that wheel); finalized atomically.

    Args:
        path: final .mp4 path. fps: frame rate.
    """

    def __init__(self, path: Path, fps: float) -> None:
        import imageio.v2 as imageio

        if path.suffix.lower() != ".mp4":
            raise InputError(f"--out {path}: only .mp4 video is written")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._tmp = path.with_name(f".{path.stem}.partial.mp4")
        # macro_block_size=1 keeps odd sizes exact; yuv420p so common players open it.
        self._writer = imageio.get_writer(self._tmp, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                          ffmpeg_log_level="error", pixelformat="yuv420p")

    def append(self, rgb: NDArray[np.floating]) -> None:
        """Add frames: [H, W, 3] or [B, H, W, 3] floats in [0, 1]."""
        frames = np.asarray(rgb)
        if frames.ndim == 3:
            frames = frames[None]
        # yuv420p needs even sizes: replicate the last row/column when odd.
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        for frame in frames:
            self._writer.append_data(to_uint8(frame))

    def close(self) -> None:
        """Finish the file and move it into place."""
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)
