"""Learning-to-misrank objective (LTM): every other class closer than the query's own."""

from __future__ import annotations

import torch
from torch import Tensor

from rankattack._validation import check_tensor
from rankattack.gallery import Gallery
from rankattack.objectives.base import RankingObjective
from rankattack.objectives.labelextremes import label_extremes

__all__ = ["LearningToMisrankObjective"]

#: The two extremes LTM needs: the farthest item of another class, the nearest of its own.
_FARTHEST_NEGATIVE, _NEAREST_POSITIVE = (False, True), (True, False)


class LearningToMisrankObjective(RankingObjective):
    """Learning-to-misrank objective (Zhou et al., T-PAMI 2024, the ERS suite's LTM).

    ``L(q~) = [ max_{x : y_x != y_q} d(q~, x) - min_{x : y_x = y_q, x != self} d(q~, x) ]_+``

    zero exactly when every gallery item of another class is at least as close to the
    perturbed query as its nearest same-class item (its own clean copy excluded): then
    no item of its class can rank first. A query with no same-class item besides its own
    copy has nothing to misrank: its loss is 0.

    The two extremes are found block by block over the gallery without gradient (within
    its ``chunk_budget``), then the distances to the two chosen items are recomputed
    with gradient, so the gradient is the exact (sub)gradient of the loss.

    Parameters
    ----------
    gallery : Gallery
        The labelled candidate set X, metric included.
    labels : Tensor
        ``[N]`` integer labels ``y_q`` of the queries.
    self_indices : Tensor, optional
        ``[N]`` int64 gallery position of each query's own clean copy, left out of the
        positive set (``None``: the queries have no copy in the gallery).
    self_in_positives : bool, default False
        Keep the own copy in the positive set: robrank's defect (its mask update is
        discarded), where the minimum is about ``d(q~, q)`` and the attack mostly pushes
        the query off its own clean embedding. For comparison only.
    """

    def __init__(
        self,
        gallery: Gallery,
        labels: Tensor,
        self_indices: Tensor | None = None,
        self_in_positives: bool = False,
    ) -> None:
        if gallery.labels is None:
            raise ValueError("gallery must have labels (Gallery(..., labels=...)) for LTM")
        check_tensor(labels, "labels", ndim=1, integer=True)
        if labels.shape[0] < 1:
            raise ValueError("labels must hold at least one label")
        if not isinstance(self_in_positives, bool):
            raise TypeError(
                f"self_in_positives must be a bool, got {type(self_in_positives).__name__}"
            )
        self.gallery = gallery
        self.n = int(labels.shape[0])
        self.labels = labels.to(device=gallery.embeddings.device, dtype=torch.long)
        self.self_indices: Tensor | None = None
        if self_indices is not None:
            idx = gallery.check_indices(self_indices, "self_indices", ndim=1)
            if idx.shape[0] != self.n:
                raise ValueError(
                    f"self_indices must have one entry per label ({self.n}), got {idx.shape[0]}"
                )
            self.self_indices = idx
        self.self_in_positives = self_in_positives
        self.dim = gallery.dim
        self.device = gallery.embeddings.device

    def chosen(self, embeddings: Tensor) -> Tensor:
        """Gallery indices ``[N, 2]`` of the farthest negative and the nearest positive.

        ``-1`` where the set is empty (no other class, or no same-class item besides
        the own copy).
        """
        q = self.gallery.distance.prepare(embeddings.detach().to(self.gallery.embeddings.dtype))
        exclude = None if self.self_in_positives else self.self_indices
        _, idx = label_extremes(
            self.gallery, q, self.labels, (_FARTHEST_NEGATIVE, _NEAREST_POSITIVE), exclude
        )
        return idx

    def __call__(self, embeddings: Tensor) -> Tensor:
        idx = self.chosen(embeddings)
        q = self.gallery.distance.prepare(embeddings.to(self.gallery.embeddings.dtype))
        items = self.gallery.prepared[idx.clamp_min(0)]  # [N, 2, D]
        d = self.gallery.distance.paired(q.unsqueeze(1), items)  # [N, 2], with gradient
        hinge = (d[:, 0] - d[:, 1]).clamp_min(0.0)
        return torch.where((idx >= 0).all(1), hinge, torch.zeros_like(hinge))

    def __repr__(self) -> str:
        return (
            f"LearningToMisrankObjective(n={self.n}, "
            f"self_indices={'yes' if self.self_indices is not None else 'no'}, "
            f"self_in_positives={self.self_in_positives})"
        )
