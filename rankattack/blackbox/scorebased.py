"""Score-based CA / QA through a service that returns distances (robrank's NES mode).

When the service returns the distances of the listed items, the ranking hinges of the
white-box attacks (Zhou et al., ECCV 2020, Eq. 4, 7, 9, 11) can be computed from its
answers alone, and NES estimates their gradient: robrank's ``--nes`` mode (antithetic
Gaussian population, ``sigma = 2 eps`` clipped to the ball, a fixed sign step of 3/255,
every step taken). Over a truncated list (``top_n``), sums run over the visible items
and a missing item's distance is taken as the last visible one (a bound).

- QA ([ScoreQueryAttack][rankattack.blackbox.scorebased.ScoreQueryAttack]): perturb a query; the
  chosen candidates' distances and the list's distances come from the query's answer.
- CA ([ScoreCandidateAttack][rankattack.blackbox.scorebased.ScoreCandidateAttack]): perturb a
  candidate image. The w queries are gallery items whose images the attacker holds: their clean
  answers (one look-up each, charged to the candidate) give ``d(q, x)``; sending the perturbed
  candidate as a query gives ``d(c, q)`` (the distance is symmetric), read at q's position in its
  list. The rank reported is the one the perturbed candidate would have in q's list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import (
    check_choice,
    check_int,
    check_real,
    check_tensor,
    check_unit_range,
)
from rankattack.blackbox.nes import NES
from rankattack.blackbox.oracle import RankingOracle, check_budget, locate_in_lists
from rankattack.blackbox.orderattack import check_oracle, query_ids_of
from rankattack.blackbox.search import SearchProblem
from rankattack.keyedrandom import KeyedRandom
from rankattack.objectives import DIRECTIONS

__all__ = ["ScoreCandidateAttack", "ScoreQueryAttack", "ScoreResult", "sorted_hinge"]

_CANDIDATE_STREAM = 9


def sorted_hinge(sorted_d: Tensor, t: Tensor, sign: float) -> tuple[Tensor, Tensor]:
    """Hinge sums against ascending distances ``[M, N]`` for thresholds ``t`` ``[M, j]``.

    ``sign = +1``: ``sum_x [t - d_x]_+`` and the count of ``d_x < t`` (the rank);
    ``sign = -1``: ``sum_x [d_x - t]_+`` and the same count.
    """
    csum = torch.nn.functional.pad(sorted_d.double().cumsum(1), (1, 0))
    n = torch.searchsorted(sorted_d.contiguous(), t.contiguous(), side="left")
    below = csum.gather(1, n)
    td = t.double()
    if sign > 0:
        out = td * n - below
    else:
        n_le = torch.searchsorted(sorted_d.contiguous(), t.contiguous(), side="right")
        out = (csum[:, -1:] - csum.gather(1, n_le)) - td * (sorted_d.shape[1] - n_le)
    return out.to(t.dtype), n


def _distance_at(ids: Tensor, dists: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    """Distances ``[M, j]`` of ``items`` (the last visible one if absent) and positions."""
    pos = locate_in_lists(ids, items)
    last = dists[:, -1:].expand_as(pos)
    d = torch.where(pos >= 0, dists.gather(1, pos.clamp_min(0)), last)
    return d, pos


@dataclass(frozen=True)
class ScoreResult:
    """Outcome of a score-based CA / QA.

    Attributes
    ----------
    adversarial : Tensor
        ``[B, *S]`` perturbed queries (QA) or candidates (CA).
    loss_before, loss : Tensor
        ``[B]`` the hinge loss (minimized) of the clean and of the adversarial input.
    rank_before, rank_after : Tensor
        ``[B]`` mean normalized rank of the targets (the QA candidates in the query's
        list; the candidate in each of its w queries' lists); within the visible list, or
        its length over ``|X|`` (a bound) when missing.
    success : Tensor
        ``[B]`` bool: every target ranks above ``goal`` (raise) or at / below it (lower).
    queries_used : Tensor
        ``[B]`` oracle queries per attacked input, clean look-ups included.
    """

    adversarial: Tensor
    loss_before: Tensor
    loss: Tensor
    rank_before: Tensor
    rank_after: Tensor
    success: Tensor
    queries_used: Tensor

    @property
    def tau_before(self) -> Tensor:
        """``-loss_before`` (reported beside the other attacks' scores)."""
        return -self.loss_before

    @property
    def tau(self) -> Tensor:
        """``-loss``."""
        return -self.loss


class _ScoreAttack:
    def __init__(
        self,
        oracle: RankingOracle,
        direction: str,
        size: int,
        size_name: str,
        eps: float,
        budget: int,
        population: int,
        lr: float,
        goal: int | None,
        seed: int,
    ) -> None:
        self.oracle = check_oracle(oracle)
        if not oracle.return_scores:
            raise ValueError(
                "oracle must return scores (return_scores=True) for score-based attacks"
            )
        self.direction = check_choice(direction, "direction", DIRECTIONS)
        self.sign = 1.0 if direction == "raise" else -1.0
        self.size = check_int(size, size_name, low=1)
        self.eps = check_real(eps, "eps", low=0.0)
        self.lr = check_real(lr, "lr", low=0.0, low_open=True)
        self.optimizer = NES(population=population, lr=self.lr, adam=False)
        budget_ = check_budget(budget)
        if budget_ is None:
            raise TypeError("budget must be an int, got None")
        self.budget = budget_
        if oracle.budget is not None and self.budget > oracle.budget:
            raise ValueError(f"budget must be <= the oracle's budget {oracle.budget}, got {budget}")
        n = oracle.gallery_size
        self.goal = max(1, round(0.01 * n)) if goal is None else check_int(goal, "goal", low=1)
        self.seed = check_int(seed, "seed")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(oracle={self.oracle!r}, direction={self.direction!r}, "
            f"size={self.size}, eps={self.eps}, budget={self.budget}, "
            f"population={self.optimizer.population}, lr={self.lr}, goal={self.goal}, "
            f"seed={self.seed})"
        )

    def _need(self, extra: int) -> None:
        need = extra + self.optimizer.population + 1
        if self.budget < need:
            raise ValueError(
                f"budget must be >= {need} (clean look-ups, one population of "
                f"{self.optimizer.population}, final evaluation), got {self.budget}"
            )

    def _success(self, pos: Tensor) -> Tensor:
        if self.sign > 0:
            return ((pos >= 0) & (pos < self.goal)).all(1)
        return ((pos < 0) | (pos >= self.goal)).all(1)

    def _solve(self, score: Any, origin: Tensor, spent: int, loss0: Tensor, pos0: Tensor,
               ids: Tensor) -> SearchProblem:  # fmt: skip
        problem = SearchProblem(
            score, origin, self.eps, self.budget - spent, -loss0, pos0, ids,
            KeyedRandom(self.seed), stop=None,
        )  # fmt: skip
        self.optimizer.search(problem, self.eps)
        return problem

    def _result(self, problem: SearchProblem, loss0: Tensor, pos0: Tensor, b: int) -> ScoreResult:
        n = self.oracle.gallery_size
        vis = self.oracle.visible

        def mean_rank(pos: Tensor) -> Tensor:
            return torch.where(pos >= 0, pos, torch.full_like(pos, vis)).float().mean(1) / n

        return ScoreResult(
            adversarial=problem.best_x,
            loss_before=loss0,
            loss=-problem.best_score,
            rank_before=mean_rank(pos0),
            rank_after=mean_rank(problem.best_aux),
            success=self._success(problem.best_aux),
            queries_used=self.oracle.queries_used[:b].to(problem.origin.device),
        )


class ScoreQueryAttack(_ScoreAttack):
    """Score-based QA+ / QA- with NES (robrank's NES mode; Zhou et al., ECCV 2020, Eq. 9 / 11).

    Minimizes ``(1/m) sum_c sum_x [s (d(q, c) - d(q, x))]_+ / |X|`` (s = +1 raise, -1
    lower) computed from the service's distances.

    Parameters
    ----------
    oracle : RankingOracle
        Must return scores.
    direction : {"raise", "lower"}, default "raise"
    m : int, default 1
        Candidates per query.
    eps : float, default 4/255
    budget : int, default 1000
    population : int, default 100
        robrank's population (50 antithetic pairs).
    lr : float, default 3/255
        robrank's fixed sign step.
    goal : int, optional
        Success threshold on positions (default 1% of the gallery, at least 1).
    seed : int, default 0
    """

    def __init__(
        self,
        oracle: RankingOracle,
        direction: str = "raise",
        m: int = 1,
        eps: float = 4 / 255,
        budget: int = 1000,
        population: int = 100,
        lr: float = 3 / 255,
        goal: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(oracle, direction, m, "m", eps, budget, population, lr, goal, seed)
        self._need(1)

    def __call__(self, queries: Tensor, candidate_indices: Tensor | None = None,
                 query_ids: Tensor | None = None) -> Tensor:  # fmt: skip
        """Adversarial queries ``[B, *S]``; see ``run``."""
        return self.run(queries, candidate_indices, query_ids).adversarial

    def run(
        self,
        queries: Tensor,
        candidate_indices: Tensor | None = None,
        query_ids: Tensor | None = None,
    ) -> ScoreResult:
        """Attack ``queries`` ``[B, *S]`` for ``candidate_indices`` ``[B, m]`` (gallery ids).

        Default candidates: for "raise", m gallery ids drawn per ``(seed, query id)``;
        for "lower", the clean list's items at positions 1..m (position 0 is usually the
        query's own copy).
        """
        check_tensor(queries, "queries", min_ndim=2, floating=True)
        check_unit_range(queries, "queries")
        b = queries.shape[0]
        ids = query_ids_of(query_ids, b, queries.device)
        n = self.oracle.gallery_size
        oracle = self.oracle
        oracle.reset()
        origin = queries.detach().clone()
        sign, size = self.sign, self.size
        with torch.no_grad():
            ids0, d0 = oracle(origin)
            ids0, d0 = ids0.to(origin.device), d0.to(origin.device)
            if candidate_indices is None:
                if self.sign > 0:
                    high = torch.full((b, size), n, device=origin.device)
                    cand = KeyedRandom(self.seed).integers(ids, 0, _CANDIDATE_STREAM, size, high)
                else:
                    if ids0.shape[1] < size + 1:
                        raise ValueError(f"m must be < the visible list length {ids0.shape[1]}")
                    cand = ids0[:, 1 : size + 1]
            else:
                check_tensor(candidate_indices, "candidate_indices", ndim=2, integer=True)
                if candidate_indices.shape != (b, size):
                    raise ValueError(f"candidate_indices must be [{b}, {size}], got "
                                     f"{tuple(candidate_indices.shape)}")  # fmt: skip
                if int(candidate_indices.min()) < 0 or int(candidate_indices.max()) >= n:
                    raise ValueError(f"candidate_indices must hold gallery ids in [0, {n - 1}]")
                cand = candidate_indices.to(origin.device)

            def loss_of(rid: Tensor, dist: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
                dc, pos = _distance_at(rid, dist, cand[rows])
                h, _ = sorted_hinge(dist, dc, sign)
                return h.mean(1) / n, pos

            loss0, pos0 = loss_of(ids0, d0, torch.arange(b, device=origin.device))

            def score(images: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
                rid, dist = oracle(images, owner=rows)
                loss, pos = loss_of(rid.to(images.device), dist.to(images.device), rows)
                return -loss, pos

            problem = self._solve(score, origin, 1, loss0, pos0, ids)
        return self._result(problem, loss0, pos0, b)


class ScoreCandidateAttack(_ScoreAttack):
    """Score-based CA+ / CA- with NES (robrank's NES mode; Zhou et al., ECCV 2020, Eq. 4 / 7).

    Minimizes ``(1/w) sum_q sum_x [s (d(q, c) - d(q, x))]_+ / |X|`` over the candidate's
    w queries, which are gallery items (their images are given, their ids too).

    Parameters
    ----------
    oracle : RankingOracle
        Must return scores; the whole list (``top_n=None``) makes the loss exact.
    direction : {"raise", "lower"}, default "raise"
    w : int, default 1
        Queries per candidate.
    eps, budget, population, lr, goal, seed
        As [ScoreQueryAttack][rankattack.blackbox.scorebased.ScoreQueryAttack].
    """

    def __init__(
        self,
        oracle: RankingOracle,
        direction: str = "raise",
        w: int = 1,
        eps: float = 4 / 255,
        budget: int = 1000,
        population: int = 100,
        lr: float = 3 / 255,
        goal: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(oracle, direction, w, "w", eps, budget, population, lr, goal, seed)
        self._need(1 + self.size)

    def run(
        self,
        candidates: Tensor,
        queries: Tensor,
        query_indices: Tensor,
        query_ids: Tensor | None = None,
    ) -> ScoreResult:
        """Attack ``candidates`` ``[B, *S]`` for ``queries`` ``[B, w, *S]`` (ids ``[B, w]``)."""
        check_tensor(candidates, "candidates", min_ndim=2, floating=True)
        check_unit_range(candidates, "candidates")
        b, w = candidates.shape[0], self.size
        check_tensor(queries, "queries", min_ndim=3, floating=True)
        if queries.shape[:2] != (b, w) or queries.shape[2:] != candidates.shape[1:]:
            raise ValueError(f"queries must be [B, w, *S] = [{b}, {w}, ...], got "
                             f"{tuple(queries.shape)}")  # fmt: skip
        check_unit_range(queries, "queries")
        check_tensor(query_indices, "query_indices", ndim=2, integer=True)
        n = self.oracle.gallery_size
        if query_indices.shape != (b, w):
            raise ValueError(f"query_indices must be [{b}, {w}], got {tuple(query_indices.shape)}")
        if int(query_indices.min()) < 0 or int(query_indices.max()) >= n:
            raise ValueError(f"query_indices must hold gallery ids in [0, {n - 1}]")
        ids = query_ids_of(query_ids, b, candidates.device)
        oracle = self.oracle
        oracle.reset()
        origin = candidates.detach().clone()
        qidx = query_indices.to(origin.device)
        sign = self.sign
        with torch.no_grad():
            rows_all = torch.arange(b, device=origin.device)
            _, dq = oracle(queries.reshape(b * w, *queries.shape[2:]),
                           owner=rows_all.repeat_interleave(w))  # fmt: skip
            dq = dq.to(origin.device).view(b, w, -1)  # each query's sorted distances

            def loss_of(rid: Tensor, dist: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
                dcq, _ = _distance_at(rid, dist, qidx[rows])  # d(c, q) [M, w]
                lists = dq[rows].reshape(-1, dq.shape[-1])  # [M * w, N]
                h, cnt = sorted_hinge(lists, dcq.reshape(-1, 1), sign)
                m = rid.shape[0]
                pos = torch.where(cnt < dq.shape[-1], cnt, torch.full_like(cnt, -1)).view(m, w)
                return h.view(m, w).mean(1) / n, pos

            ids0, d0 = oracle(origin, owner=rows_all)
            loss0, pos0 = loss_of(ids0.to(origin.device), d0.to(origin.device), rows_all)

            def score(images: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
                rid, dist = oracle(images, owner=rows)
                loss, pos = loss_of(rid.to(images.device), dist.to(images.device), rows)
                return -loss, pos

            problem = self._solve(score, origin, 1 + w, loss0, pos0, ids)
        return self._result(problem, loss0, pos0, b)
