"""The paper's sampling rules: cell seeds, anchors, uniform and top-1% partners."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rankattack import Gallery
from rankattack.evaluation.sampling import (
    cell_seed,
    sample_anchors,
    sample_cell,
    sample_top,
    sample_uniform,
    top_pool_size,
)

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


def test_cell_seed_is_stable_and_distinct() -> None:
    a = cell_seed(0, "CA+", 0.1, 1)
    assert a == cell_seed(0, "CA+", 0.1, 1)
    assert 0 <= a < 2**63
    others = {
        cell_seed(1, "CA+", 0.1, 1),
        cell_seed(0, "CA-", 0.1, 1),
        cell_seed(0, "CA+", 0.3, 1),
        cell_seed(0, "CA+", 0.1, 2),
    }
    assert a not in others and len(others) == 4


def test_top_pool_size() -> None:
    assert top_pool_size(10000, 1) == 100  # top-1% of Fashion-MNIST's test set
    assert top_pool_size(10000, 10) == 100
    assert top_pool_size(899, 1) == 8
    assert top_pool_size(120, 5) == 5  # widened to hold 5 distinct partners
    assert top_pool_size(120, 1) == 1
    with pytest.raises(ValueError, match="size"):
        top_pool_size(10, 10)
    with pytest.raises(ValueError, match="top_fraction"):
        top_pool_size(100, 1, top_fraction=0.0)


def test_sample_anchors_distinct_then_cycles() -> None:
    g = torch.Generator().manual_seed(0)
    a = sample_anchors(50, 50, g)
    assert sorted(a.tolist()) == list(range(50))  # T = |X|: every item once
    b = sample_anchors(50, 120, torch.Generator().manual_seed(0))
    counts = torch.bincount(b, minlength=50)
    assert int(counts.min()) == 2 and int(counts.max()) == 3


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 40),
    size=st.integers(1, 6),
    seed=st.integers(0, 2**31),
)
def test_sample_uniform_excludes_anchor_and_is_distinct(n: int, size: int, seed: int) -> None:
    size = min(size, n - 1)
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randint(0, n, (30,), generator=g)
    p = sample_uniform(n, anchors, size, g)
    assert p.shape == (30, size)
    assert int(p.min()) >= 0 and int(p.max()) < n
    assert not bool((p == anchors.unsqueeze(1)).any())
    for row in p.tolist():
        assert len(set(row)) == size


@pytest.mark.parametrize("size", [1, 3])
def test_sample_uniform_is_uniform(size: int) -> None:
    n, t = 10, 6000
    anchors = torch.zeros(t, dtype=torch.long)
    p = sample_uniform(n, anchors, size, torch.Generator().manual_seed(3))
    counts = torch.bincount(p.flatten(), minlength=n).double()
    assert counts[0] == 0
    expected = t * size / (n - 1)
    # each of the 9 eligible items within 5 sigma of its binomial mean
    sigma = math.sqrt(expected * (1 - size / (n - 1)))
    assert bool(((counts[1:] - expected).abs() < 5 * sigma).all())


@pytest.mark.parametrize("size", [1, 2, 5])
def test_sample_top_draws_from_top_neighbours(setup, size: int) -> None:
    _, gallery, _ = setup
    g = torch.Generator().manual_seed(7)
    anchors = sample_anchors(N, N, g)
    frac = 0.05  # pool of 6 items out of 120
    partners = sample_top(gallery, anchors, size, g, top_fraction=frac)
    pool = top_pool_size(N, size, frac)
    d = gallery.distance.pairwise(gallery.prepared[anchors], gallery.prepared)
    d[torch.arange(N), anchors] = math.inf
    order = d.argsort(1)
    for i in range(N):
        row = set(partners[i].tolist())
        assert len(row) == size
        assert int(anchors[i]) not in row
        assert row <= set(order[i, :pool].tolist())
    # R(a, x) <= pool / |X|: at most the anchor itself and pool - 1 others are closer
    full = gallery.distance.pairwise(gallery.prepared[anchors], gallery.prepared)
    for j in range(size):
        t = full.gather(1, partners[:, j : j + 1])
        ranks = (full < t).float().mean(1)
        assert float(ranks.max()) <= pool / N + 1e-9


def test_sample_top_covers_whole_pool(setup) -> None:
    _, gallery, _ = setup
    anchors = torch.full((400,), 5, dtype=torch.long)
    p = sample_top(gallery, anchors, 1, torch.Generator().manual_seed(0), top_fraction=0.05)
    d = gallery.distance.pairwise(gallery.prepared[5:6], gallery.prepared)[0]
    d[5] = math.inf
    assert set(p.flatten().tolist()) == set(d.argsort()[:6].tolist())


def test_sample_cell_rules(setup) -> None:
    _, gallery, _ = setup
    for attack in ("CA+", "QA+"):
        s = sample_cell(gallery, attack, 2, 50, torch.Generator().manual_seed(0))
        assert s.anchors.shape == (50,) and s.partners.shape == (50, 2)
        assert len(set(s.anchors.tolist())) == 50
    ca = sample_cell(gallery, "CA-", 1, 60, torch.Generator().manual_seed(0))
    # CA-: the query is among the candidate's top-1% (pool of 1 item: its nearest other)
    d = gallery.distance.pairwise(gallery.prepared[ca.anchors], gallery.prepared)
    d[torch.arange(60), ca.anchors] = math.inf
    assert torch.equal(ca.partners[:, 0], d.argmin(1))
    s1 = sample_cell(gallery, "QA-", 1, 60, torch.Generator().manual_seed(4))
    s2 = sample_cell(gallery, "QA-", 1, 60, torch.Generator().manual_seed(4))
    assert torch.equal(s1.anchors, s2.anchors) and torch.equal(s1.partners, s2.partners)
    with pytest.raises(ValueError, match="attack"):
        sample_cell(gallery, "CA", 1, 5, torch.Generator())
    with pytest.raises(ValueError, match="samples"):
        sample_cell(gallery, "CA+", 1, 0, torch.Generator())
