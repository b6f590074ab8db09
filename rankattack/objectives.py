"""Ranking objectives: *what* an attack optimizes (paper Eq. 4, 7, 9, 11, 12, 13).

An objective is bound to the fixed side of an attack (the gallery, the queries of a
candidate attack, the candidates of a query attack, or the clean embeddings of a
maximum-shift attack) and maps the embeddings of the perturbed inputs ``[N, D]`` to a
per-sample loss ``[N]`` that the optimizer *minimizes*. Objectives hold no optimizer;
:class:`rankattack.pgd.LinfPGD` runs any of them.

Every hinge sum is averaged over ``|X|`` and over the w queries (CA) or m candidates
(QA), so the Semantics-Preserving weight xi has the paper's meaning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_real
from rankattack.distances import Distance, get_distance
from rankattack.gallery import Gallery

__all__ = [
    "CandidateObjective",
    "MaxShiftObjective",
    "QueryObjective",
    "RankingObjective",
]

DIRECTIONS = ("raise", "lower")


class RankingObjective(ABC):
    """Base class of attack objectives: embeddings ``[N, D]`` -> loss ``[N]`` (minimized).

    Subclass it and implement :meth:`__call__` to attack with a new criterion; the PGD
    engine only needs the per-sample loss. Set :attr:`dim` to have the engine check the
    model's embedding dimension.

    Examples
    --------
    >>> import torch
    >>> from rankattack import RankingObjective
    >>> class PullToward(RankingObjective):
    ...     def __init__(self, target):
    ...         self.target = target
    ...     def __call__(self, embeddings):
    ...         return (embeddings - self.target).pow(2).sum(-1)
    >>> PullToward(torch.zeros(2, 3))(torch.ones(2, 3))
    tensor([3., 3.])
    """

    #: Expected embedding dimension (``None``: not checked).
    dim: int | None = None
    #: Device the embeddings must be on (``None``: not checked).
    device: torch.device | None = None

    @abstractmethod
    def __call__(self, embeddings: Tensor) -> Tensor:
        """Per-sample loss ``[N]`` of the perturbed inputs' embeddings ``[N, D]``."""

    def ranks(self, embeddings: Tensor) -> Tensor | None:
        """Mean normalized rank ``[N]`` the embeddings achieve, if the objective has one."""
        return None


def _sign(direction: str) -> float:
    check_choice(direction, "direction", DIRECTIONS)
    return 1.0 if direction == "raise" else -1.0


class _SortedHinge:
    """Hinge sums against a fixed set of anchors, from sorted distances and prefix sums.

    For a fixed anchor a (a query in CA), ``sum_x [t - d(a, x)]_+ = n t - S_n`` where n
    counts the gallery distances below t and ``S_n`` is their sum: one binary search per
    step instead of a pass over the gallery.
    """

    def __init__(self, gallery: Gallery, anchors: Tensor) -> None:
        # the same kernel as the blockwise hinge, so both paths give the same loss
        d = torch.cat(
            [
                gallery.distance.pairwise(anchors, gallery.prepared[s:e])
                for s, e in gallery._blocks(anchors.shape[0])
            ],
            dim=1,
        )
        self.sorted = d.sort(dim=1).values.contiguous()
        # prefix sums in float64 where the device has it (MPS does not)
        self.acc = torch.float32 if d.device.type == "mps" else torch.float64
        self.cumsum = torch.nn.functional.pad(self.sorted.to(self.acc).cumsum(1), (1, 0))
        self.size = d.shape[1]

    def __call__(self, t: Tensor, sign: float) -> Tensor:
        t64 = t.to(self.acc)
        if sign > 0:
            n = torch.searchsorted(self.sorted, t.detach().contiguous(), side="left")
            out = t64 * n - self.cumsum.gather(1, n)
        else:
            n_le = torch.searchsorted(self.sorted, t.detach().contiguous(), side="right")
            n = self.size - n_le
            out = (self.cumsum[:, -1:] - self.cumsum.gather(1, n_le)) - t64 * n
        return out.to(t.dtype)


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
        self.sign = _sign(direction)
        q = gallery.check_embeddings(query_embeddings, "query_embeddings", 3)
        self.n, self.w = q.shape[0], q.shape[1]
        self.dim = gallery.dim
        self.device = gallery.embeddings.device
        self.queries = gallery.distance.prepare(q)  # [N, w, D]
        flat = self.queries.reshape(self.n * self.w, -1)
        self._flat = flat
        fits = self.n * self.w * len(gallery) <= gallery.chunk_budget
        self._sorted = _SortedHinge(gallery, flat) if fits else None

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
        outside C (see :meth:`rankattack.QueryAttack.semantic_set`).
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
        self.sign = _sign(direction)
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


class MaxShiftObjective(RankingObjective):
    """Maximum-shift objective of the embedding-shift defense (Sec. 3.3, Eq. 13).

    ``r = argmax_r d(f(x + r), f(x))``: the loss is ``-d(f(x + r), f(x))``.

    Parameters
    ----------
    reference_embeddings : Tensor
        ``[N, D]`` clean embeddings ``f(x)`` (detached).
    metric : {"cosine", "euclidean"} or Distance
    """

    def __init__(self, reference_embeddings: Tensor, metric: str | Distance = "cosine"):
        self.distance = get_distance(metric)
        self.reference = self.distance.prepare(reference_embeddings.detach())
        self.dim = int(reference_embeddings.shape[-1])
        self.device = reference_embeddings.device

    def __call__(self, embeddings: Tensor) -> Tensor:
        return -self.shift(embeddings)

    def shift(self, embeddings: Tensor) -> Tensor:
        """Embedding shift ``d(f(x + r), f(x))`` ``[N]``."""
        return self.distance.paired(self.distance.prepare(embeddings), self.reference)

    def __repr__(self) -> str:
        return f"MaxShiftObjective(metric={self.distance.name!r}, n={self.reference.shape[0]})"
