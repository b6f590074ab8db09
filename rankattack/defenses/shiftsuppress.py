"""Directly suppressing the shift distance (Appendix H.3, Eq. 22); *less stable*.

The clean ranking loss plus the maximum embedding shift of the three images of each
triplet. The paper reports it helps cosine models but may numerically explode with
Euclidean distance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rankattack.attacks.maxshiftattack import MaxShiftAttack
from rankattack.defenses.base import LossFn, Triplets, TripletSelector, step_of
from rankattack.defenses.embeddingshift import EmbeddingShiftDefense

__all__ = ["ShiftSuppressDefense", "shift_suppress_loss", "shift_suppress_step"]


class ShiftSuppressDefense(EmbeddingShiftDefense):
    """Directly suppressing the shift distance (Zhou et al., ECCV 2020, Appendix H.3, Eq. 22).

    ``L = L_triplet(q, c_p, c_n) + sum_{x in {q, c_p, c_n}} d(f(x + r*_x), f(x))`` with
    ``r*_x`` the maximum-shift adversary of ``x`` ([MaxShiftAttack][rankattack.MaxShiftAttack]); the
    shift term is differentiated through both embeddings and averaged over the triplets like
    the ranking loss; the triplets are mined on the clean embeddings. *Less stable*: the paper
    reports it helps cosine models but may numerically explode with Euclidean distance.

    Parameters
    ----------
    eps : float, default 0.3
    alpha, steps : optional
        Default the paper's PGD schedule.
    **kwargs
        ``metric``, ``margin``, ``ranking_loss``, ``miner``, ``jitter``, ``random_start``,
        ``generator``: as in [EmbeddingShiftDefense][rankattack.defenses.EmbeddingShiftDefense].
    """

    name = "shift-suppress"

    def __init__(
        self,
        eps: float = 0.3,
        alpha: float | None = None,
        steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(eps, alpha, steps, **kwargs)

    def _loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, select: TripletSelector
    ) -> Tensor:
        attack = self.attack(model)
        adversarial = attack.perturb(inputs, check=False)[0]
        b = inputs.shape[0]
        emb = model(torch.cat([inputs, adversarial]))
        clean, adv = emb[:b], emb[b:]
        a, p, n = select(clean.detach())
        if a.shape[0] == 0:
            return self._no_triplets(inputs)
        shift = attack.distance(adv, clean)  # [B]
        ranking = self.ranking_loss(clean[a], clean[p], clean[n])
        return ranking + (shift[a] + shift[p] + shift[n]).mean()


def shift_suppress_loss(
    model: Callable[[Tensor], Tensor],
    loss_fn: LossFn,
    inputs: Tensor,
    triplets: Triplets,
    attack: MaxShiftAttack,
) -> Tensor:
    """Directly suppressing the shift distance (Appendix H.3, Eq. 22) of given triplets.

    ``L = L_triplet(q, c_p, c_n) + sum_{x in {q, c_p, c_n}} d(f(x + r*_x), f(x))`` with
    ``r*_x`` the maximum-shift adversary of ``x`` under ``attack``; *less stable*.
    [ShiftSuppressDefense][rankattack.defenses.shiftsuppress.ShiftSuppressDefense] with the attack's
    parameters.
    """
    return ShiftSuppressDefense.from_attack(attack, loss_fn).triplet_loss(model, inputs, triplets)


shift_suppress_step = step_of(shift_suppress_loss)
"""One optimizer step of the shift-suppressing loss (Appendix H.3, Eq. 22); *less stable*.

``shift_suppress_step(model, loss_fn, optimizer, anchors, positives, negatives, attack)``.
"""
