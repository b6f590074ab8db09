"""An ART estimator for a PyTorch embedding model: the forward pass, predictions are embeddings.

``x -> model(preprocess(x))`` with ``clip_values``, ``preprocessing`` ``(mean, std)`` and
ART preprocessing defences applied as ART's PyTorch estimators apply them, gradients
included: PyTorch defences are differentiated on the device, NumPy defences run on the
host as an autograd node differentiated through their ``estimate_gradient`` (BPDA).
[RankingEstimator][rankattack.art.estimator.RankingEstimator] puts the ranking loss on top.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from art.estimators.pytorch import PyTorchEstimator
from torch import Tensor, nn

from rankattack._validation import check_int
from rankattack.art._convert import ArrayLike, as_tensor, like_input
from rankattack.gallery import check_embedding_output
from rankattack.wrappers import eval_mode

__all__ = ["EmbeddingEstimator", "EstimatorModel", "NumpyPreprocessing", "model_device"]

logger = logging.getLogger(__name__)


class NumpyPreprocessing(torch.autograd.Function):
    """ART's NumPy preprocessing defences as an autograd node.

    Forward runs the estimator's preprocessing chain on the host; backward applies ART's
    ``_apply_preprocessing_gradient`` (the defences' ``estimate_gradient``, the identity
    for non-differentiable ones such as feature squeezing or JPEG: BPDA), exactly what
    ART's ``PyTorchClassifier.loss_gradient`` does with them.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, estimator: EmbeddingEstimator) -> Tensor:
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

    The wrapped model is a registered submodule, so [rankattack.eval_mode][] (used by
    every attack) reaches it.
    """

    def __init__(self, estimator: EmbeddingEstimator) -> None:
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


class EmbeddingEstimator(PyTorchEstimator):
    """ART estimator of a PyTorch embedding model: ``predict(x)`` returns embeddings ``[N, D]``.

    The base of [RankingEstimator][rankattack.art.estimator.RankingEstimator], which adds the loss
    (``loss_gradient``, ``compute_loss``): this class holds what does not depend on it,
    the inputs' checks, the forward pass through preprocessing and defences, predictions
    and activations. ``clip_values``, ``preprocessing`` ``(mean, std)`` and ART
    preprocessing defences are applied as ART's PyTorch estimators apply them, gradients
    included: PyTorch defences (``StandardisationMeanStdPyTorch``,
    ``SpatialSmoothingPyTorch``, ...) are differentiated on the device; a NumPy defence
    (``FeatureSqueezing``, ``JpegCompression``, ...) runs on the host and is
    differentiated through its ``estimate_gradient`` (BPDA).

    Parameters
    ----------
    model : nn.Module or callable
        Maps inputs ``[N, *input_shape]`` (after preprocessing) to embeddings ``[N, D]``.
        Wrap models returning tuples or dicts with [rankattack.EmbeddingModel][].
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)``.
    channels_first : bool, default True
    clip_values : tuple, default (0.0, 1.0)
        ``(min, max)`` floats or arrays: the valid input range ART's attacks clip to.
    preprocessing_defences : Preprocessor or list of Preprocessor, optional
        ART preprocessing defences, applied before ``preprocessing``.
    postprocessing_defences : None
        Not supported (ART's postprocessors act on class probabilities).
    preprocessing : tuple or Preprocessor, optional
        ``(mean, std)``: the model sees ``(x - mean) / std``.
    device_type : {"cpu", "gpu"}, optional
        Default: where the model's parameters are. Computations run on the model's device.
    """

    estimator_params: ClassVar[list[str]] = [*PyTorchEstimator.estimator_params, "input_shape"]

    def __init__(
        self,
        model: nn.Module | Callable[[Tensor], Tensor],
        input_shape: Sequence[int],
        channels_first: bool = True,
        clip_values: Any = (0.0, 1.0),
        preprocessing_defences: Any = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = None,
        device_type: str | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        device = model_device(model)
        if device_type is None:
            device_type = "gpu" if device.type == "cuda" else "cpu"
        super().__init__(
            model=model,
            clip_values=clip_values,
            channels_first=channels_first,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=preprocessing,
            device_type=device_type,
        )
        self._input_shape = tuple(input_shape) if isinstance(input_shape, Sequence) else input_shape
        self._layer_names: list[str] = []
        self._wrapped = EstimatorModel(self)
        self._check_params()

    # parameters ---------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample."""
        return self._input_shape

    @property
    def embedding_model(self) -> nn.Module:
        """``x -> model(preprocess(x))``: differentiable, for rankattack's own attacks."""
        return self._wrapped

    def set_params(self, **kwargs: Any) -> None:
        """Set estimator parameters; on a bad value raise ``ValueError`` and keep the old ones."""
        state = dict(self.__dict__)
        operations = list(self.preprocessing_operations)
        try:
            super().set_params(**kwargs)
        except (ValueError, TypeError):
            self.__dict__.clear()
            self.__dict__.update(state)
            self.preprocessing_operations[:] = operations
            raise

    def _check_params(self) -> None:
        super()._check_params()
        if not callable(self._model):
            raise ValueError(f"model must be callable, got {type(self._model).__name__}")
        if isinstance(self._input_shape, list):
            self._input_shape = tuple(self._input_shape)
        shape = self._input_shape
        if not (
            isinstance(shape, tuple)
            and len(shape) >= 1
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
        ):
            raise ValueError(f"input_shape must be a tuple of positive ints, got {shape!r}")
        self._check_subclass_params()
        if self.postprocessing_defences:
            raise ValueError(
                "postprocessing_defences are not supported: ART's postprocessors act on class "
                "probabilities, RankingEstimator outputs embeddings"
            )
        # (re)bind what depends on the parameters: set_params may have replaced them
        # a plain function or a parameterless module: keep the device ART chose from
        # device_type instead of falling back to the CPU
        chosen: torch.device | None = getattr(self, "_device", None)
        self._device = model_device(self._model, default=chosen)
        self._params_changed()
        self._wrapped = EstimatorModel(self)
        model = self._model
        self._layer_names = (
            [n for n, m in model.named_modules() if n and not any(m.children())]
            if isinstance(model, nn.Module)
            else []
        )

    def _check_subclass_params(self) -> None:
        """Check the parameters a subclass adds (between the input shape and the defences)."""

    def _params_changed(self) -> None:
        """Drop what a subclass derived from the old parameters (they have just changed)."""

    # forward ------------------------------------------------------------------------
    def _preprocess(self, x: Tensor) -> Tensor:
        if not self.preprocessing_operations:
            return x
        if self.all_framework_preprocessing:
            out, _ = self._apply_preprocessing(x, None, fit=False, no_grad=False)
            return out
        logger.debug("NumPy preprocessing defences: copying the inputs to the host")
        return NumpyPreprocessing.apply(x, self)

    def _embed(self, x: Tensor) -> Tensor:
        out = self._model(self._preprocess(x))
        return check_embedding_output(out, x.shape[0], "model")

    def _inputs(self, x: Any, name: str = "x", extra: int = 0) -> Tensor:
        """Validate ``[N, *extra axes, *input_shape]`` inputs; return them on the device."""
        t = as_tensor(x, name, self._device)
        want = t.dim() == 1 + extra + len(self.input_shape)
        if not want or tuple(t.shape[1 + extra :]) != self.input_shape or t.shape[0] < 1:
            lead = "N" + "".join(", k" for _ in range(extra))
            raise ValueError(
                f"{name} must have shape [{lead}, {', '.join(map(str, self.input_shape))}] "
                f"(input_shape={self.input_shape}) with N >= 1, got {tuple(t.shape)}"
            )
        return t

    def predict(
        self, x: ArrayLike, batch_size: int = 128, training_mode: bool = False, **kwargs: Any
    ) -> ArrayLike:
        """Embeddings ``[N, D]`` of ``x`` (through preprocessing and defences).

        Parameters
        ----------
        x : numpy.ndarray or Tensor
            ``[N, *input_shape]``.
        batch_size : int
            Inputs per forward pass.
        training_mode : bool
            Run the model in training mode (default: eval mode, restored afterwards).

        Returns
        -------
        numpy.ndarray or Tensor
            Same kind as ``x`` (a tensor stays on its device).
        """
        batch_size = check_int(batch_size, "batch_size", low=1)
        xt = self._inputs(x)
        with torch.no_grad(), self._mode(training_mode):
            emb = torch.cat(
                [self._embed(xt[s : s + batch_size]) for s in range(0, xt.shape[0], batch_size)]
            )
        return like_input(emb, x)

    def predict_sets(self, x: ArrayLike, batch_size: int = 128) -> ArrayLike:
        """Embeddings ``[N, k, D]`` of sets of inputs ``[N, k, *input_shape]``.

        The ``y`` of the ``"candidate"`` objective from query images ``[N, w, *S]``, or of
        ``"query"`` from candidate images ``[N, m, *S]``.
        """
        xt = self._inputs(x, extra=1)
        n, k = xt.shape[:2]
        emb = self.predict(xt.flatten(0, 1), batch_size=batch_size)
        assert isinstance(emb, Tensor)
        return like_input(emb.view(n, k, -1), x)

    @contextlib.contextmanager
    def _mode(self, training_mode: bool, freeze: bool = False) -> Iterator[None]:
        """Eval mode (or train mode) for the call; every module's mode restored after."""
        with eval_mode(self._model, freeze=freeze):
            if training_mode and isinstance(self._model, nn.Module):
                self._model.train()
            yield

    # the rest of ART's estimator interface --------------------------------------------
    def fit(
        self, x: ArrayLike, y: ArrayLike, batch_size: int = 128, nb_epochs: int = 20, **kwargs: Any
    ) -> None:
        """Not supported: train the embedding model first, then wrap it."""
        raise NotImplementedError(
            "RankingEstimator wraps a trained embedding model for attacks and defences; train "
            "the model with your own loop (e.g. a triplet loss), then wrap it"
        )

    def get_activations(
        self,
        x: ArrayLike,
        layer: int | str,
        batch_size: int = 128,
        framework: bool = False,
    ) -> ArrayLike:
        """Output of a leaf module of the model (by index into ``layer_names`` or by name).

        ``framework=True`` returns a tensor (with its graph) instead of a numpy array.
        """
        if not isinstance(self._model, nn.Module):
            raise ValueError("get_activations needs the model to be a torch.nn.Module")
        names = self._layer_names
        if isinstance(layer, int) and not isinstance(layer, bool):
            if not 0 <= layer < len(names):
                raise ValueError(f"layer index must be in [0, {len(names) - 1}], got {layer}")
            layer = names[layer]
        if not isinstance(layer, str) or layer not in names:
            raise ValueError(f"layer must be one of {names} or an index into them, got {layer!r}")
        module = dict(self._model.named_modules())[layer]
        xt = self._inputs(x)
        outs: list[Tensor] = []
        handle = module.register_forward_hook(lambda _m, _i, out: outs.append(out))
        try:
            with torch.set_grad_enabled(framework), self._mode(False):
                for s in range(0, xt.shape[0], batch_size):
                    self._embed(xt[s : s + batch_size])
        finally:
            handle.remove()
        act = torch.cat(outs)
        return act if framework else like_input(act, x)
