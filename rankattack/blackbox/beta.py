"""Beta: a per-pixel Beta search distribution fitted by score-function gradients (AdvOrder)."""

from __future__ import annotations

from typing import Any

import torch

from rankattack._validation import check_real
from rankattack.blackbox.search import Optimizer, SearchProblem, broadcast, check_step

__all__ = ["BetaSearch"]

_STREAM_A, _STREAM_B = 10, 11
_LOW, _HIGH = 1e-7, 1e3


class BetaSearch(Optimizer):
    """AdvOrder's "Beta" baseline: candidates ``x_0 + eps (2 s - 1)`` with ``s ~ Beta(a, b)``.

    Every element of the perturbation has its own Beta distribution, uniform at the start
    (``a = b = 1``). Each iteration draws ``population`` samples around the clean input,
    scores them in one oracle call and moves ``(a, b)`` along the score-weighted gradient
    of the log-density,
    ``d/da log p(s) = psi(a + b) - psi(a) + log s`` and
    ``d/db log p(s) = psi(a + b) - psi(b) + log(1 - s)``
    (each term weighted by its sample's score, clipped to ``[-clip, clip]``, then averaged
    over the population), keeping both in ``[1e-7, 1e3]``. The best sample is kept. These are
    AdvOrder's settings for inputs of fewer than 1,000 elements (Fashion-MNIST): population 50,
    ``lr = 0.5``, ``clip = 5``; AdvOrder searches larger inputs in a 3x32x32 space upsampled,
    which this class does not do (its parameters are per element at any size).

    Parameters
    ----------
    population : int, default 50
        Samples per oracle call.
    lr : float, default 0.5
        Step on the distribution's parameters.
    clip : float, default 5.0
        Bound of each sample's score-weighted gradient term.
    """

    name = "beta"

    def __init__(self, population: int = 50, lr: float = 0.5, clip: float = 5.0) -> None:
        super().__init__(population)
        self.lr = check_step(lr, "lr")
        self.clip = check_real(clip, "clip", low=0.0, low_open=True)

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "lr": self.lr, "clip": self.clip}

    def search(self, problem: SearchProblem, eps: float) -> None:
        origin = problem.origin
        a = torch.ones(origin.shape, dtype=torch.float64, device=origin.device)
        b = torch.ones_like(a)
        for step, pop, rows in problem.rounds(self.population):
            ids = problem.ids(rows)
            shape = (rows.numel(), pop, *problem.shape)
            ar, br = a[rows].unsqueeze(1).expand(shape), b[rows].unsqueeze(1).expand(shape)
            log_ga = problem.rng.log_gamma(ids, step, _STREAM_A, ar)
            log_gb = problem.rng.log_gamma(ids, step, _STREAM_B, br)
            s = torch.sigmoid(log_ga - log_gb).clamp_(_LOW, 1 - _LOW)  # Beta(a, b)
            noise = (eps * (2 * s - 1)).to(origin.dtype)
            scores = problem.evaluate(
                rows, problem.project(origin[rows].unsqueeze(1) + noise, rows)
            )
            w = broadcast(scores, s).to(torch.float64)
            common = torch.digamma(ar + br)
            ga = (w * (common - torch.digamma(ar) + torch.log(s))).clamp_(-self.clip, self.clip)
            gb = (w * (common - torch.digamma(br) + torch.log1p(-s))).clamp_(-self.clip, self.clip)
            a[rows] = (a[rows] + self.lr * ga.mean(1)).clamp_(_LOW, _HIGH)
            b[rows] = (b[rows] + self.lr * gb.mean(1)).clamp_(_LOW, _HIGH)
