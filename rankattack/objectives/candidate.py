"""Candidate Attack objective: CA+ (paper Eq. 4) and CA- (Eq. 7)."""

from __future__ import annotations

import torch
from torch import Tensor

from rankattack.gallery import Gallery
from rankattack.objectives.base import RankingObjective, direction_sign
from rankattack.objectives.sortedhinge import SortedHinge

__all__ = ["CandidateObjective"]


class CandidateObjective(RankingObjective):
    """Candidate Attack objective: CA+ (Eq. 4) or CA- (Eq. 7).

    ``L_CA+(c, Q; X) = 1/(w|X|) sum_q sum_x [d(q, c) - d(q, x)]_+`` (raise) and
    ``L_CA-(c, Q; X) = 1/(w|X|) sum_q sum_x [d(q, x) - d(q, c)]_+`` (lower).

    Parameters
    ----------
    gallery : Gallery
        The candidate set X.
    query_embeddings : Tensor
        ``[N, w, D]`` raw embeddings of the w queries of each candidate.
    direction : {"raise", "lower"}
        CA+ or CA-.

    Notes
    -----
    The queries are fixed, so their distances to X are sorted once (when ``N w |X|`` fits
    the gallery's ``chunk_budget``); each step then costs a binary search. Beyond the
    budget the sums are recomputed block by block.
    """

    def __init__(self, gallery: Gallery, query_embeddings: Tensor, direction: str = "raise"):
        self.gallery = gallery
        self.direction = direction
        self.sign = direction_sign(direction)
        q = gallery.check_embeddings(query_embeddings, "query_embeddings", 3)
        self.n, self.w = q.shape[0], q.shape[1]
        self.dim = gallery.dim
        self.device = gallery.embeddings.device
        self.queries = gallery.distance.prepare(q)  # [N, w, D]
        flat = self.queries.reshape(self.n * self.w, -1)
        self._flat = flat
        fits = self.n * self.w * len(gallery) <= gallery.chunk_budget
        fits = fits and gallery.embeddings.shape[0] == len(gallery)  # not a sharded gallery
        self._sorted = SortedHinge(gallery, flat) if fits else None

    def _thresholds(self, embeddings: Tensor) -> Tensor:
        embeddings = embeddings.to(self.queries.dtype)  # differentiable; no-op when equal
        c = self.gallery.distance.prepare(embeddings).unsqueeze(1)  # [N, 1, D]
        return self.gallery.distance.paired(self.queries, c).reshape(self.n * self.w, 1)

    def __call__(self, embeddings: Tensor) -> Tensor:
        t = self._thresholds(embeddings)
        if self._sorted is not None:
            h = self._sorted(t, self.sign)
        else:
            h = self.gallery.hinge(self._flat, t, (self.sign,))
        return h.view(self.n, self.w).mean(1) / len(self.gallery)

    @torch.no_grad()
    def ranks(self, embeddings: Tensor) -> Tensor:
        """Mean normalized rank ``R_CA(c)`` of each candidate over its w queries."""
        t = self._thresholds(embeddings)
        counts = self.gallery.count_closer(self._flat, t)
        return counts.view(self.n, self.w).to(t.dtype).mean(1) / len(self.gallery)

    def __repr__(self) -> str:
        return f"CandidateObjective(direction={self.direction!r}, n={self.n}, w={self.w})"
