"""Rand: uniform samples in the eps-ball around the clean input, the best kept (AdvOrder)."""

from __future__ import annotations

from rankattack.blackbox.search import Optimizer, SearchProblem

__all__ = ["RandSearch"]

_STREAM = 4


class RandSearch(Optimizer):
    """Pure random search: ``x_j = clip(x_0 + eps U(-1, 1)^d)``, the best of all samples kept.

    Every sample is drawn around the clean input (AdvOrder's "Rand" baseline, Sec. 4),
    ``population`` per batched oracle call until the budget is spent or the score passes
    the stop threshold (AdvOrder's parallel Rand has no early stop; with a stop the mean
    score is the same, only queries are saved).

    Parameters
    ----------
    population : int, default 50
        Samples per oracle call.
    """

    name = "rand"

    def search(self, problem: SearchProblem, eps: float) -> None:
        for step, pop, rows in problem.rounds(self.population):
            u = problem.rng.uniform(
                problem.ids(rows), step, _STREAM, (pop, *problem.shape), problem.origin.dtype
            )
            cand = problem.origin[rows].unsqueeze(1) + eps * (2 * u - 1)
            problem.evaluate(rows, problem.project(cand, rows))
