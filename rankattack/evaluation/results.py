"""The results of one model's evaluation and their outputs: the paper's table, CSV, JSON.

[EvaluationResult][rankattack.evaluation.results.EvaluationResult] holds the cells of one evaluation
with the model's R@1, R@k and mAP and the embedding spread; it is read back from a results log or a
JSON summary and written as CSV or JSON. Every figure it holds is in percent (mean normalized ranks,
R@k, mAP), except the embedding shift and spread, which are distances.
[format_table][rankattack.evaluation.results.format_table] renders it in the layout of the paper's
Tables 1-3 (Zhou et al., ECCV 2020), optionally with the published rows of
[PaperTable][rankattack.evaluation.results.PaperTable] interleaved. The two live together because
[EvaluationResult.table][rankattack.evaluation.results.EvaluationResult.table] is
[format_table][rankattack.evaluation.results.format_table].
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankattack.evaluation.cells import SHIFT, CellResult
from rankattack.evaluation.reference import PAPER_SIZES, PaperTable
from rankattack.evaluation.resultslog import ResultsLog
from rankattack.evaluation.sampling import ATTACKS

__all__ = ["EvaluationResult", "format_table"]


@dataclass
class EvaluationResult:
    """All cells of one model's evaluation, with its retrieval quality and metadata.

    Attributes
    ----------
    cells : list of CellResult
    recall_at_1 : float or None
        R@1 in percent.
    name : str
    meta : dict
        Gallery size, dimension, metric and the rest of the results log's meta record.
    retrieval : dict
        ``{"R@1": ..., "R@2": ..., "R@4": ..., "R@8": ..., "mAP": ...}`` in percent (empty
        when unknown, e.g. read from an older results file).
    spread : float or None
        The embedding spread: median distance between two gallery items
        ([embedding_spread][rankattack.evaluation.statistics.embedding_spread]).
    """

    cells: list[CellResult]
    recall_at_1: float | None = None
    name: str = "model"
    meta: dict[str, Any] = field(default_factory=dict)
    retrieval: dict[str, float] = field(default_factory=dict)
    spread: float | None = None

    def get(self, attack: str, eps: float, size: int) -> CellResult | None:
        """The cell of ``attack`` at ``eps`` with w / m = ``size`` (``size=0`` for shift)."""
        for c in self.cells:
            if c.attack == attack and math.isclose(c.eps, eps) and c.size == size:
                return c
        return None

    def shift(self, eps: float) -> CellResult | None:
        """The maximum-embedding-shift cell at ``eps``."""
        return self.get(SHIFT, eps, 0)

    def relative_shift(self, eps: float) -> float | None:
        """The mean maximum embedding shift at ``eps`` divided by the embedding spread.

        Comparable across models whose embedding spaces differ in size: a model whose
        embeddings all crowd together has a small raw shift and a small spread.
        """
        cell = self.shift(eps)
        if cell is None or not self.spread:
            return None
        return cell.mean / self.spread

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
        """Write [rows][rankattack.evaluation.results.EvaluationResult.rows] as CSV."""
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
            "retrieval": self.retrieval,
            "spread": self.spread,
            "units": "ranks, R@k and mAP in percent; shift and spread are distances",
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
            meta = data.get("meta", {})
            return cls(
                cells=[CellResult.from_dict(c) for c in data["cells"]],
                recall_at_1=data.get("recall_at_1"),
                name=data.get("name", path.stem),
                meta=meta,
                retrieval=data.get("retrieval") or meta.get("retrieval") or {},
                spread=data.get("spread", meta.get("spread")),
            )
        meta, cells = ResultsLog(path).read()
        meta = meta or {}
        return cls(
            cells=cells,
            recall_at_1=meta.get("recall_at_1"),
            name=meta.get("name", path.stem),
            meta=meta,
            retrieval=meta.get("retrieval") or {},
            spread=meta.get("spread"),
        )

    def table(self, paper: PaperTable | None = None, markdown: bool = False) -> str:
        """The table in the paper's layout; see
        [format_table][rankattack.evaluation.results.format_table]."""
        return format_table(self, paper=paper, markdown=markdown)


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
    a row of the published numbers follows each eps. The title gives R@1 (beside the
    paper's with ``paper``), R@k and mAP, all in percent. Below: the mean rank of
    ``C_SP`` during QA (the second number of the paper's Table 10) and the maximum
    embedding shift per eps (Fig. 2), raw and divided by the embedding spread. Missing
    cells show "-".
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
    extra = [f"{k} = {v:.1f}%" for k, v in result.retrieval.items() if k != "R@1"]
    if extra:
        title += ", " + ", ".join(extra)

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
    spread = result.spread
    for e in eps_list:
        c = result.shift(e)
        if c is not None:
            ci = "" if math.isnan(c.ci) else f"±{c.ci:.4f}"
            mean = 0.0 if abs(c.mean) < 5e-5 else c.mean  # no "-0.0000" at eps = 0
            row = [f"{e:g}", f"{mean:.4f}{ci}"]
            if spread:
                rel_ci = "" if math.isnan(c.ci) else f"±{c.ci / spread:.3f}"
                row.append(f"{mean / spread:.3f}{rel_ci}")
            shift_body.append([*row, str(c.samples)])
    if shift_body:
        lines.append("")
        head = ["eps", "mean shift ± 95% CI"]
        title_shift = "Maximum embedding shift d(f(x+r), f(x)) (Eq. 13 adversary)"
        if spread:
            head.append("shift / spread")
            title_shift += f"; embedding spread (median distance of two items) = {spread:.4f}"
        lines += _render([title_shift], [*head, "T"], shift_body, markdown)
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
