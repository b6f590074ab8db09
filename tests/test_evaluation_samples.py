"""Per-sample results of the protocol's cells, R@k / mAP, and the embedding spread."""

from __future__ import annotations

import csv
import json
import pickle

import pytest
import torch

from rankattack import Gallery
from rankattack.evaluation import (
    CellSamples,
    embedding_spread,
    evaluate,
    load_samples,
    retrieval_quality,
    run_cell,
    run_cell_samples,
    run_shift_cell,
    run_shift_cell_samples,
    summarize,
    write_samples_csv,
)
from rankattack.evaluation.sampling import cell_seed, sample_cell
from rankattack.metrics import mean_average_precision, recall_at_k


@pytest.fixture(scope="module")
def setup() -> tuple[torch.nn.Module, Gallery, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6))
    x = torch.rand(50, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(50) % 5
    return model, Gallery.from_inputs(model, x, y), x


@pytest.mark.parametrize("attack", ["CA+", "QA-"])
def test_cell_samples_summarize_to_the_cell(setup, attack: str) -> None:
    model, gallery, x = setup
    kw = {"samples": 9, "seed": 2, "batch_size": 4}
    kept = run_cell_samples(model, gallery, x, attack, 0.1, 2, adversarial=True, **kw)
    cell = run_cell(model, gallery, x, attack, 0.1, 2, **kw)
    summary = summarize(kept)
    for name in ("mean", "ci", "before", "sp_mean", "sp_before", "samples", "key"):
        a, b = getattr(summary, name), getattr(cell, name)
        assert a == pytest.approx(b, abs=1e-9) if isinstance(a, float) else a == b
    generator = torch.Generator().manual_seed(cell_seed(2, attack, 0.1, 2))
    drawn = sample_cell(gallery, attack, 2, 9, generator)
    assert torch.equal(kept.anchors, drawn.anchors) and torch.equal(kept.partners, drawn.partners)
    assert kept.rank_before.shape == kept.rank_after.shape == (9,)
    assert float(kept.rank_after.min()) >= 0 and float(kept.rank_after.max()) <= 1  # fractions
    assert kept.adversarial.shape == (9, 1, 4, 4)
    delta = (kept.adversarial - x[kept.anchors]).flatten(1)
    assert torch.allclose(kept.linf, delta.abs().amax(1)) and float(kept.linf.max()) <= 0.1 + 1e-6
    assert torch.allclose(kept.l2, delta.norm(dim=1))
    assert (kept.sp_rank_after is not None) == attack.startswith("QA")


def test_shift_cell_samples(setup) -> None:
    model, _, x = setup
    kept = run_shift_cell_samples(model, x, 0.1, samples=7, seed=1)
    cell = run_shift_cell(model, x, 0.1, samples=7, seed=1)
    assert summarize(kept).mean == pytest.approx(cell.mean)
    assert kept.shift.shape == (7,) and kept.rank_after is None and kept.adversarial is None


def test_evaluate_keeps_the_samples_and_reports_quality(setup, tmp_path) -> None:
    model, gallery, x = setup
    y = gallery.labels
    folder = tmp_path / "samples"
    res = evaluate(
        model, x, y, attacks=("CA+", "QA+"), eps=(0.0, 0.1), sizes=(1,), samples=5,
        results=tmp_path / "r.jsonl", samples_dir=folder, adversarial=True,
    )  # fmt: skip
    kept = load_samples(folder)
    assert len(kept) == len(res.cells) == 2 + 4  # 2 shift cells, 2 attacks x 2 eps
    assert {(c.attack, c.eps, c.size) for c in kept} == {
        (c.attack, c.eps, c.size) for c in res.cells
    }
    assert all(c.adversarial is not None and c.adversarial.shape[0] == 5 for c in kept)
    # R@k and mAP in percent, as the metrics module computes them in fractions
    expect = recall_at_k(gallery, ks=(1, 2, 4, 8))
    assert res.retrieval["R@2"] == pytest.approx(100 * expect[2])
    assert res.retrieval["mAP"] == pytest.approx(100 * mean_average_precision(gallery))
    assert res.recall_at_1 == pytest.approx(100 * expect[1])
    table = res.table()
    assert "R@2 = " in table and "mAP = " in table and "shift / spread" in table
    assert res.relative_shift(0.1) == pytest.approx(res.shift(0.1).mean / res.spread)
    again = type(res).load(tmp_path / "r.jsonl")
    assert again.spread == pytest.approx(res.spread) and again.retrieval == res.retrieval
    summary = json.loads(res.save_json(tmp_path / "r.json").read_text())
    assert summary["retrieval"]["R@1"] == pytest.approx(res.recall_at_1)
    assert "percent" in summary["units"]
    path = write_samples_csv(kept, tmp_path / "samples.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 6 * 5
    ca = [r for r in rows if r["attack"] == "CA+" and r["eps"] == "0.1"]
    assert len(ca) == 5 and all(0 <= float(r["rank_after"]) <= 1 for r in ca)
    with pytest.raises(ValueError, match="needs samples_dir"):
        evaluate(model, x, y, eps=(0.0,), sizes=(1,), samples=2, adversarial=True)


def test_samples_files_are_read_safely(setup, tmp_path) -> None:
    model, gallery, x = setup
    kept = run_cell_samples(model, gallery, x, "CA-", 0.05, 1, samples=3)
    path = kept.save(tmp_path / "cell.pt")
    back = CellSamples.load(path)
    assert torch.equal(back.rank_after, kept.rank_after) and back.params == kept.params
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"format": 1, "anchors": set()}, fh)
    with pytest.raises(ValueError, match="not a readable rankattack per-sample results file"):
        CellSamples.load(evil)


