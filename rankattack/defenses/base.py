"""What every defense shares: the [Defense][rankattack.defenses.base.Defense] interface, the triplet
type, the plumbing.

A defense turns a labelled batch and a model into a training loss::

    loss = defense.loss(model, images, labels)    # then loss.backward(); optimizer.step()

so that it drops into a plain PyTorch loop, [rankattack.training.train][] (``rankattack
train``) or a pytorch-metric-learning loop. Every defense takes the ranking loss as a callable
(``ranking_loss``: the project's [TripletLoss][rankattack.losses.TripletLoss] by default, or any
``(anchors, positives, negatives) -> scalar`` on embeddings, or a pytorch-metric-learning loss
object) and the triplet miner as a callable (``miner``: ``(embeddings, labels) -> (anchors,
positives, negatives)`` indices into the batch, the calling convention of pytorch-metric-learning's
miners; [rankattack.defenses.miners][] holds the project's). Its adversary always runs with
the model in eval mode and its parameters frozen ([LinfPGD][rankattack.pgd.LinfPGD]), and the
model's modes and ``requires_grad`` flags are restored afterwards.

This module also holds the helpers of the older functional API (a loss and a step function per
defense, with explicit triplets): ``Triplets``, ``LossFn``,
[stack_triplets][rankattack.defenses.base.stack_triplets],
[apply_step][rankattack.defenses.base.apply_step] and [step_of][rankattack.defenses.base.step_of],
which makes a defense's step function from its loss function.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

import torch
from torch import Tensor

from rankattack._validation import (
    check_choice,
    check_int,
    check_real,
    check_tensor,
    check_unit_range,
)
from rankattack.distances import Distance, get_distance
from rankattack.losses import TripletLoss, default_margin
from rankattack.wrappers import eval_mode

__all__ = [
    "DEFENSES",
    "DEFENSE_ALIASES",
    "Defense",
    "LossFn",
    "TripletMiner",
    "TripletSelector",
    "Triplets",
    "apply_step",
    "as_ranking_loss",
    "canonical_defense",
    "embed_triplets",
    "stack_triplets",
    "step_of",
]

#: Defense names understood by [rankattack.training.train][] and ``rankattack train``
#: (``None`` trains vanilla). "embedding-shift" is another name of "est".
DEFENSES: tuple[str, ...] = ("est", "act", "hm", "madry", "shift-suppress", "embedding-shift")

#: Other names of a defense -> its canonical name.
DEFENSE_ALIASES: dict[str, str] = {"embedding-shift": "est"}

#: ``(anchor, positive, negative)`` int64 index tensors ``[M]`` into a batch.
Triplets = tuple[Tensor, Tensor, Tensor]

#: A ranking loss on embeddings: ``(anchors, positives, negatives) -> scalar``.
LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]

#: A triplet miner: ``(embeddings [B, D], labels [B]) -> (anchors, positives, negatives)``.
TripletMiner = Callable[[Tensor, Tensor], Any]

#: What a defense calls to pick its triplets from the embeddings it mines on.
TripletSelector = Callable[[Tensor], Triplets]

_P = ParamSpec("_P")


def canonical_defense(name: str) -> str:
    """The canonical name of a defense ("embedding-shift" -> "est"); ValueError if unknown."""
    check_choice(name, "defense", DEFENSES)
    return DEFENSE_ALIASES.get(name, name)


def embed_triplets(
    model: Callable[[Tensor], Tensor], inputs: Tensor, triplets: Triplets
) -> tuple[Tensor, Tensor, Tensor]:
    """Embed every batch image once and pick the anchors', positives' and negatives' rows."""
    emb = model(inputs)
    a, p, n = triplets
    return emb[a], emb[p], emb[n]


