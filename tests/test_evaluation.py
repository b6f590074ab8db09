"""The evaluation protocol: cells, statistics, resumable results, tables, ranking examples.

The sampling rules are tested in ``tests/test_sampling.py``.
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import replace

import pytest
import torch

import rankattack.evaluation as evaluation
from rankattack import Gallery
from rankattack.evaluation import (
    SHIFT,
    CellResult,
    EvaluationResult,
    ResultsLog,
    confidence_interval,
    evaluate,
    format_table,
    load_paper_table,
    ranking_example,
    recall_at_1,
    run_cell,
    run_shift_cell,
)
from rankattack.evaluation.sampling import cell_seed, sample_cell

N = 120


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6))


@pytest.fixture(scope="module")
def setup() -> tuple[torch.nn.Module, Gallery, torch.Tensor]:
    model = _model()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, 1, 4, 4, generator=g)
    y = torch.arange(N) % 4
    return model, Gallery.from_inputs(model, x, y), x


def _brute_ranks(gallery: Gallery, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Normalized rank of c for q: fraction of gallery items strictly closer.

    Pair by pair in float64; a gap below the gallery's rounding tolerance is a tie (so
    a candidate's own gallery copy is never counted).
    """
    d = gallery.distance
    q64, c64, x64 = q.double(), c.double(), gallery.embeddings.double()
    dq = d(q64.unsqueeze(1), x64.unsqueeze(0))  # [T, N]
    dc = d(q64, c64)  # [T]
    return (dq < dc.unsqueeze(1) - gallery.tie_tol).float().mean(1)


