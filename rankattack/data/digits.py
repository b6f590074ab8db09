"""scikit-learn's bundled 8x8 handwritten digits (no download).

[load_digits][rankattack.data.digits.load_digits] scales the 1797 images to ``[0, 1]``, resizes them
(28x28 by default, so that MNIST-sized models can be used) and splits them per class into a training
and a test part. scikit-learn is imported when the function is called, not when this module is
imported.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from rankattack.data.split import DatasetSplit, _stratified_split

__all__ = ["load_digits"]

logger = logging.getLogger(__name__)


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
        ``sklearn.datasets.load_digits``.

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
