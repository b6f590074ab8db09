"""Target-distance objective: pull each embedding toward one fixed target (TMA, GTM)."""

from __future__ import annotations

import torch
from torch import Tensor

from rankattack._validation import check_finite, check_tensor
from rankattack.distances import Distance, get_distance
from rankattack.objectives.base import RankingObjective

__all__ = ["TargetDistanceObjective"]


class TargetDistanceObjective(RankingObjective):
    """Distance from each perturbed embedding to its own fixed target: ``d(f(x~), t)``.

    The loss of the targeted mismatch attack (TMA, Tolias et al., ICCV 2019:
    ``1 - cos(f(x~), e_r)`` with the cosine distance) and of the greedy top-1
    misranking attack (GTM, Zhou et al., T-PAMI 2024: ``d(q~, e_u)`` under the gallery's
    metric). It is zero exactly when every embedding coincides with its target as the
    distance sees it (for cosine: points the same way).

    Parameters
    ----------
    targets : Tensor
        ``[N, D]`` raw target embeddings, one per perturbed input (detached).
    distance : {"cosine", "euclidean", "normalized-euclidean"} or Distance, default "cosine"
    """

    def __init__(self, targets: Tensor, distance: str | Distance = "cosine") -> None:
        check_tensor(targets, "targets", ndim=2, floating=True)
        if targets.shape[0] < 1 or targets.shape[1] < 1:
            raise ValueError(
                f"targets must be [N, D] with N >= 1 and D >= 1, got shape {tuple(targets.shape)}"
            )
        check_finite(targets, "targets")
        self.distance = get_distance(distance)
        self.targets = self.distance.prepare(targets.detach())
        self.n = int(targets.shape[0])
        self.dim = int(targets.shape[1])
        self.device = targets.device

    def __call__(self, embeddings: Tensor) -> Tensor:
        q = self.distance.prepare(embeddings.to(self.targets.dtype))
        return self.distance.paired(q, self.targets)

    @torch.no_grad()
    def distances(self, embeddings: Tensor) -> Tensor:
        """``d(f(x~), t)`` ``[N]`` without gradient (the loss, for reports)."""
        return self(embeddings)

    def __repr__(self) -> str:
        return f"TargetDistanceObjective(distance={self.distance.name!r}, n={self.n})"
