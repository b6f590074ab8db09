"""Datasets for ranking-attack experiments.

This package turns image classification data into the tensors the attacks and
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

Modules
-------
split
    :class:`DatasetSplit`, a train/test split, and stratified sampling.
idx
    :func:`read_idx`, the IDX file reader (raw or gzip).
mnist
    :func:`load_mnist` for MNIST and Fashion-MNIST, :data:`DEBIAN_FASHION_MNIST_DIR`.
digits
    :func:`load_digits`, scikit-learn's bundled digits.
userdata
    :func:`as_tensors`, the conversion of a user's tensors, arrays and Datasets.
registry
    :data:`DATASET_NAMES` and :func:`load_dataset`, the built-in datasets by name.

Only :mod:`torch`, :mod:`numpy` and the standard library are imported at package
import time; scikit-learn is imported when :func:`load_digits` is called.
"""

from __future__ import annotations

from rankattack.data.digits import load_digits
from rankattack.data.idx import read_idx
from rankattack.data.mnist import DEBIAN_FASHION_MNIST_DIR, load_mnist
from rankattack.data.registry import DATASET_NAMES, load_dataset
from rankattack.data.split import DatasetSplit
from rankattack.data.userdata import as_tensors

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
