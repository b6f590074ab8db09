"""ART ``EvasionAttack`` adapter of the universal (image-agnostic) ranking attack."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_real
from rankattack.art._convert import ArrayLike, as_tensor, check_art_param, like_input
from rankattack.art.base import RankingEvasionAttack
from rankattack.art.estimator import RankingEstimator

__all__ = ["UniversalRankAttackART"]


def _universal_class() -> Any:
    """``rankattack.attacks.universalrankattack.UniversalRankAttack``, imported on demand."""
    try:
        from rankattack.attacks.universalrankattack import UniversalRankAttack
    except ImportError as err:
        raise ImportError(
            "UniversalRankAttackART needs rankattack.attacks.universalrankattack."
            "UniversalRankAttack, which this rankattack installation does not provide"
        ) from err
    return UniversalRankAttack


class UniversalRankAttackART(RankingEvasionAttack):
    """[UniversalRankAttack][rankattack.UniversalRankAttack] (Sec. 5.2, Eq. 14) as an ART evasion
    attack.

    ``generate(x, y)`` fits ONE perturbation r (shape ``[*S]``) on the inputs ``x`` and
    their targets, keeps it as
    [perturbation][rankattack.art.universal.UniversalRankAttackART.perturbation] and returns
    ``clip(x + r)``; [apply][rankattack.art.universal.UniversalRankAttackART.apply] adds it to
    unseen inputs. ``target="candidate"`` adds r to candidates (I-CA+/I-CA-), ``target="query"`` to
    queries (I-QA+/I-QA-).

    Parameters
    ----------
    estimator : RankingEstimator
        Its gallery is the candidate set X.
    target : {"candidate", "query"}, default "candidate"
    direction : {"raise", "lower"}, default "raise"
    eps : float, default 0.3
        L-inf radius of r (the reference setting).
    eps_step : float, optional, default 2/255
        Step size; ``None`` gives the paper's per-sample schedule.
    max_iter : int, optional, default 100
        Steps over the whole fitting set.
    xi : float, default 0.0
        Semantics-Preserving weight (query targets only; the paper uses 0).
    sp_size : int, default 5
        G, the size of ``C_SP`` when ``xi > 0``.
    batch_size : int, default 256
        Inputs per forward/backward pass while fitting.
    verbose : bool, default False
        Progress bar over the steps.

    Notes
    -----
    The perturbed inputs are clamped to ``[0, 1]`` while fitting and to the estimator's
    ``clip_values`` in the output.
    """

    attack_params: ClassVar[list[str]] = [
        "eps",
        "eps_step",
        "max_iter",
        "batch_size",
        "verbose",
        "target",
        "direction",
        "xi",
        "sp_size",
    ]
    generate_kwargs: ClassVar[tuple[str, ...]] = ("queries", "candidates", "query_indices")

    def __init__(
        self,
        estimator: RankingEstimator,
        target: str = "candidate",
        direction: str = "raise",
        eps: float = 0.3,
        eps_step: float | None = 2 / 255,
        max_iter: int | None = 100,
        xi: float = 0.0,
        sp_size: int = 5,
        batch_size: int = 256,
        verbose: bool = False,
    ) -> None:
        self._cls = _universal_class()
        super().__init__(estimator, eps, eps_step, max_iter, False, batch_size, verbose)
        self.target = target
        self.direction = direction
        self.xi = xi
        self.sp_size = sp_size
        self._perturbation: Tensor | None = None
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        check_art_param(check_choice, self.target, "target", choices=("candidate", "query"))
        self._check_direction(self.direction)
        check_art_param(check_real, self.xi, "xi", low=0.0)
        if self.target == "candidate" and self.xi > 0:
            raise ValueError("xi applies to target='query' only")
        check_art_param(check_int, self.sp_size, "sp_size", low=0)

    @property
    def perturbation(self) -> Tensor | None:
        """The last fitted perturbation ``[*S]`` (on the estimator's device), or ``None``."""
        return self._perturbation

    def _clip(self, x: Tensor) -> Tensor:
        clip = self.estimator.clip_values
        if clip is None:
            return x
        lo = torch.as_tensor(np.asarray(clip[0]), device=x.device, dtype=x.dtype)
        hi = torch.as_tensor(np.asarray(clip[1]), device=x.device, dtype=x.dtype)
        return torch.minimum(torch.maximum(x, lo), hi)

    def apply(self, x: ArrayLike) -> ArrayLike:
        """Add the fitted perturbation to inputs ``[N, *S]`` and clip (same kind as ``x``)."""
        if self._perturbation is None:
            raise RuntimeError("no perturbation yet: call generate() first")
        xt = self._inputs(x)
        r = self._perturbation.to(device=xt.device, dtype=xt.dtype)
        return like_input(self._clip(xt + r), x)

    def generate(self, x: ArrayLike, y: ArrayLike | None = None, **kwargs: Any) -> ArrayLike:
        """Fit the universal perturbation on ``x`` and return the perturbed ``x``.

        Parameters
        ----------
        x : numpy.ndarray or Tensor
            ``[N, *S]`` in ``[0, 1]``: candidates (target "candidate") or queries.
        y : numpy.ndarray or Tensor, optional
            Candidate targets: query embeddings ``[N, w, D]``. Query targets: gallery
            indices ``[N, m]`` (int) of the chosen candidates.
        **kwargs
            ``queries``, ``candidates``, ``query_indices`` (see *Other Parameters*); any
            other keyword raises ``ValueError``.

        Other Parameters
        ----------------
        queries : numpy.ndarray or Tensor, optional
            Query images ``[N, w, *S]`` instead of ``y`` (target "candidate").
        candidates : numpy.ndarray or Tensor, optional
            Candidate images ``[N, m, *S]`` instead of ``y`` (target "query").
        query_indices : numpy.ndarray or Tensor, optional
            ``[N]`` gallery positions of the queries, kept out of ``C_SP``.
        """
        self._check_kwargs(kwargs)
        est = self.estimator
        xt = self._inputs(x)
        n = xt.shape[0]
        dev = est._device
        images, other = ("queries", "candidates")
        if self.target == "query":
            images, other = other, images
        if kwargs.get(other) is not None:
            raise ValueError(f"{other}= does not apply to target={self.target!r}")
        if (y is None) == (kwargs.get(images) is None):
            raise ValueError(f"give exactly one of y or {images}=")
        args: dict[str, Any] = {}
        if kwargs.get(images) is not None:
            args[images] = as_tensor(kwargs[images], images, dev)
        elif self.target == "candidate":
            emb = as_tensor(y, "y", dev)
            args["query_embeddings"] = emb.unsqueeze(1) if emb.dim() == 2 else emb
        else:
            idx = as_tensor(y, "y", dev, floating=False)
            if idx.is_floating_point():
                raise ValueError(
                    "y must hold gallery indices [N, m] (int) for target='query'; give "
                    "candidate images with candidates="
                )
            args["candidate_indices"] = idx.long().unsqueeze(1) if idx.dim() == 1 else idx.long()
        if kwargs.get("query_indices") is not None:
            args["query_indices"] = as_tensor(
                kwargs["query_indices"], "query_indices", dev, floating=False
            ).long()
        for name, value in args.items():
            if value.shape[0] != n:
                raise ValueError(
                    f"{name} must have one entry per input along its first axis ({n}), got "
                    f"shape {tuple(value.shape)}"
                )
        attack = self._cls(
            est.embedding_model,
            est._need_gallery(),
            target=self.target,
            direction=self.direction,
            eps=float(self.eps),
            alpha=self.eps_step,
            steps=self.max_iter,
            batch_size=self.batch_size,
            xi=float(self.xi),
            sp_size=self.sp_size,
        )
        self._perturbation = attack.fit(xt, **args, progress=self.verbose)
        return self.apply(x)
