"""What every ART adapter of a rankattack attack shares: parameters, checks, batching, I/O."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_real
from rankattack.art._convert import ArrayLike, as_tensor, check_art_param, like_input
from rankattack.art.estimator import RankingEstimator
from rankattack.attacks.base import RankingAttack
from rankattack.pgd import LinfPGD

__all__ = ["BoxLinfPGD", "RankingEvasionAttack"]

logger = logging.getLogger(__name__)

_Attack = TypeVar("_Attack", bound=RankingAttack)


class BoxLinfPGD(LinfPGD):
    """[LinfPGD][rankattack.pgd.LinfPGD] clipped to per-feature bounds (ART ``clip_values`` arrays).

    ``lower`` and ``upper`` broadcast to one input ``[*S]``; they are moved to the inputs'
    device once and reused.
    """

    def __init__(self, lower: np.ndarray, upper: np.ndarray, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lower = np.asarray(lower, dtype=np.float32)
        self.upper = np.asarray(upper, dtype=np.float32)
        self._bounds: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def bounds(self, origin: Tensor) -> tuple[Tensor, Tensor]:
        key = (origin.device, origin.dtype)
        if key not in self._bounds:
            self._bounds[key] = (
                torch.as_tensor(self.lower, device=origin.device, dtype=origin.dtype),
                torch.as_tensor(self.upper, device=origin.device, dtype=origin.dtype),
            )
        lower, upper = self._bounds[key]
        return torch.maximum(origin - self.eps, lower), torch.minimum(origin + self.eps, upper)


class RankingEvasionAttack(EvasionAttack):
    """Base of the ART adapters: a rankattack attack behind ART's ``EvasionAttack`` interface.

    ``attack_params`` lists the tunable parameters; ``set_params(**kw)`` sets them and
    runs ``_check_params``, which raises ``ValueError`` naming a bad one (and the previous
    values are restored). ``generate(x, y)`` takes and returns numpy arrays, or tensors
    kept on their device. The gallery, preprocessing, defences and ``clip_values`` come
    from the [RankingEstimator][rankattack.art.base.RankingEstimator]; inputs must lie in ``[0, 1]``
    and so must ``clip_values``.

    Parameters
    ----------
    estimator : RankingEstimator
    eps : float, default 8/255
        L-inf radius.
    eps_step : float, optional
        Step size; default the paper's ``min(max(eps/10, 1/255), 0.01)``.
    max_iter : int, optional
        PGD iterations; default the paper's ``int(min(max(10, 2 eps/eps_step), 30))``.
    random_start : bool, default False
        Start from a random point of the eps-ball.
    batch_size : int, default 128
        Inputs attacked together.
    verbose : bool, default False
        Show a progress bar over the batches.
    """

    attack_params: ClassVar[list[str]] = [
        *EvasionAttack.attack_params,
        "eps",
        "eps_step",
        "max_iter",
        "random_start",
        "batch_size",
        "verbose",
    ]
    _estimator_requirements = (RankingEstimator,)

    #: Keyword arguments of ``generate`` besides ``x`` and ``y``.
    generate_kwargs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        estimator: RankingEstimator,
        eps: float = 8 / 255,
        eps_step: float | None = None,
        max_iter: int | None = None,
        random_start: bool = False,
        batch_size: int = 128,
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator=estimator)
        self.eps = eps
        self.eps_step = eps_step
        self.max_iter = max_iter
        self.random_start = random_start
        self.batch_size = batch_size
        self.verbose = verbose

    @property
    def estimator(self) -> RankingEstimator:
        """The [RankingEstimator][rankattack.art.base.RankingEstimator] attacked."""
        return self._estimator

    # parameters ---------------------------------------------------------------------
    def set_params(self, **kwargs: Any) -> None:
        """Set attack parameters; on a bad value raise ``ValueError`` and keep the old ones."""
        old = {k: getattr(self, k) for k in kwargs if k in self.attack_params and hasattr(self, k)}
        try:
            super().set_params(**kwargs)
        except (ValueError, TypeError):
            for key, value in old.items():
                setattr(self, key, value)
            raise

    def _check_params(self) -> None:
        super()._check_params()
        check_art_param(check_real, self.eps, "eps", low=0.0)
        if self.eps_step is not None:
            check_art_param(check_real, self.eps_step, "eps_step", low=0.0, low_open=True)
        if self.max_iter is not None:
            check_art_param(check_int, self.max_iter, "max_iter", low=0)
        for flag in ("random_start", "verbose"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
        check_art_param(check_int, self.batch_size, "batch_size", low=1)

    @staticmethod
    def _check_direction(direction: Any) -> None:
        check_art_param(check_choice, direction, "direction", choices=("raise", "lower"))

    def _pgd(self) -> LinfPGD:
        """The PGD engine for the current parameters, clipped to the estimator's clip_values."""
        kwargs: dict[str, Any] = {
            "eps": float(self.eps),
            "alpha": self.eps_step,
            "steps": self.max_iter,
            "random_start": self.random_start,
        }
        clip = self.estimator.clip_values
        if clip is None:
            return LinfPGD(**kwargs)
        lo, hi = np.asarray(clip[0], dtype=np.float64), np.asarray(clip[1], dtype=np.float64)
        if lo.min() < 0.0 or hi.max() > 1.0:
            raise ValueError(
                f"the estimator's clip_values must lie within [0, 1] for rankattack's attacks "
                f"(inputs are images in [0, 1]; give a model expecting another range "
                f"preprocessing=(mean, std)), got [{lo.min()}, {hi.max()}]"
            )
        if lo.ndim == 0 and hi.ndim == 0:
            return LinfPGD(**kwargs, clip_min=float(lo), clip_max=float(hi))
        return BoxLinfPGD(lo, hi, **kwargs)

    def _bind(self, attack: _Attack) -> _Attack:
        """Give a core attack the PGD engine of the current parameters."""
        attack.pgd = self._pgd()
        return attack

    # generation ---------------------------------------------------------------------
    def _inputs(self, x: Any) -> Tensor:
        return self.estimator._inputs(x)

    def _check_kwargs(self, kwargs: dict[str, Any]) -> None:
        unknown = sorted(set(kwargs) - set(self.generate_kwargs))
        if unknown:
            accepted = ", ".join(self.generate_kwargs) or "none"
            raise ValueError(
                f"{type(self).__name__}.generate got unexpected keyword arguments {unknown} "
                f"(accepted: {accepted})"
            )

    def _batches(self, n: int) -> Iterator[tuple[int, int]]:
        starts: Any = range(0, n, self.batch_size)
        if self.verbose:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=type(self).__name__, unit="batch")
        for s in starts:
            yield s, min(s + self.batch_size, n)

    def _per_sample(self, value: Any, name: str, n: int, floating: bool = True) -> Tensor | None:
        """``value`` as a tensor on the estimator's device whose first axis has N entries."""
        if value is None:
            return None
        t = as_tensor(value, name, self.estimator._device, floating=floating)
        if t.dim() < 1 or t.shape[0] != n:
            raise ValueError(
                f"{name} must have one entry per input along its first axis ({n}), got shape "
                f"{tuple(t.shape)}"
            )
        return t

    def _run(
        self, x: ArrayLike, xt: Tensor, batch_fn: Any, **per_sample: Tensor | None
    ) -> ArrayLike:
        """Attack ``xt`` (``x`` on the device) batch by batch; return it in ``x``'s kind."""
        out = torch.empty_like(xt)
        for s, e in self._batches(xt.shape[0]):
            sl = {k: (None if v is None else v[s:e]) for k, v in per_sample.items()}
            out[s:e] = batch_fn(xt[s:e], **sl)
        return like_input(out, x)

    def __repr__(self) -> str:
        params = ", ".join(
            f"{k}={getattr(self, k)!r}" for k in self.attack_params if hasattr(self, k)
        )
        return f"{type(self).__name__}({params})"
