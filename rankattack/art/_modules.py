"""The estimator's forward pass as torch objects: NumPy defences as autograd nodes, a module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from rankattack.art.estimator import RankingEstimator

__all__ = ["EstimatorModel", "NumpyPreprocessing", "model_device"]


class NumpyPreprocessing(torch.autograd.Function):
    """ART's NumPy preprocessing defences as an autograd node.

    Forward runs the estimator's preprocessing chain on the host; backward applies ART's
    ``_apply_preprocessing_gradient`` (the defences' ``estimate_gradient``, the identity
    for non-differentiable ones such as feature squeezing or JPEG: BPDA), exactly what
    ART's ``PyTorchClassifier.loss_gradient`` does with them.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, estimator: RankingEstimator) -> Tensor:
        x_np = x.detach().cpu().numpy()
        out, _ = estimator._apply_preprocessing(x_np, None, fit=False)
        ctx.estimator = estimator
        ctx.x_np = x_np
        return torch.as_tensor(np.asarray(out), device=x.device, dtype=x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        g = ctx.estimator._apply_preprocessing_gradient(ctx.x_np, grad.detach().cpu().numpy())
        return torch.as_tensor(np.asarray(g), device=grad.device, dtype=grad.dtype), None


class EstimatorModel(nn.Module):
    """``x -> model(preprocess(x))`` as a module, so rankattack's PGD engine can drive it.

    The wrapped model is a registered submodule, so :func:`rankattack.eval_mode` (used by
    every attack) reaches it.
    """

    def __init__(self, estimator: RankingEstimator) -> None:
        super().__init__()
        if isinstance(estimator.model, nn.Module):
            self.net = estimator.model
        self._estimator = estimator

    def forward(self, x: Tensor) -> Tensor:
        return self._estimator._embed(x)


def model_device(model: Any, default: torch.device | None = None) -> torch.device:
    """Device of a module's first parameter (or buffer); ``default`` (else CPU) otherwise."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return default if default is not None else torch.device("cpu")
