"""What every defense shares: the triplet type, the defense names, the step plumbing.

A defense is a *loss* function of a batch and its in-batch triplets (what the training
loop of :mod:`rankattack.training` calls) plus a *step* function for users with their
own loop (explicit triplets in, one optimizer step, the detached loss out). This module
holds the pieces they have in common: the :data:`Triplets` indices, the ranking-loss
signature :data:`LossFn`, embedding a batch and picking its triplets, stacking explicit
triplets into one batch, and applying one optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rankattack._validation import check_tensor

__all__ = ["DEFENSES", "LossFn", "Triplets", "apply_step", "embed_triplets", "stack_triplets"]

#: Defenses understood by :func:`rankattack.training.train` (``None`` trains vanilla).
DEFENSES: tuple[str, ...] = ("embedding-shift", "madry", "shift-suppress")

#: ``(anchor, positive, negative)`` int64 index tensors ``[M]`` into a batch.
Triplets = tuple[Tensor, Tensor, Tensor]

#: A ranking loss on embeddings: ``(anchors, positives, negatives) -> scalar``.
LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def embed_triplets(
    model: Callable[[Tensor], Tensor], inputs: Tensor, triplets: Triplets
) -> tuple[Tensor, Tensor, Tensor]:
    """Embed every batch image once and pick the anchors', positives' and negatives' rows."""
    emb = model(inputs)
    a, p, n = triplets
    return emb[a], emb[p], emb[n]


def stack_triplets(
    anchors: Tensor, positives: Tensor, negatives: Tensor
) -> tuple[Tensor, Triplets]:
    """Explicit triplets of inputs ``[M, *S]`` as one batch ``[3M, *S]`` and its indices."""
    for value, name in ((anchors, "anchors"), (positives, "positives"), (negatives, "negatives")):
        check_tensor(value, name, min_ndim=2, floating=True)
    if positives.shape != anchors.shape or negatives.shape != anchors.shape:
        raise ValueError(
            f"anchors, positives and negatives must be inputs of the same shape [M, *S], got "
            f"{tuple(anchors.shape)}, {tuple(positives.shape)}, {tuple(negatives.shape)}"
        )
    if anchors.shape[0] < 1:
        raise ValueError("anchors must hold at least one triplet, got an empty batch")
    m = anchors.shape[0]
    idx = torch.arange(m, device=anchors.device)
    return torch.cat([anchors, positives, negatives]), (idx, idx + m, idx + 2 * m)


def apply_step(optimizer: torch.optim.Optimizer, loss: Tensor) -> Tensor:
    """One optimizer step on ``loss``; returns the detached loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()
