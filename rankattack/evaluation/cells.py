"""One cell of the paper's tables: T attacks of one kind at one eps and one w / m.

Zhou et al., "Adversarial Ranking Attack and Defense" (ECCV 2020), Sec. 4: a cell runs
T independent attacks (CA+, CA-, QA+ or QA-; QA is the Semantics-Preserving QA of
Eq. 12) on the test set X, which is both the gallery and the pool the attacked inputs
come from, and reports the mean normalized rank ``R_CA(c)`` or ``R_QA(q)`` in percent
with a 95% confidence interval, plus the mean rank of ``C_SP`` for QA. A shift cell
([run_shift_cell][rankattack.evaluation.cells.run_shift_cell]) measures the maximum embedding shift
of the Fig. 2 comparison (Eq. 13's adversary, [MaxShiftAttack][rankattack.MaxShiftAttack]) instead.

A cell's samples are drawn from a generator seeded by ``(seed, attack, eps, size)``
([rankattack.evaluation.sampling.cell_seed][]) and its T attacks run in vectorized
batches; only the public attack API is used.
[CellResult.key][rankattack.evaluation.cells.CellResult.key] identifies a cell within a results log
([rankattack.evaluation.resultslog.ResultsLog][]).

[run_cell_samples][rankattack.evaluation.cells.run_cell_samples] and
[run_shift_cell_samples][rankattack.evaluation.cells.run_shift_cell_samples] return the T attacks
behind a cell ([CellSamples][rankattack.evaluation.samples.CellSamples]: indices, ranks before and
after, perturbation norms, optionally the adversarial inputs);
[summarize][rankattack.evaluation.cells.summarize] turns them into the cell's
[CellResult][rankattack.evaluation.cells.CellResult], which is what
[run_cell][rankattack.evaluation.cells.run_cell] and
[run_shift_cell][rankattack.evaluation.cells.run_shift_cell] return.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_real, check_tensor
from rankattack.attacks import CandidateAttack, MaxShiftAttack, QueryAttack
from rankattack.distributed import map_batches
from rankattack.evaluation.samples import CellSamples
from rankattack.evaluation.sampling import ATTACKS, cell_seed, sample_anchors, sample_cell
from rankattack.evaluation.statistics import confidence_interval
from rankattack.gallery import Gallery

__all__ = [
    "SHIFT",
    "CellResult",
    "run_cell",
    "run_cell_samples",
    "run_shift_cell",
    "run_shift_cell_samples",
    "summarize",
]

#: Name of the maximum-embedding-shift cells (paper Fig. 2).
SHIFT = "shift"


@dataclass(frozen=True)
class CellResult:
    """One cell of the table: T attacks of one kind at one eps and one w / m.

    Attributes
    ----------
    attack : str
        "CA+", "CA-", "QA+", "QA-" or "shift" (maximum embedding shift).
    eps : float
    size : int
        w (CA) or m (QA); 0 for "shift".
    samples : int
        T.
    seed : int
        The protocol seed the cell's generator was derived from.
    mean, ci : float
        Mean normalized rank after the attack in percent and the half-width of its 95%
        interval; for "shift", the mean embedding distance ``d(f(x + r), f(x))``.
    before : float
        Mean normalized rank before the attack in percent (0 for "shift").
    sp_mean, sp_ci, sp_before : float or None
        Mean rank of ``C_SP`` (percent) after / before the attack, QA only.
    seconds : float
        Wall time of the cell.
    params : dict
        Protocol parameters that change the result (top_fraction, xi, sp_size, alpha,
        steps); part of the key a resumed run matches on.
    """

    attack: str
    eps: float
    size: int
    samples: int
    seed: int
    mean: float
    ci: float
    before: float
    sp_mean: float | None = None
    sp_ci: float | None = None
    sp_before: float | None = None
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity of the cell within a results file."""
        return _cell_key(self.attack, self.eps, self.size, self.samples, self.seed, self.params)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


