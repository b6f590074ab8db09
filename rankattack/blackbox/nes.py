"""NES: antithetic Gaussian search with signed Adam-style momentum (AdvOrder, robrank)."""

from __future__ import annotations

from typing import Any

import torch

from rankattack._validation import check_real
from rankattack.blackbox.search import Optimizer, SearchProblem, broadcast, check_step

__all__ = ["NES"]

_STREAM = 3


class NES(Optimizer):
    """Natural Evolution Strategies gradient estimate (Ilyas et al., ICML 2018; AdvOrder Sec. 4).

    Each iteration draws ``population / 2`` Gaussian directions ``delta ~ sigma N(0, I)``,
    clipped to ``[-eps, eps]``, and their negatives; scores ``x_t + delta`` (projected)
    in one oracle call; estimates ``g = mean_j s_j delta_j / sigma``; and steps along the
    sign of Adam's update, ``x_{t+1} = Proj(x_t + lr sign(m_hat / (sqrt(v_hat) + 1e-9)))``,
    which is the sign of the momentum ``m`` (beta1 = 0.9). The best input scored so far
    is kept, and the final iterate is scored too. AdvOrder's settings: population 50,
    ``sigma = 2 eps``, ``lr = 2/255``, Adam on.

    Parameters
    ----------
    population : int, default 50
        Samples per iteration (antithetic: an even number).
    sigma : float, optional
        Noise scale; default ``2 * eps`` (the noise is then clipped to the ball).
    lr : float, default 2/255
        Sign step size.
    adam : bool, default True
        Step along Adam's update (with bias correction) instead of ``sign(g)``.
    beta1, beta2 : float, default 0.9, 0.999

    Notes
    -----
    The bias correction counts iterations from 1. AdvOrder's reference implementation
    counts from 0, so its first correction divides by zero, the first update is NaN and
    ``sign(NaN) = 0`` makes it a no-op (19 effective steps out of 20); here every
    iteration moves.
    """

    name = "nes"
    reserve = 1

    def __init__(
        self,
        population: int = 50,
        sigma: float | None = None,
        lr: float = 2 / 255,
        adam: bool = True,
        beta1: float = 0.9,
        beta2: float = 0.999,
    ) -> None:
        super().__init__(population)
        if self.population < 2 or self.population % 2:
            raise ValueError(
                f"population must be even and >= 2 (antithetic pairs), got {population}"
            )
        self.sigma = None if sigma is None else check_step(sigma, "sigma")
        self.lr = check_step(lr, "lr")
        if not isinstance(adam, bool):
            raise TypeError(f"adam must be a bool, got {type(adam).__name__}")
        self.adam = adam
        self.beta1 = check_real(beta1, "beta1", low=0.0, high=1.0)
        self.beta2 = check_real(beta2, "beta2", low=0.0, high=1.0)
        if self.beta1 >= 1.0 or self.beta2 >= 1.0:
            raise ValueError(f"beta1 and beta2 must be < 1, got {beta1}, {beta2}")

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "sigma": self.sigma, "lr": self.lr, "adam": self.adam,
                "beta1": self.beta1, "beta2": self.beta2}  # fmt: skip

    def search(self, problem: SearchProblem, eps: float) -> None:
        sigma = 2.0 * eps if self.sigma is None else self.sigma
        if sigma <= 0:
            return
        x = problem.start.clone()
        m = torch.zeros_like(x)
        v = torch.zeros_like(x)
        for step, pop, rows in problem.rounds(self.population, self.reserve, even=True):
            z = problem.rng.normal(
                problem.ids(rows), step, _STREAM, (pop // 2, *problem.shape), x.dtype
            )
            delta = (sigma * z).clamp_(-eps, eps)
            delta = torch.cat([delta, -delta], dim=1)  # [A, P, *S]
            xr = x[rows]
            scores = problem.evaluate(rows, problem.project(xr.unsqueeze(1) + delta, rows))
            g = (broadcast(scores, delta) * delta).mean(1) / sigma
            if self.adam:
                t = step + 1
                m[rows] = mr = self.beta1 * m[rows] + (1 - self.beta1) * g
                v[rows] = vr = self.beta2 * v[rows] + (1 - self.beta2) * g * g
                m_hat = mr / (1 - self.beta1**t)
                v_hat = vr / (1 - self.beta2**t)
                direction = (m_hat / (v_hat.sqrt() + 1e-9)).sign()
            else:
                direction = g.sign()
            x[rows] = problem.project(xr + (self.lr * direction).clamp(-eps, eps), rows)
        rows = problem.active()
        if rows.numel() and problem.remaining >= 1:
            problem.evaluate(rows, x[rows].unsqueeze(1))
