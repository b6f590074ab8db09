"""Transfer (black-box) evaluation: attack on one model, rank with another (Sec. 5.1).

Adversarial examples are generated white-box on a *source* model and re-ranked by a
*target* model in the target's own gallery (the same inputs X embedded by the target):
the source x target matrix of paper Tables 5, 11 and 12. The diagonal is the white-box
result.

Examples
--------
>>> import torch
>>> from rankattack.transfer import attack_factory, transfer_matrix
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> models = {
...     "a": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8)),
...     "b": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8)),
... }
>>> x = torch.rand(60, 1, 4, 4)
>>> res = transfer_matrix(models, attack_factory("CA+", eps=0.1), x[:5],
...                       queries=x[5:10].unsqueeze(1), gallery_inputs=x)
>>> res.mean_after.shape
torch.Size([2, 2])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_tensor
from rankattack.attacks.candidateattack import CandidateAttack
from rankattack.attacks.queryattack import QueryAttack
from rankattack.distances import Distance
from rankattack.gallery import Gallery
from rankattack.objectives import CandidateObjective, QueryObjective

__all__ = ["ATTACKS", "TransferResult", "attack_factory", "transfer_matrix"]

logger = logging.getLogger(__name__)

Model = Callable[[Tensor], Tensor]
AttackFactory = Callable[[Model, Gallery], CandidateAttack | QueryAttack]

#: Attack names of the paper's tables: (attack class, direction). QA is SP-QA (Eq. 12).
ATTACKS: dict[str, tuple[type[CandidateAttack] | type[QueryAttack], str]] = {
    "CA+": (CandidateAttack, "raise"),
    "CA-": (CandidateAttack, "lower"),
    "QA+": (QueryAttack, "raise"),
    "QA-": (QueryAttack, "lower"),
}


def attack_factory(name: str, **kwargs: Any) -> AttackFactory:
    """A factory ``(model, gallery) -> attack`` for one of ``ATTACKS``.

    ``kwargs`` go to the attack's constructor (``eps``, ``alpha``, ``steps``, and
    ``xi``, ``sp_size`` for QA). Arguments are checked once here, on a dummy gallery.
    """
    check_choice(name, "name", tuple(ATTACKS))
    cls, direction = ATTACKS[name]

    def make(model: Model, gallery: Gallery) -> CandidateAttack | QueryAttack:
        return cls(model, gallery, direction, **kwargs)

    size = kwargs.get("sp_size", 5)
    dummy = max(8, size + 1) if isinstance(size, int) and not isinstance(size, bool) else 8
    make(lambda v: v, Gallery(torch.eye(dummy)))
    make.__name__ = f"attack_factory({name!r})"
    return make


@dataclass(frozen=True)
class TransferResult:
    """The source x target rank matrix of a transfer experiment.

    Attributes
    ----------
    names : tuple of str
        Model names; rows (sources) and columns (targets) follow this order.
    attack : str
        ``"candidate"`` (CA: candidates perturbed) or ``"query"`` (QA).
    rank_before : Tensor
        ``[T, N]`` normalized ranks of the clean inputs' targets in each target model.
    rank_after : Tensor
        ``[S, T, N]``: adversarial examples made on source s, ranked by target t.
    sp_rank_before, sp_rank_after : Tensor or None
        Same for ``C_SP`` (query attacks with SP).
    adversarial : dict of str to Tensor
        ``[N, *S]`` adversarial inputs made on each source model.
    """

    names: tuple[str, ...]
    attack: str
    rank_before: Tensor
    rank_after: Tensor
    sp_rank_before: Tensor | None
    sp_rank_after: Tensor | None
    adversarial: dict[str, Tensor]

    @property
    def mean_before(self) -> Tensor:
        """``[T]`` mean rank before the attack, per target model."""
        return self.rank_before.mean(-1)

    @property
    def mean_after(self) -> Tensor:
        """``[S, T]`` mean rank after the attack, source x target."""
        return self.rank_after.mean(-1)

    def cells(self, digits: int = 1) -> list[list[str]]:
        """The matrix as the paper prints it, in percent: ``"before->after"`` per cell."""
        before = (self.mean_before * 100).tolist()
        after = (self.mean_after * 100).tolist()
        return [[f"{before[t]:.{digits}f}->{row[t]:.{digits}f}" for t in range(len(row))]
                for row in after]  # fmt: skip

    def table(self, digits: int = 1) -> str:
        """A plain-text table: rows From (source), columns To (target)."""
        width = max(12, *(len(n) + 2 for n in self.names))
        head = "From \\ To".ljust(width) + "".join(n.rjust(width) for n in self.names)
        rows = [
            name.ljust(width) + "".join(c.rjust(width) for c in cells)
            for name, cells in zip(self.names, self.cells(digits), strict=True)
        ]
        return "\n".join([head, *rows])


def _galleries(
    models: Mapping[str, Model],
    gallery_inputs: Tensor | None,
    galleries: Mapping[str, Gallery] | None,
    labels: Tensor | None,
    metric: str | Distance | Mapping[str, str | Distance],
    batch_size: int,
) -> dict[str, Gallery]:
    if (gallery_inputs is None) == (galleries is None):
        raise ValueError("give exactly one of gallery_inputs or galleries")
    if galleries is not None:
        if not isinstance(galleries, Mapping) or set(galleries) != set(models):
            got = sorted(galleries) if isinstance(galleries, Mapping) else type(galleries).__name__
            raise ValueError(
                f"galleries must map every model name {sorted(models)} to a Gallery, got {got}"
            )
        for name, g in galleries.items():
            if not isinstance(g, Gallery):
                raise TypeError(f"galleries[{name!r}] must be a Gallery, got {type(g).__name__}")
        sizes = {len(g) for g in galleries.values()}
        if len(sizes) != 1:
            raise ValueError(
                f"galleries must hold the same inputs X (one size), got sizes {sorted(sizes)}"
            )
        return {name: galleries[name] for name in models}
    assert gallery_inputs is not None
    check_tensor(gallery_inputs, "gallery_inputs", min_ndim=2, floating=True)
    metrics = metric if isinstance(metric, Mapping) else dict.fromkeys(models, metric)
    if set(metrics) != set(models):
        raise ValueError(f"metric must name one metric per model {sorted(models)}")
    return {
        name: Gallery.from_inputs(model, gallery_inputs, labels, metrics[name], batch_size)
        for name, model in models.items()
    }


def _sp_ranks(objective: CandidateObjective | QueryObjective, emb: Tensor) -> Tensor | None:
    return objective.sp_ranks(emb) if isinstance(objective, QueryObjective) else None


def transfer_matrix(
    models: Mapping[str, Model],
    attack: AttackFactory,
    inputs: Tensor,
    *,
    queries: Tensor | None = None,
    candidate_indices: Tensor | None = None,
    candidates: Tensor | None = None,
    query_indices: Tensor | None = None,
    gallery_inputs: Tensor | None = None,
    galleries: Mapping[str, Gallery] | None = None,
    labels: Tensor | None = None,
    metric: str | Distance | Mapping[str, str | Distance] = "cosine",
    batch_size: int = 256,
    progress: bool = False,
) -> TransferResult:
    """Attack on every source model, rank on every target model (paper Tables 5, 11, 12).

    Parameters
    ----------
    models : mapping of str to callable
        The models, each mapping ``[N, *S]`` inputs in ``[0, 1]`` to ``[N, D]``.
    attack : callable
        ``(model, gallery) -> CandidateAttack | QueryAttack``, e.g.
        ``attack_factory("CA+", eps=0.3)``; called once per model.
    inputs : Tensor
        ``[N, *S]``: the candidates (CA) or the queries (QA) to perturb.
    queries : Tensor, optional
        CA: ``[N, w, *S]`` query images (each model embeds them itself).
    candidate_indices, candidates, query_indices : Tensor, optional
        QA: the chosen candidates as ``[N, m]`` indices into X (the same for every
        gallery) or ``[N, m, *S]`` images; ``query_indices`` ``[N]`` as in
        [rankattack.QueryAttack.run][rankattack.attacks.queryattack.QueryAttack.run].
    gallery_inputs : Tensor, optional
        ``[|X|, *S]``: X, embedded by each model into its own gallery. Or give
        ``galleries``, one prebuilt [Gallery][rankattack.transfer.Gallery] of the same X per model.
    labels, metric, batch_size
        For building the galleries (``metric`` may map model names to metrics).
        ``batch_size`` also chunks ``inputs``: attacks run ``batch_size`` inputs at a
        time.
    progress : bool
        tqdm progress bar over (chunk, source) pairs.

    Returns
    -------
    TransferResult
        Its diagonal ``rank_after[i, i]`` is model i's white-box result.
    """
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping of names to models")
    for name, model in models.items():
        if not isinstance(name, str) or not callable(model):
            raise TypeError(f"models must map str names to callables; got {name!r}: {model!r}")
    if not callable(attack):
        raise TypeError(f"attack must be a callable (model, gallery) -> attack, got {attack!r}")
    batch_size = check_int(batch_size, "batch_size", low=1)
    check_tensor(inputs, "inputs", min_ndim=2, floating=True)
    gals = _galleries(models, gallery_inputs, galleries, labels, metric, batch_size)
    names = tuple(models)
    attacks = {name: attack(models[name], gals[name]) for name in names}
    kinds = {type(a) for a in attacks.values()}
    if not kinds <= {CandidateAttack, QueryAttack} or len(kinds) != 1:
        raise TypeError(
            "attack must build CandidateAttack or QueryAttack instances of one kind for every "
            f"model, got {sorted(k.__name__ for k in kinds)}"
        )
    kind = "candidate" if CandidateAttack in kinds else "query"
    if kind == "candidate":
        if queries is None:
            raise ValueError("a candidate attack needs queries [N, w, *S]")
        if candidate_indices is not None or candidates is not None or query_indices is not None:
            raise ValueError("candidate_indices / candidates / query_indices are for QA only")
    elif queries is not None:
        raise ValueError("queries are for CA only; a query attack takes candidate_indices")

    n = inputs.shape[0]
    chunks = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    work: Any = [(c, src) for c in range(len(chunks)) for src in names]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        work = bar = tqdm(work, desc=f"transfer {kind} attack", unit="source")
    before: dict[str, list[Tensor]] = {t: [] for t in names}
    after: dict[tuple[str, str], list[Tensor]] = {(s, t): [] for s in names for t in names}
    sp_before: dict[str, list[Tensor]] = {t: [] for t in names}
    sp_after: dict[tuple[str, str], list[Tensor]] = {(s, t): [] for s in names for t in names}
    adversarial: dict[str, list[Tensor]] = {s: [] for s in names}

    def sliced(v: Tensor | None, s: int, e: int) -> Tensor | None:
        return None if v is None else v[s:e]

    objectives: dict[str, CandidateObjective | QueryObjective] = {}
    current = -1
    for c, src in work:
        s, e = chunks[c]
        if c != current:  # build every target's objective for this chunk once
            current = c
            x = inputs[s:e]
            for t in names:
                atk = attacks[t]
                if isinstance(atk, CandidateAttack):
                    assert queries is not None
                    objectives[t] = atk.objective(x, queries[s:e])
                else:
                    objectives[t], _ = atk.objective(
                        x,
                        sliced(candidate_indices, s, e),
                        sliced(candidates, s, e),
                        sliced(query_indices, s, e),
                    )
                clean = atk.embed(x, "inputs", atk.gallery.dim)
                before[t].append(objectives[t].ranks(clean))
                sp = _sp_ranks(objectives[t], clean)
                if sp is not None:
                    sp_before[t].append(sp)
        src_atk = attacks[src]
        adv = src_atk.pgd(src_atk.model, inputs[s:e], objectives[src])
        adversarial[src].append(adv)
        for t in names:
            emb = attacks[t].embed(adv, "inputs", attacks[t].gallery.dim)
            after[src, t].append(objectives[t].ranks(emb))
            sp = _sp_ranks(objectives[t], emb)
            if sp is not None:
                sp_after[src, t].append(sp)
    if bar is not None:
        bar.close()

    has_sp = all(len(v) == len(chunks) for v in sp_before.values())
    return TransferResult(
        names=names,
        attack=kind,
        rank_before=torch.stack([torch.cat(before[t]) for t in names]),
        rank_after=torch.stack(
            [torch.stack([torch.cat(after[s, t]) for t in names]) for s in names]
        ),
        sp_rank_before=(torch.stack([torch.cat(sp_before[t]) for t in names]) if has_sp else None),
        sp_rank_after=(
            torch.stack([torch.stack([torch.cat(sp_after[s, t]) for t in names]) for s in names])
            if has_sp
            else None
        ),
        adversarial={s: torch.cat(adversarial[s]) for s in names},
    )
