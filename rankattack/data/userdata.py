"""Converting a user's own data (tensors, numpy arrays, torch Datasets).

[as_tensors][rankattack.data.userdata.as_tensors] validates the inputs and labels a user brings and
converts them to what the attacks and the evaluation code expect: float32 inputs in ``[0, 1]``
shaped ``[N, ...]`` (uint8 is divided by 255) and int64 class labels shaped ``[N]``. A map-style or
iterable Dataset is read item by item, as ``(x, y)`` pairs or bare inputs. Every error message
starts with the name of the offending argument (``data:`` or ``labels:``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["as_tensors"]


def _is_pair(item: object) -> bool:
    return isinstance(item, (tuple, list)) and len(item) == 2


def _sample_to_tensor(value: object, where: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        return _numpy_to_tensor(value, where)
    raise TypeError(
        f"data: {where} is a {type(value).__name__}; expected a torch.Tensor or "
        "numpy.ndarray (convert images first, e.g. with torchvision's ToTensor)"
    )


def _numpy_to_tensor(array: np.ndarray, where: str) -> Tensor:
    """Inputs from numpy: floating -> float32, uint8 kept; anything else rejected."""
    if array.dtype.kind == "f":
        converted = np.ascontiguousarray(array, dtype=np.float32)
    elif array.dtype == np.uint8:
        converted = np.ascontiguousarray(array)
    else:
        raise TypeError(
            f"data: {where} has numpy dtype {array.dtype}; expected a floating dtype with "
            "values in [0, 1] or uint8 with values in 0..255"
        )
    if not converted.flags.writeable:
        converted = converted.copy()
    return torch.from_numpy(converted)


def _int_label(value: object) -> int | None:
    """``value`` as an int if it is an integer scalar (not bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if (
        isinstance(value, Tensor)
        and value.numel() == 1
        and value.dim() <= 1
        and not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
    ):
        return int(value.item())
    if (
        isinstance(value, np.ndarray)
        and value.size == 1
        and value.ndim <= 1
        and value.dtype.kind in "iu"
    ):
        return int(value.reshape(()).item())
    return None


def _dataset_items(dataset: torch.utils.data.Dataset[Any]) -> Iterable[Any]:
    if isinstance(dataset, torch.utils.data.IterableDataset):
        return dataset
    try:
        length = len(dataset)  # type: ignore[arg-type]
    except TypeError as exc:
        raise TypeError(
            "data: a map-style Dataset must define __len__ (or use an IterableDataset)"
        ) from exc
    return (dataset[i] for i in range(length))


def _collect_dataset(
    dataset: torch.utils.data.Dataset[Any],
) -> tuple[Tensor, Tensor | None]:
    xs: list[Tensor] = []
    ys: list[int] = []
    pairs: bool | None = None
    for i, item in enumerate(_dataset_items(dataset)):
        if isinstance(item, (tuple, list)) and len(item) == 1:
            item = item[0]  # e.g. TensorDataset(x) yields (x,)
        is_pair = _is_pair(item)
        if pairs is None:
            pairs = is_pair
        elif is_pair != pairs:
            first = "(x, y) pairs" if pairs else "bare inputs"
            raise TypeError(
                f"data: item {i} is {'an (x, y) pair' if is_pair else 'a bare input'}, "
                f"but earlier items were {first}; expected every item to be the same kind"
            )
        x = _sample_to_tensor(item[0] if is_pair else item, f"item {i}")
        if is_pair:
            label = _int_label(item[1])
            if label is None:
                raise TypeError(
                    f"data: item {i} has a label of type {type(item[1]).__name__}; "
                    "expected an integer class label"
                )
            ys.append(label)
        if xs and (x.shape != xs[0].shape or x.dtype != xs[0].dtype):
            raise ValueError(
                f"data: item {i} has shape {tuple(x.shape)} and dtype {x.dtype}, expected "
                f"shape {tuple(xs[0].shape)} and dtype {xs[0].dtype} like item 0"
            )
        xs.append(x)
    if not xs:
        raise ValueError("data: the Dataset is empty; expected at least one sample")
    stacked = torch.stack(xs)
    return stacked, (torch.tensor(ys, dtype=torch.int64) if pairs else None)


def _convert_inputs(x: Tensor) -> Tensor:
    if x.dtype == torch.uint8:
        x = x.to(torch.float32).div_(255.0)
    elif x.is_floating_point():
        x = x.to(torch.float32)
    else:
        raise TypeError(
            f"data: unsupported dtype {x.dtype}; expected a floating dtype with values in "
            "[0, 1] or uint8 with values in 0..255"
        )
    if x.dim() < 2:
        raise ValueError(
            f"data: expected at least 2 dimensions [N, ...], got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError("data: expected at least one sample, got N = 0")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("data: contains NaN or infinite values; expected finite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"data: values must be in [0, 1], got range [{lo:g}, {hi:g}]")
    return x


def _convert_labels(labels: object, n: int) -> Tensor:
    if isinstance(labels, Tensor):
        y = labels.detach()
    elif isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels: expected an integer dtype, got numpy {labels.dtype}")
        y = torch.from_numpy(np.array(labels, dtype=np.int64))
    elif isinstance(labels, Sequence) and not isinstance(labels, (str, bytes)):
        values: list[int] = []
        for i, v in enumerate(labels):
            label = _int_label(v)
            if label is None:
                raise TypeError(f"labels: element {i} is a {type(v).__name__}; expected an integer")
            values.append(label)
        y = torch.tensor(values, dtype=torch.int64)
    else:
        raise TypeError(
            f"labels: expected a torch.Tensor, numpy.ndarray or sequence of ints, "
            f"got {type(labels).__name__}"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"labels: expected an integer dtype, got {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"labels: expected a 1-D array of shape [{n}], got {tuple(y.shape)}")
    if y.shape[0] != n:
        raise ValueError(f"labels: expected length {n} (one per sample of data), got {y.shape[0]}")
    y = y.to(torch.int64)
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"labels: expected non-negative class indices, got {int(y.min())}")
    return y


def as_tensors(data: object, labels: object = None) -> tuple[Tensor, Tensor | None]:
    """Validate a user's data and convert it to float32 inputs and int64 labels.

    Parameters
    ----------
    data : torch.Tensor, numpy.ndarray or torch.utils.data.Dataset
        Inputs shaped ``[N, ...]`` (at least 2-D), floating with values in
        ``[0, 1]`` or uint8 (divided by 255). A Dataset may be map-style (with
        ``__len__``) or iterable, and must yield either ``(x, y)`` pairs or
        bare inputs ``x`` (tensors or numpy arrays of one shape and dtype,
        without the batch dimension; a 1-tuple ``(x,)`` counts as bare), the
        same kind for every item.
    labels : torch.Tensor, numpy.ndarray, sequence of int or None, optional
        Integer class labels shaped ``[N]``. Must be ``None`` when ``data``
        yields ``(x, y)`` pairs, whose labels are used instead.

    Returns
    -------
    tuple of (Tensor, Tensor or None)
        float32 inputs (on the device of the input tensor; they may share
        memory with a float32 input tensor) and int64 labels, or ``None``
        when no labels were given.

    Raises
    ------
    TypeError
        If ``data`` or ``labels`` is of an unsupported type or dtype.
    ValueError
        If the inputs are not finite, not in ``[0, 1]``, have fewer than 2
        dimensions or no samples, or the labels are not 1-D with length N,
        are negative, or are given twice. Each message starts with the
        offending argument's name.
    """
    dataset_labels: Tensor | None = None
    if isinstance(data, Tensor):
        x = data.detach()
    elif isinstance(data, np.ndarray):
        x = _numpy_to_tensor(data, "the array")
    elif isinstance(data, torch.utils.data.Dataset):
        x, dataset_labels = _collect_dataset(data)
    else:
        raise TypeError(
            "data: expected a torch.Tensor, numpy.ndarray or torch.utils.data.Dataset, "
            f"got {type(data).__name__}"
        )
    x = _convert_inputs(x)
    n = int(x.shape[0])

    if dataset_labels is not None:
        if labels is not None:
            raise ValueError(
                "labels: must be None when data yields (x, y) pairs, which carry their own labels"
            )
        y: Tensor | None = _convert_labels(dataset_labels, n)
    elif labels is not None:
        y = _convert_labels(labels, n)
    else:
        y = None
    return x, y
