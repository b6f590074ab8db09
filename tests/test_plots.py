"""Figures: Fig. 2-style curves, per-size curves and Fig. 1-style ranking lists."""

from __future__ import annotations

import pytest
import torch

from rankattack import Gallery
from rankattack.evaluation import EvaluationResult, evaluate, ranking_example

pytest.importorskip("matplotlib")

from rankattack.plots import (
    plot_attack_curves,
    plot_ranking_example,
    plot_size_curves,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def setup() -> tuple[torch.nn.Module, Gallery, torch.Tensor, EvaluationResult, EvaluationResult]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6))
    x = torch.rand(60, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(60) % 3
    kw = {"eps": (0.0, 0.1), "sizes": (1, 2), "samples": 6, "batch_size": 6}
    a = evaluate(model, x, y, name="vanilla", **kw)
    b = evaluate(model, x, y, name="other", seed=1, **kw)
    return model, Gallery.from_inputs(model, x, y), x, a, b


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_attack_curves(setup, tmp_path) -> None:
    _, _, _, a, b = setup
    one = plot_attack_curves(a, tmp_path / "one.png")
    two = plot_attack_curves([a, b], tmp_path / "two.png", labels=["vanilla", "defended"])
    w1, h1 = _png_size(one)
    w2, h2 = _png_size(two)
    assert w1 > 3 * h1  # five panels side by side (four attacks + max shift)
    assert (w2, h2) == (w1, h1) or abs(w2 - w1) < 50
    svg = plot_attack_curves([a, b], tmp_path / "two.svg")
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "max embedding shift" in text
    assert "vanilla" in text and "other" in text
    with pytest.raises(ValueError, match="labels"):
        plot_attack_curves([a, b], tmp_path / "x.png", labels=["only one"])
    with pytest.raises(ValueError, match="results"):
        plot_attack_curves([], tmp_path / "x.png")


def test_size_curves(setup, tmp_path) -> None:
    _, _, _, a, _ = setup
    path = plot_size_curves(a, tmp_path / "sizes.svg")
    text = path.read_text()
    assert "w=2" in text and "m=1" in text


@pytest.mark.parametrize("attack", ["CA+", "QA-"])
def test_ranking_list_figure(setup, tmp_path, attack: str) -> None:
    model, gallery, x, _, _ = setup
    ex = ranking_example(model, gallery, x, attack, eps=0.2, k=4)
    path = plot_ranking_example(ex, tmp_path / "rank.svg")
    text = path.read_text()
    assert f"rank of c {ex.target_rank_before} -&gt; {ex.target_rank_after}" in text
    w, h = _png_size(plot_ranking_example(ex, tmp_path / "rank.png"))
    assert w > h  # three rows of k + 2 tiles
    with pytest.raises(TypeError, match="RankingExample"):
        plot_ranking_example("nope", tmp_path / "x.png")  # type: ignore[arg-type]


def _synthetic(name: str, scale: float, r1: float) -> EvaluationResult:
    """A result whose QA- ranks stay below 7% (the issue's flattened panel)."""
    from rankattack.evaluation import CellResult

    cells = []
    for eps in (0.0, 0.1, 0.3):
        for attack, base in (("CA+", 50.0), ("CA-", 1.0), ("QA+", 50.0), ("QA-", 1.0)):
            move = -40 * eps if attack.endswith("+") else 20 * eps
            mean = max(0.5, base + scale * move) if attack != "QA-" else 1 + 15 * eps * scale
            cells.append(CellResult(attack, eps, 1, 100, 0, mean, 0.5, base))
        cells.append(CellResult("shift", eps, 0, 100, 0, 0.5 * eps * scale, 0.01, 0.0))
    return EvaluationResult(cells, r1, name, {"metric": "cosine"}, {"R@1": r1}, 0.8 * scale)


def test_attack_curves_every_panel_readable() -> None:
    """Each panel has its legend (models with R@1) and its own rank axis from 0 to just
    above its highest point; the title says what is plotted and T; the shift panel names
    its distance, and a last panel divides the shift by the embedding spread."""
    from rankattack.plots import _attack_curves_figure

    a, b = _synthetic("vanilla", 1.0, 95.0), _synthetic("defended", 0.3, 90.0)
    fig = _attack_curves_figure([a, b], 1, ["vanilla", "defended"], "digits 16x16, T = 100")
    axes = fig.axes
    assert len(axes) == 6  # four attacks, the shift and the shift / spread
    assert "digits 16x16, T = 100" in fig._suptitle.get_text()
    for ax in axes:
        legend = ax.get_legend()
        assert legend is not None and len(legend.get_texts()) == 2
    texts = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert texts == ["vanilla (R@1 95.0%)", "defended (R@1 90.0%)"]
    qa_minus = axes[3]
    assert qa_minus.get_ylim() == pytest.approx((0.0, 1.15 * (1 + 15 * 0.3 + 0.5)))  # not 0-100
    for ax in axes[:4]:
        assert ax.get_ylim()[0] == 0 and "0 = top" in ax.get_ylabel()
    assert "cosine distance" in axes[4].get_ylabel()
    assert "spread" in axes[5].get_title()
    relative = [line.get_ydata()[-1] for line in axes[5].get_lines()]
    assert relative == pytest.approx([0.15 / 0.8, 0.045 / 0.24])  # shift / spread per model


def test_ranking_figure_says_what_it_shows(setup, tmp_path) -> None:
    model, gallery, x, _, _ = setup
    ex = ranking_example(model, gallery, x, "QA-", eps=0.2, k=4, seed=3)
    assert ex.sp_indices is not None and ex.gallery_size == 60 and ex.seed == 3
    names = ("zero", "one", "two")
    text = plot_ranking_example(ex, tmp_path / "rank.svg", class_names=names).read_text()
    assert "of 59 listed items, 0 = top" in text
    assert "the first (query, candidate) pair the protocol draws for this cell (seed 3)" in text
    assert "C_SP" in text
    assert names[ex.query_label] in text
    ca = ranking_example(model, gallery, x, "CA+", eps=0.2, k=4)
    svg = plot_ranking_example(ca, tmp_path / "ca.svg").read_text()
    assert "class " in svg and "C_SP" not in svg  # labels by number without names


def test_perturbation_figure(tmp_path) -> None:
    from rankattack.plots import plot_perturbation

    r = (torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.2
    path = plot_perturbation(r, tmp_path / "r.svg", eps=0.1, example=torch.rand(1, 6, 6))
    text = path.read_text()
    assert "universal perturbation r" in text and "clip(x + r, 0, 1)" in text
    rgb = plot_perturbation(torch.rand(3, 4, 4) * 0.1, tmp_path / "rgb.png", eps=0.1)
    assert rgb.read_bytes().startswith(PNG)
