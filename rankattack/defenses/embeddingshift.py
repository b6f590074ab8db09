"""The embedding-shift defense (the paper's defense, Sec. 3.3, Eq. 13).

Every image of a training triplet ``(q, c_p, c_n)`` is replaced by its maximum-shift
adversary ``x + argmax_{r in Gamma} d(f(x + r), f(x))``
(:class:`~rankattack.MaxShiftAttack`, computed with the model in eval mode and the clean
embedding held fixed), then the usual ranking loss is applied to the adversarial
triplet. The paper reports that its training loss converges.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rankattack.attacks.maxshiftattack import MaxShiftAttack
from rankattack.defenses.base import (
    LossFn,
    Triplets,
    apply_step,
    embed_triplets,
    stack_triplets,
)

__all__ = ["embedding_shift_loss", "embedding_shift_step"]


def embedding_shift_loss(
    model: Callable[[Tensor], Tensor],
    loss_fn: LossFn,
    inputs: Tensor,
    triplets: Triplets,
    attack: MaxShiftAttack,
) -> Tensor:
    """The embedding-shift defense loss ``L_d-t`` (paper Eq. 13).

    Each image of the batch is replaced by its maximum-shift adversary (one attack per
    image, whichever triplets it belongs to: the adversary of an image does not depend
    on the triplet), then the ranking loss is applied to the adversarial triplets.
    """
    adversarial = attack.perturb(inputs, check=False)[0]  # train() checked the data once
    return loss_fn(*embed_triplets(model, adversarial, triplets))


def embedding_shift_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor,
    attack: MaxShiftAttack,
) -> Tensor:
    """One optimizer step of the embedding-shift defense (paper Eq. 13).

    Parameters
    ----------
    model : nn.Module
        The ranking model, in train mode (the attack switches to eval mode and back).
    loss_fn : callable
        ``(anchors, positives, negatives) -> scalar`` ranking loss on embeddings.
    optimizer : torch.optim.Optimizer
    anchors, positives, negatives : Tensor
        ``[M, *S]`` inputs in ``[0, 1]`` of the triplets ``(q, c_p, c_n)``.
    attack : MaxShiftAttack
        The maximum-shift adversary (bound to ``model``), e.g.
        ``MaxShiftAttack(model, eps=0.3, metric="cosine")``.

    Returns
    -------
    Tensor
        The detached scalar loss of the adversarial triplets.

    Examples
    --------
    >>> import torch
    >>> from rankattack import MaxShiftAttack
    >>> from rankattack.defenses import embedding_shift_step
    >>> from rankattack.losses import TripletLoss
    >>> from rankattack.models import C2F1
    >>> model = C2F1(embedding_dim=8)
    >>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    >>> atk = MaxShiftAttack(model, eps=0.3, alpha=0.1, steps=3)
    >>> q, p, n = (torch.rand(4, 1, 28, 28) for _ in range(3))
    >>> loss = embedding_shift_step(model, TripletLoss(), opt, q, p, n, atk)
    >>> loss.shape
    torch.Size([])
    """
    if not isinstance(attack, MaxShiftAttack):
        raise TypeError(f"attack must be a MaxShiftAttack, got {type(attack).__name__}")
    inputs, triplets = stack_triplets(anchors, positives, negatives)
    return apply_step(optimizer, embedding_shift_loss(model, loss_fn, inputs, triplets, attack))
