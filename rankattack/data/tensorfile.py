"""A user's inputs and labels saved as arrays: a ``.npz`` file or a ``.pt`` file of tensors.

[load_tensor_file][rankattack.data.tensorfile.load_tensor_file] reads ``x`` and ``y`` (split per
class like the digits) or ``train_x``, ``train_y``, ``test_x`` and ``test_y`` (that split), from a
numpy ``.npz`` archive (read with ``allow_pickle=False``) or a ``torch.save`` dict (read with
torch's safe loader, ``weights_only=True``, through ``rankattack._safeload``): neither can run code
hidden in the file. Inputs are validated and scaled as
[as_tensors][rankattack.data.userdata.as_tensors] does (uint8 / 255, or floats in ``[0, 1]``);
labels may be integers or strings (class names).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rankattack._safeload import safe_load
from rankattack.data.split import DatasetSplit, _stratified_split
from rankattack.data.userdata import as_tensors

__all__ = ["INPUT_KEYS", "LABEL_KEYS", "has_split_arrays", "load_tensor_file"]

logger = logging.getLogger(__name__)

#: Names the inputs and the labels of unsplit data may have (the first present is used).
INPUT_KEYS = ("x", "images", "inputs", "data")
LABEL_KEYS = ("y", "labels", "targets")
#: Names of split data: ``train_x`` ... or Keras-style ``x_train`` ...
_SPLIT_KEYS = (
    ("train_x", "train_y", "test_x", "test_y"),
    ("x_train", "y_train", "x_test", "y_test"),
)

_WHAT = (
    "tensor file (a dict of arrays: x and y, or train_x, train_y, test_x and test_y; "
    "optionally class_names)"
)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no tensor file at {path}")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        except ValueError as exc:  # object arrays need pickle: refused
            raise ValueError(f"{path} is not a readable {_WHAT}: {exc}") from None
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path} is not a readable {_WHAT}: {exc}") from None
    data = safe_load(path, _WHAT, map_location="cpu")
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a readable {_WHAT}: it holds a {type(data).__name__}")
    return data


@functools.lru_cache(maxsize=16)
def _keys(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    file = Path(path)
    if file.suffix.lower() == ".npz":
        try:
            with np.load(file, allow_pickle=False) as archive:  # reads the index only
                return frozenset(archive.files)
        except (OSError, ValueError, EOFError):
            return frozenset()
    try:
        return frozenset(_read(file))
    except ValueError:
        return frozenset()


def has_split_arrays(path: str | os.PathLike[str]) -> bool:
    """Whether the file holds ``train_x``, ``train_y``, ``test_x`` and ``test_y``."""
    file = Path(path)
    if not file.is_file():
        return False
    stat = file.stat()
    keys = _keys(str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    return any(set(names) <= keys for names in _SPLIT_KEYS)


def _pick(data: dict[str, Any], keys: tuple[str, ...], what: str, path: Path) -> Any:
    for k in keys:
        if k in data:
            return data[k]
    raise ValueError(
        f"{path} has no {what} (looked for {', '.join(keys)}; it holds "
        f"{', '.join(sorted(data)) or 'nothing'})"
    )


def _inputs(value: Any, name: str, path: Path) -> Tensor:
    """``[N, C, H, W]`` in [0, 1] from ``[N, H, W]``, ``[N, C, H, W]`` or channels-last."""
    try:
        x, _ = as_tensors(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {name}: {str(exc).removeprefix('data: ')}") from None
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        logger.info("%s: %s is channels-last %s; read as [N, C, H, W]", path, name, x.shape)
        x = x.permute(0, 3, 1, 2)
    return x.contiguous()


def _labels(values: list[Any], path: Path) -> tuple[list[Tensor], tuple[str, ...] | None]:
    """Integer labels as they are; string labels numbered in sorted order."""
    arrays = [v.numpy() if isinstance(v, Tensor) else np.asarray(v) for v in values]
    if all(a.dtype.kind in "US" for a in arrays):
        names = sorted({str(s) for a in arrays for s in a.tolist()})
        return [
            torch.tensor([names.index(str(s)) for s in a.tolist()], dtype=torch.int64)
            for a in arrays
        ], tuple(names)
    out = []
    for a in arrays:
        if a.dtype.kind not in "iu" or a.ndim != 1:
            raise ValueError(
                f"{path}: labels must be a 1-D array of integers or strings, got {a.dtype} "
                f"of shape {a.shape}"
            )
        if a.size and int(a.min()) < 0:
            raise ValueError(f"{path}: labels must be >= 0, got {int(a.min())}")
        out.append(torch.from_numpy(a.astype(np.int64)))
    return out, None


def load_tensor_file(
    path: str | os.PathLike[str], test_fraction: float = 0.2, seed: int = 0
) -> DatasetSplit:
    """Load inputs and labels from a ``.npz`` or ``.pt`` file as a train/test split.

    The file holds either ``x`` and ``y`` (also named ``images`` / ``inputs`` / ``data``
    and ``labels`` / ``targets``), split per class (``round(count * test_fraction)`` of
    each class, at least one, drawn with a generator seeded by ``seed``, into the test
    part), or ``train_x``, ``train_y``, ``test_x`` and ``test_y`` (or ``x_train`` ...),
    used as they are. An optional ``class_names`` array names the classes.

    Inputs are ``[N, H, W]`` (one channel), ``[N, C, H, W]`` or channels-last
    ``[N, H, W, C]`` with C = 1 or 3, uint8 (divided by 255) or floating with values in
    ``[0, 1]``. Labels are non-negative integers (``num_classes`` is the largest plus
    one) or strings (numbered in sorted order, which become the class names).

    ``.npz`` files are read with ``numpy.load(allow_pickle=False)``, ``.pt`` / ``.pth``
    files with ``torch.load(weights_only=True)``; neither runs code from the file.

    Parameters
    ----------
    path : path
        The file.
    test_fraction : float, optional
        Share of each class held out when the file has no split (default 0.2).
    seed : int, optional
        Seed of that split.

    Returns
    -------
    DatasetSplit
        ``name`` the file's stem; ``train_index`` / ``test_index`` the rows of ``x`` (or
        of ``train_x`` and ``test_x``).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file cannot be read safely, lacks the arrays, or holds inputs or labels
        of the wrong kind; the message names the file.
    """
    if not isinstance(test_fraction, int | float) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    file = Path(path)
    data = _read(file)
    names = next((ks for ks in _SPLIT_KEYS if set(ks) <= set(data)), None)
    if names is not None:
        train_x = _inputs(data[names[0]], names[0], file)
        test_x = _inputs(data[names[2]], names[2], file)
        (train_y, test_y), class_names = _labels([data[names[1]], data[names[3]]], file)
        for x, y, which in ((train_x, train_y, "train"), (test_x, test_y, "test")):
            if y.shape[0] != x.shape[0]:
                raise ValueError(f"{file}: {which} has {x.shape[0]} inputs but {y.shape[0]} labels")
        if train_x.shape[1:] != test_x.shape[1:]:
            raise ValueError(
                f"{file}: train inputs are {tuple(train_x.shape[1:])}, test inputs "
                f"{tuple(test_x.shape[1:])}"
            )
        train_idx, test_idx = torch.arange(len(train_y)), torch.arange(len(test_y))
    else:
        x = _inputs(_pick(data, INPUT_KEYS, "inputs", file), "inputs", file)
        (labels,), class_names = _labels([_pick(data, LABEL_KEYS, "labels", file)], file)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"{file}: {x.shape[0]} inputs but {labels.shape[0]} labels")
        generator = torch.Generator().manual_seed(seed)
        train_idx, test_idx = _stratified_split(labels, float(test_fraction), generator)
        train_x, train_y = x[train_idx], labels[train_idx]
        test_x, test_y = x[test_idx], labels[test_idx]
    if "class_names" in data:
        given = data["class_names"]
        given = given.tolist() if hasattr(given, "tolist") else list(given)
        class_names = tuple(str(n) for n in given)
    num_classes = int(max(int(train_y.max()), int(test_y.max()))) + 1
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"{file}: class_names has {len(class_names)} names for {num_classes} classes"
        )
    return DatasetSplit(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        name=file.stem,
        num_classes=num_classes,
        train_index=train_idx,
        test_index=test_idx,
        class_names=class_names,
    )
