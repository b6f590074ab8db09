"""Query Attack objective: QA+ (paper Eq. 11), QA- (Eq. 9) and the SP term (Eq. 12)."""

from __future__ import annotations

import torch
from torch import Tensor

from rankattack._validation import check_real
from rankattack.gallery import Gallery
from rankattack.objectives.base import RankingObjective, direction_sign

__all__ = ["QueryObjective"]


class QueryObjective(RankingObjective):
    """Query Attack objective: QA+ (Eq. 11), QA- (Eq. 9), with the SP term (Eq. 12).

    ``L = L_QA(q, C; X) + xi * L_QA+(q, C_SP; X)`` with each hinge sum averaged over
    ``|X|`` and over its candidates.

    Parameters
    ----------
    gallery : Gallery
        The candidate set X.
    candidate_embeddings : Tensor
        ``[N, m, D]`` raw embeddings of the m chosen candidates of each query.
    direction : {"raise", "lower"}
        QA+ or QA-.
    xi : float
        Weight of the Semantics-Preserving term (0 disables it).
    sp_embeddings : Tensor, optional
        ``[N, G, D]`` raw embeddings of ``C_SP``, the query's G nearest gallery items
        outside C (see
        [rankattack.QueryAttack.semantic_set][rankattack.attacks.queryattack.QueryAttack.semantic_set]).
    """

    def __init__(
        self,
        gallery: Gallery,
        candidate_embeddings: Tensor,
        direction: str = "raise",
        xi: float = 0.0,
        sp_embeddings: Tensor | None = None,
    ) -> None:
        self.gallery = gallery
        self.direction = direction
        self.sign = direction_sign(direction)
        self.xi = check_real(xi, "xi", low=0.0)
        c = gallery.check_embeddings(candidate_embeddings, "candidate_embeddings", 3)
        self.n, self.m = c.shape[0], c.shape[1]
        self.dim = gallery.dim
        self.device = gallery.embeddings.device
        prep = gallery.distance.prepare
        self.candidates = prep(c)
        self.sp: Tensor | None = None
        if sp_embeddings is not None:
            sp = gallery.check_embeddings(sp_embeddings, "sp_embeddings", 3)
            if sp.shape[0] != self.n:
                raise ValueError(
                    f"sp_embeddings must have {self.n} rows (one per query), got shape "
                    f"{tuple(sp.shape)}"
                )
            self.sp = prep(sp) if sp.shape[1] > 0 else None
        self._targets = self.candidates
        if self.sp is not None and self.xi > 0:
            self._targets = torch.cat([self.candidates, self.sp], 1)
        g = self._targets.shape[1] - self.m
        self._signs = (self.sign,) * self.m + (1.0,) * g
        self._weights = self.candidates.new_tensor(
            [1.0 / self.m] * self.m + [self.xi / max(g, 1)] * g
        )

    def __call__(self, embeddings: Tensor) -> Tensor:
        q = self.gallery.distance.prepare(embeddings.to(self.candidates.dtype))
        t = self.gallery.distance.paired(q.unsqueeze(1), self._targets)  # [N, m (+G)]
        h = self.gallery.hinge(q, t, self._signs)
        return (h * self._weights).sum(1) / len(self.gallery)

    def _mean_rank(self, embeddings: Tensor, targets: Tensor) -> Tensor:
        q = self.gallery.distance.prepare(embeddings.to(self.candidates.dtype))
        t = self.gallery.distance.paired(q.unsqueeze(1), targets)
        counts = self.gallery.count_closer(q, t)
        return counts.to(t.dtype).mean(1) / len(self.gallery)

    @torch.no_grad()
    def ranks(self, embeddings: Tensor) -> Tensor:
        """Mean normalized rank ``R_QA(q)`` of the chosen candidates for each query."""
        return self._mean_rank(embeddings, self.candidates)

    @torch.no_grad()
    def sp_ranks(self, embeddings: Tensor) -> Tensor | None:
        """Mean normalized rank of ``C_SP`` for each query (``None`` without C_SP)."""
        return None if self.sp is None else self._mean_rank(embeddings, self.sp)

    def __repr__(self) -> str:
        g = 0 if self.sp is None else self.sp.shape[1]
        return (
            f"QueryObjective(direction={self.direction!r}, xi={self.xi}, n={self.n}, "
            f"m={self.m}, sp_size={g})"
        )
