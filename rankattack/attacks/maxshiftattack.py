"""Maximum-shift attack: push an embedding as far as possible from its clean position."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rankattack._validation import check_real
from rankattack.attacks.base import RankingAttack
from rankattack.distances import Distance, get_distance
from rankattack.objectives import MaxShiftObjective

__all__ = ["MaxShiftAttack", "ShiftResult"]


@dataclass(frozen=True)
class ShiftResult:
    """Outcome of [MaxShiftAttack.run][rankattack.attacks.maxshiftattack.MaxShiftAttack.run]: inputs
    and their embedding shift ``[N]``."""

    adversarial: Tensor
    shift: Tensor


class MaxShiftAttack(RankingAttack):
    """Maximum-shift-distance attack (Zhou et al., ECCV 2020, Sec. 3.3, Eq. 13).

    ``r = argmax_{r in Gamma} d(f(x + r), f(x))``: the adversary of the embedding-shift
    defense, and the measure of a model's largest embedding shift (paper Fig. 2). The
    clean embedding is fixed (no gradient through it).

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    eps, alpha, steps
        As in [CandidateAttack][rankattack.CandidateAttack].
    metric : {"cosine", "euclidean", "normalized-euclidean"} or Distance, default "cosine"
    jitter : float, default 1e-3
        Half-width of the uniform noise the search starts from (capped at eps): at
        ``r = 0`` the shift's gradient is exactly zero, so a clean start never moves.
    random_start : bool, default False
        Start from a uniform point of the whole eps-ball instead.
    generator : torch.Generator, optional
        Source of the starting noise (on the inputs' device); the global RNG if None.

    Examples
    --------
    >>> import torch
    >>> from rankattack import MaxShiftAttack
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> res = MaxShiftAttack(model, eps=0.1).run(torch.rand(4, 1, 4, 4))
    >>> bool((res.shift > 0).all())
    True
    """

    _param_names = ("metric", "eps", "alpha", "steps", "jitter", "random_start")

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int | None = None,
        metric: str | Distance = "cosine",
        jitter: float = 1e-3,
        random_start: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
        self.distance = get_distance(metric)
        self.jitter = check_real(jitter, "jitter", low=0.0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator

    @property
    def metric(self) -> str:
        return self.distance.name

    def perturb(self, x: Tensor, check: bool = True) -> tuple[Tensor, MaxShiftObjective]:
        """Attack ``x``; return the adversarial inputs and the objective (for the shift).

        ``check=False`` skips the input-range check (two host syncs), for training loops
        whose data was checked once up front.
        """
        if check:
            self.check_inputs(x, "x")
        objective = MaxShiftObjective(self.embed(x, "x"), self.distance)
        init = None
        if not self.pgd.random_start:
            radius = min(self.jitter, self.eps)
            noise = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
            init = x.detach() + (2 * noise - 1) * radius
        adv = self.pgd(self.model, x, objective, init=init, generator=self.generator)
        return adv, objective

    def __call__(self, x: Tensor) -> Tensor:
        """Return the inputs ``[N, *S]`` whose embeddings moved farthest."""
        return self.perturb(x)[0]

    def run(
        self, x: Tensor, *, batch_size: int | None = None, progress: bool = False
    ) -> ShiftResult:
        """Attack and report the embedding shift ``d(f(x + r), f(x))`` of each input.

        ``batch_size`` splits a large batch into chunks of that many inputs (default: all
        at once), with a progress bar if ``progress``.
        """
        return self._run_batched(self._run, "x", batch_size, progress, x=x)

    def _run(self, x: Tensor) -> ShiftResult:
        adv, objective = self.perturb(x)
        return ShiftResult(adversarial=adv, shift=objective.shift(self.embed(adv, "x")))
