"""Nearest and farthest gallery items within label-defined subsets, in one blockwise pass.

The misranking attacks select their targets by class: LTM the farthest item of another
class and the nearest of the query's own (at every PGD step), GTM the nearest item of a
class other than that of the query's top-1 (once).
[label_extremes][rankattack.objectives.labelextremes.label_extremes] finds them in gallery blocks
within the gallery's ``chunk_budget``, one distance block per pass shared by every requested
extreme, without gradient (the objectives recompute the distance to the chosen items with gradient).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rankattack.distances import row_chunks
from rankattack.gallery import Gallery

__all__ = ["Extreme", "label_extremes"]

#: One requested extreme: ``(same_label, largest)``. ``(False, True)`` is the farthest
#: item of another class, ``(True, False)`` the nearest item of the same class.
Extreme = tuple[bool, bool]


@torch.no_grad()
def label_extremes(
    gallery: Gallery,
    anchors: Tensor,
    labels: Tensor,
    extremes: Sequence[Extreme],
    exclude: Tensor | None = None,
    *,
    exact: bool = False,
) -> tuple[Tensor, Tensor]:
    """Extreme gallery distances within each anchor's label-defined subsets.

    For anchor i and request ``(same, largest)``, the subset is the gallery items whose
    label equals ``labels[i]`` (``same``) or differs from it (not ``same``), minus
    ``exclude[i]``; the result is the largest (``largest``) or smallest distance to it.

    Parameters
    ----------
    gallery : Gallery
        A gallery with labels.
    anchors : Tensor
        ``[N, D]`` *prepared* embeddings (``gallery.distance.prepare(...)``).
    labels : Tensor
        ``[N]`` integer labels on the gallery's device, compared with the gallery's.
    extremes : sequence of (bool, bool)
        P requests ``(same_label, largest)``.
    exclude : Tensor, optional
        ``[N]`` int64 gallery index to leave out of every subset of anchor i (``-1``:
        none), e.g. the query's own copy.
    exact : bool, default False
        Use the distance's cancellation-free kernel (for one-time selections); the
        default is the fast kernel the attacks step with.

    Returns
    -------
    (values, indices) : tuple of Tensor
        ``[N, P]`` each: the extreme distance and the gallery index attaining it (the
        lowest such index). Empty subsets give ``-inf`` / ``+inf`` and index ``-1``.
    """
    if gallery.labels is None:
        raise ValueError("label_extremes needs a gallery with labels (Gallery(..., labels=...))")
    g_labels = gallery.labels
    n, p = anchors.shape[0], len(extremes)
    largest = torch.tensor([lg for _, lg in extremes], device=anchors.device)
    inf = torch.tensor(float("inf"), dtype=anchors.dtype, device=anchors.device)
    best_v = torch.where(largest, -inf, inf).expand(n, p).clone()
    best_i = torch.full((n, p), -1, dtype=torch.long, device=anchors.device)
    pairwise = gallery.distance.pairwise_exact if exact else gallery.distance.pairwise
    for s, e in row_chunks(n, len(gallery), gallery.chunk_budget):
        d = pairwise(anchors, gallery.prepared[s:e])  # [N, block]
        same = labels.unsqueeze(1) == g_labels[s:e].unsqueeze(0)
        dropped = None
        if exclude is not None:
            index = torch.arange(s, e, device=anchors.device)
            dropped = index.unsqueeze(0) == exclude.unsqueeze(1)
        for j, (want_same, want_largest) in enumerate(extremes):
            outside = ~same if want_same else same
            if dropped is not None:
                outside = outside | dropped
            if want_largest:
                val, arg = d.masked_fill(outside, -float("inf")).max(1)
                better = val > best_v[:, j]
            else:
                val, arg = d.masked_fill(outside, float("inf")).min(1)
                better = val < best_v[:, j]
            best_v[:, j] = torch.where(better, val, best_v[:, j])
            best_i[:, j] = torch.where(better, arg + s, best_i[:, j])
    return best_v, best_i
