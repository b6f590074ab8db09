"""The ranking losses behind
[RankingEstimator.loss_gradient][rankattack.art.estimator.RankingEstimator.loss_gradient], decoded
from ART's ``y``.

``y`` always indexes the samples along its first axis (ART slices it into batches):

- ``"candidate"``: query embeddings ``[N, w, D]`` -> ``L_CA+`` (Eq. 4) / ``L_CA-`` (Eq. 7);
- ``"query"``: gallery indices ``[N, k]`` or embeddings ``[N, k, D]``, the last
  ``sp_size`` being ``C_SP`` -> ``L_QA`` (Eq. 9 / 11) + ``xi L_QA+(q, C_SP)`` (Eq. 12);
- ``"shift"``: reference embeddings ``[N, D]`` -> ``d(f(x), y)`` (Eq. 13's distance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rankattack.art._convert import as_tensor
from rankattack.gallery import Gallery
from rankattack.objectives import CandidateObjective, MaxShiftObjective, QueryObjective

__all__ = ["OBJECTIVES", "LossCache", "LossFn", "build_loss", "embedding_sets", "is_integer"]

#: The ranking objectives
#: [RankingEstimator.loss_gradient][rankattack.art.estimator.RankingEstimator.loss_gradient] can
#: differentiate.
OBJECTIVES = ("candidate", "query", "shift")

#: Embeddings of the perturbed inputs ``[N, D]`` -> per-sample loss ``[N]``.
LossFn = Callable[[Tensor], Tensor]


def is_integer(y: Any) -> bool:
    """Whether ``y`` (numpy array or tensor) holds integers (gallery indices)."""
    if isinstance(y, Tensor):
        return not (y.is_floating_point() or y.is_complex())
    return isinstance(y, np.ndarray) and np.issubdtype(y.dtype, np.integer)


def embedding_sets(y: Tensor, n: int, dim: int, what: str) -> Tensor:
    """Check ``y`` as ``[N, k, D]`` embeddings (``[N, D]`` read as k = 1)."""
    if y.dim() == 2:
        y = y.unsqueeze(1)
    if y.dim() != 3 or y.shape[0] != n or y.shape[2] != dim or y.shape[1] < 1:
        raise ValueError(
            f"y must hold {what}: a float array [N, k, D] = [{n}, k, {dim}] (or [N, D]), "
            f"got shape {tuple(y.shape)}"
        )
    return y


def build_loss(
    y: Any,
    n: int,
    *,
    objective: str,
    direction: str,
    xi: float,
    sp_size: int,
    metric: str,
    gallery: Gallery | None,
    device: torch.device,
) -> LossFn:
    """The per-sample loss for ``n`` inputs and their ``y`` (see the module docstring)."""
    if y is None:
        raise ValueError(
            f"y is required by objective={objective!r} (see RankingEstimator's 'Encoding of y')"
        )
    if objective == "shift":
        yt = as_tensor(y, "y", device)
        if yt.dim() != 2 or yt.shape[0] != n:
            raise ValueError(
                f"y must hold reference embeddings [N, D] with N = {n} for objective 'shift', "
                f"got shape {tuple(yt.shape)}"
            )
        return MaxShiftObjective(yt, metric).shift
    if gallery is None:
        raise ValueError(
            f"objective={objective!r} needs a gallery: pass gallery= or call build_gallery(x) first"
        )
    dev = gallery.embeddings.device
    if objective == "candidate":
        yt = embedding_sets(as_tensor(y, "y", dev), n, gallery.dim, "query embeddings")
        return CandidateObjective(gallery, yt, direction)
    if is_integer(y):
        yt = as_tensor(y, "y", dev, floating=False)
        if yt.dim() == 1:
            yt = yt.unsqueeze(1)
        if yt.dim() != 2 or yt.shape[0] != n:
            raise ValueError(
                f"y must hold gallery indices [N, k] with N = {n} for objective 'query', got "
                f"shape {tuple(yt.shape)}"
            )
        emb = gallery.embeddings[gallery.check_indices(yt.long(), "y")]
    else:
        emb = embedding_sets(as_tensor(y, "y", dev), n, gallery.dim, "candidate embeddings")
    m = emb.shape[1] - sp_size
    if m < 1:
        raise ValueError(
            f"y holds {emb.shape[1]} entries per query, but sp_size={sp_size} of them are "
            f"C_SP: at least one chosen candidate is needed"
        )
    sp = emb[:, m:] if sp_size > 0 else None
    return QueryObjective(gallery, emb[:, :m], direction, xi, sp)


class LossCache:
    """The losses built for recent ``y``, reused while ART passes the same ``y`` each step.

    Tensors are matched by identity and version (no host sync): an entry keeps its
    tensor alive, so a new ``y`` allocated at a freed address can never match it. Numpy
    arrays are matched by content. Entries are dropped oldest first to keep the total
    ``N * w * |X|`` within ``budget`` (at least one entry is kept).
    """

    def __init__(self) -> None:
        self._entries: list[tuple[Any, int, LossFn]] = []

    def clear(self) -> None:
        self._entries = []

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _key(y: Tensor) -> tuple[Tensor, int]:
        return (y, y._version)

    def _find(self, y: Any) -> LossFn | None:
        for key, _, fn in self._entries:
            if isinstance(y, Tensor):
                if isinstance(key, tuple) and key[0] is y and key[1] == y._version:
                    return fn
            elif (
                isinstance(key, np.ndarray)
                and key.dtype == y.dtype
                and key.shape == y.shape
                and np.array_equal(key, y)
            ):
                return fn
        return None

    def get(self, y: Any, build: Callable[[], LossFn], size: int, budget: int) -> LossFn:
        """The cached loss for ``y``, else ``build()`` (stored when ``y`` is an array)."""
        if not isinstance(y, Tensor | np.ndarray):
            return build()
        fn = self._find(y)
        if fn is not None:
            return fn
        fn = build()
        while self._entries and sum(e[1] for e in self._entries) + size > budget:
            self._entries.pop(0)
        key = self._key(y) if isinstance(y, Tensor) else y.copy()
        self._entries.append((key, size, fn))
        return fn
