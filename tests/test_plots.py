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
