"""In-batch triplet miners: which ``(anchor, positive, negative)`` triplets a defense trains on.

A miner is called like a pytorch-metric-learning miner, ``miner(embeddings, labels)``, and
returns ``(anchors, positives, negatives)``, int64 indices ``[M]`` into the batch. The project's
miners:

* [RandomTripletMiner][rankattack.defenses.miners.RandomTripletMiner] -- ``anchors="all"``: every
  image with a positive in the batch is an anchor, with a random other image of its class and a
  random image of another class (the training loop's miner,
  [random_triplets][rankattack.defenses.miners.random_triplets]). ``anchors="pairs"``: robrank's
  SPC-2 miner (``spc2-random``): the images of each class are taken in pairs (in batch order) and
  the first of each pair is the anchor, the second its positive, so a batch of B images gives about
  B / 2 triplets; on a batch of same-class pairs (robrank's SPC-2 batches, or
  [ClassBalancedSampler][rankattack.training.ClassBalancedSampler] with 2 images per class slot) the
  anchors are the even positions and each positive is the image right after its anchor.
* [SoftHardTripletMiner][rankattack.defenses.miners.SoftHardTripletMiner] -- robrank's
  ``spc2-softhard`` (the source triplets of the hardness-manipulation defense, CVPR 2022): the SPC-2
  anchors, a negative drawn among the other-class images closer to the anchor than its farthest
  positive, and a positive drawn among the same-class images farther than its closest negative (each
  falling back to any image of the right class when there is none).

All of them are vectorized over the batch (no per-anchor Python loop) and draw their random
choices from an optional ``torch.Generator``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_tensor
from rankattack.defenses.base import TripletMiner, Triplets, _check_generator, _check_labels
from rankattack.distances import Distance, get_distance

__all__ = [
    "ANCHORS",
    "MINERS",
    "RandomTripletMiner",
    "SoftHardTripletMiner",
    "get_miner",
    "random_triplets",
]

#: Which images of a batch are anchors: "all" (every image with a positive) or "pairs" (SPC-2).
ANCHORS = ("all", "pairs")

#: Miner names of the training loop ([get_miner][rankattack.defenses.miners.get_miner]).
MINERS: tuple[str, ...] = ("random", "spc2", "softhard")


def _class_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """``[B, B]`` masks of the other images of the same class and of the other classes."""
    b = labels.shape[0]
    same = labels.unsqueeze(1) == labels.unsqueeze(0)
    pos_mask = same & ~torch.eye(b, dtype=torch.bool, device=labels.device)
    neg_mask = ~same
    if b == 0 or not bool(neg_mask.any()):
        classes = labels.unique().tolist() if b else []
        raise ValueError(
            f"labels: a batch must hold at least two classes to form triplets, got "
            f"{b} labels of classes {classes}"
        )
    return pos_mask, neg_mask


def _pair_anchors(labels: Tensor) -> tuple[Tensor, Tensor]:
    """SPC-2 anchors: ``[B]`` mask of the first image of each same-class pair, and its partner.

    The images of each class are taken in batch order and paired (1st with 2nd, 3rd with 4th,
    ...); an odd one out is no anchor.
    """
    b = labels.shape[0]
    order = torch.sort(labels, stable=True).indices
    ordered = labels[order]
    pos = torch.arange(b, device=labels.device)
    starts = torch.ones(b, dtype=torch.bool, device=labels.device)
    starts[1:] = ordered[1:] != ordered[:-1]
    run_start = torch.cummax(torch.where(starts, pos, torch.zeros_like(pos)), 0).values
    has_next = torch.zeros(b, dtype=torch.bool, device=labels.device)
    has_next[:-1] = ~starts[1:]
    first = ((pos - run_start) % 2 == 0) & has_next
    anchor = torch.zeros(b, dtype=torch.bool, device=labels.device)
    anchor[order] = first
    partner = torch.empty(b, dtype=torch.long, device=labels.device)
    partner[order] = order[(pos + 1).clamp_max(b - 1)]
    return anchor, partner


def _scores(b: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``[B, B]`` uniform scores for random picks, drawn on the generator's device."""
    where = generator.device if generator is not None else device
    return torch.rand(b, b, generator=generator, device=where).to(device)


def _pick(mask: Tensor, scores: Tensor) -> Tensor:
    """Per row, a uniformly drawn column among those ``mask`` allows."""
    return torch.where(mask, scores, -1.0).argmax(1)


