"""Adversarial training of ranking models: the embedding-shift defense and alternatives.

* **embedding-shift** (the paper's defense, Sec. 3.3, Eq. 13): every image of a
  training triplet ``(q, c_p, c_n)`` is replaced by its maximum-shift adversary
  ``x + argmax_{r in Gamma} d(f(x + r), f(x))`` (:class:`~rankattack.MaxShiftAttack`,
  computed with the model in eval mode and the clean embedding held fixed), then the
  usual ranking loss is applied to the adversarial triplet. The paper reports that
  its training loss converges.
* **madry** (Appendix H.1, Eq. 19; *less stable*): the anchor is replaced by the
  adversary that maximizes the triplet loss against the clean ``c_p, c_n``. The paper
  reports that this loss always diverges.
* **shift-suppress** (Appendix H.3, Eq. 22; *less stable*): the clean ranking loss plus
  the maximum embedding shift of the three images. The paper reports it helps cosine
  models but may numerically explode with Euclidean distance.

Each defense is a *loss* function of a batch and its triplets (what the training loop
calls) and a *step* function for users with their own loop (explicit triplets in, one
optimizer step, the detached loss out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor, nn

from rankattack._validation import check_tensor
from rankattack.attacks.maxshiftattack import MaxShiftAttack
from rankattack.distances import Distance, get_distance
from rankattack.objectives import RankingObjective
from rankattack.pgd import LinfPGD
from rankattack.wrappers import eval_mode

__all__ = [
    "DEFENSES",
    "TripletAscentObjective",
    "Triplets",
    "embedding_shift_loss",
    "embedding_shift_step",
    "madry_loss",
    "madry_step",
    "shift_suppress_loss",
    "shift_suppress_step",
    "vanilla_loss",
    "vanilla_step",
]

logger = logging.getLogger(__name__)

#: Defenses understood by :func:`rankattack.training.train` (``None`` trains vanilla).
DEFENSES: tuple[str, ...] = ("embedding-shift", "madry", "shift-suppress")

#: ``(anchor, positive, negative)`` int64 index tensors ``[M]`` into a batch.
Triplets = tuple[Tensor, Tensor, Tensor]

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def _embed_triplets(
    model: Callable[[Tensor], Tensor], inputs: Tensor, triplets: Triplets
) -> tuple[Tensor, Tensor, Tensor]:
    emb = model(inputs)
    a, p, n = triplets
    return emb[a], emb[p], emb[n]


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
    return loss_fn(*_embed_triplets(model, inputs, triplets))


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
    return loss_fn(*_embed_triplets(model, adversarial, triplets))


class TripletAscentObjective(RankingObjective):
    """Inner maximization of the Madry adaptation (Appendix H.1, Eq. 19).

    Minimizes ``-(d(q + r, c_p) - d(q + r, c_n))`` over the anchor's perturbation: the
    argument of the triplet hinge of Eq. 3 without the clamp (whose gradient vanishes
    on satisfied triplets), with the candidates' embeddings fixed.

    Parameters
    ----------
    positive_embeddings, negative_embeddings : Tensor
        ``[N, D]`` raw embeddings of ``c_p`` and ``c_n``.
    metric : {"cosine", "euclidean"} or Distance
    """

    def __init__(
        self,
        positive_embeddings: Tensor,
        negative_embeddings: Tensor,
        metric: str | Distance = "cosine",
    ) -> None:
        self.distance = get_distance(metric)
        self.positives = self.distance.prepare(positive_embeddings.detach())
        self.negatives = self.distance.prepare(negative_embeddings.detach())
        self.dim = int(positive_embeddings.shape[-1])

    def __call__(self, embeddings: Tensor) -> Tensor:
        q = self.distance.prepare(embeddings)
        return self.distance.paired(q, self.negatives) - self.distance.paired(q, self.positives)

    def __repr__(self) -> str:
        return f"TripletAscentObjective(metric={self.distance.name!r}, n={self.positives.shape[0]})"


def madry_loss(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    triplets: Triplets,
    pgd: LinfPGD,
    metric: str | Distance = "cosine",
) -> Tensor:
    """Straightforward Madry adaptation (Appendix H.1, Eq. 19); *less stable*.

    ``min_theta E[ max_{r in Gamma} L_triplet(q + r, c_p, c_n) ]``: each anchor is
    replaced by the PGD adversary that most violates its triplet (clean candidates,
    model in eval mode), then the ranking loss is applied to ``(q + r, c_p, c_n)``.
    """
    a, p, n = triplets
    with eval_mode(model), torch.no_grad():
        clean = model(inputs)
    objective = TripletAscentObjective(clean[p], clean[n], metric)
    anchors_adv = pgd(model, inputs[a], objective)
    m = anchors_adv.shape[0]
    emb = model(torch.cat([anchors_adv, inputs]))
    return loss_fn(emb[:m], emb[m:][p], emb[m:][n])


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


# --- step functions for users with their own training loop -------------------------


def _stack_triplet(
    anchors: Tensor, positives: Tensor, negatives: Tensor
) -> tuple[Tensor, Triplets]:
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


def _apply(optimizer: torch.optim.Optimizer, loss: Tensor) -> Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def vanilla_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor,
) -> Tensor:
    """One optimizer step on clean triplets of inputs ``[M, *S]``; returns the loss."""
    inputs, triplets = _stack_triplet(anchors, positives, negatives)
    return _apply(optimizer, vanilla_loss(model, loss_fn, inputs, triplets))


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
    >>> from rankattack.defense import embedding_shift_step
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
    inputs, triplets = _stack_triplet(anchors, positives, negatives)
    return _apply(optimizer, embedding_shift_loss(model, loss_fn, inputs, triplets, attack))


def madry_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor,
    pgd: LinfPGD,
    metric: str | Distance = "cosine",
) -> Tensor:
    """One optimizer step of the Madry adaptation (Appendix H.1, Eq. 19); *less stable*.

    ``pgd`` is the inner maximizer, e.g. ``LinfPGD(eps=0.3)``; ``metric`` must be the
    loss's distance.
    """
    if not isinstance(pgd, LinfPGD):
        raise TypeError(f"pgd must be a LinfPGD, got {type(pgd).__name__}")
    inputs, triplets = _stack_triplet(anchors, positives, negatives)
    return _apply(optimizer, madry_loss(model, loss_fn, inputs, triplets, pgd, metric))


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
    inputs, triplets = _stack_triplet(anchors, positives, negatives)
    return _apply(optimizer, shift_suppress_loss(model, loss_fn, inputs, triplets, attack))
