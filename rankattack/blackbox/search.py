"""What every query-based search shares: budget, batched scoring, best so far, early stop.

An optimizer ([spsa][rankattack.blackbox.spsa], [nes][rankattack.blackbox.nes],
[rand][rankattack.blackbox.rand], [randomsearch][rankattack.blackbox.randomsearch]) proposes
candidates for the queries still searching;
[SearchProblem][rankattack.blackbox.search.SearchProblem] scores a whole population in one batched
oracle call, keeps each query's best input and score (higher is better) and retires a query once its
score passes the stop threshold. Queries that are still searching have all spent the same number of
queries, so the remaining budget is one host-side integer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_int, check_real
from rankattack.keyedrandom import KeyedRandom

__all__ = ["Optimizer", "ScoreFn", "SearchProblem"]

#: ``score(images [M, *S], rows [M]) -> (scores [M], aux [M, ...])``; rows index the batch.
ScoreFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class SearchProblem:
    """One batch of attacked queries under a per-query budget.

    Parameters
    ----------
    score : ScoreFn
        Scores images for the given batch rows in ONE oracle call (higher is better) and
        returns an auxiliary per-image tensor kept with the best (e.g. positions).
    origin : Tensor
        ``[B, *S]`` clean inputs.
    eps : float
        L-inf radius around ``origin``; inputs also stay in ``[clip_min, clip_max]``.
    budget : int
        Queries each batch row may still spend.
    start_score, start_aux : Tensor
        ``[B]`` score and aux of the clean inputs (the best so far at the start).
    query_ids : Tensor
        ``[B]`` stable ids keying each row's random numbers.
    rng : KeyedRandom
    stop : float or None
        Retire a row once its best score is above this (``None``: never).
    start : Tensor, optional
        ``[B, *S]`` first iterate of the iterative optimizers (default ``origin``), e.g.
        a transfer attack's output; clipped to the feasible set.
    """

    def __init__(
        self,
        score: ScoreFn,
        origin: Tensor,
        eps: float,
        budget: int,
        start_score: Tensor,
        start_aux: Tensor,
        query_ids: Tensor,
        rng: KeyedRandom,
        stop: float | None = None,
        clip_min: float = 0.0,
        clip_max: float = 1.0,
        start: Tensor | None = None,
    ) -> None:
        self.score_fn = score
        self.origin = origin
        self.eps = eps
        self.budget = budget
        self.rng = rng
        self.query_ids = query_ids
        self.stop = stop
        self.lo = (origin - eps).clamp_(clip_min, clip_max)
        self.hi = (origin + eps).clamp_(clip_min, clip_max)
        self.start = origin.clone() if start is None else torch.clamp(start, self.lo, self.hi)
        self.best_x = origin.clone()
        self.best_score = start_score.clone()
        self.best_aux = start_aux.clone()
        self.used = torch.zeros(origin.shape[0], dtype=torch.long, device=origin.device)
        self.spent = 0
        self.done = torch.zeros(origin.shape[0], dtype=torch.bool, device=origin.device)
        self._retire()

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one input."""
        return tuple(self.origin.shape[1:])

    @property
    def remaining(self) -> int:
        """Queries each still-searching row may spend."""
        return self.budget - self.spent

    def population(self, wanted: int, reserve: int = 0, even: bool = False) -> int:
        """Population affordable now: ``min(wanted, remaining - reserve)`` (even if asked)."""
        p = min(wanted, self.remaining - reserve)
        if even:
            p -= p % 2
        return max(p, 0)

    def rounds(
        self, wanted: int, reserve: int = 0, even: bool = False, start: int = 0
    ) -> Iterator[tuple[int, int, Tensor]]:
        """An optimizer's iterations: ``(step, population, rows)`` from ``step = start`` on.

        Stops when no population of at least 1 (2 with ``even``) is affordable or no row is
        still searching; ``population`` and ``rows`` are
        [population][rankattack.blackbox.search.SearchProblem.population] and
        [active][rankattack.blackbox.search.SearchProblem.active] at that step.
        """
        step, least = start, 2 if even else 1
        while True:
            pop = self.population(wanted, reserve=reserve, even=even)
            rows = self.active()
            if pop < least or rows.numel() == 0:
                return
            yield step, pop, rows
            step += 1

    def active(self) -> Tensor:
        """Indices ``[A]`` of the rows still searching (one host sync)."""
        return torch.nonzero(~self.done).flatten()

    def ids(self, rows: Tensor) -> Tensor:
        """Stable query ids of ``rows``."""
        return self.query_ids[rows]

    def project(self, x: Tensor, rows: Tensor) -> Tensor:
        """Clip ``x`` ``[A, (P,) *S]`` to the feasible set (eps-ball and range) of ``rows``."""
        lo, hi = self.lo[rows], self.hi[rows]
        if x.dim() == self.origin.dim() + 1:
            lo, hi = lo.unsqueeze(1), hi.unsqueeze(1)
        return torch.clamp(x, lo, hi)

    def evaluate(self, rows: Tensor, candidates: Tensor) -> Tensor:
        """Score ``candidates`` ``[A, P, *S]`` of ``rows`` ``[A]`` in one call; return ``[A, P]``.

        Updates each row's best (strict improvement; the earliest best wins ties) and
        counts ``P`` queries per row.
        """
        a, p = candidates.shape[0], candidates.shape[1]
        owners = rows.repeat_interleave(p)
        scores, aux = self.score_fn(candidates.reshape(a * p, *self.shape), owners)
        scores = scores.view(a, p)
        aux = aux.view(a, p, *aux.shape[1:])
        top, arg = scores.max(dim=1)
        better = top > self.best_score[rows]
        pick = torch.arange(a, device=rows.device)
        new_x = candidates[pick, arg]
        new_aux = aux[pick, arg]
        shape = (-1,) + (1,) * (new_x.dim() - 1)
        self.best_x[rows] = torch.where(better.view(shape), new_x, self.best_x[rows])
        aux_shape = (-1,) + (1,) * (new_aux.dim() - 1)
        self.best_aux[rows] = torch.where(better.view(aux_shape), new_aux, self.best_aux[rows])
        self.best_score[rows] = torch.where(better, top, self.best_score[rows])
        self.used[rows] += p
        self.spent += p
        self._retire()
        return scores

    def _retire(self) -> None:
        if self.stop is not None:
            self.done |= self.best_score > self.stop


class Optimizer(ABC):
    """A query-based search strategy over a
    [SearchProblem][rankattack.blackbox.search.SearchProblem] (maximizes the score).

    Parameters
    ----------
    population : int
        Candidates scored per iteration, in one batched oracle call.
    """

    #: Name used by the attacks' ``optimizer=`` argument.
    name: str = ""
    #: Queries the optimizer wants beyond its populations (e.g. its final iterate).
    reserve: int = 0

    def __init__(self, population: int = 50) -> None:
        self.population = check_int(population, "population", low=1)

    @abstractmethod
    def search(self, problem: SearchProblem, eps: float) -> None:
        """Spend the problem's budget; the problem keeps the best inputs."""

    def _params(self) -> dict[str, Any]:
        return {"population": self.population}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"


def check_step(value: Any, name: str) -> float:
    """A positive finite step or noise scale."""
    return check_real(value, name, low=0.0, low_open=True)


def broadcast(values: Tensor, like: Tensor) -> Tensor:
    """Reshape ``[A, P]`` to broadcast against ``[A, P, *S]``."""
    return values.reshape(*values.shape, *([1] * (like.dim() - values.dim())))
