"""The statistics reported with the paper's tables: 95% intervals and the model's R@1.

A cell's mean normalized rank comes with the half-width of its two-sided Student-t
interval (the paper reports no intervals); R@1 is the usual leave-one-out retrieval
recall of the paper's tables (Zhou et al., ECCV 2020, Sec. 4).
"""

from __future__ import annotations

import math

from torch import Tensor

from rankattack._validation import check_real, check_tensor
from rankattack.gallery import Gallery

__all__ = ["confidence_interval", "recall_at_1"]


def confidence_interval(values: Tensor, level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the two-sided Student-t interval of ``values`` ``[T]``.

    ``mean +- t_{(1+level)/2, T-1} * s / sqrt(T)`` with ``s`` the sample standard
    deviation; the half-width is ``nan`` for ``T = 1``.
    """
    check_tensor(values, "values", ndim=1)
    level = check_real(level, "level", low=0.0, high=1.0, low_open=True)
    if values.numel() == 0:
        raise ValueError("values must hold at least one value")
    v = values.detach().double().cpu()
    mean = float(v.mean())
    t = v.numel()
    if t < 2:
        return mean, math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, t - 1)) * float(v.std(unbiased=True)) / math.sqrt(t)
    return mean, half


def recall_at_1(gallery: Gallery) -> float:
    """R@1 in percent: how often an item's nearest other item has its label.

    Each item queries the rest of the gallery (its own index excluded), the usual
    leave-one-out retrieval protocol of the paper's R@1; see
    :func:`rankattack.metrics.recall_at_k`.
    """
    from rankattack.metrics import recall_at_k

    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    if gallery.labels is None:
        raise ValueError("gallery must have labels to compute R@1")
    return 100.0 * float(recall_at_k(gallery, ks=(1,))[1])
