"""Adapting third-party models to the ``inputs [N, *S] -> embeddings [N, D]`` contract.

Attacks take any callable that maps inputs in ``[0, 1]`` to ``[N, D]`` embeddings.
[EmbeddingModel][rankattack.wrappers.EmbeddingModel] turns the common other shapes into that one:
models returning tuples, lists, dicts or objects with attributes (e.g. HuggingFace outputs), models
that expect mean/std-normalized inputs, and models whose output needs flattening.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["EmbeddingModel", "eval_mode"]


class EmbeddingModel(nn.Module):
    """Wrap a model so that it maps ``[0, 1]`` inputs to ``[N, D]`` embeddings.

    Parameters
    ----------
    model : callable
        The model (``nn.Module`` or function).
    output : int, str or callable, optional
        Which part of the model's output is the embedding: an index (tuple/list outputs),
        a key or attribute name (dict / dataclass-like outputs), or a function applied to
        the raw output. ``None`` takes the output as it is.
    mean, std : sequence of float or Tensor, optional
        Per-channel normalization the model expects: the wrapper feeds
        ``(x - mean) / std`` so attacks still work in ``[0, 1]`` pixel space (gradients
        flow through the normalization, as in torchattacks and ART's ``preprocessing``).
    flatten : bool
        Flatten outputs of shape ``[N, ...]`` to ``[N, D]`` (e.g. ``[N, D, 1, 1]`` pooling).

    Notes
    -----
    Attacks switch ``nn.Module`` models to eval mode for their run. A plain function
    wrapping a module (``lambda x: net(x)[0]``) is opaque to them: put ``net`` in eval
    mode yourself, or wrap ``net`` with ``output=0`` so the attack sees the module.

    Examples
    --------
    >>> import torch
    >>> net = lambda x: {"embedding": x.flatten(1), "logits": None}
    >>> model = EmbeddingModel(net, output="embedding", mean=[0.5], std=[0.25])
    >>> model(torch.full((2, 1, 2, 2), 0.75)).shape
    torch.Size([2, 4])
    """

    mean: Tensor | None
    std: Tensor | None

    def __init__(
        self,
        model: Callable[..., Any],
        output: int | str | Callable[[Any], Tensor] | None = None,
        mean: Sequence[float] | Tensor | None = None,
        std: Sequence[float] | Tensor | None = None,
        flatten: bool = False,
    ) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        if output is not None and not isinstance(output, int | str) and not callable(output):
            raise TypeError(
                f"output must be an int index, a str key/attribute or a callable, "
                f"got {type(output).__name__}"
            )
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together (or neither)")
        self.model = model  # registered as a submodule when it is an nn.Module
        self._stats: dict[tuple[Any, ...], tuple[Tensor, Tensor, Tensor, Tensor]] = {}
        self.output = output
        self.flatten = bool(flatten)
        if mean is not None and std is not None:
            mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
            std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
            if mean_t.shape != std_t.shape:
                raise ValueError(
                    f"mean and std must have the same length, got {mean_t.numel()} and "
                    f"{std_t.numel()}"
                )
            if not bool((std_t > 0).all()):
                raise ValueError(f"std must be positive, got {std_t.tolist()}")
            self.register_buffer("mean", mean_t)
            self.register_buffer("std", std_t)
        else:
            self.mean = None
            self.std = None

    def _normalize(self, x: Tensor) -> Tensor:
        if self.mean is None or self.std is None:
            return x
        key = (x.device, x.dtype, x.dim())
        cached = self._stats.get(key)
        if cached is None or cached[0] is not self.mean or cached[1] is not self.std:
            # one copy per device/dtype, not one per forward (a host-to-device copy on every
            # attack step when the wrapper itself was never moved)
            shape = [1, -1] + [1] * (x.dim() - 2) if x.dim() > 2 else [1, -1]
            mean = self.mean.to(device=x.device, dtype=x.dtype).view(shape)
            std = self.std.to(device=x.device, dtype=x.dtype).view(shape)
            cached = (self.mean, self.std, mean, std)
            self._stats[key] = cached
        return (x - cached[2]) / cached[3]

    def _select(self, out: Any) -> Any:
        sel = self.output
        if sel is None:
            return out
        if callable(sel) and not isinstance(sel, int | str):
            return sel(out)
        if isinstance(sel, int):
            if not isinstance(out, tuple | list):
                raise TypeError(
                    f"output={sel} selects by index, but the model returned "
                    f"{type(out).__name__}, not a tuple or list"
                )
            return out[sel]
        if isinstance(out, dict):
            if sel not in out:
                raise KeyError(f"output={sel!r} is not a key of the model's output {list(out)}")
            return out[sel]
        if hasattr(out, sel):
            return getattr(out, sel)
        raise TypeError(
            f"output={sel!r} is neither a key nor an attribute of the model's output "
            f"({type(out).__name__})"
        )

    def forward(self, x: Tensor) -> Tensor:
        emb = self._select(self.model(self._normalize(x)))
        if self.flatten and isinstance(emb, Tensor):
            emb = emb.flatten(1)
        return emb

    def extra_repr(self) -> str:
        parts = [f"output={self.output!r}", f"flatten={self.flatten}"]
        if self.mean is not None and self.std is not None:
            parts += [f"mean={self.mean.tolist()}", f"std={self.std.tolist()}"]
        return ", ".join(parts)


@contextlib.contextmanager
def eval_mode(model: Any, freeze: bool = False) -> Iterator[None]:
    """Put every submodule of ``model`` in eval mode; restore each one's mode after.

    With ``freeze=True`` the parameters' ``requires_grad`` flags are also switched off
    for the duration (attacks need gradients with respect to inputs only) and restored.
    Plain functions pass through unchanged.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()] if freeze else []
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)
