"""Ranking losses over the distances the attacks use: triplet (Eq. 3) and contrastive.

Both losses take the embeddings of triplets ``(q, c_p, c_n)`` -- anchor, a candidate
of the anchor's class and one of another class -- and go through
[rankattack.distances][], so a model is trained with exactly the distance its
gallery and its attacks rank with.
"""

from __future__ import annotations

import logging

from torch import Tensor, nn

from rankattack._validation import check_choice, check_real, check_tensor
from rankattack.distances import Distance, get_distance

__all__ = [
    "LOSS_NAMES",
    "ContrastiveLoss",
    "RankingLoss",
    "TripletLoss",
    "default_margin",
    "get_loss",
]

logger = logging.getLogger(__name__)

#: The margin beta used when none is given, per distance.
DEFAULT_MARGINS: dict[str, float] = {
    "cosine": 0.2,
    "euclidean": 1.0,
    "normalized-euclidean": 0.2,  # robrank's margin for its "N" metric
}

REDUCTIONS = ("mean", "sum", "none")


def default_margin(metric: str | Distance) -> float:
    """The default margin beta: 0.2 for cosine and normalized Euclidean, 1.0 for Euclidean."""
    return DEFAULT_MARGINS[get_distance(metric).name]


class RankingLoss(nn.Module):
    """Base of the triplet-based ranking losses.

    Parameters
    ----------
    metric : {"cosine", "euclidean", "normalized-euclidean"} or Distance, default "cosine"
    margin : float, optional
        The margin beta (``>= 0``); default [default_margin][rankattack.losses.default_margin] of
        the metric.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-triplet losses ``[M]`` are reduced.
    """

    name = ""

    def __init__(
        self,
        metric: str | Distance = "cosine",
        margin: float | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.distance = get_distance(metric)
        self.margin = (
            default_margin(self.distance)
            if margin is None
            else check_real(margin, "margin", low=0.0)
        )
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)

    @property
    def metric(self) -> str:
        return self.distance.name

    def _distances(
        self, anchors: Tensor, positives: Tensor, negatives: Tensor
    ) -> tuple[Tensor, Tensor]:
        for value, name in (
            (anchors, "anchors"),
            (positives, "positives"),
            (negatives, "negatives"),
        ):
            check_tensor(value, name, ndim=2, floating=True)
        if positives.shape != anchors.shape or negatives.shape != anchors.shape:
            raise ValueError(
                f"anchors, positives and negatives must be embeddings of the same shape [M, D], "
                f"got {tuple(anchors.shape)}, {tuple(positives.shape)}, {tuple(negatives.shape)}"
            )
        prep = self.distance.prepare
        a = prep(anchors)
        return self.distance.paired(a, prep(positives)), self.distance.paired(a, prep(negatives))

    def per_triplet(self, d_pos: Tensor, d_neg: Tensor) -> Tensor:
        """Per-triplet loss ``[M]`` from ``d(q, c_p)`` and ``d(q, c_n)``."""
        raise NotImplementedError

    def forward(self, anchors: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
        """Loss of the triplets whose embeddings are ``anchors``, ``positives``, ``negatives``.

        Parameters
        ----------
        anchors, positives, negatives : Tensor
            ``[M, D]`` raw embeddings of ``q``, ``c_p`` and ``c_n``.

        Returns
        -------
        Tensor
            A scalar (``reduction`` "mean" or "sum") or ``[M]`` ("none").
        """
        loss = self.per_triplet(*self._distances(anchors, positives, negatives))
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}, margin={self.margin}, reduction={self.reduction!r}"


class TripletLoss(RankingLoss):
    """Triplet loss (paper Eq. 3): ``L = [beta + d(q, c_p) - d(q, c_n)]_+``.

    Parameters
    ----------
    metric : {"cosine", "euclidean", "normalized-euclidean"} or Distance, default "cosine"
    margin : float, optional
        beta; default 0.2 (cosine, normalized Euclidean) or 1.0 (Euclidean).
    reduction : {"mean", "sum", "none"}, default "mean"

    Examples
    --------
    >>> import torch
    >>> from rankattack.losses import TripletLoss
    >>> q, p, n = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> round(float(TripletLoss("cosine")(q, n, p)), 4)  # wrong order: 0.2 + 1 - 0
    1.2
    """

    name = "triplet"

    def per_triplet(self, d_pos: Tensor, d_neg: Tensor) -> Tensor:
        return (self.margin + d_pos - d_neg).clamp_min(0.0)


class ContrastiveLoss(RankingLoss):
    """Contrastive loss over the positive and the negative pair of each triplet.

    ``L = d(q, c_p) + [beta - d(q, c_n)]_+``: positive pairs are pulled together and
    negative pairs pushed beyond the margin (Hadsell et al.; the paper's "contrastive"
    models, Appendix B, with the distance taken linearly for both metrics).

    Parameters
    ----------
    metric : {"cosine", "euclidean", "normalized-euclidean"} or Distance, default "cosine"
    margin : float, optional
        beta; default 0.2 (cosine, normalized Euclidean) or 1.0 (Euclidean).
    reduction : {"mean", "sum", "none"}, default "mean"

    Examples
    --------
    >>> import torch
    >>> from rankattack.losses import ContrastiveLoss
    >>> q, n = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> float(ContrastiveLoss("cosine")(q, q, n))  # 0 + [0.2 - 1]_+
    0.0
    """

    name = "contrastive"

    def per_triplet(self, d_pos: Tensor, d_neg: Tensor) -> Tensor:
        return d_pos + (self.margin - d_neg).clamp_min(0.0)


_LOSSES: dict[str, type[RankingLoss]] = {"triplet": TripletLoss, "contrastive": ContrastiveLoss}

#: Names accepted by [get_loss][rankattack.losses.get_loss].
LOSS_NAMES: tuple[str, ...] = tuple(_LOSSES)


def get_loss(
    name: str, metric: str | Distance = "cosine", margin: float | None = None
) -> RankingLoss:
    """Build a ranking loss by name ("triplet" or "contrastive").

    Raises
    ------
    ValueError
        If ``name`` is not a known loss, the metric is unknown or the margin negative.

    Examples
    --------
    >>> from rankattack.losses import get_loss
    >>> get_loss("triplet", "euclidean").margin
    1.0
    """
    if not isinstance(name, str) or name.lower() not in _LOSSES:
        raise ValueError(f"loss name must be one of {list(LOSS_NAMES)}, got {name!r}")
    return _LOSSES[name.lower()](metric=metric, margin=margin)
