"""The straightforward Madry adaptation (Appendix H.1, Eq. 19); *less stable*.

``min_theta E[ max_{r in Gamma} L_triplet(q + r, c_p, c_n) ]``: the anchor of each
triplet is replaced by the PGD adversary that maximizes the triplet loss against the
clean ``c_p, c_n`` (:class:`TripletAscentObjective`), then the ranking loss is applied.
The paper reports that this loss always diverges.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rankattack.defenses.base import LossFn, Triplets, apply_step, stack_triplets
from rankattack.distances import Distance, get_distance
from rankattack.objectives import RankingObjective
from rankattack.pgd import LinfPGD
from rankattack.wrappers import eval_mode

__all__ = ["TripletAscentObjective", "madry_loss", "madry_step"]


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


def madry_loss(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    triplets: Triplets,
    pgd: LinfPGD,
    metric: str | Distance = "cosine",
) -> Tensor:
    """Straightforward Madry adaptation (Appendix H.1, Eq. 19); *less stable*.

    ``min_theta E[ max_{r in Gamma} L_triplet(q + r, c_p, c_n) ]``: each anchor is
    replaced by the PGD adversary that most violates its triplet (clean candidates,
    model in eval mode), then the ranking loss is applied to ``(q + r, c_p, c_n)``.
    """
    a, p, n = triplets
    with eval_mode(model), torch.no_grad():
        clean = model(inputs)
    objective = TripletAscentObjective(clean[p], clean[n], metric)
    anchors_adv = pgd(model, inputs[a], objective)
    m = anchors_adv.shape[0]
    emb = model(torch.cat([anchors_adv, inputs]))
    return loss_fn(emb[:m], emb[m:][p], emb[m:][n])


def madry_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor,
    pgd: LinfPGD,
    metric: str | Distance = "cosine",
) -> Tensor:
    """One optimizer step of the Madry adaptation (Appendix H.1, Eq. 19); *less stable*.

    ``pgd`` is the inner maximizer, e.g. ``LinfPGD(eps=0.3)``; ``metric`` must be the
    loss's distance.
    """
    if not isinstance(pgd, LinfPGD):
        raise TypeError(f"pgd must be a LinfPGD, got {type(pgd).__name__}")
    inputs, triplets = stack_triplets(anchors, positives, negatives)
    return apply_step(optimizer, madry_loss(model, loss_fn, inputs, triplets, pgd, metric))
