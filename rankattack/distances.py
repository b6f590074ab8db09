"""Distances between embeddings: cosine, Euclidean and normalized Euclidean, in blocks.

Every objective, the gallery and the training losses go through these objects, so a
ranking is the same whichever part of the library computes it. Smaller always means
closer (the paper's ``d(q, c)``, Sec. 3).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = [
    "METRIC_NAMES",
    "CosineDistance",
    "Distance",
    "EuclideanDistance",
    "NormalizedEuclideanDistance",
    "get_distance",
]


class Distance(ABC):
    """A distance between embedding vectors (smaller is closer).

    Subclasses define [prepare][rankattack.distances.Distance.prepare] (a differentiable map applied
    once to every embedding, e.g. L2 normalization) and distances between *prepared* embeddings, so
    that a gallery is prepared once and reused.
    """

    name: str = ""

    @abstractmethod
    def prepare(self, embeddings: Tensor) -> Tensor:
        """Map raw embeddings ``[..., D]`` to the space the distance is computed in."""

    @abstractmethod
    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        """Distances between prepared rows: ``a [M, D]`` x ``b [K, D]`` -> ``[M, K]``."""

    def pairwise_exact(self, a: Tensor, b: Tensor) -> Tensor:
        """``pairwise`` computed without cancellation, for ranks and neighbours.

        Used where no gradient is needed but ties and near-duplicates matter (ranks,
        nearest neighbours, the one-time sort of fixed queries).
        """
        return self.pairwise(a, b)

    @abstractmethod
    def paired(self, a: Tensor, b: Tensor) -> Tensor:
        """Distances between prepared vectors broadcast along ``[..., D]`` -> ``[...]``."""

    @abstractmethod
    def pairwise_grad(self, a: Tensor, b: Tensor, dist: Tensor, weight: Tensor) -> Tensor:
        """Gradient of ``sum(weight * pairwise(a, b))`` with respect to ``a``.

        Parameters
        ----------
        a, b : Tensor
            Prepared rows ``[M, D]`` and ``[K, D]``.
        dist : Tensor
            ``pairwise(a, b)``, ``[M, K]`` (passed in to avoid recomputing it).
        weight : Tensor
            ``[M, K]`` upstream weights.
        """

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        """Distance between raw embeddings broadcast along ``[..., D]``."""
        return self.paired(self.prepare(a), self.prepare(b))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CosineDistance(Distance):
    """Cosine distance ``d(a, b) = 1 - <a/|a|, b/|b|>``, in ``[0, 2]``."""

    name = "cosine"

    def prepare(self, embeddings: Tensor) -> Tensor:
        return torch.nn.functional.normalize(embeddings, p=2.0, dim=-1)

    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        return 1.0 - a @ b.transpose(-1, -2)

    def paired(self, a: Tensor, b: Tensor) -> Tensor:
        return 1.0 - (a * b).sum(-1)

    def pairwise_grad(self, a: Tensor, b: Tensor, dist: Tensor, weight: Tensor) -> Tensor:
        return -(weight @ b)


class EuclideanDistance(Distance):
    """Euclidean (L2) distance ``d(a, b) = |a - b|_2`` on raw embeddings.

    The gradient at ``a == b`` is taken as zero (the sub-gradient ``torch.cdist`` uses).
    ``pairwise`` uses the matrix-product expansion (fast, for the attack's gradient
    steps); ``pairwise_exact`` the direct differences (for ranks and neighbours).
    """

    name = "euclidean"

    def prepare(self, embeddings: Tensor) -> Tensor:
        return embeddings

    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        sq = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(-2) - 2.0 * (a @ b.T)
        return sq.clamp_min_(0.0).sqrt_()

    def pairwise_exact(self, a: Tensor, b: Tensor) -> Tensor:
        # |a|^2 + |b|^2 - 2ab cancels for near neighbours (an error of ~1e-3 at distance
        # 1e-2 in float32); the direct differences do not.
        return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")

    def paired(self, a: Tensor, b: Tensor) -> Tensor:
        diff = a - b
        sq = (diff * diff).sum(-1)
        # sqrt with a zero (not NaN) gradient at coincident points
        safe = torch.where(sq > 0, sq, torch.ones_like(sq))
        return torch.where(sq > 0, safe.sqrt(), torch.zeros_like(sq))

    def pairwise_grad(self, a: Tensor, b: Tensor, dist: Tensor, weight: Tensor) -> Tensor:
        scaled = torch.where(dist > 0, weight / dist.clamp_min(1e-30), torch.zeros_like(dist))
        return a * scaled.sum(-1, keepdim=True) - scaled @ b


class NormalizedEuclideanDistance(EuclideanDistance):
    """Euclidean distance between L2-normalized embeddings, ``|a/|a| - b/|b||_2``, in ``[0, 2]``.

    The "N" metric of the robustness benchmark (robrank; Zhou et al., T-PAMI 2024): it
    ranks exactly as [CosineDistance][rankattack.distances.CosineDistance] does
    (``d_N = sqrt(2 d_C)``, a monotone map), but its gradients and hinge values are those of a
    Euclidean distance.
    """

    name = "normalized-euclidean"

    def prepare(self, embeddings: Tensor) -> Tensor:
        return torch.nn.functional.normalize(embeddings, p=2.0, dim=-1)


_DISTANCES: dict[str, type[Distance]] = {
    "cosine": CosineDistance,
    "euclidean": EuclideanDistance,
    "normalized-euclidean": NormalizedEuclideanDistance,
}

#: The metric names [get_distance][rankattack.distances.get_distance] accepts.
METRIC_NAMES: tuple[str, ...] = tuple(_DISTANCES)


def get_distance(metric: str | Distance) -> Distance:
    """Return the [Distance][rankattack.distances.Distance] for ``metric``: one of ``METRIC_NAMES``.

    "cosine" (``1 - cos``), "euclidean" (L2 on raw embeddings) or
    "normalized-euclidean" (L2 on L2-normalized embeddings).

    Raises
    ------
    ValueError
        If ``metric`` names no known distance.
    """
    if isinstance(metric, Distance):
        return metric
    if not isinstance(metric, str):
        raise TypeError(
            f"metric must be a str (one of {list(METRIC_NAMES)}) or a Distance, "
            f"got {type(metric).__name__}"
        )
    try:
        return _DISTANCES[metric.lower()]()
    except KeyError:
        raise ValueError(f"metric must be one of {sorted(_DISTANCES)}, got {metric!r}") from None


def row_chunks(rows: int, total: int, budget: int) -> list[tuple[int, int]]:
    """Split ``range(total)`` into ``[start, stop)`` blocks of at most ``budget // rows`` items.

    Used so that an ``[rows, block]`` matrix never holds more than ``budget`` elements
    (at least one item per block).
    """
    step = max(1, budget // max(rows, 1))
    return [(s, min(s + step, total)) for s in range(0, total, step)]