def _cell_key(
    attack: str, eps: float, size: int, samples: int, seed: int, params: dict[str, Any]
) -> str:
    return json.dumps(
        [attack, float(eps), int(size), int(samples), int(seed), params], sort_keys=True
    )


def _params(
    attack: str,
    top_fraction: float,
    xi: float | None,
    sp_size: int,
    alpha: float | None,
    steps: int | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"alpha": alpha, "steps": steps}
    if attack.endswith("-"):
        out["top_fraction"] = top_fraction
    if attack.startswith("QA"):
        out["xi"] = xi
        out["sp_size"] = sp_size
    return out


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run with torch's global generators seeded, restoring their state afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _check_inputs_match(gallery: Gallery, inputs: Tensor) -> None:
    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    check_tensor(inputs, "inputs", min_ndim=2, floating=True)
    if inputs.shape[0] != len(gallery):
        raise ValueError(
            f"inputs must be the gallery's items ([{len(gallery)}, *S]: the attacked inputs "
            f"are the test set itself), got shape {tuple(inputs.shape)}"
        )


def _norms(adv: Tensor, clean: Tensor) -> tuple[Tensor, Tensor]:
    """``[B]`` L-inf and L2 norms of ``adv - clean``."""
    delta = (adv - clean).flatten(1)
    return delta.abs().amax(1), delta.norm(dim=1)


def _concat(batches: Iterable[tuple[Tensor | None, ...]], n: int) -> list[Tensor | None]:
    """Each of the ``n`` per-sample figures of the batches, concatenated on the CPU (``None``
    for a figure no batch has)."""
    parts: list[list[Tensor]] = [[] for _ in range(n)]
    for batch in batches:
        for part, value in zip(parts, batch, strict=True):
            if value is not None:
                part.append(value)
    return [torch.cat(part).detach().cpu() if part else None for part in parts]


def run_cell(
    model: Callable[[Tensor], Tensor],
    gallery: Gallery,
    inputs: Tensor,
    attack: str,
    eps: float,
    size: int,
    *,
    samples: int = 1000,
    seed: int = 0,
    batch_size: int = 250,
    top_fraction: float = 0.01,
    xi: float | None = None,
    sp_size: int = 5,
    alpha: float | None = None,
    steps: int | None = None,
) -> CellResult:
    """Run the T attacks of one cell (paper Sec. 4) and summarize them.

    Parameters
    ----------
    model : callable
        Maps ``[N, *S]`` inputs in ``[0, 1]`` to ``[N, D]`` embeddings.
    gallery : Gallery
        X, the embeddings of ``inputs``.
    inputs : Tensor
        ``[|X|, *S]``: the test set, i.e. the gallery's items; anchors are drawn from it.
    attack : {"CA+", "CA-", "QA+", "QA-"}
    eps : float
        L-inf radius (0 gives the unattacked ranks).
    size : int
        w for CA (queries per candidate, Eq. 4 / 7), m for QA (candidates per query,
        Eq. 9 / 11).
    samples : int
        T, the number of independent attacks.
    seed : int
        Protocol seed; the cell's generator is seeded with
        ``cell_seed(seed, attack, eps, size)``.
    batch_size : int
        Attacks per vectorized call (CA batches are further capped so that the sorted
        ranking hinge of [CandidateObjective][rankattack.objectives.CandidateObjective]
        fits the gallery's chunk budget).
    top_fraction : float
        Neighbourhood the CA- queries / QA- candidates come from (1% in the paper).
    xi, sp_size
        SP-QA weight (default: the paper's 1 for QA+, 100 for QA-) and G (5).
    alpha, steps
        PGD step size and iterations; default: the paper's schedule.
    """
    kept = run_cell_samples(
        model, gallery, inputs, attack, eps, size, samples=samples, seed=seed,
        batch_size=batch_size, top_fraction=top_fraction, xi=xi, sp_size=sp_size,
        alpha=alpha, steps=steps,
    )  # fmt: skip
    return summarize(kept)