# --------------------------------------------------------------------------------------
# statistics and R@1
def test_confidence_interval_student_t() -> None:
    mean, half = confidence_interval(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == pytest.approx(2.5)
    assert half == pytest.approx(3.182446305 * 1.290994449 / 2.0, rel=1e-6)
    m1, h1 = confidence_interval(torch.tensor([3.0]))
    assert m1 == 3.0 and math.isnan(h1)
    with pytest.raises(ValueError, match="values"):
        confidence_interval(torch.ones(2, 2))


def test_recall_at_1() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    # item 4's nearest other item (cosine) is item 2 or 3 -> label 1: hit
    assert recall_at_1(Gallery(emb, labels)) == pytest.approx(100.0)
    labels = torch.tensor([0, 1, 1, 1, 0])
    # 0 -> 1 (miss), 1 -> 0 (miss), 2 -> 3 (hit), 3 -> 2 (hit), 4 -> ? nearest is 2 (miss)
    assert recall_at_1(Gallery(emb, labels)) == pytest.approx(40.0)
    with pytest.raises(ValueError, match="labels"):
        recall_at_1(Gallery(emb))


# --------------------------------------------------------------------------------------
# cells
def test_run_cell_eps0_matches_brute_force(setup) -> None:
    model, gallery, x = setup
    for attack in ("CA+", "CA-"):
        cell = run_cell(model, gallery, x, attack, 0.0, 2, samples=40, seed=3, batch_size=16)
        s = sample_cell(
            gallery, attack, 2, 40, torch.Generator().manual_seed(cell_seed(3, attack, 0.0, 2))
        )
        q = gallery.embeddings[s.partners.flatten()]
        c = gallery.embeddings[s.anchors].repeat_interleave(2, 0)
        expected = 100 * float(_brute_ranks(gallery, q, c).view(40, 2).mean(1).mean())
        assert cell.mean == pytest.approx(expected, abs=1e-4)
        assert cell.before == pytest.approx(expected, abs=1e-4)
    qa = run_cell(model, gallery, x, "QA+", 0.0, 1, samples=40, seed=3)
    s = sample_cell(
        gallery, "QA+", 1, 40, torch.Generator().manual_seed(cell_seed(3, "QA+", 0.0, 1))
    )
    expected = 100 * float(
        _brute_ranks(gallery, gallery.embeddings[s.anchors], gallery.embeddings[s.partners[:, 0]])
        .mean()
    )  # fmt: skip
    assert qa.mean == pytest.approx(expected, abs=1e-4)
    assert qa.sp_mean is not None and qa.sp_mean == pytest.approx(qa.sp_before, abs=1e-6)


def test_run_cell_attacks_move_ranks(setup) -> None:
    """Over seeds 0-5 of the model and the inputs (points): CA+ -39..-48, CA- +62..+74,
    QA+ -21.5..-25, QA- +6.1..+7.2 (C ends just below C_SP, which the SP term holds at
    4.1-4.5), CA+ CI 0.8-2.4."""
    model, gallery, x = setup
    up = run_cell(model, gallery, x, "CA+", 0.2, 1, samples=60, seed=0)
    down = run_cell(model, gallery, x, "CA-", 0.2, 1, samples=60, seed=0)
    qa_up = run_cell(model, gallery, x, "QA+", 0.2, 2, samples=60, seed=0)
    qa_down = run_cell(model, gallery, x, "QA-", 0.2, 2, samples=60, seed=0)
    assert up.mean < up.before - 10 and down.mean > down.before + 10
    assert qa_up.mean < qa_up.before - 10 and qa_down.mean > qa_down.before + 5
    assert 0 < up.ci < 20
    assert up.params == {"alpha": None, "steps": None}
    assert qa_down.params == {
        "alpha": None, "steps": None, "top_fraction": 0.01, "xi": None, "sp_size": 5
    }  # fmt: skip


def test_run_cell_is_deterministic_and_batch_independent_up_to_rounding(setup) -> None:
    model, gallery, x = setup
    a = run_cell(model, gallery, x, "QA-", 0.1, 1, samples=30, seed=1, batch_size=7)
    b = run_cell(model, gallery, x, "QA-", 0.1, 1, samples=30, seed=1, batch_size=7)
    assert (a.mean, a.ci, a.sp_mean, a.before) == (b.mean, b.ci, b.sp_mean, b.before)
    # another batch size attacks the same samples; float rounding of batched forward
    # passes may break a near-tie or flip a sign(grad) entry, so agreement is up to a few
    # rank counts (one count = 100 / (|X| T) = 0.03 points here)
    c = run_cell(model, gallery, x, "QA-", 0.1, 1, samples=30, seed=1, batch_size=30)
    assert abs(c.before - a.before) <= 3 * 100 / (N * 30) + 1e-6
    assert abs(c.mean - a.mean) < 0.25 * a.ci


def test_run_cell_checks_arguments(setup) -> None:
    model, gallery, x = setup
    with pytest.raises(ValueError, match="inputs"):
        run_cell(model, gallery, x[:10], "CA+", 0.1, 1)
    with pytest.raises(ValueError, match="eps"):
        run_cell(model, gallery, x, "CA+", -0.1, 1)
    with pytest.raises(ValueError, match="attack"):
        run_cell(model, gallery, x, "XA+", 0.1, 1)


def test_shift_cell(setup) -> None:
    """Over seeds 0-5 of the model and the inputs: 0.007-0.023 at eps 0.05, 0.09-0.29 at 0.2."""
    model, _, x = setup
    zero = run_shift_cell(model, x, 0.0, samples=20)
    assert abs(zero.mean) < 1e-5
    small = run_shift_cell(model, x, 0.05, samples=20, seed=2)
    big = run_shift_cell(model, x, 0.2, samples=20, seed=2)
    assert 0 < small.mean < big.mean
    again = run_shift_cell(model, x, 0.2, samples=20, seed=2)
    assert again.mean == big.mean  # seeded random start


# --------------------------------------------------------------------------------------
# the protocol, resume, tables
_KW = {"eps": (0.0, 0.1), "sizes": (1, 2), "samples": 15, "seed": 5, "batch_size": 8}


def _strip(cells: list[CellResult]) -> list[CellResult]:
    return [replace(c, seconds=0.0) for c in cells]


def test_evaluate_resume_equals_uninterrupted(setup, tmp_path) -> None:
    model, _, x = setup
    y = torch.arange(N) % 4
    full = evaluate(model, x, y, results=tmp_path / "full.jsonl", name="m", **_KW)
    assert len(full.cells) == 2 + 4 * 2 * 2  # shift cells + attacks x eps x sizes

    seen: list[CellResult] = []

    def stop_after_five(cell: CellResult) -> None:
        seen.append(cell)
        if len(seen) == 5:
            raise KeyboardInterrupt

    path = tmp_path / "part.jsonl"
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, x, y, results=path, name="m", on_cell=stop_after_five, **_KW)
    meta, done = ResultsLog(path).read()
    assert meta is not None and meta["gallery_size"] == N and len(done) == 5
    # an interruption while writing leaves a cut-off line: it is dropped
    with path.open("a") as fh:
        fh.write('{"type": "cell", "attack": "CA')
    fresh: list[CellResult] = []
    resumed = evaluate(model, x, y, results=path, name="m", on_cell=fresh.append, **_KW)
    assert len(fresh) == len(full.cells) - 5  # only the missing cells ran
    assert _strip(resumed.cells) == _strip(full.cells)
    assert resumed.table() == full.table()
    assert resumed.recall_at_1 == full.recall_at_1
    # the file now holds every cell once and parses
    meta, done = ResultsLog(path).read()
    assert len(done) == len(full.cells)
    loaded = EvaluationResult.load(path)
    assert _strip(loaded.cells) == _strip(resumed.cells) or set(c.key for c in loaded.cells) == set(
        c.key for c in resumed.cells
    )
    # a third run computes nothing
    again: list[CellResult] = []
    evaluate(model, x, y, results=path, name="m", on_cell=again.append, **_KW)
    assert again == []
    # other T -> other cells
    evaluate(model, x, y, results=path, name="m", on_cell=again.append, **{**_KW, "samples": 16})
    assert len(again) == len(full.cells)


