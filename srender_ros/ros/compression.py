"""Compressed images as image_transport's compressed and compressedDepth plugins write them.

``<camera>/image_raw/compressed`` (sensor_msgs/CompressedImage): JPEG or PNG of the RGB frame,
format ``"rgb8; jpeg compressed bgr8"`` (or ``png``): the raw encoding, then the codec and the
channel order inside the file, exactly like image_transport's ``compressed`` plugin, so
``image_transport republish``, rqt_image_view, Foxglove and ``cv2.imdecode`` read them.

``<camera>/depth/image_raw/compressedDepth``: the ``compressedDepth`` plugin's format for 32FC1:
a 12-byte header (int32 format = 0 for PNG, float32 depthQuantA, depthQuantB), then a 16-bit PNG
of the quantized inverse depth ``q = depthQuantA / z + depthQuantB`` (0 where the depth is NaN or
beyond ``max_depth``); decode with ``z = depthQuantA / (q - depthQuantB)``.

Encoding runs only for topics someone subscribes to (the node checks before calling).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError

#: compressedDepth defaults of image_transport_plugins (depth_max 10 m, depth_quantization 100).
DEPTH_MAX_M = 10.0
DEPTH_QUANTIZATION = 100.0


def encode_rgb(rgb: NDArray[np.floating], fmt: str, jpeg_quality: int) -> tuple[str, bytes]:
    """Compress an RGB frame.

    Args:
        rgb: [H, W, 3] float in [0, 1] (the renderer's output) or uint8.
        fmt: ``jpeg`` or ``png``.
        jpeg_quality: 1..100.
    Returns:
        (CompressedImage.format, data).
    """
    import cv2

    img = rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    bgr = np.ascontiguousarray(img[..., ::-1])
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise InputError(f"compressed format {fmt!r}: expected jpeg or png")
    if not ok:
        raise InputError(f"OpenCV could not encode a {img.shape} frame as {fmt}")
    return f"rgb8; {fmt} compressed bgr8", buf.tobytes()


def encode_depth(depth_m: NDArray[np.floating], depth_max_m: float = DEPTH_MAX_M,
                 quantization: float = DEPTH_QUANTIZATION) -> tuple[str, bytes]:
    """compressedDepth of a [H, W] float depth image in metres (NaN = nothing rendered)."""
    import cv2

    quant_a = quantization * (quantization + 1.0)
    quant_b = 1.0 - quant_a / depth_max_m
    z = np.asarray(depth_m, dtype=np.float32)
    valid = np.isfinite(z) & (z > 0) & (z < depth_max_m)
    inv = np.zeros(z.shape, np.uint16)
    inv[valid] = np.clip(quant_a / z[valid] + quant_b, 1, 65535).astype(np.uint16)
    ok, buf = cv2.imencode(".png", inv, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise InputError(f"OpenCV could not encode a {z.shape} depth image as PNG")
    header = struct.pack("<iff", 0, quant_a, quant_b)
    return "32FC1; compressedDepth png", header + buf.tobytes()


def decode_depth(data: bytes) -> NDArray[np.float32]:
    """Inverse of :func:`encode_depth` (what image_transport's subscriber does): [H, W] metres, NaN empty."""
    import cv2

    _fmt, quant_a, quant_b = struct.unpack("<iff", data[:12])
    inv = cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_UNCHANGED)
    if inv is None:
        raise InputError("compressedDepth: the PNG after the 12-byte header does not decode")
    z = np.full(inv.shape, np.nan, np.float32)
    nz = inv > 0
    z[nz] = quant_a / (inv[nz].astype(np.float32) - quant_b)
    return z


class CompressedPublishers:
    """The two compressed topics of one camera, created on ``node`` with ``qos``."""

    def __init__(self, node: Any, qos: Any, image_topic: str = "camera/image_raw",
                 depth_topic: str = "camera/depth/image_raw") -> None:
        from sensor_msgs.msg import CompressedImage

        self._msg = CompressedImage
        self.image = node.create_publisher(CompressedImage, image_topic + "/compressed", qos)
        self.depth = node.create_publisher(CompressedImage, depth_topic + "/compressedDepth", qos)

    def wanted(self) -> tuple[bool, bool]:
        """(someone subscribes to the compressed image, to the compressedDepth image)."""
        return self.image.get_subscription_count() > 0, self.depth.get_subscription_count() > 0

    def image_msg(self, rgb: NDArray[np.floating], header: Any, fmt: str, jpeg_quality: int) -> Any:
        form, data = encode_rgb(rgb, fmt, jpeg_quality)
        return self._msg(header=header, format=form, data=data)

    def depth_msg(self, depth_m: NDArray[np.floating], header: Any) -> Any:
        form, data = encode_depth(depth_m)
        return self._msg(header=header, format=form, data=data)
