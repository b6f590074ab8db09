"""Targeted mismatch attack (TMA): make a query's embedding match a chosen gallery item's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from rankattack.attacks.base import RankingAttack
from rankattack.attacks.targets import TargetResolver, check_gallery
from rankattack.gallery import Gallery
from rankattack.objectives import TargetDistanceObjective

__all__ = ["MismatchResult", "TargetedMismatchAttack"]


@dataclass(frozen=True)
class MismatchResult:
    """Outcome of
    [TargetedMismatchAttack.run][rankattack.attacks.targetedmismatchattack.TargetedMismatchAttack.run].

    Attributes
    ----------
    adversarial : Tensor
        ``[N, *S]`` perturbed queries.
    cosine_before, cosine_after : Tensor
        ``[N]`` cosine similarity ``cos(f(x), e_r)`` of each query's embedding to its
        target's, before and after the attack (in ``[-1, 1]``; the ERS suite's TMA
        number is the mean after).
    """

    adversarial: Tensor
    cosine_before: Tensor
    cosine_after: Tensor


class TargetedMismatchAttack(RankingAttack):
    """Targeted mismatch attack (Tolias et al., "Targeted Mismatch Adversarial Attack:
    Query with a Flower to Retrieve the Tower", ICCV 2019; the ERS suite's TMA).

    Perturbs each query within an L-inf ball so that its embedding points the way of a
    chosen gallery embedding ``e_r`` (the benchmark draws it uniformly from the
    gallery), minimizing ``1 - cos(f(x~), e_r)``
    ([TargetDistanceObjective][rankattack.objectives.TargetDistanceObjective]). The cosine is taken
    on the raw gallery embedding whatever the gallery's metric, as robrank does.

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    gallery : Gallery
        Holds the targets (any metric).
    eps, alpha, steps, random_start
        As in [CandidateAttack][rankattack.CandidateAttack].

    Shape
    -----
    - queries: ``[N, *S]`` in ``[0, 1]``
    - target_indices: ``[N]`` int64 into the gallery, or target_embeddings ``[N, D]``
    - output: ``[N, *S]``

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery, TargetedMismatchAttack
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> x = torch.rand(40, 1, 4, 4)
    >>> gallery = Gallery.from_inputs(model, x)
    >>> atk = TargetedMismatchAttack(model, gallery, eps=0.2)
    >>> result = atk.run(x[:4], torch.tensor([10, 11, 12, 13]))
    >>> bool((result.cosine_after > result.cosine_before).all())
    True
    """

    _param_names = ("gallery", "eps", "alpha", "steps", "random_start")

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        gallery: Gallery,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int | None = None,
        random_start: bool = False,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
        self.gallery = check_gallery(gallery)

    def objective(
        self,
        queries: Tensor,
        target_indices: Tensor | None = None,
        target_embeddings: Tensor | None = None,
    ) -> TargetDistanceObjective:
        """Validate the arguments and build the TMA objective (cosine distance to e_r)."""
        self.check_inputs(queries, "queries")
        targets = TargetResolver(self, self.gallery, queries, "queries", "query")
        return TargetDistanceObjective(targets.target(target_indices, target_embeddings))

    def __call__(
        self,
        queries: Tensor,
        target_indices: Tensor | None = None,
        *,
        target_embeddings: Tensor | None = None,
    ) -> Tensor:
        """Return adversarial queries ``[N, *S]``.

        Each query's target is given as a gallery index (``target_indices`` ``[N]``) or
        as a raw embedding (``target_embeddings`` ``[N, D]``).
        """
        objective = self.objective(queries, target_indices, target_embeddings)
        return self.pgd(self.model, queries, objective)

    def run(
        self,
        queries: Tensor,
        target_indices: Tensor | None = None,
        *,
        target_embeddings: Tensor | None = None,
    ) -> MismatchResult:
        """Attack and report each query's cosine similarity to its target before and after."""
        objective = self.objective(queries, target_indices, target_embeddings)
        before = objective.distances(self.embed(queries, "queries", self.gallery.dim))
        adv = self.pgd(self.model, queries, objective)
        after = objective.distances(self.embed(adv, "queries", self.gallery.dim))
        return MismatchResult(adversarial=adv, cosine_before=1 - before, cosine_after=1 - after)
