"""Datasets for ranking-attack experiments.

This module turns image classification data into the tensors the attacks and
the evaluation code expect: float32 inputs in ``[0, 1]`` shaped ``[N, C, H, W]``
and int64 class labels shaped ``[N]``.

Three built-in sources are provided, none of which downloads anything:

* ``"digits"`` -- scikit-learn's bundled 8x8 handwritten digits, optionally
  upsampled (28x28 by default) so that MNIST-sized models can be used.
* ``"mnist"`` -- the MNIST IDX files, read from a local directory.
* ``"fashion-mnist"`` -- the Fashion-MNIST IDX files, read from a local
  directory (by default where Debian's ``dataset-fashion-mnist`` package puts
  them).

:func:`as_tensors` validates and converts a user's own data (tensors, numpy
arrays or a :class:`torch.utils.data.Dataset`) into the same form, and
:func:`read_idx` is a strict reader for the IDX file format.

Only :mod:`torch`, :mod:`numpy` and the standard library are imported at module
import time; scikit-learn is imported when :func:`load_digits` is called.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DatasetSplit",
    "as_tensors",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "read_idx",
]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`load_dataset`.
DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

PathLike = str | os.PathLike[str]

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"

# Base names of the four IDX files of MNIST and Fashion-MNIST.
_MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# kind -> (torchvision folder name, human name, where to download the files).
_MNIST_KINDS: dict[str, tuple[str, str, str]] = {
    "mnist": (
        "MNIST",
        "MNIST",
        "http://yann.lecun.com/exdb/mnist/ "
        "(mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)",
    ),
    "fashion-mnist": (
        "FashionMNIST",
        "Fashion-MNIST",
        "https://github.com/zalandoresearch/fashion-mnist",
    ),
}


# --------------------------------------------------------------------------- #
# DatasetSplit
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class DatasetSplit:
    """A train/test split of a labelled image dataset.

    Parameters
    ----------
    train_x, test_x : Tensor
        Float inputs in ``[0, 1]`` shaped ``[N, ...]`` (``[N, C, H, W]`` for
        the built-in datasets).
    train_y, test_y : Tensor
        int64 class labels shaped ``[N]`` with values in ``[0, num_classes)``.
    name : str
        Name of the dataset, e.g. ``"digits"``.
    num_classes : int
        Number of classes.
    train_index, test_index : Tensor or None, optional
        int64 positions of each row in the source it was taken from (for
        ``"digits"`` the row of scikit-learn's array, for MNIST-style data the
        row of the respective IDX file). Kept through :meth:`subset`, so any
        row can be traced back to its source sample.

    Notes
    -----
    Equality is identity (``eq=False``): comparing tensors elementwise is not
    a meaningful ``==`` for a dataset.
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    name: str
    num_classes: int
    train_index: Tensor | None = None
    test_index: Tensor | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise TypeError(f"num_classes must be an int, got {type(self.num_classes).__name__}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        for part in ("train", "test"):
            x = getattr(self, f"{part}_x")
            y = getattr(self, f"{part}_y")
            index = getattr(self, f"{part}_index")
            if not isinstance(x, Tensor) or not isinstance(y, Tensor):
                raise TypeError(f"{part}_x and {part}_y must be torch tensors")
            if not x.is_floating_point() or x.dim() < 2:
                raise ValueError(
                    f"{part}_x must be a floating tensor of shape [N, ...] with at least "
                    f"2 dimensions, got dtype {x.dtype} and shape {tuple(x.shape)}"
                )
            if y.dtype != torch.int64 or y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"{part}_y must be an int64 tensor of shape [{x.shape[0]}], "
                    f"got dtype {y.dtype} and shape {tuple(y.shape)}"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(
                    f"{part}_y must hold labels in [0, {self.num_classes}), "
                    f"got values in [{int(y.min())}, {int(y.max())}]"
                )
            if index is not None and (
                not isinstance(index, Tensor)
                or index.dtype != torch.int64
                or tuple(index.shape) != (x.shape[0],)
            ):
                raise ValueError(f"{part}_index must be None or an int64 tensor of shape [N]")

    def __repr__(self) -> str:
        return (
            f"DatasetSplit(name={self.name!r}, num_classes={self.num_classes}, "
            f"train_x={tuple(self.train_x.shape)}, test_x={tuple(self.test_x.shape)})"
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(1, 28, 28)``."""
        return tuple(self.train_x.shape[1:])

    def subset(
        self, n_train: int | None = None, n_test: int | None = None, seed: int = 0
    ) -> DatasetSplit:
        """Return a smaller, stratified random split for quick runs.

        Each class keeps (as nearly as integer counts allow) its share of the
        original part: class ``c`` gets ``floor(n * count_c / N)`` samples and
        the leftover samples go to the classes with the largest remainders.
        Samples are drawn at random with a ``torch.Generator`` seeded by
        ``seed`` (one per part, so the test subset does not depend on
        ``n_train``), and kept in their original order.

        Parameters
        ----------
        n_train, n_test : int or None, optional
            Number of training / test samples to keep; ``None`` keeps the
            whole part unchanged.
        seed : int, optional
            Seed of the random draw. The same seed gives the same subset.

        Returns
        -------
        DatasetSplit
            A new split; ``train_index`` / ``test_index`` still refer to the
            original source.

        Raises
        ------
        ValueError
            If ``n_train`` or ``n_test`` is not in ``[1, N]`` for its part.
        """
        # One generator per part, so each part's draw depends only on its own size.
        train = self._sample_part("train", n_train, torch.Generator().manual_seed(seed))
        test = self._sample_part("test", n_test, torch.Generator().manual_seed(seed))
        return DatasetSplit(
            train_x=train[0],
            train_y=train[1],
            test_x=test[0],
            test_y=test[1],
            name=self.name,
            num_classes=self.num_classes,
            train_index=train[2],
            test_index=test[2],
        )

    def _sample_part(
        self, part: str, n: int | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        x: Tensor = getattr(self, f"{part}_x")
        y: Tensor = getattr(self, f"{part}_y")
        index: Tensor | None = getattr(self, f"{part}_index")
        if n is None:
            return x, y, index
        total = int(y.shape[0])
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total:
            raise ValueError(
                f"n_{part} must be an int in [1, {total}] (the size of the {part} "
                f"part) or None, got {n!r}"
            )
        keep = _stratified_sample(y, n, generator)
        return x[keep], y[keep], (None if index is None else index[keep])


def _class_positions(labels: Tensor) -> list[Tensor]:
    """Positions of each present class in ``labels``, classes in ascending order."""
    return [torch.nonzero(labels == c).flatten() for c in torch.unique(labels).tolist()]


def _stratified_sample(labels: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """Sorted positions of a stratified random sample of size ``n`` from ``labels``."""
    total = int(labels.shape[0])
    groups = _class_positions(labels)
    # Largest-remainder allocation in exact integer arithmetic.
    quotas = [n * len(g) // total for g in groups]
    remainders = [n * len(g) % total for g in groups]
    order = sorted(range(len(groups)), key=lambda i: (-remainders[i], i))
    for i in order[: n - sum(quotas)]:
        quotas[i] += 1
    chosen = [
        g[torch.randperm(len(g), generator=generator)[:q]]
        for g, q in zip(groups, quotas, strict=True)
    ]
    return torch.sort(torch.cat(chosen)).values


def _stratified_split(
    labels: Tensor, test_fraction: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Split positions per class into (train, test), each sorted.

    Every class gets ``round(count * test_fraction)`` test samples, clamped so
    that both parts keep at least one sample of it.
    """
    train_parts: list[Tensor] = []
    test_parts: list[Tensor] = []
    for group in _class_positions(labels):
        count = len(group)
        if count < 2:
            raise ValueError(
                "a stratified split needs at least 2 samples per class, "
                f"class {int(labels[group[0]])} has {count}"
            )
        n_test = min(max(math.floor(count * test_fraction + 0.5), 1), count - 1)
        perm = group[torch.randperm(count, generator=generator)]
        test_parts.append(perm[:n_test])
        train_parts.append(perm[n_test:])
    train = torch.sort(torch.cat(train_parts)).values
    test = torch.sort(torch.cat(test_parts)).values
    return train, test


# --------------------------------------------------------------------------- #
# IDX files
# --------------------------------------------------------------------------- #


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST file format), raw or gzip-compressed.

    The header is two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8,
    ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64, all
    big-endian), the number of dimensions, then each dimension as a big-endian
    uint32. The payload must hold exactly as many items as the dimensions say.

    A file is decompressed if its name ends in ``.gz`` or if it starts with
    the gzip magic bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the file's shape.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a well-formed IDX file (bad magic number, unknown
        type code, zero dimensions, truncated header, payload of the wrong
        length, or corrupt gzip data). The message names the file.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        blob = fh.read()
    if path.suffix == ".gz" or blob[:2] == _GZIP_MAGIC:
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: not a valid gzip file ({exc})") from exc

    if len(blob) < 4:
        raise ValueError(
            f"{path}: too short for an IDX header (expected at least 4 bytes, got {len(blob)})"
        )
    zero0, zero1, code, ndim = blob[0], blob[1], blob[2], blob[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"{path}: bad IDX magic number {blob[:4].hex()} "
            "(expected two zero bytes, a type code and the number of dimensions)"
        )
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} (expected one of {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions (expected at least 1)")
    header_len = 4 + 4 * ndim
    if len(blob) < header_len:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header_len} header "
            f"bytes, the file has {len(blob)}"
        )
    dims = struct.unpack(f">{ndim}I", blob[4:header_len])
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(blob) - header_len
    if got != expected:
        raise ValueError(
            f"{path}: IDX payload has {got} bytes, expected {expected} "
            f"({' x '.join(map(str, dims))} items of {dtype.itemsize} byte(s), type {dtype.name})"
        )
    array = np.frombuffer(blob, dtype=dtype, offset=header_len).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


