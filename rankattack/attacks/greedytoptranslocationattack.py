"""Greedy top-1 translocation attack (GTT): push a query's clean top-1 out of its top-k."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from rankattack._validation import check_int
from rankattack.attacks.base import RankingAttack
from rankattack.attacks.targets import TargetResolver, check_gallery
from rankattack.gallery import Gallery
from rankattack.objectives import QueryObjective

__all__ = ["GreedyTopTranslocationAttack", "RetainResult"]


@dataclass(frozen=True)
class RetainResult:
    """Outcome of
    [GreedyTopTranslocationAttack.run][rankattack.attacks.greedytoptranslocationattack.GreedyTopTranslocationAttack.run].

    Attributes
    ----------
    adversarial : Tensor
        ``[N, *S]`` perturbed queries.
    top1 : Tensor
        ``[N]`` int64 gallery index of each clean query's top-1 (own copy excluded).
    retained_before, retained_after : Tensor
        ``[N]`` bool: that item is among the query's k nearest gallery items (own copy
        excluded), for the clean and the perturbed query; the mean after is the ERS
        suite's GTT number (retain@k).
    """

    adversarial: Tensor
    top1: Tensor
    retained_before: Tensor
    retained_after: Tensor


class GreedyTopTranslocationAttack(RankingAttack):
    """Greedy top-1 translocation attack (Zhou et al., "Adversarial Attack and Defense in
    Deep Ranking", T-PAMI 2024; the ERS suite's GTT).

    The naive QA- (paper Eq. 9, ``xi = 0``) with one chosen candidate, the query's clean
    top-1 ``t`` (its own copy excluded):
    ``L = 1/|X| sum_x [d(q~, x) - d(q~, t)]_+``
    ([QueryObjective][rankattack.objectives.QueryObjective]), which pushes ``t`` down the
    query's list. The ERS suite reports retain@4: how often ``t`` is still among the
    query's 4 nearest items after the attack.

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    gallery : Gallery
        The candidate set X (at least ``k + 1`` items).
    eps, alpha, steps, random_start
        As in [CandidateAttack][rankattack.CandidateAttack].
    k : int, default 4
        ``t`` counts as retained while among the query's k nearest items.

    Shape
    -----
    - queries: ``[N, *S]`` in ``[0, 1]``
    - query_indices: ``[N]`` int64 gallery position of each query's own copy, or None
    - output: ``[N, *S]``

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery, GreedyTopTranslocationAttack
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> x = torch.rand(40, 1, 4, 4)
    >>> gallery = Gallery.from_inputs(model, x)
    >>> atk = GreedyTopTranslocationAttack(model, gallery, eps=0.3)
    >>> result = atk.run(x[:8], query_indices=torch.arange(8))
    >>> bool(result.retained_before.all()), bool(result.retained_after.sum() < 8)
    (True, True)
    """

    _param_names = ("gallery", "eps", "alpha", "steps", "random_start", "k")

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        gallery: Gallery,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int | None = None,
        random_start: bool = False,
        k: int = 4,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
        self.gallery = check_gallery(gallery)
        self.k = check_int(k, "k", low=1)
        if self.k >= len(gallery):
            raise ValueError(
                f"k must be smaller than the gallery ({len(gallery)} items; the top-k of a "
                f"query leaves out its own copy), got {k}"
            )

    def objective(
        self, queries: Tensor, query_indices: Tensor | None = None
    ) -> tuple[QueryObjective, Tensor, Tensor | None, Tensor]:
        """Validate the arguments; find each clean top-1 and build the QA- objective.

        Returns the objective, the top-1 indices ``[N]``, the own indices and the clean
        query embeddings.
        """
        self.check_inputs(queries, "queries")
        own = TargetResolver(self, self.gallery, queries, "queries", "query").own_indices(
            query_indices
        )
        q_emb = self.embed(queries, "queries", self.gallery.dim)
        top1 = self.top_k(q_emb, own)[:, 0]
        candidates = self.gallery.embeddings[top1].unsqueeze(1)
        return QueryObjective(self.gallery, candidates, "lower", xi=0.0), top1, own, q_emb

    def top_k(self, query_embeddings: Tensor, own_indices: Tensor | None = None) -> Tensor:
        """Gallery indices ``[N, k]`` of each query's k nearest items, own copy excluded."""
        exclude = None if own_indices is None else own_indices.unsqueeze(1)
        return self.gallery.topk(query_embeddings, self.k, exclude_indices=exclude)[1]

    def retained(
        self, query_embeddings: Tensor, top1: Tensor, own_indices: Tensor | None = None
    ) -> Tensor:
        """``[N]`` bool: ``top1`` is among the queries' k nearest items (own copy excluded)."""
        return (self.top_k(query_embeddings, own_indices) == top1.unsqueeze(1)).any(1)

    def __call__(self, queries: Tensor, query_indices: Tensor | None = None) -> Tensor:
        """Return adversarial queries ``[N, *S]``.

        ``query_indices`` ``[N]`` names each query's own clean copy in the gallery,
        excluded from its ranking; ``None`` means the gallery holds no copy.
        """
        objective = self.objective(queries, query_indices)[0]
        return self.pgd(self.model, queries, objective)

    def run(self, queries: Tensor, query_indices: Tensor | None = None) -> RetainResult:
        """Attack and report whether each clean top-1 stays in the top-k, before and after."""
        objective, top1, own, q_emb = self.objective(queries, query_indices)
        before = self.retained(q_emb, top1, own)
        adv = self.pgd(self.model, queries, objective)
        after = self.retained(self.embed(adv, "queries", self.gallery.dim), top1, own)
        return RetainResult(
            adversarial=adv, top1=top1, retained_before=before, retained_after=after
        )
