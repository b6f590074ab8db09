"""What every ranking attack shares: model handling, the PGD engine, results, repr.

Also the attacks' shared conventions: a radius ``eps >= 1`` draws a warning at
construction (on inputs in ``[0, 1]`` it constrains nothing: ``8`` was probably meant as
``8/255``), and ``run`` can split a large batch into chunks with a progress bar
(``RankingAttack._run_batched``; ``run(..., batch_size=256, progress=True)``).

Directions: every attack that can raise or lower ranks defaults to the variant the paper
defines first for it: ``CandidateAttack`` to CA+ (``"raise"``, Eq. 4; CA- is Eq. 7),
``QueryAttack`` to QA- (``"lower"``, Eqs. 8-10; QA+ is Eq. 11), ``UniversalRankAttack``
to I-CA+ (``"raise"``, Eq. 14). Pass ``direction`` explicitly to make code read
unambiguously; ``repr`` always shows it.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from rankattack._validation import check_bool, check_int, check_tensor, check_unit_range
from rankattack.gallery import Gallery, check_embedding_output
from rankattack.pgd import LinfPGD
from rankattack.wrappers import eval_mode

__all__ = ["AttackResult", "RankingAttack", "RecallResult", "concat_results", "top1_hits"]

R = TypeVar("R")


def concat_results(results: list[R]) -> R:
    """One result from the results of consecutive chunks of a batch (dataclasses whose
    fields are ``[N, ...]`` tensors or ``None``), concatenated along the batch."""
    if not results:
        raise ValueError("results must hold at least one result")
    first = results[0]
    if len(results) == 1:
        return first
    if not dataclasses.is_dataclass(first) or isinstance(first, type):
        raise TypeError(f"results must be dataclass instances, got {type(first).__name__}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(first):
        parts = [getattr(r, f.name) for r in results]
        if all(p is None for p in parts):
            values[f.name] = None
        elif all(isinstance(p, Tensor) for p in parts):
            values[f.name] = torch.cat(parts)
        else:
            raise TypeError(f"cannot concatenate field {f.name!r} of {type(first).__name__}")
    return type(first)(**values)


@dataclass(frozen=True)
class AttackResult:
    """Outcome of ``RankingAttack.run``.

    Attributes
    ----------
    adversarial : Tensor
        ``[N, *S]`` perturbed inputs.
    rank_before, rank_after : Tensor
        ``[N]`` mean normalized ranks (in ``[0, 1]``) of the chosen candidates before
        and after the attack: ``R_CA(c)`` for CA, ``R_QA(q)`` for QA (paper Sec. 4).
    sp_rank_before, sp_rank_after : Tensor or None
        ``[N]`` mean normalized ranks of ``C_SP`` (query attacks only).
    """

    adversarial: Tensor
    rank_before: Tensor
    rank_after: Tensor
    sp_rank_before: Tensor | None = None
    sp_rank_after: Tensor | None = None


@dataclass(frozen=True)
class RecallResult:
    """Outcome of the misranking attacks
    ([LearningToMisrankAttack][rankattack.LearningToMisrankAttack],
    [GreedyTopMisrankAttack][rankattack.GreedyTopMisrankAttack]): Recall@1 per query, before and
    after.

    Attributes
    ----------
    adversarial : Tensor
        ``[N, *S]`` perturbed queries.
    hit_before, hit_after : Tensor
        ``[N]`` bool: the query's nearest gallery item (its own copy excluded) has the
        query's label, for the clean and the perturbed query; their means are R@1.
    target_indices : Tensor or None
        ``[N]`` int64 gallery index each query was pulled toward (GTM only).
    """

    adversarial: Tensor
    hit_before: Tensor
    hit_after: Tensor
    target_indices: Tensor | None = None


def top1_hits(
    gallery: Gallery, embeddings: Tensor, labels: Tensor, own_indices: Tensor | None = None
) -> Tensor:
    """Whether each query's top-1 has its label: ``[N]`` bool, the terms of Recall@1.

    Parameters
    ----------
    gallery : Gallery
        Labelled gallery the queries are ranked in.
    embeddings : Tensor
        ``[N, D]`` raw query embeddings.
    labels : Tensor
        ``[N]`` labels of the queries (on the gallery's device).
    own_indices : Tensor, optional
        ``[N]`` gallery position of each query's own copy, excluded from its ranking.
    """
    if gallery.labels is None:
        raise ValueError("top1_hits needs a gallery with labels (Gallery(..., labels=...))")
    exclude = None if own_indices is None else own_indices.unsqueeze(1)
    _, top = gallery.topk(embeddings, 1, exclude_indices=exclude)
    top = top[:, 0]
    return (top >= 0) & (gallery.labels[top.clamp_min(0)] == labels)


class RankingAttack:
    """Base of the ranking attacks: binds a model to the L-inf PGD engine.

    A subclass names the attributes its ``repr`` shows, in order, in ``_param_names``.

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    eps, alpha, steps, random_start
        See [rankattack.pgd.LinfPGD][].
    """

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int | None = None,
        random_start: bool = False,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        self.model = model
        self.pgd = LinfPGD(eps=eps, alpha=alpha, steps=steps, random_start=random_start)
        if self.pgd.eps >= self.pgd.clip_max - self.pgd.clip_min:
            warnings.warn(
                f"{type(self).__name__}: eps={eps!r} is at least the width of the input range "
                f"[{self.pgd.clip_min:g}, {self.pgd.clip_max:g}], so it constrains nothing: "
                f"every input value may change freely. Radii are in input units; did you "
                f"mean eps={eps!r}/255?",
                UserWarning,
                stacklevel=3,
            )

    @property
    def eps(self) -> float:
        return self.pgd.eps

    @property
    def alpha(self) -> float:
        return self.pgd.alpha

    @property
    def steps(self) -> int:
        return self.pgd.steps

    @property
    def random_start(self) -> bool:
        return self.pgd.random_start

    #: The attributes ``repr`` shows (and ``_params`` returns), in order; a subclass lists
    #: its own.
    _param_names: ClassVar[tuple[str, ...]] = ("eps", "alpha", "steps")

    def _params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names}

    def __repr__(self) -> str:
        name = getattr(self.model, "__name__", type(self.model).__name__)
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}(model={name}, {params})"

    #: Inputs per forward pass when embedding clean inputs (queries, candidates).
    embed_batch_size: int = 1024

    def embed(self, inputs: Tensor, name: str = "inputs", dim: int | None = None) -> Tensor:
        """Clean embeddings of ``inputs`` (eval mode, no gradient), shape-checked."""
        outs = []
        with eval_mode(self.model), torch.no_grad():
            for s in range(0, inputs.shape[0], self.embed_batch_size):
                batch = inputs[s : s + self.embed_batch_size]
                out = check_embedding_output(self.model(batch), batch.shape[0], "model", dim)
                outs.append(out.detach())
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _run_batched(
        self,
        run_one: Callable[..., R],
        inputs: str,
        batch_size: int | None,
        progress: bool,
        **per_sample: Tensor | None,
    ) -> R:
        """Run ``run_one`` on chunks of ``batch_size`` rows of every per-sample argument.

        ``per_sample`` holds the arguments with one row per input (``[N, ...]`` tensors or
        ``None``), among them the perturbed inputs under the name ``inputs``, which are
        checked ([check_inputs][rankattack.attacks.base.RankingAttack.check_inputs]) before
        the first chunk when the batch is split. Each chunk's result is concatenated with
        [concat_results][rankattack.attacks.base.concat_results]. With ``batch_size=None`` (or at
        least N) the whole batch runs at once, as without it. Results equal an unchunked run up to
        floating-point rounding of batched forward passes. ``progress`` shows a tqdm bar over the
        chunks.
        """
        x = per_sample[inputs]
        if batch_size is not None:  # the whole batch is checked before the first chunk
            self.check_inputs(x, inputs)
        n = x.shape[0] if isinstance(x, Tensor) else 0
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", low=1)
        check_bool(progress, "progress")
        if batch_size is None or batch_size >= n:
            return run_one(**per_sample)
        starts: Any = range(0, n, batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=type(self).__name__, unit="batch")
        results = [
            run_one(
                **{k: None if v is None else v[s : s + batch_size] for k, v in per_sample.items()}
            )
            for s in starts
        ]
        return concat_results(results)

    @staticmethod
    def check_inputs(value: Any, name: str, min_ndim: int = 2) -> Tensor:
        """Inputs must be a floating tensor ``[N, *S]`` with N >= 1, in ``[0, 1]``."""
        check_tensor(value, name, min_ndim=min_ndim, floating=True)
        if value.shape[0] < 1:
            raise ValueError(f"{name} must hold at least one input, got shape {tuple(value.shape)}")
        check_unit_range(value, name)
        return value
