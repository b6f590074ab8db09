"""The universal ranking attack: one image-agnostic perturbation for every input (Eq. 14)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_real, check_tensor
from rankattack.attacks.base import RankingAttack
from rankattack.attacks.queryattack import semantic_set
from rankattack.attacks.targets import TargetResolver, check_gallery, check_sp_size, exactly_one
from rankattack.attacks.universalrankattack.perturbation import (
    add_perturbation,
    check_perturbation,
    load_perturbation,
    save_perturbation,
)
from rankattack.attacks.universalrankattack.result import UniversalResult
from rankattack.gallery import Gallery, check_embedding_output
from rankattack.objectives import DIRECTIONS, CandidateObjective, QueryObjective
from rankattack.wrappers import eval_mode

__all__ = ["UniversalRankAttack"]

logger = logging.getLogger(__name__)

#: What the universal perturbation is added to: the candidates (I-CA) or the queries (I-QA).
TARGETS = ("candidate", "query")

#: The paper reports the "lower" attacks only on targets starting in the top 1% (Sec. 5.2).
LOWER_TOP_FRACTION = 0.01


@dataclass(frozen=True)
class _Targets:
    """Raw embeddings of each input's fixed side: ``[N, k, D]`` and optional ``C_SP``."""

    emb: Tensor
    sp: Tensor | None


