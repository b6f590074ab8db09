"""The paper's attack protocol: cells of T attacks, resumable results, tables with CIs.

Zhou et al., "Adversarial Ranking Attack and Defense" (ECCV 2020), Sec. 4: for each attack
(CA+, CA-, QA+, QA-; QA is the Semantics-Preserving QA of Eq. 12), each eps and each w (CA)
or m (QA), run T independent attacks on the test set X (which is both the gallery and the
pool the attacked inputs come from) and report the mean normalized rank ``R_CA(c)`` or
``R_QA(q)`` in percent, here with a 95% confidence interval, plus the mean rank of
``C_SP`` for QA. The maximum embedding shift of the Fig. 2 comparison (Eq. 13's adversary,
:class:`~rankattack.MaxShiftAttack`) and the model's R@1 are reported beside them.

Only the public attack API is used. A cell's samples are drawn from a generator seeded
by ``(seed, attack, eps, size)`` (:func:`rankattack.sampling.cell_seed`) and its T
attacks run in vectorized batches. Each finished cell is appended to a JSON-lines file;
a rerun with the same file skips the cells already there, so an interrupted run resumes
and ends with the table an uninterrupted run gives.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_real, check_tensor
from rankattack.attacks import CandidateAttack, MaxShiftAttack, QueryAttack
from rankattack.gallery import Gallery
from rankattack.sampling import ATTACKS, cell_seed, sample_anchors, sample_cell

__all__ = [
    "ATTACKS",
    "PAPER_EPS",
    "PAPER_SIZES",
    "SHIFT",
    "CellResult",
    "EvaluationResult",
    "PaperTable",
    "RankingExample",
    "ResultsLog",
    "confidence_interval",
    "evaluate",
    "format_table",
    "load_paper_table",
    "ranking_example",
    "recall_at_1",
    "run_cell",
    "run_shift_cell",
]

logger = logging.getLogger(__name__)

#: The eps of the paper's MNIST and Fashion-MNIST tables.
PAPER_EPS = (0.0, 0.01, 0.03, 0.1, 0.3)
#: The w (CA) and m (QA) of the paper's tables.
PAPER_SIZES = (1, 2, 5, 10)
#: Name of the maximum-embedding-shift cells (paper Fig. 2).
SHIFT = "shift"


# --------------------------------------------------------------------------------------
# statistics
def confidence_interval(values: Tensor, level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the two-sided Student-t interval of ``values`` ``[T]``.

    ``mean +- t_{(1+level)/2, T-1} * s / sqrt(T)`` with ``s`` the sample standard
    deviation; the half-width is ``nan`` for ``T = 1``.
    """
    check_tensor(values, "values", ndim=1)
    level = check_real(level, "level", low=0.0, high=1.0, low_open=True)
    if values.numel() == 0:
        raise ValueError("values must hold at least one value")
    v = values.detach().double().cpu()
    mean = float(v.mean())
    t = v.numel()
    if t < 2:
        return mean, math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, t - 1)) * float(v.std(unbiased=True)) / math.sqrt(t)
    return mean, half


def recall_at_1(gallery: Gallery) -> float:
    """R@1 in percent: how often an item's nearest other item has its label.

    Each item queries the rest of the gallery (its own index excluded), the usual
    leave-one-out retrieval protocol of the paper's R@1; see
    :func:`rankattack.metrics.recall_at_k`.
    """
    from rankattack.metrics import recall_at_k

    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    if gallery.labels is None:
        raise ValueError("gallery must have labels to compute R@1")
    return 100.0 * float(recall_at_k(gallery, ks=(1,))[1])


