"""Greedy top-1 misranking attack (GTM): pull a query toward its nearest item of another class."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rankattack._validation import check_bool
from rankattack.attacks.base import RankingAttack, RecallResult, top1_hits
from rankattack.attacks.targets import TargetResolver, check_labelled_gallery
from rankattack.distances import row_chunks
from rankattack.gallery import Gallery
from rankattack.objectives import TargetDistanceObjective
from rankattack.objectives.labelextremes import label_extremes

__all__ = ["GreedyTopMisrankAttack", "masked_position"]

#: The extreme GTM needs: the nearest item whose label differs from the top-1's.
_NEAREST_OTHER = (False, False)


@torch.no_grad()
def masked_position(gallery: Gallery, other_than: Tensor, indices: Tensor) -> Tensor:
    """Position of each gallery index within the items whose label differs from a label.

    ``p_i = |{x : y_x != other_than[i], x < indices[i]}|``: what robrank's GTM target
    selection uses as a *global* gallery index (its arg-min is taken over the masked
    subset), so its target is item ``p_i`` rather than ``indices[i]``. Counted block by
    block within the gallery's ``chunk_budget``.
    """
    assert gallery.labels is not None
    counts = torch.zeros_like(indices)
    for s, e in row_chunks(indices.shape[0], len(gallery), gallery.chunk_budget):
        index = torch.arange(s, e, device=indices.device)
        outside = gallery.labels[s:e].unsqueeze(0) != other_than.unsqueeze(1)
        counts += (outside & (index.unsqueeze(0) < indices.unsqueeze(1))).sum(1)
    return counts


class GreedyTopMisrankAttack(RankingAttack):
    """Greedy top-1 misranking attack (Zhou et al., "Adversarial Attack and Defense in
    Deep Ranking", T-PAMI 2024; the ERS suite's GTM).

    Let ``t`` be the query's clean top-1 (its own copy excluded) and ``e_u`` the
    gallery item nearest to the clean query (own copy excluded) whose label differs
    from ``t``'s. The query is perturbed within an L-inf ball to minimize ``d(q~, e_u)``
    under the gallery's metric
    ([TargetDistanceObjective][rankattack.objectives.TargetDistanceObjective]), so that an item of
    another class takes the first place. The ERS suite reports Recall@1 after the
    attack (the query's own copy excluded).

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    gallery : Gallery
        The candidate set X, with labels of at least two classes.
    eps, alpha, steps, random_start
        As in [CandidateAttack][rankattack.CandidateAttack].
    reference_index_bug : bool, default False
        Reproduce robrank's defect: the position of ``e_u`` within the items of another
        label ([masked_position][rankattack.attacks.greedytopmisrankattack.masked_position]) is used
        as a global gallery index, so the target is an essentially arbitrary item, not a near
        neighbour (and possibly of the top-1's class). For comparison only.

    Shape
    -----
    - queries: ``[N, *S]`` in ``[0, 1]``
    - labels: ``[N]`` int64 classes of the gallery (used for Recall@1)
    - query_indices: ``[N]`` int64 gallery position of each query's own copy, or None
    - output: ``[N, *S]``

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery, GreedyTopMisrankAttack
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> x, y = torch.rand(40, 1, 4, 4), torch.arange(40) % 4
    >>> gallery = Gallery.from_inputs(model, x, y)
    >>> atk = GreedyTopMisrankAttack(model, gallery, eps=0.3)
    >>> result = atk.run(x[:8], y[:8], query_indices=torch.arange(8))
    >>> bool((y[result.target_indices] != y[:8]).any())
    True
    """

    _param_names = ("gallery", "eps", "alpha", "steps", "random_start", "reference_index_bug")

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        gallery: Gallery,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int | None = None,
        random_start: bool = False,
        reference_index_bug: bool = False,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
        self.gallery = check_labelled_gallery(gallery, "the greedy top-1 misranking attack")
        self.reference_index_bug = check_bool(reference_index_bug, "reference_index_bug")

    def choose_targets(self, query_embeddings: Tensor, own_indices: Tensor | None = None) -> Tensor:
        """Gallery index ``[N]`` of ``e_u`` for clean query embeddings ``[N, D]``.

        ``own_indices`` ``[N]`` (optional) is each query's own copy, excluded from the
        top-1 and from the candidates for ``e_u``. With ``reference_index_bug``,
        robrank's (wrong) item instead.

        Raises
        ------
        ValueError
            If some query has no gallery item besides its own copy whose label differs
            from its top-1's.
        """
        gallery = self.gallery
        assert gallery.labels is not None
        exclude = None if own_indices is None else own_indices.unsqueeze(1)
        _, top = gallery.topk(query_embeddings, 1, exclude_indices=exclude)
        top_labels = gallery.labels[top[:, 0]]
        anchors = gallery.distance.prepare(
            gallery.check_embeddings(query_embeddings, "query_embeddings", 2)
        )
        _, nearest = label_extremes(
            gallery, anchors, top_labels, (_NEAREST_OTHER,), own_indices, exact=True
        )
        nearest = nearest[:, 0]
        if bool((nearest < 0).any()):
            raise ValueError(
                "for some queries every gallery item besides their own copy has the label "
                "of their top-1: GTM has no target; the gallery needs more classes"
            )
        if self.reference_index_bug:
            return masked_position(gallery, top_labels, nearest)
        return nearest

    def objective(
        self, queries: Tensor, labels: Tensor, query_indices: Tensor | None = None
    ) -> tuple[TargetDistanceObjective, Tensor, Tensor, Tensor | None, Tensor]:
        """Validate the arguments; choose the targets and build the GTM objective.

        Returns the objective, the target indices ``[N]``, the checked labels, the own
        indices and the clean query embeddings.
        """
        self.check_inputs(queries, "queries")
        targets = TargetResolver(self, self.gallery, queries, "queries", "query")
        own = targets.own_indices(query_indices)
        y = targets.labels(labels, own)
        q_emb = self.embed(queries, "queries", self.gallery.dim)
        chosen = self.choose_targets(q_emb, own)
        objective = TargetDistanceObjective(self.gallery.embeddings[chosen], self.gallery.distance)
        return objective, chosen, y, own, q_emb

    def __call__(
        self, queries: Tensor, labels: Tensor, query_indices: Tensor | None = None
    ) -> Tensor:
        """Return adversarial queries ``[N, *S]``.

        ``query_indices`` ``[N]`` names each query's own clean copy in the gallery,
        excluded from its ranking; ``None`` means the gallery holds no copy.
        """
        objective = self.objective(queries, labels, query_indices)[0]
        return self.pgd(self.model, queries, objective)

    def run(
        self, queries: Tensor, labels: Tensor, query_indices: Tensor | None = None
    ) -> RecallResult:
        """Attack; report the top-1 hits (own copy excluded) before and after, and e_u."""
        objective, chosen, y, own, q_emb = self.objective(queries, labels, query_indices)
        before = top1_hits(self.gallery, q_emb, y, own)
        adv = self.pgd(self.model, queries, objective)
        after = top1_hits(self.gallery, self.embed(adv, "queries", self.gallery.dim), y, own)
        return RecallResult(
            adversarial=adv, hit_before=before, hit_after=after, target_indices=chosen
        )
