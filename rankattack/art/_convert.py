"""ART's array boundary: numpy in gives numpy out, a tensor in gives a tensor out.

Tensors stay on their device: nothing here copies a tensor to the host. Numpy arrays
are moved to the estimator's device once and the result is copied back once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ArrayLike", "as_tensor", "check_art_param", "like_input"]

#: What ART passes around: numpy arrays, or torch tensors for the PyTorch fast paths.
ArrayLike = np.ndarray | Tensor


def as_tensor(value: Any, name: str, device: torch.device, *, floating: bool = True) -> Tensor:
    """Convert ``value`` (numpy array or tensor) to a tensor on ``device``.

    Floating numpy arrays become float32 (ART's ``ART_NUMPY_DTYPE``); a tensor keeps its
    dtype and is only moved if it lives on another device.
    """
    if isinstance(value, Tensor):
        out = value.detach()
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got an object array")
        if floating or np.issubdtype(value.dtype, np.floating):
            out = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        else:
            out = torch.from_numpy(np.ascontiguousarray(value))
    else:
        raise TypeError(
            f"{name} must be a numpy.ndarray or a torch.Tensor, got {type(value).__name__}"
        )
    if floating and not out.is_floating_point():
        out = out.float()
    return out.to(device)


def like_input(out: Tensor, reference: ArrayLike) -> ArrayLike:
    """Return ``out`` in the form of ``reference``: a tensor on its device, or a numpy array.

    Numpy results take the reference's floating dtype (float32 for integer references).
    """
    if isinstance(reference, Tensor):
        return out.detach().to(reference.device)
    arr = out.detach().cpu().numpy()
    dtype = reference.dtype if np.issubdtype(reference.dtype, np.floating) else np.float32
    return arr.astype(dtype, copy=False)


def check_art_param(check: Callable[..., Any], value: Any, name: str, **kwargs: Any) -> Any:
    """Run a core argument check, raising ``ValueError`` as ART's ``_check_params`` does."""
    try:
        return check(value, name, **kwargs)
    except TypeError as err:
        raise ValueError(str(err)) from err
