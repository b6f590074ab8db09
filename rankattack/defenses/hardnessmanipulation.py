"""Hardness manipulation, HM, with gradual adversary (GA) and intra-class structure (ICS).

Zhou et al., "Enhancing Adversarial Robustness for Deep Metric Learning" (CVPR 2022): the
adversary perturbs the anchor, positive and negative of each source triplet so that the
triplet's hardness ``H(a, p, n) = d(a, p) - d(a, n)`` reaches a destination hardness ``H_D``
([HardnessObjective][rankattack.defenses.hardnessmanipulation.HardnessObjective]); with the gradual
adversary, ``H_D`` follows the training progress
([gradual_destination][rankattack.defenses.hardnessmanipulation.gradual_destination]). The training
loss is the triplet loss of the adversarial triplets plus the intra-class-structure term.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_bool, check_real
from rankattack.defenses.base import Defense, TripletMiner, TripletSelector, _check_pgd
from rankattack.distances import Distance, get_distance
from rankattack.losses import TripletLoss
from rankattack.objectives import RankingObjective
from rankattack.pgd import LinfPGD

__all__ = ["HardnessManipulationDefense", "HardnessObjective", "gradual_destination"]


def gradual_destination(previous_loss: Tensor | float, margin: float) -> Tensor:
    """The gradual adversary's destination hardness (CVPR 2022, Sec. 3.2).

    ``H_D = -margin * clamp(l_prev, 0, u) / u`` with ``u = margin``: ``-margin`` (semi-hard)
    while the previous step's adversarial loss is at least the margin, rising to 0 (hard) as the
    model learns to satisfy the adversarial triplets.

    Examples
    --------
    >>> gradual_destination(2.0, 0.2).item(), gradual_destination(0.05, 0.2).item()
    (-0.2..., -0.05...)
    """
    loss = torch.as_tensor(previous_loss)
    if margin <= 0:
        return torch.zeros_like(loss)
    return -margin * loss.clamp(0.0, margin) / margin


class HardnessObjective(RankingObjective):
    """HM's adversary objective: ``max(0, H_D - H(a~, p~, n~))^2`` (the paper's "ET").

    The perturbed batch is ``[a_1 .. a_M, p_1 .. p_M, n_1 .. n_M]``; each of the three images
    of triplet ``i`` carries the triplet's loss (minimized), so PGD raises the hardness
    ``H = d(a~, p~) - d(a~, n~)`` of every triplet below ``H_D`` up to ``H_D``.

    Parameters
    ----------
    destination : Tensor or float
        ``H_D``, a scalar or ``[M]``.
    metric : {"cosine", "euclidean"} or Distance
    prune : bool, default True
        Let PGD drop the triplets that reached ``H_D`` from its remaining steps
        ([settled][rankattack.defenses.hardnessmanipulation.HardnessObjective.settled]): their
        loss and gradient are zero from then on, so the result is the same and the steps cost
        only the triplets still moving. False runs every triplet through every step.
    """

    def __init__(
        self, destination: Tensor | float, metric: str | Distance = "cosine", prune: bool = True
    ) -> None:
        self.destination = torch.as_tensor(destination)
        self.distance = get_distance(metric)
        self.prune = check_bool(prune, "prune")

    def hardness(self, embeddings: Tensor) -> Tensor:
        """``H(a, p, n) = d(a, p) - d(a, n)`` ``[M]`` of the batch ``[3M, D]``."""
        if embeddings.shape[0] % 3:
            raise ValueError(
                f"embeddings must hold the anchors, positives and negatives (a multiple of 3 "
                f"rows), got {embeddings.shape[0]}"
            )
        a, p, n = self.distance.prepare(embeddings).chunk(3)
        return self.distance.paired(a, p) - self.distance.paired(a, n)

    def __call__(self, embeddings: Tensor) -> Tensor:
        h = self.hardness(embeddings)
        loss = (self.destination.to(h.device) - h).clamp_min(0.0).square()
        return torch.cat([loss, loss, loss])

    def settled(self, loss: Tensor) -> Tensor | None:
        """Triplets already at least as hard as ``H_D``: zero loss and zero gradient for good."""
        return loss == 0 if self.prune else None

    def restrict(self, keep: Tensor) -> HardnessObjective:
        """The objective over the kept triplets (``keep`` marks all three rows of each alike)."""
        a, p, n = keep.chunk(3)
        if not (torch.equal(a, p) and torch.equal(a, n)):
            raise ValueError("keep must mark the anchor, positive and negative of a triplet alike")
        dest = self.destination
        return HardnessObjective(
            dest[a.to(dest.device)] if dest.ndim else dest, self.distance, self.prune
        )

    def __repr__(self) -> str:
        return f"HardnessObjective(metric={self.distance.name!r})"


class HardnessManipulationDefense(Defense):
    """Hardness manipulation with gradual adversary and intra-class structure (HM + GA + ICS).

    Zhou et al., "Enhancing Adversarial Robustness for Deep Metric Learning", CVPR 2022
    (robrank's ``ghmetsmi``):

    1. The batch is embedded in eval mode without gradient; the miner picks the source triplets
       on those benign embeddings (default robrank's soft-hard SPC-2 miner,
       [SoftHardTripletMiner][rankattack.defenses.miners.SoftHardTripletMiner]).
    2. The destination hardness is the gradual adversary's
       ``H_D = -margin * clamp(l_prev, 0, margin) / margin``
       ([gradual_destination][rankattack.defenses.hardnessmanipulation.gradual_destination]),
       ``l_prev`` the previous step's adversarial loss (``initial_loss`` at the first step).
    3. ``a``, ``p`` and ``n`` are perturbed by L-inf PGD (model in eval mode, parameters frozen,
       no random start) minimizing ``mean(max(0, H_D - H(a~, p~, n~))^2)``
       ([HardnessObjective][rankattack.defenses.hardnessmanipulation.HardnessObjective]).
    4. ``L = L_triplet(a~, p~, n~; margin) + lambda * L_triplet(a, a~, p; 0)``, all embedded in
       the model's current mode; the second term (ICS) keeps the adversarial anchor closer to
       its benign self than the benign positive is. ``l_prev`` becomes the first term's value.

    The defense keeps ``l_prev`` between steps
    ([state_dict][rankattack.defenses.hardnessmanipulation.HardnessManipulationDefense.state_dict];
    the training loop stores it in its checkpoints, so a resumed run is bit-identical).

    Parameters
    ----------
    eps : float, default 8/255
    alpha : float, default 1/255
    steps : int, default 8
        The paper's settings for 224x224 images. On 28x28 images the training loop uses
        robrank's 77/255, 3/255 and 32 steps (``rankattack.training.TrainConfig``).
    metric, margin, ranking_loss
        See [Defense][rankattack.defenses.base.Defense]; ``margin`` (0.2 for cosine) is also the
        gradual adversary's ``u``.
    miner : callable, optional
        Default ``SoftHardTripletMiner(metric)``.
    ics_weight : float, default 0.5
        lambda of the intra-class-structure term (the paper uses 0.05 on SOP; 0 turns it off).
    initial_loss : float, default 2.0
        ``l_prev`` before the first step.
    prune : bool, default True
        Stop perturbing a triplet once it reaches ``H_D`` (exact: its gradient is zero from
        then on); a step then costs only the triplets still moving. False makes every triplet
        take every PGD step (the reference implementation's cost, same result).

    Examples
    --------
    >>> import torch
    >>> from rankattack.models import C2F1
    >>> model = C2F1(embedding_dim=8)
    >>> defense = HardnessManipulationDefense(steps=2)
    >>> loss = defense.loss(model, torch.rand(4, 1, 28, 28), torch.tensor([0, 0, 1, 1]))
    >>> loss.backward()
    """

    name = "hm"

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = 1 / 255,
        steps: int | None = 8,
        metric: str | Distance = "cosine",
        margin: float | None = None,
        ranking_loss: Any = None,
        miner: Any = None,
        ics_weight: float = 0.5,
        initial_loss: float = 2.0,
        prune: bool = True,
    ) -> None:
        super().__init__(metric, margin, ranking_loss, miner)
        eps, alpha, steps = _check_pgd(eps, alpha, steps)
        self.pgd = LinfPGD(eps=eps, alpha=alpha, steps=steps)
        self.ics_weight = check_real(ics_weight, "ics_weight", low=0.0)
        self.initial_loss = check_real(initial_loss, "initial_loss")
        self.prune = check_bool(prune, "prune")
        self.ics_loss = TripletLoss(self.distance, margin=0.0)
        self.previous_loss: Tensor | None = None

    def default_miner(self) -> TripletMiner:
        """robrank's soft-hard SPC-2 miner on the defense's distance."""
        from rankattack.defenses.miners import SoftHardTripletMiner

        return SoftHardTripletMiner(self.distance)

    def destination(self, device: torch.device | None = None) -> Tensor:
        """The destination hardness ``H_D`` of the next step (a 0-d tensor)."""
        prev = self.previous_loss
        if prev is None:
            prev = torch.tensor(self.initial_loss, device=device)
        return gradual_destination(prev.to(device), self.margin)

    def _loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, select: TripletSelector
    ) -> Tensor:
        _, (a, p, n) = self._mine_benign(model, inputs, select)
        m = a.shape[0]
        if m == 0:
            return self._no_triplets(inputs)
        objective = HardnessObjective(self.destination(inputs.device), self.distance, self.prune)
        adversarial = self.pgd(model, torch.cat([inputs[a], inputs[p], inputs[n]]), objective)
        emb = model(torch.cat([adversarial, inputs[a], inputs[p]]))
        adv_a, adv_p, adv_n, clean_a, clean_p = emb.split(m)
        loss = self.ranking_loss(adv_a, adv_p, adv_n)
        self.previous_loss = loss.detach()
        if self.ics_weight > 0:
            loss = loss + self.ics_weight * self.ics_loss(clean_a, adv_a, clean_p)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """``{"previous_loss": l_prev}`` (a 0-d tensor) once a step was taken."""
        if self.previous_loss is None:
            return {}
        return {"previous_loss": self.previous_loss.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = sorted(set(state) - {"previous_loss"})
        if unknown:
            raise ValueError(f"unknown HardnessManipulationDefense state keys {unknown}")
        prev = state.get("previous_loss")
        self.previous_loss = None if prev is None else torch.as_tensor(prev).detach().clone()

    def _params(self) -> dict[str, Any]:
        pgd = self.pgd
        return {
            "eps": pgd.eps, "alpha": pgd.alpha, "steps": pgd.steps, **super()._params(),
            "ics_weight": self.ics_weight, "initial_loss": self.initial_loss, "prune": self.prune,
        }  # fmt: skip
