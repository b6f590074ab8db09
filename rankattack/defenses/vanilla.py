"""No defense: the ranking loss of the clean triplets (what a vanilla model trains on)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from rankattack.defenses.base import Defense, LossFn, Triplets, TripletSelector, step_of

__all__ = ["VanillaDefense", "vanilla_loss", "vanilla_step"]


class VanillaDefense(Defense):
    """No defense, under the defense interface: the ranking loss of the clean triplets.

    Every batch image is embedded once (in the model's current mode), the miner picks the
    triplets on those embeddings, and the ranking loss is applied to them. The baseline the
    defenses are compared against.

    Parameters
    ----------
    metric, margin, ranking_loss, miner
        See [Defense][rankattack.defenses.base.Defense].

    Examples
    --------
    >>> import torch
    >>> from rankattack.models import C2F1
    >>> model = C2F1(embedding_dim=8)
    >>> loss = VanillaDefense().loss(model, torch.rand(4, 1, 28, 28), torch.tensor([0, 0, 1, 1]))
    >>> loss.shape
    torch.Size([])
    """

    name = ""

    def _loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, select: TripletSelector
    ) -> Tensor:
        emb = model(inputs)
        a, p, n = select(emb.detach())
        if a.shape[0] == 0:
            return self._no_triplets(inputs)
        return self.ranking_loss(emb[a], emb[p], emb[n])


def vanilla_loss(
    model: Callable[[Tensor], Tensor], loss_fn: LossFn, inputs: Tensor, triplets: Triplets
) -> Tensor:
    """Ranking loss of the clean triplets: every batch image is embedded once.

    Parameters
    ----------
    model : callable
        ``[B, *S] -> [B, D]`` in its current (training) mode.
    loss_fn : callable
        ``(anchors, positives, negatives) -> scalar``, e.g.
        [TripletLoss][rankattack.losses.TripletLoss].
    inputs : Tensor
        ``[B, *S]`` batch.
    triplets : (Tensor, Tensor, Tensor)
        Anchor, positive and negative indices ``[M]`` into the batch.
    """
    return VanillaDefense(ranking_loss=loss_fn).triplet_loss(model, inputs, triplets)


vanilla_step = step_of(vanilla_loss)
"""One optimizer step on clean triplets of inputs ``[M, *S]``; returns the loss.

``vanilla_step(model, loss_fn, optimizer, anchors, positives, negatives)``.
"""
