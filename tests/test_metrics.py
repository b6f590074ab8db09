"""Tests for rankattack.metrics: Recall@K and mAP against a brute-force reference."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rankattack import Gallery
from rankattack.metrics import mean_average_precision, recall_at_k


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight other jobs for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reference(
    emb: np.ndarray, labels: np.ndarray, metric: str, ks: list[int]
) -> tuple[dict[int, float], float]:
    if metric == "cosine":
        u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        d = 1 - u @ u.T
    else:
        d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    n = len(emb)
    hits = {k: 0 for k in ks}
    aps = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        order = sorted(others, key=lambda j: (d[i, j], j))
        rel = [labels[j] == labels[i] for j in order]
        for k in ks:
            hits[k] += any(rel[:k])
        if any(rel):
            prec = [sum(rel[: r + 1]) / (r + 1) for r in range(len(rel)) if rel[r]]
            aps.append(sum(prec) / sum(rel))
    return {k: hits[k] / n for k in ks}, float(np.mean(aps)) if aps else float("nan")


def test_small_example() -> None:
    g = Gallery(
        torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]]),
        labels=torch.tensor([0, 0, 1, 0]),
    )
    assert recall_at_k(g, ks=(1, 2, 3)) == {1: 0.5, 2: 0.75, 3: 0.75}
    assert mean_average_precision(g) == pytest.approx((1 + 1 + (1 / 2 + 2 / 3) / 2) / 3)


def test_separated_classes_are_perfect() -> None:
    emb = torch.cat([torch.randn(10, 4) * 0.01 + 5 * torch.eye(4)[i] for i in range(4)])
    labels = torch.arange(4).repeat_interleave(10)
    g = Gallery(emb, labels, metric="euclidean")
    assert recall_at_k(g, ks=(1, 5)) == {1: 1.0, 5: 1.0}
    assert mean_average_precision(g) == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(3, 40),
    st.integers(2, 4),
    st.sampled_from(["cosine", "euclidean"]),
    st.sampled_from([8, 64, 2**24]),
    st.integers(0, 2**16),
)
def test_matches_brute_force(n: int, classes: int, metric: str, budget: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, 3, generator=gen, dtype=torch.float64).float()
    labels = torch.randint(0, classes, (n,), generator=gen)
    ks = sorted({1, min(2, n - 1), n - 1})
    g = Gallery(emb, labels, metric=metric, chunk_budget=budget)
    rec_ref, map_ref = _reference(emb.double().numpy(), labels.numpy(), metric, ks)
    got = recall_at_k(g, ks=ks)
    assert got == pytest.approx(rec_ref)
    if any((labels == c).sum() > 1 for c in labels.unique()):
        assert mean_average_precision(g) == pytest.approx(map_ref, abs=1e-9)


def test_bad_input() -> None:
    g = Gallery(torch.randn(5, 3), labels=torch.tensor([0, 0, 1, 1, 2]))
    with pytest.raises(ValueError, match="labels"):
        recall_at_k(Gallery(torch.randn(5, 3)))
    with pytest.raises(ValueError, match="labels"):
        mean_average_precision(Gallery(torch.randn(5, 3)))
    with pytest.raises(ValueError, match=r"ks must be .* \[1, 4\]"):
        recall_at_k(g, ks=(5,))
    with pytest.raises(ValueError, match="ks"):
        recall_at_k(g, ks=(0,))
    with pytest.raises(TypeError, match="Gallery"):
        recall_at_k(torch.randn(5, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no class has two items"):
        mean_average_precision(Gallery(torch.randn(3, 3), labels=torch.tensor([0, 1, 2])))
