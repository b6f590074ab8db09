"""Maximum-shift objective of the embedding-shift defense (paper Sec. 3.3, Eq. 13)."""

from __future__ import annotations

from torch import Tensor

from rankattack.distances import Distance, get_distance
from rankattack.objectives.base import RankingObjective

__all__ = ["MaxShiftObjective"]


class MaxShiftObjective(RankingObjective):
    """Maximum-shift objective of the embedding-shift defense (Sec. 3.3, Eq. 13).

    ``r = argmax_r d(f(x + r), f(x))``: the loss is ``-d(f(x + r), f(x))``.

    Parameters
    ----------
    reference_embeddings : Tensor
        ``[N, D]`` clean embeddings ``f(x)`` (detached).
    metric : {"cosine", "euclidean", "normalized-euclidean"} or Distance
    """

    def __init__(self, reference_embeddings: Tensor, metric: str | Distance = "cosine"):
        self.distance = get_distance(metric)
        self.reference = self.distance.prepare(reference_embeddings.detach())
        self.dim = int(reference_embeddings.shape[-1])
        self.device = reference_embeddings.device

    def __call__(self, embeddings: Tensor) -> Tensor:
        return -self.shift(embeddings)

    def shift(self, embeddings: Tensor) -> Tensor:
        """Embedding shift ``d(f(x + r), f(x))`` ``[N]``."""
        return self.distance.paired(self.distance.prepare(embeddings), self.reference)

    def __repr__(self) -> str:
        return f"MaxShiftObjective(metric={self.distance.name!r}, n={self.reference.shape[0]})"
