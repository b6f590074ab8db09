"""Directly suppressing the shift distance (Appendix H.3, Eq. 22); *less stable*.

The clean ranking loss plus the maximum embedding shift of the three images of each
triplet. The paper reports it helps cosine models but may numerically explode with
Euclidean distance.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rankattack.attacks.maxshiftattack import MaxShiftAttack
from rankattack.defenses.base import LossFn, Triplets, apply_step, stack_triplets

__all__ = ["shift_suppress_loss", "shift_suppress_step"]


def shift_suppress_loss(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    triplets: Triplets,
    attack: MaxShiftAttack,
) -> Tensor:
    """Directly suppressing the shift distance (Appendix H.3, Eq. 22); *less stable*.

    ``L = L_triplet(q, c_p, c_n) + sum_{x in {q, c_p, c_n}} d(f(x + r*_x), f(x))`` with
    ``r*_x`` the maximum-shift adversary of ``x``; the shift term is differentiated
    through both embeddings. Averaged over the triplets like the ranking loss.
    """
    a, p, n = triplets
    adversarial = attack.perturb(inputs, check=False)[0]
    b = inputs.shape[0]
    emb = model(torch.cat([inputs, adversarial]))
    clean, adv = emb[:b], emb[b:]
    shift = attack.distance(adv, clean)  # [B]
    ranking = loss_fn(clean[a], clean[p], clean[n])
    return ranking + (shift[a] + shift[p] + shift[n]).mean()


def shift_suppress_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor,
    attack: MaxShiftAttack,
) -> Tensor:
    """One optimizer step of the shift-suppressing loss (Appendix H.3, Eq. 22); *less stable*."""
    if not isinstance(attack, MaxShiftAttack):
        raise TypeError(f"attack must be a MaxShiftAttack, got {type(attack).__name__}")
    inputs, triplets = stack_triplets(anchors, positives, negatives)
    return apply_step(optimizer, shift_suppress_loss(model, loss_fn, inputs, triplets, attack))
