"""Square-style L-inf random search (Andriushchenko et al., ECCV 2020) over list-only scores."""

from __future__ import annotations

import math
from typing import Any

import torch

from rankattack._validation import check_real
from rankattack.blackbox.search import Optimizer, SearchProblem

__all__ = ["SquareSearch"]

_INIT, _POS, _SIGN = 5, 6, 7


def _image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    return 1, 1, math.prod(shape)


class SquareSearch(Optimizer):
    """Square Attack's L-inf random search (Andriushchenko et al., ECCV 2020, Alg. 1-2).

    Starts from vertical stripes of ``+-eps`` (one random sign per channel and column),
    then each iteration proposes ``population`` candidates, each re-drawing one random
    square window to ``+-eps`` (one sign per channel), scores them in one oracle call and
    moves to the best if it beats the current point. The window covers a fraction ``p``
    of the image, ``p_init`` halved at the Square schedule's iterations (rescaled to the
    budget). ``population = 1`` is the original serial Square.

    Parameters
    ----------
    population : int, default 1
    p_init : float, default 0.05
        Initial fraction of the pixels a window covers.
    """

    name = "square"

    def __init__(self, population: int = 1, p_init: float = 0.05) -> None:
        super().__init__(population)
        self.p_init = check_real(p_init, "p_init", low=0.0, high=1.0, low_open=True)

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "p_init": self.p_init}

    def _fraction(self, it: int, budget: int) -> float:
        i = int(it / max(budget, 1) * 10000)  # Square's schedule is written for 10,000 queries
        halvings = sum(i > b for b in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
        return self.p_init / (2**halvings)

    def search(self, problem: SearchProblem, eps: float) -> None:
        c, h, w = _image_shape(problem.shape)
        b = problem.origin.shape[0]
        all_rows = torch.arange(b, device=problem.origin.device)
        if problem.remaining < 1 or eps <= 0:
            return
        signs = problem.rng.rademacher(problem.ids(all_rows), 0, _INIT, (c, 1, w))
        delta = (eps * signs).expand(b, c, h, w).to(problem.origin.dtype).clone()
        x = problem.project(problem.origin + delta.view(b, *problem.shape), all_rows)
        rows = problem.active()
        if rows.numel() == 0:
            return
        current = torch.full((b,), -math.inf, device=x.device)
        current[rows] = problem.evaluate(rows, x[rows].unsqueeze(1))[:, 0]
        budget = problem.budget
        hh = torch.arange(h, device=x.device).view(1, 1, 1, h, 1)
        ww = torch.arange(w, device=x.device).view(1, 1, 1, 1, w)
        for step, pop, rows in problem.rounds(self.population, start=1):
            side = max(1, min(h, w, round(math.sqrt(self._fraction(step, budget) * h * w))))
            ids = problem.ids(rows)
            high = torch.tensor([h - side + 1, w - side + 1], device=x.device).repeat(pop)
            corner = problem.rng.integers(ids, step, _POS, 2 * pop, high).view(-1, pop, 2)
            r0 = corner[..., 0].view(-1, pop, 1, 1, 1)
            c0 = corner[..., 1].view(-1, pop, 1, 1, 1)
            window = (hh >= r0) & (hh < r0 + side) & (ww >= c0) & (ww < c0 + side)
            new = eps * problem.rng.rademacher(ids, step, _SIGN, (pop, c, 1, 1), x.dtype)
            d = delta[rows].unsqueeze(1)  # [A, 1, C, H, W]
            cand_delta = torch.where(window, new, d)  # [A, P, C, H, W]
            cand = problem.origin[rows].unsqueeze(1) + cand_delta.view(-1, pop, *problem.shape)
            cand = problem.project(cand, rows)
            scores = problem.evaluate(rows, cand)
            top, arg = scores.max(dim=1)
            better = top > current[rows]
            pick = torch.arange(rows.numel(), device=x.device)
            chosen = (cand[pick, arg] - problem.origin[rows]).view(-1, c, h, w)
            delta[rows] = torch.where(better.view(-1, 1, 1, 1), chosen, delta[rows])
            current[rows] = torch.where(better, top, current[rows])
