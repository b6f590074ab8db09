"""Retrieval quality of a labelled gallery: Recall@K and mean average precision.

Each gallery item in turn is the query and the rest of the gallery (the query itself
excluded) is ranked by distance, as in the paper's R@1 (Sec. 4). Everything is computed
in blocks of queries within the gallery's ``chunk_budget``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import Tensor

from rankattack.distances import row_chunks
from rankattack.gallery import Gallery

__all__ = ["mean_average_precision", "recall_at_k"]

logger = logging.getLogger(__name__)


def _labelled(gallery: Gallery, name: str) -> Tensor:
    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    if gallery.labels is None:
        raise ValueError(f"{name} needs a gallery with labels (Gallery(..., labels=...))")
    if len(gallery) < 2:
        raise ValueError(f"{name} needs a gallery of at least 2 items, got {len(gallery)}")
    return gallery.labels


def _query_blocks(gallery: Gallery) -> list[tuple[int, int]]:
    """Blocks of queries whose ``[q, |X|]`` distance rows fit the chunk budget."""
    return row_chunks(len(gallery), len(gallery), gallery.chunk_budget)


def recall_at_k(gallery: Gallery, ks: Iterable[int] = (1,)) -> dict[int, float]:
    """Recall@K: the fraction of queries with an item of their class among their K nearest.

    Parameters
    ----------
    gallery : Gallery
        Labelled gallery; every item is a query against the others (itself excluded).
    ks : iterable of int, default (1,)
        The K values, each in ``[1, |X| - 1]``.

    Returns
    -------
    dict
        ``{K: recall in [0, 1]}``.

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery
    >>> g = Gallery(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]]),
    ...             labels=torch.tensor([0, 0, 1, 0]))
    >>> recall_at_k(g, ks=(1, 2))
    {1: 0.5, 2: 0.75}
    """
    labels = _labelled(gallery, "recall_at_k")
    try:
        ks = sorted({int(k) for k in ks})
    except TypeError:
        raise TypeError(f"ks must be an iterable of ints, got {ks!r}") from None
    if not ks or ks[0] < 1 or ks[-1] > len(gallery) - 1:
        raise ValueError(f"ks must be non-empty ints in [1, {len(gallery) - 1}], got {ks}")
    kmax = ks[-1]
    hits = torch.zeros(len(ks), dtype=torch.long, device=labels.device)
    n = len(gallery)
    step = max(1, min(4096, gallery.chunk_budget // max(n, 1)))
    for s in range(0, n, step):
        e = min(s + step, n)
        own = torch.arange(s, e, device=labels.device).unsqueeze(1)
        _, idx = gallery.topk(gallery.embeddings[s:e], kmax, exclude_indices=own)
        match = labels[idx] == labels[s:e].unsqueeze(1)  # [q, kmax]
        first = torch.cumsum(match.long(), dim=1) > 0
        hits += first[:, [k - 1 for k in ks]].sum(0)
    values = (hits.double() / n).tolist()
    return {k: float(v) for k, v in zip(ks, values, strict=True)}


def mean_average_precision(gallery: Gallery) -> float:
    """Mean average precision over all queries (each gallery item, itself excluded).

    ``AP(q) = 1/|P_q| sum_{i : x_(i) in P_q} precision@i`` over the full ranking of the
    other items, ``P_q`` the items of the query's class; queries whose class has no other
    item are left out. Ties in distance are broken by gallery index.

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery
    >>> g = Gallery(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]]),
    ...             labels=torch.tensor([0, 0, 1, 0]))
    >>> round(mean_average_precision(g), 4)
    0.8611
    """
    labels = _labelled(gallery, "mean_average_precision")
    n = len(gallery)
    total = torch.zeros((), dtype=torch.float64, device=labels.device)
    counted = torch.zeros((), dtype=torch.long, device=labels.device)
    ranks = torch.arange(1, n, device=labels.device, dtype=torch.float64)  # 1..n-1
    for s, e in _query_blocks(gallery):
        d = gallery.distances(gallery.embeddings[s:e])
        rows = torch.arange(e - s, device=d.device)
        d[rows, rows + s] = float("inf")  # the query itself goes last
        order = torch.sort(d, dim=1, stable=True).indices[:, :-1]
        rel = (labels[order] == labels[s:e].unsqueeze(1)).double()
        num_rel = rel.sum(1)
        precision = torch.cumsum(rel, dim=1) / ranks
        ap = (precision * rel).sum(1) / num_rel.clamp_min(1.0)
        keep = num_rel > 0
        total += ap[keep].sum()
        counted += keep.sum()
    if int(counted) == 0:
        raise ValueError("mean_average_precision: no class has two items in the gallery")
    return float(total / counted)
