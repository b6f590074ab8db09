"""Learning-to-misrank attack (LTM): bring every other class closer than the query's own."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from rankattack._validation import check_bool
from rankattack.attacks.base import RankingAttack, RecallResult, top1_hits
from rankattack.attacks.targets import TargetResolver, check_labelled_gallery
from rankattack.gallery import Gallery
from rankattack.objectives import LearningToMisrankObjective

__all__ = ["LearningToMisrankAttack"]


class LearningToMisrankAttack(RankingAttack):
    """Learning-to-misrank attack (Zhou et al., "Adversarial Attack and Defense in Deep
    Ranking", T-PAMI 2024; the ERS suite's LTM).

    Perturbs each query within an L-inf ball to minimize

    ``[ max_{x : y_x != y_q} d(q~, x) - min_{x : y_x = y_q, x != self} d(q~, x) ]_+``

    ([LearningToMisrankObjective][rankattack.objectives.LearningToMisrankObjective]): the farthest
    item of another class is pulled in until it is as close as the nearest item of the query's own
    class, so that no item of its class ranks first. The ERS suite reports Recall@1 after the attack
    (the query's own copy excluded).

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    gallery : Gallery
        The candidate set X, with labels of at least two classes.
    eps, alpha, steps, random_start
        As in [CandidateAttack][rankattack.CandidateAttack].
    reference_self_bug : bool, default False
        Reproduce robrank's defect: its mask update is discarded, so the query's own
        copy stays in the positive set and the minimum is about ``d(q~, q)`` (the attack
        then mostly pushes the query off its own clean embedding). For comparison only.

    Shape
    -----
    - queries: ``[N, *S]`` in ``[0, 1]``
    - labels: ``[N]`` int64 classes of the gallery
    - query_indices: ``[N]`` int64 gallery position of each query's own copy, or None
    - output: ``[N, *S]``

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery, LearningToMisrankAttack
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> x, y = torch.rand(40, 1, 4, 4), torch.arange(40) % 4
    >>> gallery = Gallery.from_inputs(model, x, y)
    >>> atk = LearningToMisrankAttack(model, gallery, eps=0.3)
    >>> result = atk.run(x[:8], y[:8], query_indices=torch.arange(8))
    >>> bool(result.hit_after.sum() <= result.hit_before.sum())
    True
    """

    _param_names = ("gallery", "eps", "alpha", "steps", "random_start", "reference_self_bug")

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        gallery: Gallery,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int | None = None,
        random_start: bool = False,
        reference_self_bug: bool = False,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
        self.gallery = check_labelled_gallery(gallery, "the learning-to-misrank attack")
        self.reference_self_bug = check_bool(reference_self_bug, "reference_self_bug")

    def objective(
        self, queries: Tensor, labels: Tensor, query_indices: Tensor | None = None
    ) -> LearningToMisrankObjective:
        """Validate the arguments and build the LTM objective for them."""
        self.check_inputs(queries, "queries")
        targets = TargetResolver(self, self.gallery, queries, "queries", "query")
        own = targets.own_indices(query_indices)
        return LearningToMisrankObjective(
            self.gallery, targets.labels(labels, own), own, self.reference_self_bug
        )

    def __call__(
        self, queries: Tensor, labels: Tensor, query_indices: Tensor | None = None
    ) -> Tensor:
        """Return adversarial queries ``[N, *S]``.

        ``query_indices`` ``[N]`` names each query's own clean copy in the gallery,
        excluded from the positive set; ``None`` means the gallery holds no copy (a copy
        left unnamed stays among the positives, as with ``reference_self_bug``).
        """
        objective = self.objective(queries, labels, query_indices)
        return self.pgd(self.model, queries, objective)

    def run(
        self, queries: Tensor, labels: Tensor, query_indices: Tensor | None = None
    ) -> RecallResult:
        """Attack and report each query's top-1 hit (own copy excluded) before and after."""
        objective = self.objective(queries, labels, query_indices)
        own, y = objective.self_indices, objective.labels
        before = top1_hits(self.gallery, self.embed(queries, "queries", self.gallery.dim), y, own)
        adv = self.pgd(self.model, queries, objective)
        after = top1_hits(self.gallery, self.embed(adv, "queries", self.gallery.dim), y, own)
        return RecallResult(adversarial=adv, hit_before=before, hit_after=after)
