"""SPSA: antithetic Rademacher probes and a sign step (AdvOrder's default black-box optimizer)."""

from __future__ import annotations

from typing import Any

import torch

from rankattack.blackbox.search import Optimizer, SearchProblem, broadcast, check_step

__all__ = ["SPSA"]

_STREAM = 2


class SPSA(Optimizer):
    """Simultaneous-perturbation gradient estimate with sign steps (Spall 1992; AdvOrder Sec. 4).

    Each iteration draws ``population / 2`` Rademacher directions ``u`` and their
    negatives, scores ``x_t + sigma u`` (clipped to the feasible set) in one oracle call,
    estimates ``g = mean_j s_j u_j / sigma`` and steps ``x_{t+1} = Proj(x_t + lr sign(g))``.
    The best input scored so far is kept, and the final iterate is scored too. AdvOrder's
    Fashion-MNIST settings: population 50, ``sigma = lr = 2/255``.

    Parameters
    ----------
    population : int, default 50
        Probes per iteration (antithetic: an even number).
    sigma : float, default 2/255
        Probe size (absolute).
    lr : float, default 2/255
        Sign step size.
    """

    name = "spsa"
    reserve = 1

    def __init__(self, population: int = 50, sigma: float = 2 / 255, lr: float = 2 / 255) -> None:
        super().__init__(population)
        if self.population < 2 or self.population % 2:
            raise ValueError(
                f"population must be even and >= 2 (antithetic pairs), got {population}"
            )
        self.sigma = check_step(sigma, "sigma")
        self.lr = check_step(lr, "lr")

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "sigma": self.sigma, "lr": self.lr}

    def search(self, problem: SearchProblem, eps: float) -> None:
        x = problem.start.clone()
        for step, pop, rows in problem.rounds(self.population, self.reserve, even=True):
            u = problem.rng.rademacher(
                problem.ids(rows), step, _STREAM, (pop // 2, *problem.shape), x.dtype
            )
            u = torch.cat([u, -u], dim=1)  # [A, P, *S]
            xr = x[rows]
            scores = problem.evaluate(rows, problem.project(xr.unsqueeze(1) + self.sigma * u, rows))
            g = (broadcast(scores, u) * u).mean(1) / self.sigma
            x[rows] = problem.project(xr + (self.lr * g.sign()).clamp(-eps, eps), rows)
        rows = problem.active()
        if rows.numel() and problem.remaining >= 1:
            problem.evaluate(rows, x[rows].unsqueeze(1))