def run_cell_samples(
    model: Callable[[Tensor], Tensor],
    gallery: Gallery,
    inputs: Tensor,
    attack: str,
    eps: float,
    size: int,
    *,
    samples: int = 1000,
    seed: int = 0,
    batch_size: int = 250,
    top_fraction: float = 0.01,
    xi: float | None = None,
    sp_size: int = 5,
    alpha: float | None = None,
    steps: int | None = None,
    adversarial: bool = False,
) -> CellSamples:
    """The T attacks of one cell, each kept: [run_cell][rankattack.evaluation.cells.run_cell] before
    summarizing.

    Takes the arguments of [run_cell][rankattack.evaluation.cells.run_cell], and ``adversarial``:
    also keep the adversarial inputs ``[T, *S]`` (on the CPU).
    """
    attack = check_choice(attack, "attack", ATTACKS)
    eps = check_real(eps, "eps", low=0.0)
    size = check_int(size, "size", low=1)
    samples = check_int(samples, "samples", low=1)
    seed = check_int(seed, "seed")
    batch_size = check_int(batch_size, "batch_size", low=1)
    _check_inputs_match(gallery, inputs)
    device = gallery.embeddings.device
    inputs = inputs.to(device)
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(cell_seed(seed, attack, eps, size))
    sample = sample_cell(gallery, attack, size, samples, generator, top_fraction)
    anchors = sample.anchors.to(device)
    partners = sample.partners.to(device)
    direction = "raise" if attack.endswith("+") else "lower"

    def record(clean: Tensor, res: Any) -> tuple[Tensor | None, ...]:
        """One batch's per-sample figures (computed on the rank that ran it)."""
        linf, l2 = _norms(res.adversarial, clean)
        adv = res.adversarial.detach().cpu() if adversarial else None
        return (res.rank_before, res.rank_after, res.sp_rank_before, res.sp_rank_after,
                linf, l2, adv)  # fmt: skip

    if attack.startswith("CA"):
        ca = CandidateAttack(model, gallery, direction, eps=eps, alpha=alpha, steps=steps)
        per_call = min(batch_size, max(1, gallery.chunk_budget // (size * len(gallery))))

        def ca_batch(s: int) -> tuple[Tensor | None, ...]:
            a, p = anchors[s : s + per_call], partners[s : s + per_call]
            return record(inputs[a], ca.run(inputs[a], query_embeddings=gallery.embeddings[p]))

        batches = map_batches(ca_batch, range(0, samples, per_call), device=device)
    else:
        qa = QueryAttack(
            model, gallery, direction, eps=eps, alpha=alpha, steps=steps, xi=xi, sp_size=sp_size
        )

        def qa_batch(s: int) -> tuple[Tensor | None, ...]:
            a, p = anchors[s : s + batch_size], partners[s : s + batch_size]
            return record(inputs[a], qa.run(inputs[a], candidate_indices=p, query_indices=a))

        batches = map_batches(qa_batch, range(0, samples, batch_size), device=device)
    before, after, sp_before, sp_after, linf, l2, adv = _concat(batches, 7)
    assert linf is not None and l2 is not None
    return CellSamples(
        attack=attack,
        eps=eps,
        size=size,
        seed=seed,
        anchors=sample.anchors.cpu(),
        partners=sample.partners.cpu(),
        rank_before=before,
        rank_after=after,
        sp_rank_before=sp_before,
        sp_rank_after=sp_after,
        linf=linf,
        l2=l2,
        adversarial=adv,
        params=_params(attack, top_fraction, xi, sp_size, alpha, steps),
        seconds=time.perf_counter() - start,
    )


def run_shift_cell(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    eps: float,
    *,
    samples: int = 1000,
    seed: int = 0,
    batch_size: int = 250,
    metric: str = "cosine",
    alpha: float | None = None,
    steps: int | None = None,
) -> CellResult:
    """Mean maximum embedding shift ``d(f(x + r), f(x))`` over T inputs (paper Fig. 2).

    Runs [MaxShiftAttack][rankattack.attacks.maxshiftattack.MaxShiftAttack] (the adversary
    of Eq. 13) on T inputs drawn without replacement from ``inputs``; its random start is
    drawn from torch's global generators seeded by ``cell_seed(seed, "shift", eps, 0)``
    (and restored afterwards).
    """
    kept = run_shift_cell_samples(
        model, inputs, eps, samples=samples, seed=seed, batch_size=batch_size,
        metric=metric, alpha=alpha, steps=steps,
    )  # fmt: skip
    return summarize(kept)


def run_shift_cell_samples(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    eps: float,
    *,
    samples: int = 1000,
    seed: int = 0,
    batch_size: int = 250,
    metric: str = "cosine",
    alpha: float | None = None,
    steps: int | None = None,
    adversarial: bool = False,
) -> CellSamples:
    """The T maximum-shift attacks of [run_shift_cell][rankattack.evaluation.cells.run_shift_cell],
    each kept."""
    eps = check_real(eps, "eps", low=0.0)
    samples = check_int(samples, "samples", low=1)
    seed = check_int(seed, "seed")
    batch_size = check_int(batch_size, "batch_size", low=1)
    check_tensor(inputs, "inputs", min_ndim=2, floating=True)
    start = time.perf_counter()
    cseed = cell_seed(seed, SHIFT, eps, 0)
    generator = torch.Generator().manual_seed(cseed)
    anchors = sample_anchors(inputs.shape[0], samples, generator).to(inputs.device)
    atk = MaxShiftAttack(model, eps=eps, alpha=alpha, steps=steps, metric=metric)

    def shift_batch(s: int) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        clean = inputs[anchors[s : s + batch_size]]
        res = atk.run(clean)
        linf, l2 = _norms(res.adversarial, clean)
        return res.shift, linf, l2, res.adversarial.detach().cpu() if adversarial else None

    def skip(s: int) -> None:  # the start MaxShiftAttack draws, for another rank's batch
        n = min(batch_size, samples - s)
        torch.rand((n, *inputs.shape[1:]), device=inputs.device, dtype=inputs.dtype)

    with _seeded(cseed, inputs.device):
        starts = range(0, samples, batch_size)
        batches = map_batches(shift_batch, starts, skip=skip, device=inputs.device)
        shift, linf, l2, adv = _concat(batches, 4)
    assert linf is not None and l2 is not None
    return CellSamples(
        attack=SHIFT,
        eps=eps,
        size=0,
        seed=seed,
        anchors=anchors.cpu(),
        partners=None,
        rank_before=None,
        rank_after=None,
        shift=shift,
        linf=linf,
        l2=l2,
        adversarial=adv,
        params={"alpha": alpha, "steps": steps, "metric": metric},
        seconds=time.perf_counter() - start,
    )


def summarize(cell: CellSamples) -> CellResult:
    """The cell's summary: mean rank after (percent) with its 95% interval, and the rest.

    For a "shift" cell the mean is the mean embedding shift.
    """
    if not isinstance(cell, CellSamples):
        raise TypeError(f"cell must be a CellSamples, got {type(cell).__name__}")
    common: dict[str, Any] = {
        "attack": cell.attack, "eps": cell.eps, "size": cell.size, "samples": cell.samples,
        "seed": cell.seed, "seconds": cell.seconds, "params": dict(cell.params),
    }  # fmt: skip
    if cell.attack == SHIFT:
        assert cell.shift is not None
        mean, ci = confidence_interval(cell.shift)
        return CellResult(mean=mean, ci=ci, before=0.0, **common)
    assert cell.rank_before is not None and cell.rank_after is not None
    mean, ci = confidence_interval(100.0 * cell.rank_after.double())
    sp_mean = sp_ci = sp_before = None
    if cell.sp_rank_after is not None and cell.sp_rank_before is not None:
        sp_mean, sp_ci = confidence_interval(100.0 * cell.sp_rank_after.double())
        sp_before = 100.0 * float(cell.sp_rank_before.double().mean())
    return CellResult(
        mean=mean,
        ci=ci,
        before=100.0 * float(cell.rank_before.double().mean()),
        sp_mean=sp_mean,
        sp_ci=sp_ci,
        sp_before=sp_before,
        **common,
    )
