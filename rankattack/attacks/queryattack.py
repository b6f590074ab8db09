"""Query Attack: raise (QA+) or lower (QA-) chosen candidates' ranks by perturbing the query."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_real
from rankattack.attacks.base import AttackResult, RankingAttack
from rankattack.attacks.targets import TargetResolver, check_gallery, check_sp_size
from rankattack.gallery import Gallery
from rankattack.objectives import DIRECTIONS, QueryObjective

__all__ = ["QueryAttack", "semantic_set"]

#: Default Semantics-Preserving weight per direction (paper Sec. 4, "Hyper-Parameters").
DEFAULT_XI = {"raise": 1.0, "lower": 100.0}


def semantic_set(
    gallery: Gallery,
    query_embeddings: Tensor,
    candidate_embeddings: Tensor,
    sp_size: int,
    candidate_indices: Tensor | None = None,
    query_indices: Tensor | None = None,
) -> Tensor:
    """Indices ``[N, G]`` of ``C_SP`` (Eq. 12): each query's G nearest items outside C.

    Items listed in ``candidate_indices`` ``[N, m]`` / ``query_indices`` ``[N, 1]`` and
    gallery copies (within [Gallery.duplicate_tol][rankattack.gallery.Gallery.duplicate_tol]) of the
    query or of a chosen candidate are skipped, so the query's own copy never enters ``C_SP``.

    Raises
    ------
    ValueError
        If some query has fewer than ``sp_size`` eligible gallery items.
    """
    excluded = [t for t in (candidate_indices, query_indices) if t is not None]
    ex_idx = torch.cat(excluded, dim=1) if excluded else None
    ex_emb = torch.cat([query_embeddings.unsqueeze(1), candidate_embeddings], dim=1)
    _, idx = gallery.topk(
        query_embeddings, sp_size, exclude_indices=ex_idx, exclude_embeddings=ex_emb
    )
    if sp_size and bool((idx < 0).any()):
        raise ValueError(
            f"the gallery has fewer than sp_size={sp_size} items outside the chosen "
            f"candidates and the query's copies; lower sp_size"
        )
    return idx


class QueryAttack(RankingAttack):
    """Semantics-Preserving Query Attack (Zhou et al., ECCV 2020, Sec. 3.2, Eq. 8-12).

    Perturbs each query q within an L-inf ball so that the ranks of its m chosen
    candidates C are raised (QA+, Eq. 11) or lowered (QA-, Eq. 9), while the SP term
    ``xi * L_QA+(q, C_SP; X)`` (Eq. 12) keeps the query's top-G other results in place.

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    gallery : Gallery
        The candidate set X.
    direction : {"raise", "lower"}, default "lower"
        QA+ or QA-. Every attack defaults to the variant the paper defines first for it
        (here QA-, Eqs. 8-10; QA+ is Eq. 11); see [rankattack.attacks.base][].
    eps, alpha, steps, random_start
        As in [CandidateAttack][rankattack.CandidateAttack].
    xi : float, optional
        SP weight; default 1 for "raise", 100 for "lower" (the paper's). 0 gives the
        naive QA of Eq. 9 / 11.
    sp_size : int, default 5
        G, the size of ``C_SP``: the query's G nearest gallery items outside C, its own
        copy in the gallery excluded (0 disables SP).

    Shape
    -----
    - queries: ``[N, *S]`` in ``[0, 1]``
    - candidate_indices: ``[N, m]`` int64 into the gallery, or candidates ``[N, m, *S]``,
      or candidate_embeddings ``[N, m, D]``: each query's m chosen candidates (not class
      labels)
    - output: ``[N, *S]``

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery, QueryAttack
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> x = torch.rand(60, 1, 4, 4)
    >>> gallery = Gallery.from_inputs(model, x)
    >>> atk = QueryAttack(model, gallery, direction="raise", eps=0.1)
    >>> result = atk.run(x[:4], candidate_indices=torch.randint(0, 60, (4, 2)))
    >>> bool(result.rank_after.mean() < result.rank_before.mean())
    True
    """

    _param_names = ("gallery", "direction", "eps", "alpha", "steps", "xi", "sp_size",
                    "random_start")  # fmt: skip

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        gallery: Gallery,
        direction: str = "lower",
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int | None = None,
        xi: float | None = None,
        sp_size: int = 5,
        random_start: bool = False,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
        self.gallery = check_gallery(gallery)
        self.direction = check_choice(direction, "direction", DIRECTIONS)
        self.xi = DEFAULT_XI[self.direction] if xi is None else check_real(xi, "xi", low=0.0)
        self.sp_size = check_sp_size(sp_size, gallery)

    def semantic_set(
        self,
        query_embeddings: Tensor,
        candidate_embeddings: Tensor,
        candidate_indices: Tensor | None = None,
        query_indices: Tensor | None = None,
    ) -> Tensor:
        """Indices ``[N, G]`` of ``C_SP`` for this attack's gallery and ``sp_size``.

        See [semantic_set][rankattack.attacks.queryattack.QueryAttack.semantic_set].
        """
        return semantic_set(
            self.gallery,
            query_embeddings,
            candidate_embeddings,
            self.sp_size,
            candidate_indices,
            query_indices,
        )

    def objective(
        self,
        queries: Tensor,
        candidate_indices: Tensor | None = None,
        candidates: Tensor | None = None,
        query_indices: Tensor | None = None,
        candidate_embeddings: Tensor | None = None,
    ) -> tuple[QueryObjective, Tensor]:
        """Validate the arguments; return the SP-QA objective and the clean query embeddings."""
        self.check_inputs(queries, "queries")
        targets = TargetResolver(self, self.gallery, queries, "queries", "query")
        chosen = targets.candidates(
            candidate_indices, candidates, candidate_embeddings, query_indices
        )
        q_emb = self.embed(queries, "queries", self.gallery.dim)
        sp_emb = None
        if self.sp_size > 0:
            sp_idx = self.semantic_set(
                q_emb, chosen.embeddings, chosen.indices, chosen.query_indices
            )
            sp_emb = self.gallery.embeddings[sp_idx]
        objective = QueryObjective(self.gallery, chosen.embeddings, self.direction, self.xi, sp_emb)
        return objective, q_emb

    def __call__(
        self,
        queries: Tensor,
        candidate_indices: Tensor | None = None,
        *,
        candidates: Tensor | None = None,
        candidate_embeddings: Tensor | None = None,
        query_indices: Tensor | None = None,
    ) -> Tensor:
        """Return adversarial queries ``[N, *S]``.

        The chosen candidates are given as gallery indices ``[N, m]``, as inputs
        ``candidates`` ``[N, m, *S]``, or as ``candidate_embeddings`` ``[N, m, D]``.
        ``query_indices`` ``[N]`` (optional) gives each query's own position in the
        gallery, so that exactly that item is kept out of ``C_SP``.
        """
        objective, _ = self.objective(
            queries, candidate_indices, candidates, query_indices, candidate_embeddings
        )
        return self.pgd(self.model, queries, objective)

    def run(
        self,
        queries: Tensor,
        candidate_indices: Tensor | None = None,
        *,
        candidates: Tensor | None = None,
        candidate_embeddings: Tensor | None = None,
        query_indices: Tensor | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> AttackResult:
        """Attack and report ``R_QA(q)`` and the mean rank of ``C_SP`` before and after.

        ``batch_size`` splits a large batch into chunks of that many queries (default:
        all at once), with a progress bar if ``progress``.
        """
        return self._run_batched(
            self._run, "queries", batch_size, progress, queries=queries,
            candidate_indices=candidate_indices, candidates=candidates,
            candidate_embeddings=candidate_embeddings, query_indices=query_indices,
        )  # fmt: skip

    def _run(self, queries: Tensor, **targets: Tensor | None) -> AttackResult:
        objective, q_emb = self.objective(queries, **targets)
        adv = self.pgd(self.model, queries, objective)
        adv_emb = self.embed(adv, "queries", self.gallery.dim)
        return AttackResult(
            adversarial=adv,
            rank_before=objective.ranks(q_emb),
            rank_after=objective.ranks(adv_emb),
            sp_rank_before=objective.sp_ranks(q_emb),
            sp_rank_after=objective.sp_ranks(adv_emb),
        )
