"""Tests for rankattack.losses: triplet (Eq. 3) and contrastive losses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rankattack.distances import get_distance
from rankattack.losses import ContrastiveLoss, TripletLoss, default_margin, get_loss


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight other jobs for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


E = torch.tensor


def test_default_margins() -> None:
    assert TripletLoss("cosine").margin == 0.2
    assert TripletLoss("euclidean").margin == 1.0
    assert ContrastiveLoss("cosine").margin == 0.2
    assert ContrastiveLoss("euclidean").margin == 1.0
    assert default_margin("euclidean") == 1.0
    assert TripletLoss("cosine", margin=0.5).margin == 0.5


def test_triplet_values_cosine() -> None:
    q = E([[1.0, 0.0], [1.0, 0.0]])
    p = E([[2.0, 0.0], [0.0, 3.0]])  # cosine distances 0 and 1
    n = E([[0.0, 1.0], [1.0, 1.0]])  # cosine distances 1 and 1 - 1/sqrt(2)
    loss = TripletLoss("cosine", reduction="none")(q, p, n)
    expected = E([0.0, 0.2 + 1.0 - (1 - 2**-0.5)])
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(TripletLoss("cosine")(q, p, n), expected.mean())
    torch.testing.assert_close(TripletLoss("cosine", reduction="sum")(q, p, n), expected.sum())


def test_triplet_values_euclidean() -> None:
    q, p, n = E([[0.0, 0.0]]), E([[3.0, 4.0]]), E([[1.0, 0.0]])  # d_p = 5, d_n = 1
    torch.testing.assert_close(TripletLoss("euclidean")(q, p, n), E(1.0 + 5.0 - 1.0))
    torch.testing.assert_close(TripletLoss("euclidean")(q, n, p), E(0.0))


def test_contrastive_values() -> None:
    q, p, n = E([[0.0, 0.0]]), E([[0.0, 0.5]]), E([[0.3, 0.4]])  # d_p = 0.5, d_n = 0.5
    torch.testing.assert_close(ContrastiveLoss("euclidean")(q, p, n), E(0.5 + 0.5))
    far = E([[3.0, 4.0]])
    torch.testing.assert_close(ContrastiveLoss("euclidean")(q, p, far), E(0.5))


vectors = st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=12, max_size=12)


@settings(max_examples=40, deadline=None)
@given(vectors, st.sampled_from(["cosine", "euclidean"]), st.floats(0, 2))
def test_triplet_matches_eq3_through_the_shared_distance(
    values: list[float], metric: str, margin: float
) -> None:
    t = torch.tensor(values).view(3, 2, 2) + 0.01  # three [M=2, D=2] blocks, away from 0
    q, p, n = t[0], t[1], t[2]
    d = get_distance(metric)
    expected = (margin + d(q, p) - d(q, n)).clamp_min(0)
    got = TripletLoss(metric, margin=margin, reduction="none")(q, p, n)
    torch.testing.assert_close(got, expected)
    assert bool((got >= 0).all())
    con = ContrastiveLoss(metric, margin=margin, reduction="none")(q, p, n)
    torch.testing.assert_close(con, d(q, p) + (margin - d(q, n)).clamp_min(0))


def test_loss_is_differentiable() -> None:
    q = torch.randn(4, 5, requires_grad=True)
    loss = TripletLoss("cosine", margin=2.0)(q, torch.randn(4, 5), torch.randn(4, 5))
    loss.backward()
    assert q.grad is not None and float(q.grad.abs().sum()) > 0


def test_get_loss() -> None:
    loss = get_loss("Triplet", "euclidean", margin=0.3)
    assert isinstance(loss, TripletLoss) and loss.metric == "euclidean" and loss.margin == 0.3
    assert isinstance(get_loss("contrastive", "cosine"), ContrastiveLoss)
    with pytest.raises(ValueError, match=r"\['triplet', 'contrastive'\].*'hinge'"):
        get_loss("hinge", "cosine")
    with pytest.raises(ValueError, match="metric"):
        get_loss("triplet", "manhattan")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=-0.1)
    with pytest.raises(ValueError, match="reduction"):
        TripletLoss(reduction="max")
    with pytest.raises(ValueError, match="same shape"):
        TripletLoss()(torch.randn(2, 3), torch.randn(3, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="anchors"):
        TripletLoss()(torch.randn(3), torch.randn(3), torch.randn(3))
