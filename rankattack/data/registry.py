"""The built-in datasets by name: :data:`DATASET_NAMES` and :func:`load_dataset`.

``"digits"`` is :func:`rankattack.data.digits.load_digits`; ``"mnist"`` and
``"fashion-mnist"`` are :func:`rankattack.data.mnist.load_mnist` (Fashion-MNIST
defaulting to :data:`rankattack.data.mnist.DEBIAN_FASHION_MNIST_DIR`). A new
built-in dataset gets its own module and a name here.
"""

from __future__ import annotations

import logging
from typing import Any

from rankattack.data import mnist
from rankattack.data.digits import load_digits
from rankattack.data.mnist import load_mnist
from rankattack.data.split import DatasetSplit

__all__ = ["DATASET_NAMES", "load_dataset"]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`load_dataset`.
DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")


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
        # Looked up at call time, so the default follows the module attribute.
        data_dir = mnist.DEBIAN_FASHION_MNIST_DIR
    return load_mnist(data_dir, kind=key, **kw)
