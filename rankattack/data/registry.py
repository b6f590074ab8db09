"""The datasets by name: ``DATASET_NAMES`` and
[load_dataset][rankattack.data.registry.load_dataset].

``"digits"`` is [rankattack.data.digits.load_digits][]; ``"mnist"`` and
``"fashion-mnist"`` are [rankattack.data.mnist.load_mnist][] (Fashion-MNIST
defaulting to ``rankattack.data.mnist.DEBIAN_FASHION_MNIST_DIR``). A path names a
user's data: a folder of images ([rankattack.data.imagefolder.load_image_folder][])
or a ``.npz`` / ``.pt`` file ([rankattack.data.tensorfile.load_tensor_file][]). A new
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

#: Names accepted by [load_dataset][rankattack.data.registry.load_dataset].
DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")


def load_dataset(name: str, data_dir: str | None = None, **kw: Any) -> DatasetSplit:
    """Load a built-in dataset by name.

    Parameters
    ----------
    name : {"digits", "mnist", "fashion-mnist"} or path
        The dataset. Case and ``_`` vs ``-`` are ignored (``"Fashion_MNIST"``
        works). The path of a folder reads a folder of images (one subfolder per
        class), the path of a ``.npz`` / ``.pt`` file a tensor file.
    data_dir : str or None, optional
        Directory with the IDX files for ``"mnist"`` (required) and
        ``"fashion-mnist"`` (default ``DEBIAN_FASHION_MNIST_DIR``).
        Not used by ``"digits"``.
    **kw
        Passed to the loader, e.g. ``image_size``, ``test_fraction`` and
        ``seed`` for [load_digits][rankattack.data.registry.load_digits].

    Returns
    -------
    DatasetSplit

    Raises
    ------
    ValueError
        If ``name`` is neither a known name nor a folder or tensor file (the
        message lists the valid names), or ``"mnist"`` is requested without
        ``data_dir``.
    FileNotFoundError
        If the IDX files are not found (see [load_mnist][rankattack.data.registry.load_mnist]).
    """
    from rankattack.data.spec import dataset_kind

    key, path = dataset_kind(name)
    if key == "image-folder":
        from rankattack.data.imagefolder import load_image_folder

        assert path is not None
        return load_image_folder(path, **kw)
    if key == "tensor-file":
        from rankattack.data.tensorfile import load_tensor_file

        assert path is not None
        return load_tensor_file(path, **kw)
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
