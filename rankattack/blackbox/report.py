"""Black-box results: per-query records, their summary and budget curves.

A run appends [ChunkRecord][rankattack.blackbox.report.ChunkRecord] lines to a JSON-lines file
([BlackBoxLog][rankattack.blackbox.report.BlackBoxLog]) as each chunk of queries finishes; a rerun
skips the chunks already there, so a killed run resumes and ends with the numbers an uninterrupted
run gives (every query's randomness is keyed by its id, not by its chunk).
[summarize][rankattack.blackbox.report.summarize] turns the records of one setting (a *cell*) into
the reported figures, [summary_table][rankattack.blackbox.report.summary_table] into a table and
[plot_budget_curve][rankattack.blackbox.report.plot_budget_curve] draws tau_S against the budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rankattack.evaluation.jsonlines import JsonLinesLog

__all__ = [
    "BlackBoxLog",
    "ChunkRecord",
    "perturbation_norms",
    "plot_budget_curve",
    "summarize",
    "summary_table",
]


def perturbation_norms(adversarial: Tensor, clean: Tensor) -> tuple[Tensor, Tensor]:
    """Per-query L-inf and L2 norms ``[B]`` of ``adversarial - clean``."""
    d = (adversarial - clean).flatten(1).double()
    return d.abs().amax(1), d.norm(dim=1)


@dataclass
class ChunkRecord:
    """Per-query results of one chunk of one cell (lists, one entry per query)."""

    cell: str
    start: int
    query_ids: list[int]
    tau_before: list[float]
    tau: list[float]
    queries_used: list[int]
    linf: list[float]
    l2: list[float]
    success: list[bool] = field(default_factory=list)
    mean_rank: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"type": "chunk", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkRecord:
        return cls(**{k: v for k, v in d.items() if k != "type"})


class BlackBoxLog(JsonLinesLog):
    """A JSON-lines file: one ``meta`` record, then one
    [ChunkRecord][rankattack.blackbox.report.ChunkRecord] per line.

    A line cut short by a kill is ignored on reading and dropped before the next append
    ([JsonLinesLog][rankattack.evaluation.jsonlines.JsonLinesLog]).
    """

    path_argument = None  # any path pathlib takes

    def read(self) -> tuple[dict[str, Any] | None, dict[tuple[str, int], ChunkRecord]]:
        """The meta record and the chunks by ``(cell, start)`` (the last line wins)."""
        meta, chunks = self._read("chunk", ChunkRecord.from_dict)
        return meta, {(c.cell, c.start): c for c in chunks}

    def append(self, chunk: ChunkRecord) -> None:
        self._append("chunk", chunk.to_dict())


def _ci(values: Tensor) -> tuple[float, float]:
    from rankattack.evaluation.statistics import confidence_interval

    return confidence_interval(values)


def summarize(chunks: Sequence[ChunkRecord], budget: int | None = None) -> dict[str, Any]:
    """The reported figures of one cell from its chunks.

    Returns T, mean tau_S with its 95% Student-t half-width, median tau_S, the fraction
    with tau_S = 1, the clean mean tau_S, the success rate (when recorded), queries used
    (mean, median, max) against the budget, mean L-inf / L2 norms and the mean rank of
    the wanted items (when recorded).
    """
    if not chunks:
        raise ValueError("chunks must hold at least one ChunkRecord")
    tau = torch.tensor([v for c in chunks for v in c.tau], dtype=torch.float64)
    before = torch.tensor([v for c in chunks for v in c.tau_before], dtype=torch.float64)
    used = torch.tensor([v for c in chunks for v in c.queries_used], dtype=torch.float64)
    linf = torch.tensor([v for c in chunks for v in c.linf], dtype=torch.float64)
    l2 = torch.tensor([v for c in chunks for v in c.l2], dtype=torch.float64)
    mean, half = _ci(tau)
    out: dict[str, Any] = {
        "cell": chunks[0].cell,
        "T": int(tau.numel()),
        "tau_mean": mean,
        "tau_ci95": half,
        "tau_median": float(tau.median()),
        "tau_frac_one": float((tau >= 1.0 - 1e-6).double().mean()),
        "tau_before_mean": float(before.mean()),
        "queries_mean": float(used.mean()),
        "queries_median": float(used.median()),
        "queries_max": int(used.max()),
        "budget": budget,
        "linf_mean": float(linf.mean()),
        "l2_mean": float(l2.mean()),
        "seconds": float(sum(c.seconds for c in chunks)),
    }
    succ = [v for c in chunks for v in c.success]
    if succ:
        s = torch.tensor(succ, dtype=torch.float64)
        out["success_rate"], out["success_ci95"] = _ci(s)
    ranks = [v for c in chunks for v in c.mean_rank]
    if ranks:
        out["mean_rank"] = float(torch.tensor(ranks, dtype=torch.float64).mean())
    return out


def summary_table(
    rows: Sequence[dict[str, Any]], markdown: bool = True, score: str = "tau_S"
) -> str:
    """A table of [summarize][rankattack.blackbox.report.summarize] outputs (one row per cell).

    ``score`` names what the records' ``tau`` holds: tau_S (order attacks),
    ``1 - relevance`` (removal) or ``-loss`` (score-based CA / QA).
    """
    head = ["cell", "T", f"mean {score} (95% CI)", "median", f"{score} = 1", f"clean {score}",
            "success", "queries mean / median / budget", "L-inf x255", "L2"]  # fmt: skip
    lines = []
    for r in rows:
        succ = "-" if "success_rate" not in r else f"{r['success_rate']:.3f}"
        half = r["tau_ci95"]
        ci = "" if not math.isfinite(half) else f" +- {half:.3f}"
        lines.append([
            r["cell"], str(r["T"]), f"{r['tau_mean']:.3f}{ci}", f"{r['tau_median']:.3f}",
            f"{r['tau_frac_one']:.3f}", f"{r['tau_before_mean']:.3f}", succ,
            f"{r['queries_mean']:.0f} / {r['queries_median']:.0f} / {r['budget']}",
            f"{255 * r['linf_mean']:.2f}", f"{r['l2_mean']:.3f}",
        ])  # fmt: skip
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*line) for line in [head, *lines])


def plot_budget_curve(
    curves: dict[str, Sequence[tuple[int, float, float]]],
    path: str | Path,
    reference: dict[str, Sequence[tuple[int, float]]] | None = None,
) -> Path:
    """Mean tau_S against the query budget: ``{label: [(Q, mean, ci95), ...]}``, log-x.

    ``reference`` adds dashed curves (e.g. the paper's figures).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, pts in curves.items():
        pts = sorted(pts)
        q = [p[0] for p in pts]
        m = [p[1] for p in pts]
        h = [0.0 if not math.isfinite(p[2]) else p[2] for p in pts]
        ax.errorbar(q, m, yerr=h, marker="o", capsize=3, label=label)
    for label, ref in (reference or {}).items():
        ref = sorted(ref)
        ax.plot([p[0] for p in ref], [p[1] for p in ref], "--", marker="x", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("query budget Q per attacked query")
    ax.set_ylabel("mean tau_S")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