def test_evaluate_refuses_other_gallery(setup, tmp_path) -> None:
    model, _, x = setup
    path = tmp_path / "r.jsonl"
    evaluate(model, x, attacks=["CA+"], eps=[0.0], sizes=[1], samples=5, results=path)
    with pytest.raises(ValueError, match="different gallery"):
        evaluate(model, x[:60], attacks=["CA+"], eps=[0.0], sizes=[1], samples=5, results=path)


def test_evaluate_checks_arguments(setup) -> None:
    model, _, x = setup
    with pytest.raises(ValueError, match="attacks"):
        evaluate(model, x, attacks=["CA*"])
    with pytest.raises(ValueError, match="samples"):
        evaluate(model, x, samples=0)
    with pytest.raises(ValueError, match="at least one"):
        evaluate(model, x, eps=[])


def test_tables_and_exports(setup, tmp_path) -> None:
    model, _, x = setup
    y = torch.arange(N) % 4
    res = evaluate(model, x, y, eps=(0.0, 0.3), sizes=(1,), samples=10, name="tiny")
    paper = load_paper_table("CT")
    assert paper.get("CA+", 0.3, 1) == 1.3 and paper.get("QA-", 0.01, 10) == 1.1
    assert paper.recall_at_1 == 88.8
    assert load_paper_table("CTD").get("CA-", 0.3, 1) == 11.2
    text = format_table(res, paper=paper)
    lines = text.splitlines()
    assert lines[0].startswith("tiny: mean normalized rank") and "paper 88.8%" in lines[0]
    assert "CA+ w=1" in lines[1] and "QA- m=1" in lines[1]
    row = next(ln for ln in lines if ln.split()[0] == "0.3")
    cell = res.get("CA+", 0.3, 1)
    assert cell is not None and f"{cell.mean:.1f}±{cell.ci:.1f}" in row
    paper_row = lines[lines.index(row) + 1]
    assert paper_row.split()[:2] == ["paper", "1.3"]
    assert "Mean rank of C_SP" in text and "Maximum embedding shift" in text
    md = res.table(markdown=True)
    assert "| eps | CA+ w=1 |" in md
    csv_path = res.save_csv(tmp_path / "r.csv")
    header = csv_path.read_text().splitlines()[0].split(",")
    assert {"model", "attack", "eps", "size", "mean", "ci", "sp_mean"} <= set(header)
    js = json.loads(res.save_json(tmp_path / "r.json").read_text())
    assert js["name"] == "tiny" and len(js["cells"]) == len(res.cells)
    back = EvaluationResult.load(tmp_path / "r.json")
    assert back.cells == res.cells and back.recall_at_1 == res.recall_at_1
    assert res.shift(0.3) is not None and res.shift(0.3).attack == SHIFT  # type: ignore[union-attr]


