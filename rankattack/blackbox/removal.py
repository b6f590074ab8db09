"""Untargeted top-k removal: push every clean top-k item out of the visible list (QAIR-style)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_int, check_real, check_tensor, check_unit_range
from rankattack.blackbox.optimizers import make_optimizer
from rankattack.blackbox.oracle import RankingOracle, check_budget, locate_in_lists
from rankattack.blackbox.orderattack import check_oracle, query_ids_of
from rankattack.blackbox.search import SearchProblem
from rankattack.keyedrandom import KeyedRandom

__all__ = ["RemovalAttack", "RemovalResult", "relevance"]

_JITTER_STREAM = 8


def relevance(positions: Tensor, depth: int) -> Tensor:
    """Rank-weighted relevance ``[B]`` of the clean top-k items still in the top ``depth``.

    ``sum_i w(p_i) / sum_{j<k} w(j)`` with the DCG weight ``w(p) = 1 / log2(p + 2)`` over
    the items visible at positions ``p_i < depth`` (``positions`` ``[B, k]``, negative =
    not visible): 1 when the clean top-k is untouched, 0 when none is left (success).
    """
    k = positions.shape[1]
    p = positions.to(torch.float32)
    seen = (positions >= 0) & (positions < depth)
    w = torch.where(seen, 1.0 / torch.log2(p.clamp_min(0) + 2.0), torch.zeros_like(p))
    norm = (1.0 / torch.log2(torch.arange(k, dtype=torch.float32, device=p.device) + 2.0)).sum()
    return w.sum(1) / norm


@dataclass(frozen=True)
class RemovalResult:
    """Outcome of [RemovalAttack][rankattack.blackbox.removal.RemovalAttack].

    Attributes
    ----------
    adversarial : Tensor
        ``[B, *S]`` perturbed queries.
    removed : Tensor
        ``[B, k]`` the clean top-k ids the attack pushes out.
    relevance_before, relevance : Tensor
        ``[B]`` [relevance][rankattack.blackbox.removal.relevance] of the clean and the adversarial
        query (0 = all gone).
    success : Tensor
        ``[B]`` bool: no clean top-k item left in the top ``depth``.
    positions : Tensor
        ``[B, k]`` positions of the removed items in the adversarial list (-1: not visible).
    queries_used : Tensor
        ``[B]`` oracle queries per attacked query, its clean look-up included.
    """

    adversarial: Tensor
    removed: Tensor
    relevance_before: Tensor
    relevance: Tensor
    success: Tensor
    positions: Tensor
    queries_used: Tensor

    @property
    def tau_before(self) -> Tensor:
        """``1 - relevance_before``, reported where the order attack reports tau_S."""
        return 1.0 - self.relevance_before

    @property
    def tau(self) -> Tensor:
        """``1 - relevance`` (1 = every clean top-k item removed)."""
        return 1.0 - self.relevance


class RemovalAttack:
    """Untargeted top-k removal through a list-only oracle (after QAIR, Li et al., CVPR 2021).

    Perturbs each query within an L-inf ball so that none of its clean top-k items is
    left in the top ``depth`` of the returned list, minimizing their rank-weighted
    relevance ([relevance][rankattack.blackbox.removal.relevance]) with NES (default) or
    Square-style random search. With a ``surrogate`` model (a transfer prior, as QAIR's), the search
    starts from a PGD attack on the surrogate that moves the query's surrogate embedding away from
    the clean one (the maximum-shift objective).

    Parameters
    ----------
    oracle : RankingOracle
        The service (``visible`` must be below its gallery size: removal needs a cut).
    k : int, default 5
        Clean top items to remove.
    depth : int, optional
        The list depth they must leave (default: the oracle's visible length).
    eps : float, default 4/255
    optimizer : {"nes", "spsa", "square", "rand"} or Optimizer, default "nes"
    budget : int, default 1000
        Oracle queries per attacked query, the clean look-up included.
    population : int, default 50
    seed : int, default 0
        Keys every random draw per query id.
    surrogate : callable, optional
        A white-box model ``[M, *S] -> [M, D]`` whose gradient gives the starting point.
    surrogate_steps : int, default 20
        PGD iterations on the surrogate (step ``eps / 8``).
    """

    def __init__(
        self,
        oracle: RankingOracle,
        k: int = 5,
        depth: int | None = None,
        eps: float = 4 / 255,
        optimizer: Any = "nes",
        budget: int = 1000,
        population: int = 50,
        seed: int = 0,
        surrogate: Callable[[Tensor], Tensor] | None = None,
        surrogate_steps: int = 20,
    ) -> None:
        self.oracle = check_oracle(oracle)
        self.k = check_int(k, "k", low=1)
        visible = oracle.visible
        self.depth = visible if depth is None else check_int(depth, "depth", low=1)
        if self.depth > visible:
            raise ValueError(f"depth must be <= the oracle's visible length {visible}, got {depth}")
        if self.depth >= oracle.gallery_size:
            raise ValueError(
                f"depth must be below the gallery size {oracle.gallery_size} (set the oracle's "
                f"top_n or depth): with the whole list visible nothing can be removed"
            )
        if self.k > self.depth:
            raise ValueError(f"k must be <= depth ({self.depth}), got {k}")
        self.eps = check_real(eps, "eps", low=0.0)
        population = check_int(population, "population", low=1)
        self.optimizer = make_optimizer(optimizer, population, ("nes", "spsa", "square", "rand"))
        budget_ = check_budget(budget)
        if budget_ is None:
            raise TypeError("budget must be an int, got None")
        self.budget = budget_
        need = 2 + self.optimizer.population + self.optimizer.reserve
        if self.budget < need:
            raise ValueError(
                f"budget must be >= {need} (clean look-up, start, one population of "
                f"{self.optimizer.population}, final evaluation), got {budget}"
            )
        if oracle.budget is not None and self.budget > oracle.budget:
            raise ValueError(f"budget must be <= the oracle's budget {oracle.budget}, got {budget}")
        self.seed = check_int(seed, "seed")
        if surrogate is not None and not callable(surrogate):
            raise TypeError(f"surrogate must be callable, got {type(surrogate).__name__}")
        self.surrogate = surrogate
        self.surrogate_steps = check_int(surrogate_steps, "surrogate_steps", low=1)

    def __repr__(self) -> str:
        sur = None if self.surrogate is None else type(self.surrogate).__name__
        return (
            f"RemovalAttack(oracle={self.oracle!r}, k={self.k}, depth={self.depth}, "
            f"eps={self.eps}, optimizer={self.optimizer!r}, budget={self.budget}, "
            f"seed={self.seed}, surrogate={sur}, surrogate_steps={self.surrogate_steps})"
        )

    def __call__(self, queries: Tensor, query_ids: Tensor | None = None) -> Tensor:
        """Adversarial queries ``[B, *S]``; see
        [run][rankattack.blackbox.removal.RemovalAttack.run]."""
        return self.run(queries, query_ids).adversarial

    def _transfer_start(self, x: Tensor, ids: Tensor) -> Tensor:
        from rankattack.objectives import MaxShiftObjective
        from rankattack.pgd import LinfPGD
        from rankattack.wrappers import eval_mode

        assert self.surrogate is not None
        with eval_mode(self.surrogate), torch.no_grad():
            ref = self.surrogate(x)
        objective = MaxShiftObjective(ref)
        jitter = KeyedRandom(self.seed).uniform(ids, 0, _JITTER_STREAM, tuple(x.shape[1:]), x.dtype)
        init = x + (2 * jitter - 1) * min(1e-3, self.eps)
        pgd = LinfPGD(self.eps, alpha=max(self.eps / 8, 1e-8), steps=self.surrogate_steps)
        return pgd(self.surrogate, x, objective, init=init.clamp(0, 1))

    def run(self, queries: Tensor, query_ids: Tensor | None = None) -> RemovalResult:
        """Attack each query; report relevance before / after, success and queries used.

        ``query_ids`` ``[B]`` key the randomness (default ``0 .. B-1``).
        """
        check_tensor(queries, "queries", min_ndim=2, floating=True)
        if queries.shape[0] < 1:
            raise ValueError(f"queries must hold at least one query, got {tuple(queries.shape)}")
        check_unit_range(queries, "queries")
        b = queries.shape[0]
        ids = query_ids_of(query_ids, b, queries.device)
        origin = queries.detach().clone()
        start = None if self.surrogate is None else self._transfer_start(origin, ids)
        oracle = self.oracle
        oracle.reset()
        depth = self.depth
        with torch.no_grad():
            answer = oracle(origin)
            clean = (answer[0] if isinstance(answer, tuple) else answer).to(queries.device)
            removed = clean[:, : self.k]
            pos0 = locate_in_lists(clean, removed)
            rel0 = relevance(pos0, depth)

            def score(images: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
                pos = oracle.locate(images, removed[rows], owner=rows).to(images.device)
                return -relevance(pos, depth), pos

            problem = SearchProblem(
                score, origin, self.eps, self.budget - 1, -rel0, pos0, ids,
                KeyedRandom(self.seed), stop=-1e-6, start=start,
            )  # fmt: skip
            if start is not None:
                rows = problem.active()
                if rows.numel():
                    problem.evaluate(rows, problem.start[rows].unsqueeze(1))
            self.optimizer.search(problem, self.eps)
        rel = -problem.best_score
        return RemovalResult(
            adversarial=problem.best_x,
            removed=removed,
            relevance_before=rel0,
            relevance=rel,
            success=rel <= 1e-6,
            positions=problem.best_aux,
            queries_used=oracle.queries_used[:b].to(queries.device),
        )
