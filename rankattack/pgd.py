"""The L-inf PGD engine: *how* every attack optimizes its objective (paper Eq. 6).

``x_{t+1} = Clip_{x, eps}{ x_t - alpha * sign(grad L(x_t)) }`` then clipped to the valid
input range. The loop is vectorized over the batch, holds no per-sample Python code and
never synchronizes with the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

from rankattack._validation import check_int, check_real, check_tensor
from rankattack.gallery import check_embedding_output
from rankattack.objectives import RankingObjective
from rankattack.wrappers import eval_mode

__all__ = ["LinfPGD", "default_alpha", "default_steps"]

logger = logging.getLogger(__name__)


def default_alpha(eps: float) -> float:
    """The paper's step size: ``alpha = min(max(eps / 10, 1/255), 0.01)``."""
    return min(max(eps / 10.0, 1.0 / 255.0), 0.01)


def default_steps(eps: float, alpha: float) -> int:
    """The paper's iterations: ``eta = int(min(max(10, 2 eps / alpha), 30))``."""
    return int(min(max(10.0, 2.0 * eps / alpha), 30.0))


class LinfPGD:
    """Projected gradient descent in an L-inf ball (sign steps, no random start by default).

    Parameters
    ----------
    eps : float
        Radius of the L-inf ball, ``>= 0``.
    alpha : float, optional
        Step size; default [default_alpha][rankattack.pgd.default_alpha] (the paper's schedule).
    steps : int, optional
        Iterations; default [default_steps][rankattack.pgd.default_steps].
    random_start : bool
        Start from a uniform point of the ball instead of the clean input.
    clip_min, clip_max : float
        Valid input range (``[0, 1]`` images).

    Examples
    --------
    >>> import torch
    >>> from rankattack import LinfPGD, RankingObjective
    >>> class Norm(RankingObjective):
    ...     def __call__(self, emb):
    ...         return emb.pow(2).sum(-1)
    >>> x = torch.full((1, 4), 0.5)
    >>> LinfPGD(eps=0.1, alpha=0.05, steps=3)(lambda v: v, x, Norm())
    tensor([[0.4000, 0.4000, 0.4000, 0.4000]])
    """

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int | None = None,
        random_start: bool = False,
        clip_min: float = 0.0,
        clip_max: float = 1.0,
    ) -> None:
        self.eps = check_real(eps, "eps", low=0.0)
        self.alpha = (
            default_alpha(self.eps)
            if alpha is None
            else check_real(alpha, "alpha", low=0.0, low_open=True)
        )
        self.steps = (
            default_steps(self.eps, self.alpha)
            if steps is None
            else check_int(steps, "steps", low=0)
        )
        if not isinstance(random_start, bool):
            raise TypeError(f"random_start must be a bool, got {type(random_start).__name__}")
        self.random_start = random_start
        self.clip_min = check_real(clip_min, "clip_min")
        self.clip_max = check_real(clip_max, "clip_max")
        if self.clip_min >= self.clip_max:
            raise ValueError(
                f"clip_min must be < clip_max, got clip_min={clip_min}, clip_max={clip_max}"
            )

    def bounds(self, origin: Tensor) -> tuple[Tensor, Tensor]:
        """Per-element bounds of the feasible set: the eps-ball intersected with the range."""
        lo = (origin - self.eps).clamp_(self.clip_min, self.clip_max)
        hi = (origin + self.eps).clamp_(self.clip_min, self.clip_max)
        return lo, hi

    def project(self, adv: Tensor, origin: Tensor) -> Tensor:
        """Clip ``adv`` to the eps-ball around ``origin``, then to the valid range."""
        lo, hi = self.bounds(origin)
        return torch.clamp(adv, lo, hi)

    def __call__(
        self,
        model: Callable[[Tensor], Tensor],
        inputs: Tensor,
        objective: RankingObjective,
        init: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Minimize ``objective(model(x))`` over the eps-ball around ``inputs``.

        Parameters
        ----------
        model : callable
            ``[N, *S] -> [N, D]``; put in eval mode (and its parameters' gradients
            switched off) for the run, then restored.
        inputs : Tensor
            ``[N, *S]`` clean inputs; never modified.
        objective : RankingObjective
            Per-sample loss of the embeddings.
        init : Tensor, optional
            Starting point (projected into the ball); overrides ``random_start``.
        generator : torch.Generator, optional
            Source of the random start (on the inputs' device); the global RNG if None.

        Returns
        -------
        Tensor
            Adversarial inputs, detached, on the inputs' device.

        Notes
        -----
        Runs with gradients enabled even when called under ``torch.no_grad()``;
        ``torch.inference_mode()`` cannot be undone and raises.
        """
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        check_tensor(inputs, "inputs", min_ndim=1, floating=True)
        if not isinstance(objective, RankingObjective):
            raise TypeError(f"objective must be a RankingObjective, got {type(objective).__name__}")
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "attacks need gradients with respect to their inputs: call them outside "
                "torch.inference_mode()"
            )
        origin = inputs.detach()
        lo, hi = self.bounds(origin)
        if init is not None:
            check_tensor(init, "init", floating=True)
            if init.shape != inputs.shape or init.device != inputs.device:
                raise ValueError(
                    f"init must have the inputs' shape {tuple(inputs.shape)} and device "
                    f"{inputs.device}, got {tuple(init.shape)} on {init.device}"
                )
            adv = torch.clamp(init.detach().to(origin.dtype), lo, hi)
        elif self.random_start and self.eps > 0:
            noise = torch.rand(
                origin.shape, generator=generator, device=origin.device, dtype=origin.dtype
            )
            adv = torch.clamp(origin + (2 * noise - 1) * self.eps, lo, hi)
        else:
            adv = torch.clamp(origin, lo, hi)
        if self.eps == 0 or self.steps == 0:
            return adv
        n = origin.shape[0]
        rows: Tensor | None = None  # the rows still moving, once some have settled
        with eval_mode(model, freeze=True), torch.enable_grad():
            for step in range(self.steps):
                x = (adv if rows is None else adv.index_select(0, rows)).requires_grad_(True)
                emb = model(x)
                if step == 0:
                    check_embedding_output(emb, n, "model", objective.dim)
                    if objective.device is not None and emb.device != objective.device:
                        raise ValueError(
                            f"model returned embeddings on {emb.device}, but the objective's "
                            f"(gallery's) embeddings are on {objective.device}"
                        )
                per_sample = objective(emb)
                loss = per_sample.sum()
                if step == 0 and not loss.requires_grad:
                    raise ValueError(
                        "model output does not depend on its input through autograd "
                        "(does the model detach, or leave torch for numpy?)"
                    )
                (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
                if grad is None:
                    raise ValueError("model output does not depend on its input")
                with torch.no_grad():
                    moved = torch.clamp(x.detach() - self.alpha * grad.sign(), lo, hi)
                    adv = moved if rows is None else adv.index_copy(0, rows, moved)
                    settled = objective.settled(per_sample.detach())
                    # Dropping settled rows needs their indices on the host: one sync per step,
                    # only for objectives that mark rows (it saves their forward and backward).
                    if settled is not None and step + 1 < self.steps and bool(settled.any()):
                        keep = ~settled
                        objective = objective.restrict(keep)
                        kept = keep.nonzero().squeeze(1)
                        rows = kept if rows is None else rows.index_select(0, kept)
                        lo, hi = lo.index_select(0, kept), hi.index_select(0, kept)
                        if rows.numel() == 0:
                            break
        return adv.detach()

    def __repr__(self) -> str:
        return (
            f"LinfPGD(eps={self.eps}, alpha={self.alpha}, steps={self.steps}, "
            f"random_start={self.random_start}, clip_min={self.clip_min}, "
            f"clip_max={self.clip_max})"
        )
