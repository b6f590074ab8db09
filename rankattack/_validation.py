"""Argument checks shared by the public API: fail early, name the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def check_tensor(
    value: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    floating: bool = False,
    integer: bool = False,
) -> Tensor:
    """Check that ``value`` is a tensor of the expected rank and dtype kind."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(value.shape)}")
    if min_ndim is not None and value.dim() < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got shape {tuple(value.shape)}"
        )
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if integer and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor (int64), got dtype {value.dtype}")
    return value


def check_finite(value: Tensor, name: str) -> None:
    """Raise if ``value`` holds NaN or infinity (one host sync; call before any loop)."""
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_unit_range(value: Tensor, name: str) -> None:
    """Raise if ``value`` is not finite or leaves ``[0, 1]``."""
    if value.numel() == 0:
        return
    lo, hi = torch.aminmax(value.detach())
    lo_f, hi_f = float(lo), float(hi)
    if not (math.isfinite(lo_f) and math.isfinite(hi_f)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if lo_f < 0.0 or hi_f > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1] (inputs are images scaled to [0, 1]; wrap a model "
            f"that expects normalized inputs with rankattack.EmbeddingModel(mean=..., std=...)), "
            f"got values in [{lo_f:.4g}, {hi_f:.4g}]"
        )


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Check a real scalar parameter and its range; return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (out <= low if low_open else out < low):
        op = ">" if low_open else ">="
        raise ValueError(f"{name} must be {op} {low}, got {value!r}")
    if high is not None and out > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return out


def check_int(value: Any, name: str, *, low: int | None = None) -> int:
    """Check an integer parameter and its lower bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """Check a flag: a bool, not merely a truthy value."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of the allowed strings."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
