"""PSO: particle swarm search in the eps-ball (AdvOrder's PSO baseline)."""

from __future__ import annotations

from typing import Any

import torch

from rankattack._validation import check_real
from rankattack.blackbox.search import Optimizer, SearchProblem, broadcast

__all__ = ["PSO"]

_INIT, _VEL, _PULL = 10, 11, 12


class PSO(Optimizer):
    """Particle swarm optimization (Kennedy & Eberhart 1995; AdvOrder's settings, Sec. 4).

    Particles start uniformly in the eps-ball around the clean input with velocities
    ``U(-2 eps, 2 eps)``; each iteration moves every particle by
    ``v <- omega v + phi_p r_p (p_best - x) + phi_g r_g (g_best - x)`` (``r`` uniform per
    element) and projects it back, the whole swarm scored in one oracle call. AdvOrder's
    Fashion-MNIST settings: 40 particles, ``omega = 1.10``, ``phi_p = 0.57``, ``phi_g =
    0.44``. When the budget left is smaller than the swarm, only the first particles
    are moved and scored.

    Parameters
    ----------
    population : int, default 40
        Particles.
    omega, phi_p, phi_g : float
        Inertia, pull toward each particle's best, pull toward the swarm's best.
    """

    name = "pso"

    def __init__(
        self, population: int = 40, omega: float = 1.10, phi_p: float = 0.57, phi_g: float = 0.44
    ) -> None:
        super().__init__(population)
        self.omega = check_real(omega, "omega", low=0.0)
        self.phi_p = check_real(phi_p, "phi_p", low=0.0)
        self.phi_g = check_real(phi_g, "phi_g", low=0.0)

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "omega": self.omega, "phi_p": self.phi_p,
                "phi_g": self.phi_g}  # fmt: skip

    def search(self, problem: SearchProblem, eps: float) -> None:
        rows = problem.active()
        p = problem.population(self.population)
        if rows.numel() == 0 or p < 1:
            return
        b = problem.origin.shape[0]
        shape = problem.shape
        all_rows = torch.arange(b, device=problem.origin.device)
        ids = problem.ids(all_rows)
        dtype = problem.origin.dtype
        u = problem.rng.uniform(ids, 0, _INIT, (self.population, *shape), dtype)
        x = problem.project(problem.origin.unsqueeze(1) + eps * (2 * u - 1), all_rows)
        w = problem.rng.uniform(ids, 0, _VEL, (self.population, *shape), dtype)
        v = 2 * eps * (2 * w - 1)
        p_best = x.clone()
        p_score = torch.full((b, self.population), -torch.inf, device=x.device)
        p_score[rows, :p] = problem.evaluate(rows, x[rows, :p])
        for step, p, rows in problem.rounds(self.population, start=1):
            g_best = problem.best_x[rows].unsqueeze(1)
            r = problem.rng.uniform(problem.ids(rows), step, _PULL, (2, p, *shape), dtype)
            xr, vr = x[rows, :p], v[rows, :p]
            vr = (self.omega * vr + self.phi_p * r[:, 0] * (p_best[rows, :p] - xr)
                  + self.phi_g * r[:, 1] * (g_best - xr))  # fmt: skip
            xr = problem.project(xr + vr, rows)
            scores = problem.evaluate(rows, xr)
            better = scores > p_score[rows, :p]
            p_best[rows, :p] = torch.where(broadcast(better, xr), xr, p_best[rows, :p])
            p_score[rows, :p] = torch.where(better, scores, p_score[rows, :p])
            x[rows, :p], v[rows, :p] = xr, vr