def random_triplets(
    labels: Tensor, generator: torch.Generator | None = None, anchors: str = "all"
) -> Triplets:
    """Random in-batch triplets ``(anchor, random positive, random negative)``.

    Parameters
    ----------
    labels : Tensor
        ``[B]`` integer labels of the batch.
    generator : torch.Generator, optional
        Source of the random choices (any device; the scores are moved to the labels').
    anchors : {"all", "pairs"}, default "all"
        "all": every image that has another image of its class in the batch is an anchor, with
        a uniformly drawn other image of its class as positive. "pairs": robrank's SPC-2
        anchors (every other image of each class, the next image of the class its positive).

    Returns
    -------
    (anchors, positives, negatives) : tuple of Tensor
        int64 indices ``[M]`` into the batch; each negative is drawn uniformly among the
        images of other classes.

    Raises
    ------
    ValueError
        If the batch holds a single class or no class with two images.
    """
    check_tensor(labels, "labels", ndim=1, integer=True)
    check_choice(anchors, "anchors", ANCHORS)
    pos_mask, neg_mask = _class_masks(labels)
    if anchors == "pairs":
        is_anchor, partner = _pair_anchors(labels)
    else:
        is_anchor, partner = pos_mask.any(1), labels  # partner unused
    valid = is_anchor & neg_mask.any(1)
    if not bool(valid.any()):
        raise ValueError(
            "labels: no class has two images in the batch, so no anchor has a positive"
        )
    scores = _scores(labels.shape[0], generator, labels.device)
    pos = partner if anchors == "pairs" else _pick(pos_mask, scores)
    neg = _pick(neg_mask, scores)
    idx = valid.nonzero().squeeze(1)
    return idx, pos[idx], neg[idx]


class RandomTripletMiner:
    """Random in-batch triplets ([random_triplets][rankattack.defenses.miners.random_triplets]),
    called like a PML miner.

    Parameters
    ----------
    anchors : {"all", "pairs"}, default "all"
        "all": one triplet per image that has a positive in the batch; "pairs": robrank's
        SPC-2 miner (``spc2-random``), about one triplet per two images.
    generator : torch.Generator, optional
        Source of the random choices; the global RNG if None.

    Examples
    --------
    >>> import torch
    >>> a, p, n = RandomTripletMiner("pairs")(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]))
    >>> a.tolist(), p.tolist()
    ([0, 2], [1, 3])
    """

    def __init__(self, anchors: str = "all", generator: torch.Generator | None = None) -> None:
        self.anchors = check_choice(anchors, "anchors", ANCHORS)
        self.generator = _check_generator(generator)

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Triplets:
        return random_triplets(labels, self.generator, self.anchors)

    def __repr__(self) -> str:
        return f"RandomTripletMiner(anchors={self.anchors!r})"


class SoftHardTripletMiner:
    """robrank's ``spc2-softhard`` miner: soft-hard positives and negatives of SPC-2 anchors.

    For each anchor (the SPC-2 anchors by default): the negative is drawn uniformly among the
    images of other classes that are closer to the anchor than its farthest positive (any
    other-class image if none is), the positive uniformly among the other images of its class
    that are farther from the anchor than its closest negative (any other image of its class if
    none is). These are the source triplets of the hardness-manipulation defense (Zhou et al.,
    "Enhancing Adversarial Robustness for Deep Metric Learning", CVPR 2022). Unlike robrank, the
    anchor itself is never its own positive.

    Parameters
    ----------
    metric : {"cosine", "euclidean"} or Distance, default "cosine"
        The distance the hardness is measured with.
    anchors : {"pairs", "all"}, default "pairs"
    generator : torch.Generator, optional
    """

    def __init__(
        self,
        metric: str | Distance = "cosine",
        anchors: str = "pairs",
        generator: torch.Generator | None = None,
    ) -> None:
        self.distance = get_distance(metric)
        self.anchors = check_choice(anchors, "anchors", ANCHORS)
        self.generator = _check_generator(generator)

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Triplets:
        check_tensor(embeddings, "embeddings", ndim=2, floating=True)
        labels = _check_labels(labels, embeddings.shape[0], "embedding").to(embeddings.device)
        pos_mask, neg_mask = _class_masks(labels)
        is_anchor = _pair_anchors(labels)[0] if self.anchors == "pairs" else pos_mask.any(1)
        valid = is_anchor & pos_mask.any(1) & neg_mask.any(1)
        if not bool(valid.any()):
            raise ValueError(
                "labels: no class has two images in the batch, so no anchor has a positive"
            )
        with torch.no_grad():
            e = self.distance.prepare(embeddings.detach())
            dist = self.distance.pairwise_exact(e, e)
            inf = torch.full_like(dist, float("inf"))
            farthest_pos = torch.where(pos_mask, dist, -inf).amax(1, keepdim=True)
            closest_neg = torch.where(neg_mask, dist, inf).amin(1, keepdim=True)
        soft_neg = neg_mask & (dist < farthest_pos)
        soft_pos = pos_mask & (dist > closest_neg)
        neg_pool = torch.where(soft_neg.any(1, keepdim=True), soft_neg, neg_mask)
        pos_pool = torch.where(soft_pos.any(1, keepdim=True), soft_pos, pos_mask)
        scores = _scores(labels.shape[0], self.generator, labels.device)
        idx = valid.nonzero().squeeze(1)
        return idx, _pick(pos_pool, scores)[idx], _pick(neg_pool, scores)[idx]

    def __repr__(self) -> str:
        return f"SoftHardTripletMiner(metric={self.distance.name!r}, anchors={self.anchors!r})"


def get_miner(
    name: str, metric: str | Distance = "cosine", generator: torch.Generator | None = None
) -> TripletMiner:
    """A miner by name: "random" (one per image), "spc2" (SPC-2 random), "softhard"."""
    check_choice(name, "miner", MINERS)
    miner: Any
    if name == "random":
        miner = RandomTripletMiner("all", generator)
    elif name == "spc2":
        miner = RandomTripletMiner("pairs", generator)
    else:
        miner = SoftHardTripletMiner(metric, "pairs", generator)
    return miner
