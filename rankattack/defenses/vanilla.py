"""No defense: the ranking loss of the clean triplets (what a vanilla model trains on)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rankattack.defenses.base import (
    LossFn,
    Triplets,
    apply_step,
    embed_triplets,
    stack_triplets,
)

__all__ = ["vanilla_loss", "vanilla_step"]


def vanilla_loss(
    model: Callable[[Tensor], Tensor], loss_fn: LossFn, inputs: Tensor, triplets: Triplets
) -> Tensor:
    """Ranking loss of the clean triplets: every batch image is embedded once.

    Parameters
    ----------
    model : callable
        ``[B, *S] -> [B, D]`` in its current (training) mode.
    loss_fn : callable
        ``(anchors, positives, negatives) -> scalar``, e.g. :class:`~rankattack.losses.TripletLoss`.
    inputs : Tensor
        ``[B, *S]`` batch.
    triplets : (Tensor, Tensor, Tensor)
        Anchor, positive and negative indices ``[M]`` into the batch.
    """
    return loss_fn(*embed_triplets(model, inputs, triplets))


def vanilla_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor,
) -> Tensor:
    """One optimizer step on clean triplets of inputs ``[M, *S]``; returns the loss."""
    inputs, triplets = stack_triplets(anchors, positives, negatives)
    return apply_step(optimizer, vanilla_loss(model, loss_fn, inputs, triplets))
