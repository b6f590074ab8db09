"""The JSON wire format of the search service (what [server][rankattack.blackbox.server] and
[httporacle][rankattack.blackbox.httporacle] exchange).

Request (``POST /search``)::

    {"images": {"dtype": "float32", "shape": [M, *S], "data": "<base64 little-endian>"},
     "top_n": 50 or null, "return_scores": false}

Response::

    {"ids": [[...], ...], "scores": [[...], ...] or null, "gallery_size": N}

``GET /info`` answers ``{"gallery_size": N, "input_shape": [*S], "metric": "cosine"}``.
Errors answer a 4xx/5xx status with ``{"error": "<message>"}``. Images travel as raw
float32 in base64 inside the JSON (about 1.33 bytes per byte, and no float printing or
parsing), the ids as JSON lists.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["decode_images", "encode_images"]


def encode_images(images: Tensor) -> dict[str, Any]:
    """``{"dtype", "shape", "data"}`` of ``images`` (sent as little-endian float32)."""
    arr = images.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
    return {
        "dtype": "float32",
        "shape": list(arr.shape),
        "data": base64.b64encode(arr.astype("<f4", copy=False).tobytes()).decode("ascii"),
    }


def decode_images(payload: Any) -> Tensor:
    """Inverse of [encode_images][rankattack.blackbox.protocol.encode_images]; ``ValueError`` naming
    what is wrong."""
    if not isinstance(payload, dict):
        raise ValueError("images must be an object with dtype, shape and data")
    if payload.get("dtype") != "float32":
        raise ValueError(f"images.dtype must be 'float32', got {payload.get('dtype')!r}")
    shape = payload.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) < 2
        or not all(isinstance(s, int) and s >= 1 for s in shape)
    ):
        raise ValueError(f"images.shape must be a list of >= 2 positive ints, got {shape!r}")
    data = payload.get("data")
    if not isinstance(data, str):
        raise ValueError("images.data must be a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise ValueError(f"images.data is not valid base64: {exc}") from None
    if len(raw) != 4 * math.prod(shape):
        raise ValueError(
            f"images.data holds {len(raw)} bytes, expected {4 * math.prod(shape)} for shape {shape}"
        )
    arr = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
    return torch.from_numpy(arr)