class UniversalRankAttack(RankingAttack):
    """Universal (image-agnostic) ranking attack (Zhou et al., ECCV 2020, Sec. 5.2, Eq. 14).

    Learns ONE perturbation r of the input shape so that adding it to any input raises or
    lowers the ranks of that input's chosen targets. With ``target="candidate"`` r is
    added to candidates (I-CA+, Eq. 14, and I-CA-)::

        r = argmin_{|r|_inf <= eps} sum_{c in C} L_CA(c + r, Q_c; X)

    and with ``target="query"`` to queries (I-QA+, I-QA-, with the optional SP term of
    Eq. 12). The per-input losses are the core objectives
    ([CandidateObjective][rankattack.objectives.CandidateObjective],
    [QueryObjective][rankattack.objectives.QueryObjective]) evaluated on ``clip(c + r, 0, 1)``
    with a shared r; a shared query set Q is the special case of identical rows.

    Each PGD step takes the sign of the gradient summed over *all* fitting inputs
    (accumulated over mini-batches of ``batch_size``), steps by ``alpha`` and projects r
    back to the L-inf ball.

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    gallery : Gallery
        The candidate set X.
    target : {"candidate", "query"}, default "candidate"
        What r is added to: candidates (I-CA) or queries (I-QA).
    direction : {"raise", "lower"}, default "raise"
        Raise (I-CA+, I-QA+) or lower (I-CA-, I-QA-) the chosen targets' ranks. Every attack
        defaults to the variant the paper defines first for it (here I-CA+, Eq. 14); see
        [rankattack.attacks.base][].
    eps : float, default 0.3
        L-inf radius of r.
    alpha : float, default 2/255
        Step size (the reference uses 2/255 at eps = 0.3). ``None``: the per-sample
        schedule of [rankattack.pgd.default_alpha][].
    steps : int, default 100
        PGD steps over the whole fitting set. ``None``: [rankattack.pgd.default_steps][].
    batch_size : int, default 256
        Inputs per forward/backward pass while fitting and evaluating.
    xi : float, default 0.0
        Semantics-Preserving weight for query targets (the paper sets 0 for the
        universal QA, Table 6); must be 0 for candidate targets.
    sp_size : int, default 5
        G, the size of ``C_SP`` (used only when ``xi > 0``).

    Shape
    -----
    - inputs: ``[N, *S]`` in ``[0, 1]`` (candidates or queries)
    - candidate targets: queries ``[N, w, *S]`` or query_embeddings ``[N, w, D]``
    - query targets: candidate_indices ``[N, m]`` or candidates ``[N, m, *S]``
    - perturbation: ``[*S]``

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery
    >>> from rankattack.attacks.universalrankattack import UniversalRankAttack
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> x = torch.rand(80, 1, 4, 4)
    >>> gallery = Gallery.from_inputs(model, x)
    >>> atk = UniversalRankAttack(model, gallery, eps=0.2, steps=20)
    >>> r = atk.fit(x[:40], x[40:].unsqueeze(1), progress=False)
    >>> r.shape, bool(r.abs().max() <= 0.2)
    (torch.Size([1, 4, 4]), True)
    >>> res = atk.evaluate(x[:40], x[40:].unsqueeze(1))
    >>> res.mean_after < res.mean_before
    True
    """

    _param_names = ("gallery", "target", "direction", "eps", "alpha", "steps", "batch_size",
                    "xi", "sp_size")  # fmt: skip

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        gallery: Gallery,
        target: str = "candidate",
        direction: str = "raise",
        eps: float = 0.3,
        alpha: float | None = 2 / 255,
        steps: int | None = 100,
        batch_size: int = 256,
        xi: float = 0.0,
        sp_size: int = 5,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps)
        self.gallery = check_gallery(gallery)
        self.target = check_choice(target, "target", TARGETS)
        self.direction = check_choice(direction, "direction", DIRECTIONS)
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.embed_batch_size = self.batch_size  # RankingAttack.embed batches by this
        self.xi = check_real(xi, "xi", low=0.0)
        if self.target == "candidate" and self.xi > 0:
            raise ValueError(
                f"xi (the Semantics-Preserving weight) applies to target='query' only; "
                f"got xi={xi} with target='candidate'"
            )
        self.sp_size = check_sp_size(sp_size, gallery)
        self._perturbation: Tensor | None = None

    # the perturbation ------------------------------------------------------------------
    @property
    def perturbation(self) -> Tensor | None:
        """The fitted (or loaded) perturbation ``[*S]``, or ``None`` before
        [fit][rankattack.attacks.universalrankattack.attack.UniversalRankAttack.fit]."""
        return self._perturbation

    @perturbation.setter
    def perturbation(self, value: Tensor) -> None:
        self._perturbation = check_perturbation(value, self.eps)

    def _fitted(self) -> Tensor:
        if self._perturbation is None:
            raise RuntimeError("no perturbation yet: call fit() or load() first")
        return self._perturbation

    def apply(self, x: Tensor) -> Tensor:
        """Add the perturbation to inputs ``[N, *S]`` (or one input ``[*S]``), clamp to [0, 1]."""
        return add_perturbation(self._fitted(), x)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the perturbation and the attack's parameters with ``torch.save``."""
        r = self._fitted()
        save_perturbation(path, r, {k: v for k, v in self._params().items() if k != "gallery"})

    def load(self, path: str | os.PathLike[str]) -> Tensor:
        """Load a perturbation saved by
        [save][rankattack.attacks.universalrankattack.attack.UniversalRankAttack.save] into this
        attack and return it.

        Raises ``ValueError`` if it was fitted for another target or direction, or leaves
        this attack's eps-ball.
        """
        expected = {"target": self.target, "direction": self.direction}
        r, params = load_perturbation(path, expected)
        self.perturbation = r.to(self.gallery.embeddings.device)
        logger.debug("loaded universal perturbation from %s (params %s)", path, params)
        return self._fitted()

    # fixed side of the objective ---------------------------------------------------------
    def _targets(
        self,
        inputs: Tensor,
        queries: Tensor | None,
        query_embeddings: Tensor | None,
        candidate_indices: Tensor | None,
        candidates: Tensor | None,
        query_indices: Tensor | None,
    ) -> _Targets:
        """Validate the arguments; embed each input's fixed side (and ``C_SP``)."""
        self.check_inputs(inputs, "inputs")
        resolve = TargetResolver(self, self.gallery, inputs)
        if self.target == "candidate":
            wrong = [a for a, v in [("candidate_indices", candidate_indices),
                                    ("candidates", candidates),
                                    ("query_indices", query_indices)] if v is not None]  # fmt: skip
            if wrong:
                raise ValueError(f"{', '.join(wrong)} apply to target='query' only")
            return _Targets(resolve.queries(queries, query_embeddings), None)
        if queries is not None or query_embeddings is not None:
            raise ValueError("queries / query_embeddings apply to target='candidate' only")
        exactly_one(candidate_indices=candidate_indices, candidates=candidates)
        chosen = resolve.candidates(candidate_indices, candidates, query_indices=query_indices)
        sp = None
        if self.xi > 0 and self.sp_size > 0:
            q_emb = self.embed(inputs, "inputs", self.gallery.dim)
            sp_idx = semantic_set(
                self.gallery,
                q_emb,
                chosen.embeddings,
                self.sp_size,
                chosen.indices,
                chosen.query_indices,
            )
            sp = self.gallery.embeddings[sp_idx]
        return _Targets(chosen.embeddings, sp)

    def _objective(self, targets: _Targets, s: int, e: int) -> CandidateObjective | QueryObjective:
        """The core objective of inputs ``s:e`` (Eq. 4/7 for candidates, 9/11/12 for queries)."""
        if self.target == "candidate":
            return CandidateObjective(self.gallery, targets.emb[s:e], self.direction)
        sp = None if targets.sp is None else targets.sp[s:e]
        return QueryObjective(self.gallery, targets.emb[s:e], self.direction, self.xi, sp)

    def _blocks(self, n: int) -> list[tuple[int, int]]:
        return [(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]

    # fitting and evaluation ----------------------------------------------------------------
    def fit(
        self,
        inputs: Tensor,
        queries: Tensor | None = None,
        *,
        query_embeddings: Tensor | None = None,
        candidate_indices: Tensor | None = None,
        candidates: Tensor | None = None,
        query_indices: Tensor | None = None,
        init: Tensor | None = None,
        progress: bool = True,
    ) -> Tensor:
        """Learn the universal perturbation ``[*S]`` from ``inputs`` and their targets.

        Parameters
        ----------
        inputs : Tensor
            ``[N, *S]`` candidates (``target="candidate"``) or queries in ``[0, 1]``.
        queries, query_embeddings : Tensor, optional
            Candidate targets: each input's w queries, ``[N, w, *S]`` or ``[N, w, D]``.
        candidate_indices, candidates : Tensor, optional
            Query targets: each input's m chosen candidates, ``[N, m]`` gallery indices
            or ``[N, m, *S]`` inputs.
        query_indices : Tensor, optional
            ``[N]`` gallery positions of the queries, kept out of ``C_SP`` (xi > 0).
        init : Tensor, optional
            ``[*S]`` starting perturbation (clipped to the ball); default zero.
        progress : bool
            Show a tqdm progress bar over the steps.

        Returns
        -------
        Tensor
            The perturbation ``[*S]`` (also kept as
            [perturbation][rankattack.attacks.universalrankattack.attack.UniversalRankAttack.perturbation]).
        """
        targets = self._targets(
            inputs, queries, query_embeddings, candidate_indices, candidates, query_indices
        )
        x = inputs.detach()
        r = torch.zeros_like(x[0])
        if init is not None:
            check_tensor(init, "init", floating=True)
            if init.shape != r.shape:
                raise ValueError(
                    f"init must have the input shape {tuple(r.shape)}, got {tuple(init.shape)}"
                )
            r = init.detach().to(r).clamp(-self.eps, self.eps)
        blocks = self._blocks(x.shape[0])
        # CA objectives pre-sort the queries' gallery distances: keep them across steps
        # when the whole fitting set fits the gallery's memory budget.
        keep = targets.emb.shape[0] * targets.emb.shape[1] * len(self.gallery)
        cached = None
        if self.target == "query" or keep <= self.gallery.chunk_budget:
            cached = [self._objective(targets, s, e) for s, e in blocks]
        steps: Any = range(self.steps if self.eps > 0 else 0)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            steps = bar = tqdm(steps, desc=f"universal {self._name()}", unit="step")
        with eval_mode(self.model, freeze=True), torch.enable_grad():
            for step in steps:
                grad = torch.zeros_like(r)
                total = r.new_zeros(())
                for i, (s, e) in enumerate(blocks):
                    objective = cached[i] if cached is not None else self._objective(targets, s, e)
                    shared = r.detach().requires_grad_(True)
                    emb = self.model((x[s:e] + shared).clamp(0.0, 1.0))
                    if step == 0:
                        check_embedding_output(emb, e - s, "model", self.gallery.dim)
                    loss = objective(emb).sum()
                    (g,) = torch.autograd.grad(loss, shared)
                    grad += g
                    total += loss.detach()
                with torch.no_grad():
                    r = (r - self.alpha * grad.sign()).clamp_(-self.eps, self.eps)
                if bar is not None and (step % 10 == 0 or step == self.steps - 1):
                    # a host sync: only every 10 steps
                    bar.set_postfix(loss=float(total) / x.shape[0])
        self._perturbation = r.detach()
        return self._perturbation

    def _name(self) -> str:
        kind = "I-CA" if self.target == "candidate" else "I-QA"
        return kind + ("+" if self.direction == "raise" else "-")

    def evaluate(
        self,
        inputs: Tensor,
        queries: Tensor | None = None,
        *,
        query_embeddings: Tensor | None = None,
        candidate_indices: Tensor | None = None,
        candidates: Tensor | None = None,
        query_indices: Tensor | None = None,
        top_fraction: float | None = None,
    ) -> UniversalResult:
        """Ranks of each input's targets before and after adding the perturbation.

        Arguments as in
        [fit][rankattack.attacks.universalrankattack.attack.UniversalRankAttack.fit].
        ``top_fraction`` selects the inputs the means are taken over
        (``rank_before < top_fraction``); ``None`` is the paper's rule (Sec. 5.2): the top 1% for
        ``direction="lower"``, every input for "raise". A value ``>= 1`` counts every input.
        """
        r = self._fitted()
        if top_fraction is None:
            top_fraction = LOWER_TOP_FRACTION if self.direction == "lower" else 1.0
        top_fraction = check_real(top_fraction, "top_fraction", low=0.0, low_open=True)
        targets = self._targets(
            inputs, queries, query_embeddings, candidate_indices, candidates, query_indices
        )
        if r.shape != inputs.shape[1:]:
            raise ValueError(
                f"inputs must be [N, {', '.join(map(str, r.shape))}] to match the "
                f"perturbation, got shape {tuple(inputs.shape)}"
            )
        adv = self.apply(inputs.detach())
        clean = self.embed(inputs, "inputs", self.gallery.dim)
        perturbed = self.embed(adv, "inputs", self.gallery.dim)
        ranks: dict[str, list[Tensor]] = {"b": [], "a": [], "sb": [], "sa": []}
        for s, e in self._blocks(inputs.shape[0]):
            objective = self._objective(targets, s, e)
            ranks["b"].append(objective.ranks(clean[s:e]))
            ranks["a"].append(objective.ranks(perturbed[s:e]))
            if isinstance(objective, QueryObjective):
                sp_before = objective.sp_ranks(clean[s:e])
                sp_after = objective.sp_ranks(perturbed[s:e])
                if sp_before is not None and sp_after is not None:
                    ranks["sb"].append(sp_before)
                    ranks["sa"].append(sp_after)
        before = torch.cat(ranks["b"])
        counted = (
            torch.ones_like(before, dtype=torch.bool)
            if top_fraction >= 1
            else before < top_fraction
        )
        return UniversalResult(
            adversarial=adv,
            rank_before=before,
            rank_after=torch.cat(ranks["a"]),
            sp_rank_before=torch.cat(ranks["sb"]) if ranks["sb"] else None,
            sp_rank_after=torch.cat(ranks["sa"]) if ranks["sa"] else None,
            counted=counted,
        )
