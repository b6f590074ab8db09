"""The paper's attack protocol: cells of T attacks, resumable results, tables with CIs.

Zhou et al., "Adversarial Ranking Attack and Defense" (ECCV 2020), Sec. 4: for each
attack (CA+, CA-, QA+, QA-; QA is the Semantics-Preserving QA of Eq. 12), each eps and
each w (CA) or m (QA), run T independent attacks on the test set X (which is both the
gallery and the pool the attacked inputs come from) and report the mean normalized rank
``R_CA(c)`` or ``R_QA(q)`` in percent, here with a 95% confidence interval, plus the
mean rank of ``C_SP`` for QA. The maximum embedding shift of the Fig. 2 comparison
(Eq. 13's adversary, [MaxShiftAttack][rankattack.MaxShiftAttack]) and the model's R@1 are
reported beside them.

Only the public attack API is used. A cell's samples are drawn from a generator seeded
by ``(seed, attack, eps, size)`` ([rankattack.evaluation.sampling.cell_seed][]) and
its T attacks run in vectorized batches. Each finished cell is appended to a JSON-lines
file; a rerun with the same file skips the cells already there, so an interrupted run
resumes and ends with the table an uninterrupted run gives.

Every public name of these modules is importable from ``rankattack.evaluation`` itself
(``__all__`` lists the names the package has had since it was split into modules).

Modules
-------
protocol
    ``evaluate``, the whole protocol for one model; ``expected_cost`` of a cell.
cells
    One cell: ``run_cell``, ``run_shift_cell``, ``CellResult``; the T attacks behind it
    (``run_cell_samples``, ``run_shift_cell_samples``) and ``summarize``.
samples
    ``CellSamples``, the per-sample results of a cell (indices, ranks, perturbation
    norms, optionally the adversarial inputs), saved and loaded safely.
sampling
    The sampling rules: cell seeds, anchors, uniform and top-1% partners.
statistics
    The 95% Student-t interval of a cell, the model's R@1, R@k and mAP, and the
    embedding spread.
jsonlines
    ``JsonLinesLog``, the JSON-lines file every resumable run appends to (the base of the
    results logs).
resultslog
    ``ResultsLog``, the JSON-lines log a killed run resumes from.
results
    ``EvaluationResult`` and its table in the paper's layout (``format_table``).
reference
    The paper's table grid and published numbers (``load_paper_table``).
rankingexample
    ``ranking_example``, one attack on a ranking list (Fig. 1).

The robustness benchmark of the authors' later work (ten attacks, the Empirical
Robustness Score) is the subpackage [rankattack.evaluation.robustness][], also
importable as ``rankattack.robustness``.
"""

from __future__ import annotations

from rankattack.evaluation.cells import SHIFT, CellResult, run_cell, run_shift_cell
from rankattack.evaluation.cells import run_cell_samples as run_cell_samples
from rankattack.evaluation.cells import run_shift_cell_samples as run_shift_cell_samples
from rankattack.evaluation.cells import summarize as summarize
from rankattack.evaluation.protocol import evaluate
from rankattack.evaluation.protocol import expected_cost as expected_cost
from rankattack.evaluation.rankingexample import RankingExample, ranking_example
from rankattack.evaluation.reference import PAPER_EPS, PAPER_SIZES, PaperTable, load_paper_table
from rankattack.evaluation.results import EvaluationResult, format_table
from rankattack.evaluation.resultslog import ResultsLog
from rankattack.evaluation.samples import CellSamples as CellSamples
from rankattack.evaluation.samples import cell_file_name as cell_file_name
from rankattack.evaluation.samples import load_samples as load_samples
from rankattack.evaluation.samples import write_samples_csv as write_samples_csv
from rankattack.evaluation.sampling import (
    ATTACKS,
    CellSample,
    cell_seed,
    sample_anchors,
    sample_cell,
    sample_top,
    sample_uniform,
    top_pool_size,
)
from rankattack.evaluation.statistics import confidence_interval, recall_at_1
from rankattack.evaluation.statistics import embedding_spread as embedding_spread
from rankattack.evaluation.statistics import retrieval_quality as retrieval_quality

__all__ = [
    "ATTACKS",
    "PAPER_EPS",
    "PAPER_SIZES",
    "SHIFT",
    "CellResult",
    "CellSample",
    "EvaluationResult",
    "PaperTable",
    "RankingExample",
    "ResultsLog",
    "cell_seed",
    "confidence_interval",
    "evaluate",
    "format_table",
    "load_paper_table",
    "ranking_example",
    "recall_at_1",
    "run_cell",
    "run_shift_cell",
    "sample_anchors",
    "sample_cell",
    "sample_top",
    "sample_uniform",
    "top_pool_size",
]
