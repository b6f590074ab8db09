"""Batch samplers and the in-batch triplet miner of the training loop.

:class:`ClassBalancedSampler` draws batches of P classes x K images, so every image has
a positive in its batch; :func:`batch_triplets` mines one triplet ``(q, c_p, c_n)`` per
image of a batch.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from rankattack._validation import check_int, check_tensor
from rankattack.defenses import Triplets
from rankattack.defenses.miners import random_triplets

__all__ = ["ClassBalancedSampler", "batch_triplets"]

logger = logging.getLogger(__name__)


def batch_triplets(labels: Tensor, generator: torch.Generator | None = None) -> Triplets:
    """Mine one triplet per image of a labelled batch: ``(i, random positive, random negative)``.

    Every image that has another image of its class in the batch is an anchor; its
    positive is a uniformly drawn other image of its class and its negative a uniformly
    drawn image of another class (:func:`rankattack.defenses.miners.random_triplets` with
    ``anchors="all"``; the training loop's miner "random").

    Parameters
    ----------
    labels : Tensor
        ``[B]`` integer labels of the batch.
    generator : torch.Generator, optional
        On the labels' device.

    Returns
    -------
    (anchors, positives, negatives) : tuple of Tensor
        int64 indices ``[M]`` into the batch.

    Raises
    ------
    ValueError
        If the batch holds a single class or no class with two images.

    Examples
    --------
    >>> import torch
    >>> a, p, n = batch_triplets(torch.tensor([0, 0, 1, 1]))
    >>> a.tolist()
    [0, 1, 2, 3]
    >>> p.tolist()
    [1, 0, 3, 2]
    """
    return random_triplets(labels, generator, "all")


class ClassBalancedSampler:
    """Batches of P classes x K images (``P = batch_size // K``).

    Each batch draws its P class slots as distinct classes (or, with fewer classes than
    slots, concatenated random permutations of the classes, so every batch holds at least
    two classes), then K images per slot from per-class random streams, so every image
    is seen about once per epoch. Classes with fewer than K images are left out.

    Parameters
    ----------
    labels : Tensor
        ``[N]`` integer labels (kept on the CPU).
    batch_size : int
    samples_per_class : int
        K.
    """

    def __init__(self, labels: Tensor, batch_size: int, samples_per_class: int = 2) -> None:
        check_tensor(labels, "labels", ndim=1, integer=True)
        self.k = check_int(samples_per_class, "samples_per_class", low=2)
        self.batch_size = check_int(batch_size, "batch_size", low=2 * self.k)
        labels = labels.detach().cpu()
        classes, counts = labels.unique(return_counts=True)
        kept = classes[counts >= self.k]
        if kept.numel() < 2:
            raise ValueError(
                f"labels must hold at least two classes with at least samples_per_class="
                f"{self.k} samples each, got classes {classes.tolist()} with counts "
                f"{counts.tolist()}"
            )
        dropped = int(counts[counts < self.k].sum())
        if dropped:
            logger.warning(
                "%d samples of classes with fewer than %d samples are not used", dropped, self.k
            )
        self.members = [(labels == c).nonzero().squeeze(1) for c in kept.tolist()]
        self.num_used = sum(int(m.numel()) for m in self.members)
        self.slots = self.batch_size // self.k
        self.num_batches = max(1, self.num_used // self.batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def epoch(self, generator: torch.Generator) -> Tensor:
        """The epoch's batches as dataset indices ``[num_batches, slots * K]`` (CPU)."""
        c = len(self.members)
        reps = math.ceil(self.slots / c)
        slot_class = torch.stack(
            [
                torch.cat([torch.randperm(c, generator=generator) for _ in range(reps)])[
                    : self.slots
                ]
                for _ in range(self.num_batches)
            ]
        ).flatten()
        picks = torch.empty(slot_class.numel(), self.k, dtype=torch.long)
        needed = torch.bincount(slot_class, minlength=c).tolist()
        for ci, need in enumerate(needed):
            if need == 0:
                continue
            members = self.members[ci]
            total = need * self.k
            perms = math.ceil(total / members.numel())
            stream = torch.cat(
                [
                    members[torch.randperm(members.numel(), generator=generator)]
                    for _ in range(perms)
                ]
            )[:total]
            picks[slot_class == ci] = stream.view(need, self.k)
        return picks.view(self.num_batches, self.slots * self.k)
