"""MNIST and Fashion-MNIST, loaded from local IDX files (nothing is downloaded).

[load_mnist][rankattack.data.mnist.load_mnist] looks for the four IDX files in a directory, its
``raw`` subfolder or the torchvision layout, reads them with [rankattack.data.idx.read_idx][],
checks that they form an MNIST-style dataset and returns the official train/test split. When files
are missing, the error lists every directory searched and how to obtain the files;
``DEBIAN_FASHION_MNIST_DIR`` is where Debian's package puts Fashion-MNIST.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rankattack.data.idx import PathLike, read_idx
from rankattack.data.split import DatasetSplit

__all__ = ["DEBIAN_FASHION_MNIST_DIR", "load_mnist"]

logger = logging.getLogger(__name__)

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

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
