"""The normalized Euclidean metric: values, gradients, and every place that takes a metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rankattack import (
    Gallery,
    MaxShiftAttack,
    NormalizedEuclideanDistance,
    QueryObjective,
    get_distance,
)
from rankattack.distances import METRIC_NAMES
from rankattack.losses import TripletLoss, default_margin, get_loss
from rankattack.training import TrainConfig, train
from tests.strategies import brute_distances

NAME = "normalized-euclidean"


def brute_normalized(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """float64 ``|a/|a| - b/|b||`` pair by pair."""
    a64, b64 = a.double().numpy(), b.double().numpy()
    a64 = a64 / np.linalg.norm(a64, axis=1, keepdims=True)
    b64 = b64 / np.linalg.norm(b64, axis=1, keepdims=True)
    return np.sqrt(((a64[:, None, :] - b64[None, :, :]) ** 2).sum(-1))


def nonzero_rows(n: int, dim: int = 5) -> st.SearchStrategy[torch.Tensor]:
    """Rows of small floats, none of them zero (a zero row has no direction)."""
    return (
        arrays(np.float64, (n, dim), elements=st.floats(-4, 4, width=32))
        .filter(lambda a: bool((np.abs(a).sum(1) > 1e-2).all()))
        .map(torch.from_numpy)
    )


def test_the_metric_is_registered_under_its_name():
    dist = get_distance(NAME)
    assert isinstance(dist, NormalizedEuclideanDistance) and dist.name == NAME
    assert get_distance("Normalized-Euclidean").name == NAME
    assert NAME in METRIC_NAMES
    with pytest.raises(ValueError, match="metric must be one of"):
        get_distance("normalised-euclidean")


@settings(max_examples=60, deadline=None)
@given(a=nonzero_rows(3), b=nonzero_rows(4))
def test_distances_match_brute_force_and_lie_in_0_2(a, b):
    dist = get_distance(NAME)
    pa, pb = dist.prepare(a), dist.prepare(b)
    expected = brute_normalized(a, b)
    for value in (dist.pairwise(pa, pb), dist.pairwise_exact(pa, pb)):
        np.testing.assert_allclose(value.numpy(), expected, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(dist(a[:3], b[:3]).numpy(), np.diag(expected[:3, :3]), atol=1e-7)
    assert (expected >= 0).all() and (expected <= 2 + 1e-12).all()
    # the same ranking as cosine: d_N = sqrt(2 d_C)
    cosine = brute_distances("cosine", a.float(), b.float())
    np.testing.assert_allclose(expected, np.sqrt(2 * np.clip(cosine, 0, None)), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(a=nonzero_rows(3), b=nonzero_rows(6), seed=st.integers(0, 2**16))
def test_hand_written_gradient_matches_autograd(a, b, seed):
    """Away from coincident points (there autograd's sqrt is infinite; the hand-written
    gradient takes the zero sub-gradient, as Euclidean does)."""
    dist = get_distance(NAME)
    assume(bool((dist.pairwise(dist.prepare(a), dist.prepare(b)) > 1e-3).all()))
    weight = torch.randn(3, 6, generator=torch.Generator().manual_seed(seed), dtype=a.dtype)
    pa = dist.prepare(a).requires_grad_(True)
    pb = dist.prepare(b)
    d = dist.pairwise(pa, pb)
    (auto,) = torch.autograd.grad((weight * d).sum(), pa)
    manual = dist.pairwise_grad(pa.detach(), pb, d.detach(), weight)
    torch.testing.assert_close(manual, auto, atol=1e-8, rtol=1e-6)


def test_a_gallery_ranks_as_cosine_does_but_measures_euclidean_distances():
    torch.manual_seed(0)
    emb, queries = torch.randn(50, 6), torch.randn(4, 6)
    normalized = Gallery(emb, metric=NAME)
    cosine = Gallery(emb, metric="cosine")
    assert normalized.metric == NAME and f"metric='{NAME}'" in repr(normalized)
    d_n, i_n = normalized.topk(queries, 10)
    d_c, i_c = cosine.topk(queries, 10)
    assert torch.equal(i_n, i_c)
    torch.testing.assert_close(d_n, (2 * d_c).sqrt(), atol=1e-5, rtol=0)
    c = emb[torch.tensor([[3, 4], [5, 6], [7, 8], [9, 10]])]
    torch.testing.assert_close(normalized.rank(queries, c), cosine.rank(queries, c))
    assert torch.equal(normalized.prepared.norm(dim=1).round(decimals=5), torch.ones(50))


def test_query_hinge_under_the_metric_matches_brute_force():
    torch.manual_seed(1)
    emb = torch.randn(30, 5, dtype=torch.float64)
    gallery = Gallery(emb, metric=NAME, chunk_budget=7)  # several blocks
    cands = torch.randn(2, 2, 5, dtype=torch.float64)
    q = torch.randn(2, 5, dtype=torch.float64)
    loss = QueryObjective(gallery, cands, "lower")(q)
    for i in range(2):
        d_qx = brute_normalized(q[i : i + 1], emb)[0]
        d_qc = brute_normalized(q[i : i + 1], cands[i])[0]
        expected = np.maximum(d_qx[None] - d_qc[:, None], 0).sum() / (2 * 30)
        assert float(loss[i]) == pytest.approx(expected, rel=1e-9)


def test_losses_default_to_robranks_margin():
    assert default_margin(NAME) == 0.2
    loss = get_loss("triplet", NAME)
    assert isinstance(loss, TripletLoss) and loss.margin == 0.2 and loss.metric == NAME
    a = torch.tensor([[2.0, 0.0]])
    p = torch.tensor([[0.0, 3.0]])  # normalized distance sqrt(2)
    n = torch.tensor([[5.0, 0.0]])  # normalized distance 0
    assert float(loss(a, p, n)) == pytest.approx(0.2 + 2**0.5)
    assert get_loss("contrastive", NAME).margin == 0.2


def test_max_shift_attack_measures_shifts_in_0_2():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    atk = MaxShiftAttack(model, eps=0.2, metric=NAME)
    assert atk.metric == NAME and f"metric='{NAME}'" in repr(atk)
    x = torch.rand(5, 1, 4, 4)
    result = atk.run(x)
    shift = result.shift
    assert (shift > 0).all() and (shift <= 2).all()
    with torch.no_grad():
        expected = brute_normalized(model(result.adversarial), model(x)).diagonal()
    np.testing.assert_allclose(shift.numpy(), expected, atol=1e-5)


def test_training_accepts_the_metric(tmp_path):
    cfg = TrainConfig(model="c2f1", embedding_dim=8, batch_size=8, epochs=1, metric=NAME)
    assert cfg.metric == NAME
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 8, 8, generator=gen)
    y = torch.arange(4).repeat_interleave(4)
    result = train(cfg, x, y, out_dir=tmp_path, progress=False)
    assert result.config.metric == NAME
    with pytest.raises(ValueError, match="metric"):
        TrainConfig(metric="normalized")