def test_table_marks_missing_cells(setup) -> None:
    model, _, x = setup
    res = evaluate(
        model, x, attacks=["CA+", "CA-"], eps=(0.1,), sizes=(1, 2), samples=5, shift=False
    )
    assert res.cells[-1].attack == "CA-" and res.cells[-1].size == 2
    res.cells.pop()  # drop CA- w=2: its column stays, with a dash
    line = next(ln for ln in res.table().splitlines() if ln.split()[:1] == ["0.1"])
    assert line.split()[-1] == "-"


# --------------------------------------------------------------------------------------
# Fig. 1 data
@pytest.mark.parametrize("attack", ["CA+", "CA-", "QA+", "QA-"])
def test_ranking_example(setup, attack: str) -> None:
    """Over seeds 0-5 of the model and inputs and example seeds 0-2 (positions): CA+
    8-114 -> 0-5, QA+ 4-110 -> 0-39, CA- 0-17 -> 62-117, QA- 0 -> 0-22."""
    model, gallery, x = setup
    ex = ranking_example(model, gallery, x, attack, eps=0.3, k=5, seed=0)
    assert ex.before_images.shape == (5, 1, 4, 4) and ex.after_images.shape == (5, 1, 4, 4)
    assert float((ex.adversarial - ex.clean).abs().max()) <= 0.3 + 1e-6
    assert torch.equal(ex.candidate, x[ex.target])
    if attack.endswith("+"):
        assert ex.target_rank_after < ex.target_rank_before
    elif attack == "CA-":
        assert ex.target_rank_after > ex.target_rank_before
    else:  # SP-QA- (xi = 100) may keep a single top candidate in place on this tiny model
        assert ex.target_rank_after >= ex.target_rank_before
    if attack.startswith("CA"):
        pos = (ex.after_indices == ex.target).nonzero()
        if pos.numel():  # the perturbed candidate is shown in place of the clean one
            assert torch.equal(ex.after_images[int(pos[0, 0])], ex.adversarial)
    assert torch.equal(ex.before_images, x[ex.before_indices])


# --------------------------------------------------------------------------------------
# the package
def test_package_reexports_the_public_names() -> None:
    """Every public name of the former ``rankattack.evaluation`` and ``rankattack.sampling``
    modules is importable from the package, as the object its own module defines."""
    old = {
        "ATTACKS", "PAPER_EPS", "PAPER_SIZES", "SHIFT", "CellResult", "EvaluationResult",
        "PaperTable", "RankingExample", "ResultsLog", "confidence_interval", "evaluate",
        "format_table", "load_paper_table", "ranking_example", "recall_at_1", "run_cell",
        "run_shift_cell", "CellSample", "cell_seed", "sample_anchors", "sample_cell",
        "sample_top", "sample_uniform", "top_pool_size",
    }  # fmt: skip
    assert set(evaluation.__all__) == old
    for name in old:
        obj = getattr(evaluation, name)
        home = getattr(obj, "__module__", None)
        if home is not None and home.startswith("rankattack.evaluation."):
            assert getattr(importlib.import_module(home), name) is obj