def stack_triplets(
    anchors: Tensor, positives: Tensor, negatives: Tensor
) -> tuple[Tensor, Triplets]:
    """Explicit triplets of inputs ``[M, *S]`` as one batch ``[3M, *S]`` and its indices."""
    for value, name in ((anchors, "anchors"), (positives, "positives"), (negatives, "negatives")):
        check_tensor(value, name, min_ndim=2, floating=True)
    if positives.shape != anchors.shape or negatives.shape != anchors.shape:
        raise ValueError(
            f"anchors, positives and negatives must be inputs of the same shape [M, *S], got "
            f"{tuple(anchors.shape)}, {tuple(positives.shape)}, {tuple(negatives.shape)}"
        )
    if anchors.shape[0] < 1:
        raise ValueError("anchors must hold at least one triplet, got an empty batch")
    m = anchors.shape[0]
    idx = torch.arange(m, device=anchors.device)
    return torch.cat([anchors, positives, negatives]), (idx, idx + m, idx + 2 * m)


def apply_step(optimizer: torch.optim.Optimizer, loss: Tensor) -> Tensor:
    """One optimizer step on ``loss``; returns the detached loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def step_of(
    loss: Callable[Concatenate[Any, LossFn, Tensor, Triplets, _P], Tensor],
) -> Callable[Concatenate[Any, LossFn, torch.optim.Optimizer, Tensor, Tensor, Tensor, _P], Tensor]:
    """The step function of a defense's functional loss.

    ``step_of(x_loss)`` is ``x_step(model, loss_fn, optimizer, anchors, positives, negatives,
    *rest)``: it stacks the explicit triplets of inputs ``[M, *S]`` into one batch, takes
    ``x_loss(model, loss_fn, batch, triplets, *rest)`` and one optimizer step, and returns the
    detached loss. Every functional step function of [rankattack.defenses][] is made so.
    """

    def step(
        model: Any,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
        anchors: Tensor,
        positives: Tensor,
        negatives: Tensor,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Tensor:
        inputs, triplets = stack_triplets(anchors, positives, negatives)
        return apply_step(optimizer, loss(model, loss_fn, inputs, triplets, *args, **kwargs))

    name = loss.__name__.removesuffix("_loss") + "_step"
    step.__name__ = step.__qualname__ = name
    step.__module__ = loss.__module__
    step.__doc__ = (
        f"One optimizer step of ``{loss.__name__}`` on explicit triplets.\n\n"
        f"``{name}(model, loss_fn, optimizer, anchors, positives, negatives, ...)``: "
        f"``anchors``, ``positives``, ``negatives`` are inputs ``[M, *S]`` in ``[0, 1]``; "
        f"the arguments after them are those of ``{loss.__name__}`` after ``triplets``. "
        f"Returns the detached scalar loss."
    )
    return step


def _pml_loss_class() -> type | None:
    """pytorch-metric-learning's loss base class, if that package is already imported."""
    module = sys.modules.get("pytorch_metric_learning.losses.base_metric_loss_function")
    return getattr(module, "BaseMetricLossFunction", None) if module is not None else None


