"""A universal perturbation as a value: its eps-ball, adding it to inputs, its file format.

The image-agnostic perturbation r of the universal attack (paper Sec. 5.2, Eq. 14) is one
tensor of the input shape ``[*S]``; these functions check it lies in the L-inf ball,
add it to inputs, and save / load it with the parameters it was fitted with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from rankattack._safeload import safe_load
from rankattack._validation import check_tensor

__all__ = [
    "FORMAT",
    "add_perturbation",
    "check_perturbation",
    "load_perturbation",
    "save_perturbation",
]

#: The ``format`` tag of a saved universal perturbation.
FORMAT = "rankattack.universal/1"


def check_perturbation(value: Any, eps: float) -> Tensor:
    """A detached copy of ``value`` after checking it lies in the L-inf ball of radius eps."""
    check_tensor(value, "perturbation", min_ndim=1, floating=True)
    bound = float(value.detach().abs().max()) if value.numel() else 0.0
    if not bound <= eps * (1 + 1e-6) + 1e-7:
        raise ValueError(
            f"perturbation must lie in the L-inf ball of radius eps={eps}, got "
            f"max |r| = {bound:.6g}"
        )
    return value.detach().clone()


def add_perturbation(r: Tensor, x: Tensor) -> Tensor:
    """``clip(x + r, 0, 1)`` for inputs ``[N, *S]`` (or one input ``[*S]``)."""
    check_tensor(x, "x", floating=True)
    if tuple(x.shape[-r.dim() :]) != tuple(r.shape) or x.dim() not in (r.dim(), r.dim() + 1):
        raise ValueError(
            f"x must be [N, {', '.join(map(str, r.shape))}] or one input of shape "
            f"{tuple(r.shape)} to match the perturbation, got shape {tuple(x.shape)}"
        )
    return (x + r.to(device=x.device, dtype=x.dtype)).clamp(0.0, 1.0)


def save_perturbation(path: str | os.PathLike[str], r: Tensor, params: Mapping[str, Any]) -> None:
    """Save ``r`` and the parameters it was fitted with (``torch.save``)."""
    torch.save({"format": FORMAT, "perturbation": r.cpu(), "params": dict(params)}, path)


def load_perturbation(
    path: str | os.PathLike[str], expected: Mapping[str, Any]
) -> tuple[Tensor, dict[str, Any]]:
    """Load what ``save_perturbation`` wrote: the perturbation (on the CPU) and its params.

    Raises ``ValueError`` if ``path`` holds no universal perturbation, or one fitted with
    other values of the ``expected`` parameters.
    """
    blob = safe_load(path, "universal perturbation", map_location="cpu")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a universal perturbation saved by save()")
    params: dict[str, Any] = blob["params"]
    for key, value in expected.items():
        if params.get(key) != value:
            raise ValueError(
                f"{path} holds a perturbation fitted with {key}={params.get(key)!r}, "
                f"but this attack has {key}={value!r}"
            )
    return blob["perturbation"], params
