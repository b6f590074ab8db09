"""The statistics reported with the paper's tables: 95% intervals, R@1, R@k, mAP, spread.

A cell's mean normalized rank comes with the half-width of its two-sided Student-t
interval (the paper reports no intervals); R@1 is the usual leave-one-out retrieval
recall of the paper's tables (Zhou et al., ECCV 2020, Sec. 4), reported with R@k and mAP
([retrieval_quality][rankattack.evaluation.statistics.retrieval_quality]). The embedding spread
([embedding_spread][rankattack.evaluation.statistics.embedding_spread], the median distance between
two gallery items) is the scale the maximum embedding shift is read against: a defense that only
shrinks the embedding space lowers the raw shift without lowering the shift relative to the spread.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rankattack._validation import check_real, check_tensor
from rankattack.gallery import Gallery

__all__ = ["confidence_interval", "embedding_spread", "recall_at_1", "retrieval_quality"]

#: The K of the R@K the evaluation reports.
RECALL_KS = (1, 2, 4, 8)


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
    [rankattack.metrics.recall_at_k][].
    """
    from rankattack.metrics import recall_at_k

    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    if gallery.labels is None:
        raise ValueError("gallery must have labels to compute R@1")
    return 100.0 * float(recall_at_k(gallery, ks=(1,))[1])


def retrieval_quality(gallery: Gallery, ks: tuple[int, ...] = RECALL_KS) -> dict[str, float]:
    """R@k for each k (``"R@1"``, ``"R@2"``, ...) and ``"mAP"``, in percent.

    Leave-one-out over the labelled gallery ([rankattack.metrics.recall_at_k][],
    [rankattack.metrics.mean_average_precision][]); k larger than ``|X| - 1`` is
    left out.
    """
    from rankattack.metrics import mean_average_precision, recall_at_k

    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    if gallery.labels is None:
        raise ValueError("gallery must have labels to compute R@k and mAP")
    usable = tuple(k for k in ks if 1 <= k <= len(gallery) - 1)
    out = {f"R@{k}": 100.0 * v for k, v in recall_at_k(gallery, ks=usable).items()}
    out["mAP"] = 100.0 * mean_average_precision(gallery)
    return out


def embedding_spread(gallery: Gallery, pairs: int = 4096, seed: int = 0) -> float:
    """Median distance between two distinct gallery items: the embedding space's scale.

    Estimated on ``pairs`` random pairs drawn with a generator seeded by ``seed`` (all
    pairs when the gallery has fewer), with the gallery's own distance. The maximum
    embedding shift divided by it is comparable across models whose embedding spaces
    differ in size.
    """
    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    n = len(gallery)
    if n < 2:
        raise ValueError(f"the spread needs a gallery of at least 2 items, got {n}")
    generator = torch.Generator().manual_seed(seed)
    if n * (n - 1) // 2 <= pairs:
        i, j = torch.triu_indices(n, n, offset=1)
    else:
        i = torch.randint(0, n, (pairs,), generator=generator)
        j = (i + torch.randint(1, n, (pairs,), generator=generator)) % n
    device = gallery.prepared.device
    prepared = gallery.prepared
    with torch.no_grad():
        d = gallery.distance.paired(prepared[i.to(device)], prepared[j.to(device)])
    return float(d.double().median())