# --------------------------------------------------------------------------- #
# MNIST / Fashion-MNIST
# --------------------------------------------------------------------------- #


def _mnist_search_dirs(root: Path, kind: str) -> list[Path]:
    folder = _MNIST_KINDS[kind][0]
    return [root, root / "raw", root / folder / "raw"]


def _find_idx(directory: Path, base: str) -> Path | None:
    """``directory/base`` or ``directory/base.gz``, preferring the raw file."""
    for name in (base, base + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def load_mnist(root: PathLike, kind: str = "mnist") -> DatasetSplit:
    """Load MNIST or Fashion-MNIST from the standard IDX files.

    The four files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each raw or
    with a ``.gz`` suffix) must all be in one directory, which is looked for,
    in order, at ``root``, ``root/raw`` and the torchvision layout
    ``root/MNIST/raw`` (``root/FashionMNIST/raw`` for Fashion-MNIST).

    Parameters
    ----------
    root : str or os.PathLike
        Directory holding the files (or the torchvision root).
    kind : {"mnist", "fashion-mnist"}, optional
        Which dataset the files are; decides the torchvision folder name, the
        split's ``name`` and the hints given when files are missing.

    Returns
    -------
    DatasetSplit
        Images as float32 in ``[0, 1]`` shaped ``[N, 1, H, W]`` (28x28 for
        both datasets), labels as int64, ``num_classes == 10``, the official
        train/test split.

    Raises
    ------
    ValueError
        If ``kind`` is unknown, or a file is malformed (not uint8, images not
        3-D, labels not 1-D, counts not matching, labels outside ``0..9``).
    FileNotFoundError
        If no searched directory holds all four files. The message lists
        every directory searched and how to obtain the files.
    """
    if kind not in _MNIST_KINDS:
        raise ValueError(f"kind must be one of {sorted(_MNIST_KINDS)}, got {kind!r}")
    root = Path(root)
    searched = _mnist_search_dirs(root, kind)
    found: dict[str, Path] | None = None
    missing_report: list[str] = []
    for directory in searched:
        files = {key: _find_idx(directory, base) for key, base in _MNIST_FILES.items()}
        missing = [_MNIST_FILES[key] for key, p in files.items() if p is None]
        if not missing:
            found = {key: p for key, p in files.items() if p is not None}
            break
        if not directory.is_dir():
            missing_report.append(f"  {directory} (no such directory)")
        else:
            missing_report.append(f"  {directory} (missing: {', '.join(missing)})")

    _, human, url = _MNIST_KINDS[kind]
    if found is None:
        how = ""
        if kind == "fashion-mnist":
            how = (
                "install Debian's package with `apt-get install dataset-fashion-mnist` "
                f"(it puts them in {DEBIAN_FASHION_MNIST_DIR}), or "
            )
        raise FileNotFoundError(
            f"{human} IDX files not found. Needed: "
            f"{', '.join(_MNIST_FILES.values())} (each raw or .gz), all in one directory. "
            "Searched:\n" + "\n".join(missing_report) + f"\nTo get them, {how}download the "
            f"four IDX files from {url} into {root}."
        )

    logger.debug("loading %s from %s", human, found["train_images"].parent)
    train_x, train_y = _load_mnist_pair(found["train_images"], found["train_labels"])
    test_x, test_y = _load_mnist_pair(found["test_images"], found["test_labels"])
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(
            f"{found['test_images']}: images are {tuple(test_x.shape[2:])}, but the "
            f"training images are {tuple(train_x.shape[2:])}"
        )
    logger.info(
        "loaded %s: %d train, %d test images of %s",
        human,
        train_x.shape[0],
        test_x.shape[0],
        tuple(train_x.shape[1:]),
    )
    return DatasetSplit(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        name=kind,
        num_classes=10,
        train_index=torch.arange(train_x.shape[0]),
        test_index=torch.arange(test_x.shape[0]),
    )


def _load_mnist_pair(images_path: Path, labels_path: Path) -> tuple[Tensor, Tensor]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape [N, H, W], "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape [N], "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: has {labels.shape[0]} labels, expected {images.shape[0]} "
            f"(the number of images in {images_path})"
        )
    if labels.size and int(labels.max()) > 9:
        raise ValueError(f"{labels_path}: labels must be in 0..9, found {int(labels.max())}")
    x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze(1)
    y = torch.from_numpy(labels).to(torch.int64)
    return x, y