def test_quality_and_spread_against_brute_force() -> None:
    emb = torch.randn(30, 5, generator=torch.Generator().manual_seed(3))
    labels = torch.arange(30) % 3
    gallery = Gallery(emb, labels)
    unit = torch.nn.functional.normalize(emb, dim=1)
    d = 1 - unit @ unit.T
    i, j = torch.triu_indices(30, 30, offset=1)
    assert embedding_spread(gallery) == pytest.approx(float(d[i, j].double().median()), abs=1e-6)
    d.fill_diagonal_(float("inf"))
    nearest = d.argmin(1)
    r1 = 100 * float((labels[nearest] == labels).double().mean())
    assert retrieval_quality(gallery)["R@1"] == pytest.approx(r1)
    sampled = embedding_spread(gallery, pairs=50, seed=1)  # fewer pairs than all: sampled
    assert 0 < sampled < 2


def test_expected_cost_orders_the_cells_like_their_run_time() -> None:
    """The progress bar's weights: a cell at eps = 0 runs no PGD step and costs a small
    fraction of one at eps = 0.3; larger w / m and galleries cost more."""
    from rankattack.evaluation import expected_cost

    zero = expected_cost("CA+", 0.0, 1, 100, 900)
    big = expected_cost("CA+", 0.3, 1, 100, 900)
    assert zero == 200 and big / zero > 15
    assert expected_cost("CA+", 0.3, 1, 100, 900, steps=5) < big
    assert expected_cost("QA+", 0.3, 1, 100, 900) > big  # m + G targets
    assert expected_cost("CA+", 0.3, 10, 100, 10000) > 2 * big
    assert expected_cost("shift", 0.3, 0, 100, 900) == 100 * (2 + 30)


def test_progress_bar_is_weighted(setup, capsys) -> None:
    model, gallery, x = setup
    evaluate(model, x, gallery.labels, attacks=("CA+",), eps=(0.0, 0.1), sizes=(1,),
             samples=3, gallery=gallery, progress=True, name="m")  # fmt: skip
    err = capsys.readouterr().err
    assert "evaluating m: 100%" in err and "cell" not in err.split("100%")[-1].split("\n")[0]