# --------------------------------------------------------------------------------------
# cells
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
        ranking hinge of :class:`~rankattack.objectives.CandidateObjective` fits the
        gallery's chunk budget).
    top_fraction : float
        Neighbourhood the CA- queries / QA- candidates come from (1% in the paper).
    xi, sp_size
        SP-QA weight (default: the paper's 1 for QA+, 100 for QA-) and G (5).
    alpha, steps
        PGD step size and iterations; default: the paper's schedule.
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
    before: list[Tensor] = []
    after: list[Tensor] = []
    sp_before: list[Tensor] = []
    sp_after: list[Tensor] = []
    if attack.startswith("CA"):
        ca = CandidateAttack(model, gallery, direction, eps=eps, alpha=alpha, steps=steps)
        per_call = min(batch_size, max(1, gallery.chunk_budget // (size * len(gallery))))
        for s in range(0, samples, per_call):
            a, p = anchors[s : s + per_call], partners[s : s + per_call]
            res = ca.run(inputs[a], query_embeddings=gallery.embeddings[p])
            before.append(res.rank_before)
            after.append(res.rank_after)
    else:
        qa = QueryAttack(
            model, gallery, direction, eps=eps, alpha=alpha, steps=steps, xi=xi, sp_size=sp_size
        )
        for s in range(0, samples, batch_size):
            a, p = anchors[s : s + batch_size], partners[s : s + batch_size]
            res = qa.run(inputs[a], candidate_indices=p, query_indices=a)
            before.append(res.rank_before)
            after.append(res.rank_after)
            if res.sp_rank_before is not None and res.sp_rank_after is not None:
                sp_before.append(res.sp_rank_before)
                sp_after.append(res.sp_rank_after)
    mean, ci = confidence_interval(100.0 * torch.cat(after))
    sp_mean = sp_ci = sp_b = None
    if sp_after:
        sp_mean, sp_ci = confidence_interval(100.0 * torch.cat(sp_after))
        sp_b = 100.0 * float(torch.cat(sp_before).double().mean())
    return CellResult(
        attack=attack,
        eps=eps,
        size=size,
        samples=samples,
        seed=seed,
        mean=mean,
        ci=ci,
        before=100.0 * float(torch.cat(before).double().mean()),
        sp_mean=sp_mean,
        sp_ci=sp_ci,
        sp_before=sp_b,
        seconds=time.perf_counter() - start,
        params=_params(attack, top_fraction, xi, sp_size, alpha, steps),
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

    Runs :class:`~rankattack.MaxShiftAttack` (the adversary of Eq. 13) on T inputs drawn
    without replacement from ``inputs``; its random start is drawn from torch's global
    generators seeded by ``cell_seed(seed, "shift", eps, 0)`` (and restored afterwards).
    """
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
    shifts = []
    with _seeded(cseed, inputs.device):
        for s in range(0, samples, batch_size):
            shifts.append(atk.run(inputs[anchors[s : s + batch_size]]).shift)
    mean, ci = confidence_interval(torch.cat(shifts))
    return CellResult(
        attack=SHIFT,
        eps=eps,
        size=0,
        samples=samples,
        seed=seed,
        mean=mean,
        ci=ci,
        before=0.0,
        seconds=time.perf_counter() - start,
        params={"alpha": alpha, "steps": steps, "metric": metric},
    )


# --------------------------------------------------------------------------------------
# results file
class ResultsLog:
    """A JSON-lines file of cell results: one ``meta`` record, then one line per cell.

    Lines are appended (and flushed) as cells finish, so an interrupted run loses at
    most the cell in progress; a line cut short by the interruption is dropped when the
    file is opened again.

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` file (created with its parent directories when missing).
    """

    def __init__(self, path: str | Path) -> None:
        if not isinstance(path, str | Path):
            raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
        self.path = Path(path)

    def read(self) -> tuple[dict[str, Any] | None, list[CellResult]]:
        """The meta record (or ``None``) and the cells, in file order (last one wins)."""
        if not self.path.exists():
            return None, []
        meta: dict[str, Any] | None = None
        cells: dict[str, CellResult] = {}
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: skipping an unreadable (cut-off) line", self.path, n)
                continue
            if record.get("type") == "meta":
                meta = {k: v for k, v in record.items() if k != "type"}
            elif record.get("type") == "cell":
                cell = CellResult.from_dict(record)
                cells[cell.key] = cell
        return meta, list(cells.values())

    def _repair(self) -> None:
        """Drop a trailing partial line so that appends start on a fresh line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            self.path.write_bytes(data[:cut])

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()

    def write_meta(self, meta: dict[str, Any]) -> None:
        self._append({"type": "meta", **meta})

    def append(self, cell: CellResult) -> None:
        self._append({"type": "cell", **cell.to_dict()})


# --------------------------------------------------------------------------------------
# results and tables
@dataclass
class EvaluationResult:
    """All cells of one model's evaluation, with R@1 and descriptive metadata."""

    cells: list[CellResult]
    recall_at_1: float | None = None
    name: str = "model"
    meta: dict[str, Any] = field(default_factory=dict)

    def get(self, attack: str, eps: float, size: int) -> CellResult | None:
        """The cell of ``attack`` at ``eps`` with w / m = ``size`` (``size=0`` for shift)."""
        for c in self.cells:
            if c.attack == attack and math.isclose(c.eps, eps) and c.size == size:
                return c
        return None

    def shift(self, eps: float) -> CellResult | None:
        """The maximum-embedding-shift cell at ``eps``."""
        return self.get(SHIFT, eps, 0)

    @property
    def eps(self) -> list[float]:
        return sorted({c.eps for c in self.cells})

    @property
    def sizes(self) -> list[int]:
        return sorted({c.size for c in self.cells if c.attack != SHIFT})

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per cell (for CSV)."""
        out = []
        for c in self.cells:
            d = c.to_dict()
            params = d.pop("params")
            d.update({f"param_{k}": v for k, v in params.items()})
            out.append({"model": self.name, **d})
        return out

    def save_csv(self, path: str | Path) -> Path:
        """Write :meth:`rows` as CSV."""
        import csv

        rows = self.rows()
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        return path

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recall_at_1": self.recall_at_1,
            "meta": self.meta,
            "cells": [c.to_dict() for c in self.cells],
        }

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvaluationResult:
        """Read a results ``.jsonl`` log or a ``.json`` summary."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no results file at {path}")
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            return cls(
                cells=[CellResult.from_dict(c) for c in data["cells"]],
                recall_at_1=data.get("recall_at_1"),
                name=data.get("name", path.stem),
                meta=data.get("meta", {}),
            )
        meta, cells = ResultsLog(path).read()
        meta = meta or {}
        return cls(
            cells=cells,
            recall_at_1=meta.get("recall_at_1"),
            name=meta.get("name", path.stem),
            meta=meta,
        )

    def table(self, paper: PaperTable | None = None, markdown: bool = False) -> str:
        """The table in the paper's layout; see :func:`format_table`."""
        return format_table(self, paper=paper, markdown=markdown)


@dataclass(frozen=True)
class PaperTable:
    """Published numbers for one model: ``values[attack][(eps, size)]`` in percent."""

    name: str
    model: str
    recall_at_1: float | None
    values: dict[str, dict[tuple[float, int], float]]

    def get(self, attack: str, eps: float, size: int) -> float | None:
        for (e, s), v in self.values.get(attack, {}).items():
            if math.isclose(e, eps) and s == size:
                return v
        return None


def load_paper_table(name: str) -> PaperTable:
    """The paper's Table 3 (Fashion-MNIST): ``name`` is "CT" (vanilla) or "CTD" (defended).

    Read from ``rankattack/data/paper_tables.json`` (package data).
    """
    from importlib import resources

    name = check_choice(name, "name", ("CT", "CTD"))
    text = resources.files("rankattack").joinpath("data/paper_tables.json").read_text()
    data = json.loads(text)["table3"]
    eps = [float(e) for e in data["eps"]]
    entry = data[name]
    values: dict[str, dict[tuple[float, int], float]] = {}
    for attack in ATTACKS:
        values[attack] = {
            (e, s): float(v)
            for e, row in zip(eps, entry[attack], strict=True)
            for s, v in zip(PAPER_SIZES, row, strict=True)
        }
    return PaperTable(
        name=f"Fashion-MNIST {name}",
        model=entry["model"],
        recall_at_1=entry.get("recall_at_1"),
        values=values,
    )


def _fmt(value: float | None, ci: float | None = None, width: int = 0) -> str:
    if value is None:
        text = "-"
    elif ci is None or math.isnan(ci):
        text = f"{value:.1f}"
    else:
        text = f"{value:.1f}±{ci:.1f}"
    return text.rjust(width) if width else text


def format_table(
    result: EvaluationResult, paper: PaperTable | None = None, markdown: bool = False
) -> str:
    """Render ``result`` in the layout of the paper's Tables 1-3.

    Rows are eps; columns are CA+, CA-, QA+, QA- for each w / m. Each entry is the mean
    normalized rank in percent with the half-width of its 95% interval; with ``paper``,
    a row of the published numbers follows each eps. Below: the mean rank of ``C_SP``
    during QA (the second number of the paper's Table 10) and the maximum embedding
    shift per eps (Fig. 2). Missing cells show "-".
    """
    if not isinstance(result, EvaluationResult):
        raise TypeError(f"result must be an EvaluationResult, got {type(result).__name__}")
    eps_list = result.eps
    sizes = result.sizes or list(PAPER_SIZES)
    attacks = [a for a in ATTACKS if any(c.attack == a for c in result.cells)] or list(ATTACKS)
    head = [f"{a} {'w' if a.startswith('CA') else 'm'}={s}" for a in attacks for s in sizes]
    lines: list[str] = []
    title = f"{result.name}: mean normalized rank (%) ± 95% CI half-width"
    samples = sorted({c.samples for c in result.cells if c.attack != SHIFT})
    if samples:
        title += f", T = {'/'.join(map(str, samples))}"
    r1 = "-" if result.recall_at_1 is None else f"{result.recall_at_1:.1f}%"
    if paper is not None and paper.recall_at_1 is not None:
        r1 += f" (paper {paper.recall_at_1:.1f}%)"
    title += f"; R@1 = {r1}"

    def ours(attack: str, e: float, s: int) -> str:
        c = result.get(attack, e, s)
        return _fmt(None) if c is None else _fmt(c.mean, c.ci)

    def published(attack: str, e: float, s: int) -> str:
        assert paper is not None
        return _fmt(paper.get(attack, e, s))

    body: list[list[str]] = []
    for e in eps_list:
        if not any(c.eps == e and c.attack != SHIFT for c in result.cells):
            continue
        body.append([f"{e:g}"] + [ours(a, e, s) for a in attacks for s in sizes])
        if paper is not None:
            body.append(["  paper"] + [published(a, e, s) for a in attacks for s in sizes])
    lines += _render([title], ["eps", *head], body, markdown)

    qa = [a for a in attacks if a.startswith("QA")]
    sp_body = []
    for e in eps_list:
        row = [f"{e:g}"]
        for a in qa:
            for s in sizes:
                c = result.get(a, e, s)
                row.append(_fmt(None if c is None else c.sp_mean, None if c is None else c.sp_ci))
        if any(x != "-" for x in row[1:]):
            sp_body.append(row)
    if sp_body:
        lines.append("")
        sp_head = [f"{a} m={s}" for a in qa for s in sizes]
        lines += _render(
            ["Mean rank of C_SP (%) during SP-QA"], ["eps", *sp_head], sp_body, markdown
        )
    shift_body = []
    for e in eps_list:
        c = result.shift(e)
        if c is not None:
            ci = "" if math.isnan(c.ci) else f"±{c.ci:.4f}"
            mean = 0.0 if abs(c.mean) < 5e-5 else c.mean  # no "-0.0000" at eps = 0
            shift_body.append([f"{e:g}", f"{mean:.4f}{ci}", str(c.samples)])
    if shift_body:
        lines.append("")
        lines += _render(
            ["Maximum embedding shift d(f(x+r), f(x)) (Eq. 13 adversary)"],
            ["eps", "mean shift ± 95% CI", "T"],
            shift_body,
            markdown,
        )
    return "\n".join(lines)


def _render(title: list[str], head: list[str], body: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        out = [f"**{title[0]}**", ""] if title else []
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---:" for _ in head) + "|")
        out += ["| " + " | ".join(r) + " |" for r in body]
        return out
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    out = list(title)
    out.append("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(x.rjust(w) for x, w in zip(r, widths, strict=True)) for r in body]
    return out


# --------------------------------------------------------------------------------------
# the protocol
def evaluate(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    labels: Tensor | None = None,
    *,
    attacks: Sequence[str] = ATTACKS,
    eps: Sequence[float] = PAPER_EPS,
    sizes: Sequence[int] = PAPER_SIZES,
    samples: int = 1000,
    seed: int = 0,
    shift: bool = True,
    metric: str = "cosine",
    gallery: Gallery | None = None,
    results: str | Path | None = None,
    name: str = "model",
    batch_size: int = 250,
    top_fraction: float = 0.01,
    xi: float | None = None,
    sp_size: int = 5,
    alpha: float | None = None,
    steps: int | None = None,
    progress: bool = False,
    on_cell: Callable[[CellResult], None] | None = None,
) -> EvaluationResult:
    """Run the paper's protocol (Sec. 4) on a test set and return the table's cells.

    Cells run size by size (all attacks and eps at w = m = ``sizes[0]`` first), so a
    partial run already fills the first columns; the maximum-shift cells (one per eps)
    run first.

    Parameters
    ----------
    model : callable
        ``[N, *S] -> [N, D]`` embedding model (inputs in ``[0, 1]``).
    inputs : Tensor
        ``[|X|, *S]`` test set: the gallery X and the pool of attacked inputs.
    labels : Tensor, optional
        ``[|X|]`` labels, for R@1.
    attacks, eps, sizes
        The table's attacks, radii and w / m.
    samples : int
        T per cell (the paper uses T = |X|).
    seed : int
        Protocol seed; each cell derives its own generator from it.
    shift : bool
        Also measure the maximum embedding shift per eps.
    metric : {"cosine", "euclidean"}
        Distance of the gallery (ignored when ``gallery`` is given).
    gallery : Gallery, optional
        Precomputed embeddings of ``inputs``.
    results : str or Path, optional
        JSON-lines log: cells already in it (same key: attack, eps, size, T, seed and
        parameters) are reused, new ones appended as they finish.
    name : str
        Model name for the table and the log.
    batch_size, top_fraction, xi, sp_size, alpha, steps
        See :func:`run_cell`.
    progress : bool
        Show a progress bar over cells.
    on_cell : callable, optional
        Called with each newly computed cell.

    Returns
    -------
    EvaluationResult
        The requested cells in run order.
    """
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    check_tensor(inputs, "inputs", min_ndim=2, floating=True)
    attacks = [check_choice(a, "attacks", ATTACKS) for a in attacks]
    eps = [check_real(e, "eps", low=0.0) for e in eps]
    sizes = [check_int(s, "sizes", low=1) for s in sizes]
    samples = check_int(samples, "samples", low=1)
    seed = check_int(seed, "seed")
    batch_size = check_int(batch_size, "batch_size", low=1)
    check_real(top_fraction, "top_fraction", low=0.0, high=1.0, low_open=True)
    if not attacks or not eps or not sizes:
        raise ValueError("attacks, eps and sizes must each name at least one value")
    if gallery is None:
        device = next(_parameters(model), inputs).device
        inputs = inputs.to(device)
        if labels is not None:
            labels = labels.to(device)
        gallery = Gallery.from_inputs(model, inputs, labels, metric=metric, batch_size=batch_size)
    _check_inputs_match(gallery, inputs)
    inputs = inputs.to(gallery.embeddings.device)
    r1 = recall_at_1(gallery) if gallery.labels is not None else None
    meta: dict[str, Any] = {
        "name": name,
        "gallery_size": len(gallery),
        "dim": gallery.dim,
        "metric": gallery.metric,
        "recall_at_1": r1,
    }
    log = ResultsLog(results) if results is not None else None
    done: dict[str, CellResult] = {}
    if log is not None:
        old_meta, old_cells = log.read()
        if old_meta is not None:
            for k in ("gallery_size", "dim", "metric"):
                if old_meta.get(k) != meta[k]:
                    raise ValueError(
                        f"results file {log.path} was written for a different gallery "
                        f"({k}={old_meta.get(k)!r}, now {meta[k]!r}); use another file"
                    )
        else:
            log.write_meta(meta)
        done = {c.key: c for c in old_cells}
        if done:
            logger.info("resuming from %s: %d cells already done", log.path, len(done))

    plan: list[tuple[str, float, int]] = []
    if shift:
        plan += [(SHIFT, e, 0) for e in eps]
    plan += [(a, e, s) for s in sizes for a in attacks for e in eps]
    cells: list[CellResult] = []
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), desc=f"evaluating {name}", unit="cell")
    try:
        for attack, e, s in plan:
            if attack == SHIFT:
                params = {"alpha": alpha, "steps": steps, "metric": gallery.metric}
            else:
                params = _params(attack, top_fraction, xi, sp_size, alpha, steps)
            key = _cell_key(attack, e, s, samples, seed, params)
            if key in done:
                cells.append(done[key])
            else:
                if bar is not None:
                    bar.set_postfix_str(f"{attack} eps={e:g}" + (f" size={s}" if s else ""))
                if attack == SHIFT:
                    cell = run_shift_cell(
                        model, inputs, e, samples=samples, seed=seed, batch_size=batch_size,
                        metric=gallery.metric, alpha=alpha, steps=steps,
                    )  # fmt: skip
                else:
                    cell = run_cell(
                        model, gallery, inputs, attack, e, s, samples=samples, seed=seed,
                        batch_size=batch_size, top_fraction=top_fraction, xi=xi,
                        sp_size=sp_size, alpha=alpha, steps=steps,
                    )  # fmt: skip
                logger.info(
                    "%s %s eps=%g size=%d: %.2f ± %.2f (before %.2f) in %.1fs",
                    name, attack, e, s, cell.mean, cell.ci, cell.before, cell.seconds,
                )  # fmt: skip
                if log is not None:
                    log.append(cell)
                if on_cell is not None:
                    on_cell(cell)
                cells.append(cell)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return EvaluationResult(cells=cells, recall_at_1=r1, name=name, meta=meta)


def _parameters(model: Any) -> Iterator[Tensor]:
    if isinstance(model, torch.nn.Module):
        yield from model.parameters()


# --------------------------------------------------------------------------------------
# Fig. 1: one attack on a ranking list
@dataclass(frozen=True)
class RankingExample:
    """One attack shown on a ranking list (paper Fig. 1 and the appendix figures).

    Attributes
    ----------
    attack : str
    eps : float
    clean, adversarial : Tensor
        ``[*S]`` the perturbed item before and after (the candidate for CA, the query
        for QA).
    query : Tensor
        ``[*S]`` the clean query.
    candidate : Tensor
        ``[*S]`` the clean chosen candidate.
    target : int
        Gallery index of the chosen candidate.
    before_indices, after_indices : Tensor
        ``[k]`` gallery indices of the top-k for the query before and after (the query's
        own copy excluded); for CA, ``target`` in ``after_indices`` stands for the
        adversarial candidate.
    before_images, after_images : Tensor
        ``[k, *S]`` the corresponding images (for CA the adversarial candidate appears
        in ``after_images``).
    target_rank_before, target_rank_after : int
        Position of the chosen candidate in the query's list (0 = top: the number of
        listed items strictly closer, the query's own copy not listed), before and after.
    labels_before, labels_after : Tensor or None
        ``[k]`` labels of the listed items.
    """

    attack: str
    eps: float
    clean: Tensor
    adversarial: Tensor
    query: Tensor
    candidate: Tensor
    target: int
    before_indices: Tensor
    after_indices: Tensor
    before_images: Tensor
    after_images: Tensor
    target_rank_before: int
    target_rank_after: int
    labels_before: Tensor | None = None
    labels_after: Tensor | None = None


def ranking_example(
    model: Callable[[Tensor], Tensor],
    gallery: Gallery,
    inputs: Tensor,
    attack: str = "CA+",
    eps: float = 0.1,
    *,
    k: int = 8,
    seed: int = 0,
    top_fraction: float = 0.01,
) -> RankingExample:
    """Attack one sampled (query, candidate) pair with w = m = 1 and record its ranking list.

    The pair is the first one :func:`~rankattack.sampling.sample_cell` draws for
    ``cell_seed(seed, attack, eps, 1)``, i.e. the first attack of the protocol's cell.
    """
    attack = check_choice(attack, "attack", ATTACKS)
    eps = check_real(eps, "eps", low=0.0)
    k = check_int(k, "k", low=1)
    _check_inputs_match(gallery, inputs)
    if k > len(gallery) - 2:
        raise ValueError(f"k must be at most |X| - 2 = {len(gallery) - 2}, got {k}")
    device = gallery.embeddings.device
    inputs = inputs.to(device)
    generator = torch.Generator().manual_seed(cell_seed(seed, attack, eps, 1))
    sample = sample_cell(gallery, attack, 1, 1, generator, top_fraction)
    anchor = sample.anchors.to(device)  # [1]
    partner = sample.partners.to(device)  # [1, 1]
    direction = "raise" if attack.endswith("+") else "lower"
    dist = gallery.distance
    emb = gallery.embeddings
    labels = gallery.labels
    if attack.startswith("CA"):
        q_idx, c_idx = int(partner[0, 0]), int(anchor[0])
        ca = CandidateAttack(model, gallery, direction, eps=eps)
        res = ca.run(inputs[anchor], query_embeddings=emb[partner])
        adv = res.adversarial
        adv_emb = ca.embed(adv)
        qp = dist.prepare(emb[q_idx : q_idx + 1])
        d_before = dist.pairwise(qp, gallery.prepared)[0]
        d_after = d_before.clone()
        d_after[c_idx] = dist.pairwise(qp, dist.prepare(adv_emb))[0, 0]
        clean, query, adv_img = inputs[c_idx], inputs[q_idx], adv[0]
    else:
        q_idx, c_idx = int(anchor[0]), int(partner[0, 0])
        qa = QueryAttack(model, gallery, direction, eps=eps)
        res = qa.run(inputs[anchor], candidate_indices=partner, query_indices=anchor)
        adv = res.adversarial
        adv_emb = qa.embed(adv)
        d_before = dist.pairwise(dist.prepare(emb[q_idx : q_idx + 1]), gallery.prepared)[0]
        d_after = dist.pairwise(dist.prepare(adv_emb), gallery.prepared)[0]
        clean = query = inputs[q_idx]
        adv_img = adv[0]
    own = torch.zeros_like(d_before, dtype=torch.bool)
    own[q_idx] = True  # the query's own copy is not part of its displayed list
    rank_b = int(((d_before < d_before[c_idx]) & ~own).sum())
    rank_a = int(((d_after < d_after[c_idx]) & ~own).sum())
    before_idx = torch.topk(d_before.masked_fill(own, math.inf), k, largest=False).indices
    after_idx = torch.topk(d_after.masked_fill(own, math.inf), k, largest=False).indices
    after_imgs = inputs[after_idx].clone()
    if attack.startswith("CA"):
        after_imgs[after_idx == c_idx] = adv_img
    return RankingExample(
        attack=attack,
        eps=eps,
        clean=clean.detach().cpu(),
        adversarial=adv_img.detach().cpu(),
        query=query.detach().cpu(),
        candidate=inputs[c_idx].detach().cpu(),
        target=c_idx,
        before_indices=before_idx.cpu(),
        after_indices=after_idx.cpu(),
        before_images=inputs[before_idx].detach().cpu(),
        after_images=after_imgs.detach().cpu(),
        target_rank_before=rank_b,
        target_rank_after=rank_a,
        labels_before=None if labels is None else labels[before_idx].cpu(),
        labels_after=None if labels is None else labels[after_idx].cpu(),
    )