class _PMLTripletLoss:
    """A pytorch-metric-learning loss called on explicit triplets of embeddings.

    The three ``[M, D]`` embedding blocks are stacked into one ``[3M, D]`` batch and handed
    to the loss with the indices of the triplets (PML's ``indices_tuple``), so the loss sees
    exactly the defense's triplets and nothing else.
    """

    def __init__(self, loss: Callable[..., Tensor]) -> None:
        self.loss = loss

    def __call__(self, anchors: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
        m = anchors.shape[0]
        idx = torch.arange(m, device=anchors.device)
        emb = torch.cat([anchors, positives, negatives])
        return self.loss(emb, None, (idx, idx + m, idx + 2 * m))

    def __repr__(self) -> str:
        return repr(self.loss).replace("\n", "").replace("  ", "")


def as_ranking_loss(loss: Any) -> LossFn:
    """A ranking loss ``(anchors, positives, negatives) -> scalar`` from what a user passes.

    A callable on three embedding blocks is returned as it is; a pytorch-metric-learning loss
    object (e.g. ``losses.TripletMarginLoss(margin=0.2)``) is adapted to be called on the
    defense's triplets.
    """
    if not callable(loss):
        raise TypeError(
            f"ranking_loss must be callable (anchors, positives, negatives) -> loss, "
            f"got {type(loss).__name__}"
        )
    fn: LossFn = loss
    pml = _pml_loss_class()
    if pml is not None and isinstance(loss, pml):
        return _PMLTripletLoss(fn)
    return fn


def _check_labels(labels: Any, count: int, what: str) -> Tensor:
    """``labels`` must be an integer ``[count]`` tensor, one label per ``what``."""
    check_tensor(labels, "labels", ndim=1, integer=True)
    if labels.shape[0] != count:
        raise ValueError(f"labels must hold one label per {what} ({count}), got {labels.shape[0]}")
    return labels


def _check_generator(generator: Any) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def _check_pgd(eps: Any, alpha: Any, steps: Any) -> tuple[float, float | None, int | None]:
    """The adversary's ``eps >= 0``, ``alpha > 0`` and ``steps >= 1`` (None: the default)."""
    eps = check_real(eps, "eps", low=0.0)
    if alpha is not None:
        alpha = check_real(alpha, "alpha", low=0.0, low_open=True)
    if steps is not None:
        steps = check_int(steps, "steps", low=1)
    return eps, alpha, steps


class Defense(ABC):
    """Base of the defenses: ``(model, images, labels) -> training loss``.

    Parameters
    ----------
    metric : {"cosine", "euclidean"} or Distance, default "cosine"
        The distance the defense's adversary and its default ranking loss use (the one the
        model's gallery ranks with).
    margin : float, optional
        Margin of the default triplet loss; default 0.2 (cosine) or 1.0 (Euclidean).
    ranking_loss : callable, optional
        ``(anchors, positives, negatives) -> scalar`` on embeddings ``[M, D]``, or a
        pytorch-metric-learning loss object; default
        ``rankattack.losses.TripletLoss(metric, margin)``.
    miner : callable, optional
        ``(embeddings [B, D], labels [B]) -> (anchors, positives, negatives)`` index tensors
        into the batch (a pytorch-metric-learning triplet miner works as it is); default the
        defense's own ([default_miner][rankattack.defenses.base.Defense.default_miner]).

    Notes
    -----
    Subclasses implement ``_loss`` (the loss of a batch with a triplet selector) and, if
    they keep state across steps, [state_dict][rankattack.defenses.base.Defense.state_dict] /
    [load_state_dict][rankattack.defenses.base.Defense.load_state_dict] (the training loop saves
    that state in its checkpoints).
    """

    #: The defense's name in ``DEFENSES`` (empty for the vanilla baseline).
    name: str = ""

    def __init__(
        self,
        metric: str | Distance = "cosine",
        margin: float | None = None,
        ranking_loss: Any = None,
        miner: TripletMiner | None = None,
    ) -> None:
        self.distance = get_distance(metric)
        self.margin = (
            default_margin(self.distance)
            if margin is None
            else check_real(margin, "margin", low=0.0)
        )
        self.ranking_loss: LossFn = (
            TripletLoss(self.distance, self.margin)
            if ranking_loss is None
            else as_ranking_loss(ranking_loss)
        )
        if miner is not None and not callable(miner):
            raise TypeError(
                f"miner must be callable (embeddings, labels) -> (anchors, positives, "
                f"negatives), got {type(miner).__name__}"
            )
        self.miner: TripletMiner = self.default_miner() if miner is None else miner

    @property
    def metric(self) -> str:
        return self.distance.name

    def default_miner(self) -> TripletMiner:
        """The miner used when none is given: one random triplet per image of the batch."""
        from rankattack.defenses.miners import RandomTripletMiner

        return RandomTripletMiner()

    # --- the interface ---------------------------------------------------------------
    def loss(
        self,
        model: Callable[[Tensor], Tensor],
        images: Tensor,
        labels: Tensor,
        *,
        check: bool = True,
    ) -> Tensor:
        """The defense's training loss of a labelled batch.

        Parameters
        ----------
        model : callable
            ``[B, *S] -> [B, D]``, in the mode it trains in (the adversary switches it to
            eval mode with frozen parameters and back).
        images : Tensor
            ``[B, *S]`` inputs in ``[0, 1]``; never modified.
        labels : Tensor
            ``[B]`` integer labels (any device).
        check : bool, default True
            Check that ``images`` lie in ``[0, 1]`` (two host syncs; a loop whose data was
            checked once may skip it).

        Returns
        -------
        Tensor
            The scalar loss, differentiable with respect to the model's parameters.
        """
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        check_tensor(images, "images", min_ndim=2, floating=True)
        check_tensor(labels, "labels", ndim=1, integer=True)
        if labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"labels must hold one label per image ({images.shape[0]}), got {labels.shape[0]}"
            )
        if check:
            check_unit_range(images, "images")
        return self._loss(model, images, lambda emb: self._mine(emb, labels))

    def triplet_loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, triplets: Triplets
    ) -> Tensor:
        """The defense's loss of a batch ``[B, *S]`` with given triplet indices ``[M]``."""
        return self._loss(model, inputs, lambda emb: triplets)

    def step(
        self,
        model: Callable[[Tensor], Tensor],
        optimizer: torch.optim.Optimizer,
        images: Tensor,
        labels: Tensor,
    ) -> Tensor:
        """One optimizer step on [loss][rankattack.defenses.base.Defense.loss]; returns the detached
        loss."""
        return apply_step(optimizer, self.loss(model, images, labels))

    def state_dict(self) -> dict[str, Any]:
        """What the defense carries from one step to the next (empty for most)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore [state_dict][rankattack.defenses.base.Defense.state_dict] output."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got keys {sorted(state)}")

    # --- for subclasses --------------------------------------------------------------
    @abstractmethod
    def _loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, select: TripletSelector
    ) -> Tensor:
        """The loss of ``inputs``; ``select(embeddings)`` gives the triplets.

        ``select`` is called once, on the embeddings the defense mines on (detached).
        """

    def _mine(self, embeddings: Tensor, labels: Tensor) -> Triplets:
        """Run the miner and check what it returned; indices on the embeddings' device."""
        out = self.miner(embeddings.detach(), labels)
        if not isinstance(out, tuple | list) or len(out) != 3:
            got = f"a sequence of {len(out)}" if isinstance(out, tuple | list) else type(out)
            raise TypeError(
                f"miner must return (anchors, positives, negatives) index tensors, got {got} "
                f"(a pair miner returns 4: use a triplet miner)"
            )
        triplets = []
        for value, name in zip(out, ("anchors", "positives", "negatives"), strict=True):
            check_tensor(value, f"miner's {name}", ndim=1, integer=True)
            triplets.append(value.to(embeddings.device, non_blocking=True))
        a, p, n = triplets
        if not a.shape == p.shape == n.shape:
            raise ValueError(
                f"miner must return index tensors of one length, got "
                f"{a.shape[0]}, {p.shape[0]}, {n.shape[0]}"
            )
        return a, p, n

    @staticmethod
    def _mine_benign(
        model: Callable[[Tensor], Tensor], inputs: Tensor, select: TripletSelector
    ) -> tuple[Tensor, Triplets]:
        """The benign embeddings (eval mode, no gradient) and the triplets mined on them."""
        with eval_mode(model), torch.no_grad():
            benign = model(inputs)
        return benign, select(benign)

    @staticmethod
    def _no_triplets(inputs: Tensor) -> Tensor:
        """The loss of a batch in which the miner found no triplet: a differentiable 0."""
        return torch.zeros((), device=inputs.device, dtype=inputs.dtype, requires_grad=True)

    def _params(self) -> dict[str, Any]:
        return {"metric": self.metric, "margin": self.margin}

    def __repr__(self) -> str:
        params = {**self._params(), "ranking_loss": self.ranking_loss, "miner": self.miner}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
