"""The anti-collapse triplet defense, ACT (Zhou et al., robrank, T-PAMI 2024).

The triplets are mined on the benign embeddings; the positive and the negative of each triplet
are perturbed together by L-inf PGD so that their embeddings collapse into each other
([PairCollapseObjective][rankattack.defenses.anticollapse.PairCollapseObjective]), and the triplet
loss is applied to the benign anchor and the two adversarial candidates: the model learns to keep a
positive and a negative apart even when an adversary pushes them together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rankattack.defenses.base import Defense, TripletMiner, TripletSelector, _check_pgd
from rankattack.distances import Distance, get_distance
from rankattack.objectives import RankingObjective
from rankattack.pgd import LinfPGD

__all__ = ["AntiCollapseDefense", "PairCollapseObjective"]


class PairCollapseObjective(RankingObjective):
    """ACT's adversary objective: pull the two halves of a batch onto each other.

    The perturbed batch is ``[p_1 .. p_M, n_1 .. n_M]``; the loss of ``p_i`` and of ``n_i`` is
    ``d(f(p_i + r), f(n_i + r'))`` (minimized), differentiated through both embeddings.

    Parameters
    ----------
    metric : {"cosine", "euclidean"} or Distance
    """

    def __init__(self, metric: str | Distance = "cosine") -> None:
        self.distance = get_distance(metric)

    def pair_distance(self, embeddings: Tensor) -> Tensor:
        """``d(f(p_i), f(n_i))`` ``[M]`` of the batch ``[2M, D]``."""
        if embeddings.shape[0] % 2:
            raise ValueError(
                f"embeddings must hold the positives then the negatives (an even number of "
                f"rows), got {embeddings.shape[0]}"
            )
        e = self.distance.prepare(embeddings)
        m = e.shape[0] // 2
        return self.distance.paired(e[:m], e[m:])

    def __call__(self, embeddings: Tensor) -> Tensor:
        d = self.pair_distance(embeddings)
        return torch.cat([d, d])

    def __repr__(self) -> str:
        return f"PairCollapseObjective(metric={self.distance.name!r})"


class AntiCollapseDefense(Defense):
    """The anti-collapse triplet defense, ACT (Zhou et al., "Adversarial Attack and Defense in
    Deep Ranking", T-PAMI 2024; robrank's ``pnp`` training).

    1. The batch is embedded in eval mode without gradient and the miner picks the triplets
       ``(a, p, n)`` on those benign embeddings.
    2. ``p`` and ``n`` are perturbed together by L-inf PGD (model in eval mode, parameters
       frozen, no random start) that minimizes ``d(f(p~), f(n~))``
       ([PairCollapseObjective][rankattack.defenses.anticollapse.PairCollapseObjective]); the anchor
       is not perturbed.
    3. ``L = L_triplet(f(a), f(p~), f(n~); margin)`` with the benign anchor, embedded in the
       model's current mode. There is no clean term.

    Parameters
    ----------
    eps : float, default 77/255
        L-inf radius (robrank's 28x28 setting).
    alpha : float, default 3/255
    steps : int, default 32
        Fewer steps trade robustness for time (robrank's ``override_pgditer_{16,8}``).
    metric, margin, ranking_loss
        See [Defense][rankattack.defenses.base.Defense] (margin 0.2 for cosine).
    miner : callable, optional
        Default robrank's SPC-2 random miner
        ([RandomTripletMiner][rankattack.defenses.miners.RandomTripletMiner] with
        ``anchors="pairs"``): about one triplet per two images, so the adversary perturbs about one
        batch of images.

    Examples
    --------
    >>> import torch
    >>> from rankattack.models import C2F1
    >>> model = C2F1(embedding_dim=8)
    >>> defense = AntiCollapseDefense(eps=77 / 255, alpha=3 / 255, steps=2, metric="cosine")
    >>> loss = defense.loss(model, torch.rand(4, 1, 28, 28), torch.tensor([0, 0, 1, 1]))
    >>> loss.backward()
    """

    name = "act"

    def __init__(
        self,
        eps: float = 77 / 255,
        alpha: float | None = 3 / 255,
        steps: int | None = 32,
        metric: str | Distance = "cosine",
        margin: float | None = None,
        ranking_loss: Any = None,
        miner: Any = None,
    ) -> None:
        super().__init__(metric, margin, ranking_loss, miner)
        eps, alpha, steps = _check_pgd(eps, alpha, steps)
        self.pgd = LinfPGD(eps=eps, alpha=alpha, steps=steps)
        self.objective = PairCollapseObjective(self.distance)

    def default_miner(self) -> TripletMiner:
        """robrank's SPC-2 random miner (``RandomTripletMiner(anchors="pairs")``)."""
        from rankattack.defenses.miners import RandomTripletMiner

        return RandomTripletMiner("pairs")

    def _loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, select: TripletSelector
    ) -> Tensor:
        _, (a, p, n) = self._mine_benign(model, inputs, select)
        m = a.shape[0]
        if m == 0:
            return self._no_triplets(inputs)
        candidates = self.pgd(model, torch.cat([inputs[p], inputs[n]]), self.objective)
        emb = model(torch.cat([inputs[a], candidates]))
        return self.ranking_loss(emb[:m], emb[m : 2 * m], emb[2 * m :])

    def _params(self) -> dict[str, Any]:
        pgd = self.pgd
        return {"eps": pgd.eps, "alpha": pgd.alpha, "steps": pgd.steps, **super()._params()}
