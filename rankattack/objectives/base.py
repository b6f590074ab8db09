"""The objective interface: *what* an attack optimizes, and the helpers objectives share.

An objective is bound to the fixed side of an attack (the gallery, the queries of a
candidate attack, the candidates of a query attack, or the clean embeddings of a
maximum-shift attack) and maps the embeddings of the perturbed inputs ``[N, D]`` to a
per-sample loss ``[N]`` that the optimizer *minimizes*. Objectives hold no optimizer;
[rankattack.pgd.LinfPGD][] runs any of them.

Every hinge sum is averaged over ``|X|`` and over the w queries (CA) or m candidates
(QA), so the Semantics-Preserving weight xi has the paper's meaning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from rankattack._validation import check_choice

__all__ = ["DIRECTIONS", "RankingObjective", "direction_sign"]

#: The two ways an attack moves its targets' ranks: "raise" (+) or "lower" (-).
DIRECTIONS = ("raise", "lower")


class RankingObjective(ABC):
    """Base class of attack objectives: embeddings ``[N, D]`` -> loss ``[N]`` (minimized).

    Subclass it and implement [__call__][rankattack.objectives.base.RankingObjective.__call__] to
    attack with a new criterion; the PGD engine only needs the per-sample loss. Set
    [dim][rankattack.gallery.Gallery.dim] to have the engine check the model's embedding dimension.

    Examples
    --------
    >>> import torch
    >>> from rankattack import RankingObjective
    >>> class PullToward(RankingObjective):
    ...     def __init__(self, target):
    ...         self.target = target
    ...     def __call__(self, embeddings):
    ...         return (embeddings - self.target).pow(2).sum(-1)
    >>> PullToward(torch.zeros(2, 3))(torch.ones(2, 3))
    tensor([3., 3.])
    """

    #: Expected embedding dimension (``None``: not checked).
    dim: int | None = None
    #: Device the embeddings must be on (``None``: not checked).
    device: torch.device | None = None

    @abstractmethod
    def __call__(self, embeddings: Tensor) -> Tensor:
        """Per-sample loss ``[N]`` of the perturbed inputs' embeddings ``[N, D]``."""

    def ranks(self, embeddings: Tensor) -> Tensor | None:
        """Mean normalized rank ``[N]`` the embeddings achieve, if the objective has one."""
        return None

    def settled(self, loss: Tensor) -> Tensor | None:
        """Rows ``[N]`` (bool) that no further PGD step can move, or None (the default).

        An objective returns a mask only where it is exact: a row it marks must have a zero
        gradient now and at every later step, because its loss depends on its own inputs alone
        (e.g. a hinge that is already satisfied). The engine then drops those rows from the
        remaining steps ([restrict][rankattack.objectives.base.RankingObjective.restrict]),
        which leaves the result unchanged and saves their forward and backward passes.
        """
        return None

    def restrict(self, keep: Tensor) -> RankingObjective:
        """The objective over the rows ``keep`` ``[N]`` (bool) only; see ``settled``."""
        raise NotImplementedError(f"{type(self).__name__} cannot drop settled rows")


def direction_sign(direction: str) -> float:
    """Validate ``direction`` (one of ``DIRECTIONS``); +1 for "raise", -1 for "lower"."""
    check_choice(direction, "direction", DIRECTIONS)
    return 1.0 if direction == "raise" else -1.0
