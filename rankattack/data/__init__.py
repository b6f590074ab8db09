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

A user's own data comes as a folder of images with one subfolder per class
(`load_image_folder`, read with Pillow: the extra ``images``) or as a ``.npz`` / ``.pt``
file of inputs and labels (`load_tensor_file`, read without running code from the
file). `as_tensors` validates and converts tensors, numpy arrays or a
``torch.utils.data.Dataset`` into the same form, and `read_idx` is a strict reader for
the IDX file format. A `DatasetSpec` names a dataset with its image size, scaling and
train/test split, loads it again, and is what a training checkpoint records.

Modules
-------
split
    [DatasetSplit][rankattack.data.DatasetSplit], a train/test split, and stratified sampling.
idx
    [read_idx][rankattack.data.read_idx], the IDX file reader (raw or gzip).
mnist
    [load_mnist][rankattack.data.load_mnist] for MNIST and Fashion-MNIST,
    ``DEBIAN_FASHION_MNIST_DIR``.
digits
    [load_digits][rankattack.data.load_digits], scikit-learn's bundled digits.
userdata
    [as_tensors][rankattack.data.as_tensors], the conversion of a user's tensors, arrays and
    Datasets.
imagefolder
    `load_image_folder`, a folder of images with one subfolder per class.
tensorfile
    `load_tensor_file`, inputs and labels in a ``.npz`` or ``.pt`` file.
registry
    `DATASET_NAMES` and `load_dataset`, the datasets by name or path.
spec
    `DatasetSpec`: a dataset, its image size, scaling and split, as checkpoints record it.

Only torch, numpy and the standard library are imported at package import time;
scikit-learn is imported when `load_digits` is called, Pillow when `load_image_folder`
is.
"""

from __future__ import annotations

from rankattack.data.digits import load_digits
from rankattack.data.idx import read_idx
from rankattack.data.imagefolder import load_image_folder
from rankattack.data.mnist import DEBIAN_FASHION_MNIST_DIR, load_mnist
from rankattack.data.registry import DATASET_NAMES, load_dataset
from rankattack.data.spec import DatasetSpec
from rankattack.data.split import DatasetSplit
from rankattack.data.tensorfile import load_tensor_file
from rankattack.data.userdata import as_tensors

__all__ = [
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DatasetSpec",
    "DatasetSplit",
    "as_tensors",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_mnist",
    "load_tensor_file",
    "read_idx",
]
