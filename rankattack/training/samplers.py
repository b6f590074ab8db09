"""Batch samplers and the in-batch triplet miner of the training loop.

[ClassBalancedSampler][rankattack.training.samplers.ClassBalancedSampler] draws batches of P classes
x K images, so every image has a positive in its batch;
[batch_triplets][rankattack.training.samplers.batch_triplets] mines one triplet ``(q, c_p, c_n)``
per image of a batch. [PerClassTripletSampler][rankattack.training.samplers.PerClassTripletSampler]
draws the batches of the ECCV 2020 reference recipe, already as triplets.
[recipe_sampler][rankattack.training.samplers.recipe_sampler] picks the sampler of a training recipe
([TrainConfig.recipe][rankattack.training.TrainConfig]).

A sampler's ``epoch(generator)`` returns the whole epoch's batches as one tensor drawn from
``generator`` (the training loop keeps it in its mid-epoch checkpoints): ``[num_batches, B]``
image indices, whose triplets the defense's miner picks, or ``[num_batches, 3, T]`` triplets
of image indices (anchors, positives, negatives).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_tensor
from rankattack.defenses import Triplets
from rankattack.defenses.miners import random_triplets
from rankattack.training.recipes import RECIPES

__all__ = ["ClassBalancedSampler", "PerClassTripletSampler", "batch_triplets", "recipe_sampler"]

logger = logging.getLogger(__name__)


def batch_triplets(labels: Tensor, generator: torch.Generator | None = None) -> Triplets:
    """Mine one triplet per image of a labelled batch: ``(i, random positive, random negative)``.

    Every image that has another image of its class in the batch is an anchor; its
    positive is a uniformly drawn other image of its class and its negative a uniformly
    drawn image of another class ([rankattack.defenses.miners.random_triplets][] with
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


class PerClassTripletSampler:
    """The ECCV 2020 reference recipe's batches: shuffled images, random triplets per class.

    Each epoch shuffles the training set into ``N // batch_size`` batches (every image at
    most once; the remainder, different each epoch, is left out). In each batch, for each of
    the C classes of the training set, ``batch_size // C`` anchors of the class, as many
    positives of the class and as many negatives of the other classes are drawn uniformly
    with replacement among the batch's images (an anchor may be its own positive): the
    triplets of the training code released with Zhou et al., "Adversarial Ranking Attack
    and Defense" (ECCV 2020; ``cdluminate/advrank``, ``Code/models/faC_c2f2_trip.py``,
    ``Model.loss``), 1,000 triplets per batch of 1,000 Fashion-MNIST images.

    When a class has no image in a batch, its anchors and positives are drawn among all its
    training images, and when a batch holds a single class, its negatives among all the
    training images of the other classes (the reference code stops with an error there;
    with 1,000-image batches of Fashion-MNIST neither happens).

    Parameters
    ----------
    labels : Tensor
        ``[N]`` integer labels (kept on the CPU); at least two classes.
    batch_size : int
        Images per batch, at least the number of classes and at most ``N``.

    Examples
    --------
    >>> import torch
    >>> sampler = PerClassTripletSampler(torch.arange(40) % 4, batch_size=20)
    >>> batches = sampler.epoch(torch.Generator().manual_seed(0))
    >>> tuple(batches.shape)  # 2 batches of (anchors, positives, negatives), 4 classes x 5
    (2, 3, 20)
    """

    def __init__(self, labels: Tensor, batch_size: int) -> None:
        check_tensor(labels, "labels", ndim=1, integer=True)
        labels = labels.detach().cpu()
        self.classes, self.counts = labels.unique(return_counts=True)
        if self.classes.numel() < 2:
            raise ValueError(
                f"labels must hold at least two classes, got classes {self.classes.tolist()}"
            )
        c = int(self.classes.numel())
        self.batch_size = check_int(batch_size, "batch_size", low=c)
        if self.batch_size > labels.numel():
            raise ValueError(
                f"batch_size must be at most the number of labels ({labels.numel()}), "
                f"got {self.batch_size}"
            )
        self.per_class = self.batch_size // c
        self.num_batches = labels.numel() // self.batch_size
        self.class_of = torch.searchsorted(self.classes, labels)
        self.by_class = torch.sort(self.class_of, stable=True).indices  # images, class-major
        self.starts = self.counts.cumsum(0) - self.counts

    def __len__(self) -> int:
        return self.num_batches

    @property
    def triplets_per_batch(self) -> int:
        """T: ``batch_size // C`` triplets for each of the C classes."""
        return self.per_class * int(self.classes.numel())

    def epoch(self, generator: torch.Generator) -> Tensor:
        """The epoch's batches as triplets of dataset indices ``[num_batches, 3, T]`` (CPU).

        Row 0 holds the anchors, row 1 their positives, row 2 their negatives; the triplets
        are ordered by the anchors' class.
        """
        nb, b = self.num_batches, self.batch_size
        images = torch.randperm(self.class_of.numel(), generator=generator)[: nb * b]
        return self.triplets(images.view(nb, b), generator)

    def triplets(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """The triplets of batches of images ``[nb, B]`` (dataset indices): ``[nb, 3, T]``.

        For each batch and each class, ``batch_size // C`` anchors and positives among the
        batch's images of the class and negatives among its images of other classes, drawn
        uniformly with replacement (with the fall-backs of the class docstring).
        """
        check_tensor(images, "images", ndim=2, integer=True)
        nb, b = images.shape
        n = self.class_of.numel()
        if b == 0 or int(images.min()) < 0 or int(images.max()) >= n:
            raise ValueError(
                f"images must be non-empty indices in [0, {n}), got shape {tuple(images.shape)}"
            )
        k, c = self.per_class, int(self.classes.numel())
        images = images.cpu()
        cls = self.class_of[images]
        order = torch.sort(cls, dim=1, stable=True).indices
        members = images.gather(1, order)  # each batch's images, class-major
        counts = torch.zeros(nb, c, dtype=torch.long).scatter_add_(1, cls, torch.ones_like(cls))
        starts = counts.cumsum(1) - counts
        u = torch.rand(nb, 3, c, k, generator=generator, dtype=torch.float64)
        count, start = counts.view(nb, 1, c, 1), starts.view(nb, 1, c, 1)
        # anchors and positives: a uniform position inside the class's block of the batch;
        # negatives: a uniform position outside it
        same = start + (u * count).floor().long()
        j = (u * (b - count)).floor().long()
        other = j + count * (j >= start).long()
        pick = torch.cat([same[:, :2], other[:, 2:]], dim=1).view(nb, -1).clamp(0, b - 1)
        drawn = members.gather(1, pick).view(nb, 3, c, k)
        # the fall-backs: the class's (or the other classes') images of the whole training set
        g_count, g_start = self.counts.view(1, 1, c, 1), self.starts.view(1, 1, c, 1)
        g_same = g_start + (u * g_count).floor().long()
        g_j = (u * (n - g_count)).floor().long()
        g_other = g_j + g_count * (g_j >= g_start).long()
        g_pick = torch.cat([g_same[:, :2], g_other[:, 2:]], dim=1)
        fallback = self.by_class[g_pick.clamp(0, n - 1)]
        empty = torch.cat([count == 0, count == 0, count == b], dim=1)  # [nb, 3, c, 1]
        return torch.where(empty, fallback, drawn).reshape(nb, 3, c * k)


def recipe_sampler(
    recipe: str, labels: Tensor, batch_size: int, samples_per_class: int = 2
) -> ClassBalancedSampler | PerClassTripletSampler:
    """The batch sampler of the training recipe ``recipe`` (a name of
    ``RECIPES``).

    [ClassBalancedSampler][rankattack.training.samplers.ClassBalancedSampler] (``samples_per_class``
    images per class slot; the defense's miner picks the triplets) for "default",
    [PerClassTripletSampler][rankattack.training.samplers.PerClassTripletSampler] for "eccv2020".
    """
    check_choice(recipe, "recipe", tuple(RECIPES))
    if RECIPES[recipe].sampler == "per-class-triplets":
        return PerClassTripletSampler(labels, batch_size)
    return ClassBalancedSampler(labels, batch_size, samples_per_class)