# --------------------------------------------------------------------------- #
# scikit-learn digits
# --------------------------------------------------------------------------- #


def load_digits(image_size: int = 28, test_fraction: float = 0.5, seed: int = 0) -> DatasetSplit:
    """Load scikit-learn's bundled 8x8 handwritten digits (no download).

    Pixel values (0..16) are scaled to ``[0, 1]``; images are resized with
    bilinear interpolation (``align_corners=False``, clamped to ``[0, 1]``)
    unless ``image_size == 8``. The 1797 images are split per class: each
    class puts ``round(count * test_fraction)`` of its samples, drawn with a
    ``torch.Generator`` seeded by ``seed``, into the test part and the rest
    into the training part, so both parts hold every class in the same
    proportion. Rows of each part are in the order of the source array.

    Parameters
    ----------
    image_size : int, optional
        Height and width of the returned images (default 28, MNIST-sized).
    test_fraction : float, optional
        Fraction of each class that goes to the test part, in ``(0, 1)``.
    seed : int, optional
        Seed of the split. The same seed gives the same split.

    Returns
    -------
    DatasetSplit
        Images float32 ``[N, 1, image_size, image_size]``, labels int64,
        ``num_classes == 10``, ``train_index`` / ``test_index`` the rows of
        :func:`sklearn.datasets.load_digits`.

    Raises
    ------
    ValueError
        If ``image_size`` is not a positive int or ``test_fraction`` is not
        in ``(0, 1)``.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")

    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(bunch.target)).to(torch.int64)
    if image_size != images.shape[-1]:
        images = F.interpolate(
            images, size=(image_size, image_size), mode="bilinear", align_corners=False
        ).clamp_(0.0, 1.0)

    generator = torch.Generator().manual_seed(seed)
    train_idx, test_idx = _stratified_split(labels, float(test_fraction), generator)
    logger.info(
        "loaded digits: %d train, %d test images of %dx%d (seed %d)",
        len(train_idx),
        len(test_idx),
        image_size,
        image_size,
        seed,
    )
    return DatasetSplit(
        train_x=images[train_idx].contiguous(),
        train_y=labels[train_idx],
        test_x=images[test_idx].contiguous(),
        test_y=labels[test_idx],
        name="digits",
        num_classes=10,
        train_index=train_idx,
        test_index=test_idx,
    )


# --------------------------------------------------------------------------- #
# User data
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# Dispatch
# --------------------------------------------------------------------------- #


def load_dataset(name: str, data_dir: str | None = None, **kw: Any) -> DatasetSplit:
    """Load a built-in dataset by name.

    Parameters
    ----------
    name : {"digits", "mnist", "fashion-mnist"}
        The dataset. Case and ``_`` vs ``-`` are ignored (``"Fashion_MNIST"``
        works).
    data_dir : str or None, optional
        Directory with the IDX files for ``"mnist"`` (required) and
        ``"fashion-mnist"`` (default :data:`DEBIAN_FASHION_MNIST_DIR`).
        Not used by ``"digits"``.
    **kw
        Passed to the loader, e.g. ``image_size``, ``test_fraction`` and
        ``seed`` for :func:`load_digits`.

    Returns
    -------
    DatasetSplit

    Raises
    ------
    ValueError
        If ``name`` is unknown (the message lists the valid names), or
        ``"mnist"`` is requested without ``data_dir``.
    FileNotFoundError
        If the IDX files are not found (see :func:`load_mnist`).
    """
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else name
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names are: {', '.join(DATASET_NAMES)}")
    if key == "digits":
        if data_dir is not None:
            logger.warning("data_dir=%r is not used by the 'digits' dataset", data_dir)
        return load_digits(**kw)
    if data_dir is None:
        if key == "mnist":
            raise ValueError(
                "data_dir is required for 'mnist': pass the directory holding the IDX files "
                "(train-images-idx3-ubyte[.gz], ...) or a torchvision root with MNIST/raw"
            )
        data_dir = DEBIAN_FASHION_MNIST_DIR
    return load_mnist(data_dir, kind=key, **kw)
