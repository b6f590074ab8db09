"""The straightforward Madry adaptation (Appendix H.1, Eq. 19); *less stable*.

``min_theta E[ max_{r in Gamma} L_triplet(q + r, c_p, c_n) ]``: the anchor of each
triplet is replaced by the PGD adversary that maximizes the triplet loss against the
clean ``c_p, c_n`` ([TripletAscentObjective][rankattack.defenses.madry.TripletAscentObjective]),
then the ranking loss is applied. The paper reports that this loss always diverges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rankattack.defenses.base import (
    Defense,
    LossFn,
    Triplets,
    TripletSelector,
    _check_pgd,
    step_of,
)
from rankattack.distances import Distance, get_distance
from rankattack.objectives import RankingObjective
from rankattack.pgd import LinfPGD

__all__ = ["MadryDefense", "TripletAscentObjective", "madry_loss", "madry_step"]


class TripletAscentObjective(RankingObjective):
    """Inner maximization of the Madry adaptation (Appendix H.1, Eq. 19).

    Minimizes ``-(d(q + r, c_p) - d(q + r, c_n))`` over the anchor's perturbation: the
    argument of the triplet hinge of Eq. 3 without the clamp (whose gradient vanishes
    on satisfied triplets), with the candidates' embeddings fixed.

    Parameters
    ----------
    positive_embeddings, negative_embeddings : Tensor
        ``[N, D]`` raw embeddings of ``c_p`` and ``c_n``.
    metric : {"cosine", "euclidean", "normalized-euclidean"} or Distance
    """

    def __init__(
        self,
        positive_embeddings: Tensor,
        negative_embeddings: Tensor,
        metric: str | Distance = "cosine",
    ) -> None:
        self.distance = get_distance(metric)
        self.positives = self.distance.prepare(positive_embeddings.detach())
        self.negatives = self.distance.prepare(negative_embeddings.detach())
        self.dim = int(positive_embeddings.shape[-1])

    def __call__(self, embeddings: Tensor) -> Tensor:
        q = self.distance.prepare(embeddings)
        return self.distance.paired(q, self.negatives) - self.distance.paired(q, self.positives)

    def __repr__(self) -> str:
        return f"TripletAscentObjective(metric={self.distance.name!r}, n={self.positives.shape[0]})"


class MadryDefense(Defense):
    """The straightforward Madry adaptation (Zhou et al., ECCV 2020, Appendix H.1, Eq. 19).

    ``min_theta E[ max_{r in Gamma} L_triplet(q + r, c_p, c_n) ]``: the triplets are mined on
    the clean embeddings (eval mode, no gradient), each anchor is replaced by the PGD adversary
    that most violates its triplet against the clean candidates
    ([TripletAscentObjective][rankattack.defenses.madry.TripletAscentObjective]), and the ranking
    loss is applied to ``(q + r, c_p, c_n)``. *Less stable*: the paper reports that this loss always
    diverges.

    Parameters
    ----------
    eps : float, default 0.3
    alpha, steps : optional
        Default the paper's PGD schedule ([rankattack.pgd.default_alpha][],
        [default_steps][rankattack.pgd.default_steps]).
    metric, margin, ranking_loss, miner
        See [Defense][rankattack.defenses.base.Defense].
    """

    name = "madry"

    def __init__(
        self,
        eps: float = 0.3,
        alpha: float | None = None,
        steps: int | None = None,
        metric: str | Distance = "cosine",
        margin: float | None = None,
        ranking_loss: Any = None,
        miner: Any = None,
    ) -> None:
        super().__init__(metric, margin, ranking_loss, miner)
        eps, alpha, steps = _check_pgd(eps, alpha, steps)
        self.pgd = LinfPGD(eps=eps, alpha=alpha, steps=steps)

    @classmethod
    def from_pgd(cls, pgd: LinfPGD, metric: str | Distance, ranking_loss: Any) -> MadryDefense:
        """The defense whose inner maximizer is ``pgd``."""
        if not isinstance(pgd, LinfPGD):
            raise TypeError(f"pgd must be a LinfPGD, got {type(pgd).__name__}")
        defense = cls(metric=metric, ranking_loss=ranking_loss)
        defense.pgd = pgd
        return defense

    def _loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, select: TripletSelector
    ) -> Tensor:
        clean, (a, p, n) = self._mine_benign(model, inputs, select)
        if a.shape[0] == 0:
            return self._no_triplets(inputs)
        objective = TripletAscentObjective(clean[p], clean[n], self.distance)
        anchors_adv = self.pgd(model, inputs[a], objective)
        m = anchors_adv.shape[0]
        emb = model(torch.cat([anchors_adv, inputs]))
        return self.ranking_loss(emb[:m], emb[m:][p], emb[m:][n])

    def _params(self) -> dict[str, Any]:
        pgd = self.pgd
        return {"eps": pgd.eps, "alpha": pgd.alpha, "steps": pgd.steps, **super()._params()}


def madry_loss(
    model: Callable[[Tensor], Tensor],
    loss_fn: LossFn,
    inputs: Tensor,
    triplets: Triplets,
    pgd: LinfPGD,
    metric: str | Distance = "cosine",
) -> Tensor:
    """Straightforward Madry adaptation (Appendix H.1, Eq. 19) of given triplets; *less stable*.

    ``min_theta E[ max_{r in Gamma} L_triplet(q + r, c_p, c_n) ]``: each anchor is
    replaced by the PGD adversary that most violates its triplet (clean candidates,
    model in eval mode), then the ranking loss is applied to ``(q + r, c_p, c_n)``.
    ``metric`` must be the loss's distance. [MadryDefense][rankattack.defenses.madry.MadryDefense]
    with ``pgd``.
    """
    return MadryDefense.from_pgd(pgd, metric, loss_fn).triplet_loss(model, inputs, triplets)


madry_step = step_of(madry_loss)
"""One optimizer step of the Madry adaptation (Appendix H.1, Eq. 19); *less stable*.

``madry_step(model, loss_fn, optimizer, anchors, positives, negatives, pgd, metric="cosine")``:
``pgd`` is the inner maximizer, e.g. ``LinfPGD(eps=0.3)``; ``metric`` must be the loss's
distance.
"""
