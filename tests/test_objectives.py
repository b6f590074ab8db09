"""Ranking objectives: the hinge losses are zero exactly when every inequality holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rankattack import (
    CandidateObjective,
    Gallery,
    MaxShiftObjective,
    QueryObjective,
    get_distance,
)
from tests.strategies import brute_distances, exact_vectors

METRICS = ["cosine", "euclidean"]


@st.composite
def ca_case(draw: st.DrawFn, metric: str):
    gallery = draw(exact_vectors(metric, draw(st.integers(1, 15))))
    n, w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    queries = draw(exact_vectors(metric, n * w)).view(n, w, -1)
    cands = draw(exact_vectors(metric, n))
    budget = draw(st.sampled_from([1, 2**20]))  # blockwise path and sorted path
    return gallery, queries, cands, budget


def brute_ca(metric, gallery, queries, cands, sign):
    """Eq. 4 / Eq. 7 averaged over w and |X|, in float64, pair by pair."""
    out = []
    for i in range(len(cands)):
        total = 0.0
        for q in queries[i]:
            d_qc = brute_distances(metric, q[None], cands[i : i + 1])[0, 0]
            d_qx = brute_distances(metric, q[None], gallery)[0]
            total += np.maximum(sign * (d_qc - d_qx), 0).sum()
        out.append(total / (queries.shape[1] * len(gallery)))
    return np.array(out)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("direction", ["raise", "lower"])
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_candidate_loss_matches_eq4_eq7_and_is_zero_iff_inequalities_hold(metric, direction, data):
    gallery_emb, queries, cands, budget = data.draw(ca_case(metric))
    gallery = Gallery(gallery_emb, metric=metric, chunk_budget=budget)
    objective = CandidateObjective(gallery, queries, direction)
    sign = 1.0 if direction == "raise" else -1.0
    loss = objective(cands).double().numpy()
    expected = brute_ca(metric, gallery_emb, queries, cands, sign)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-7)
    for i in range(len(cands)):
        d_qc = brute_distances(metric, queries[i], cands[i : i + 1])[:, 0]  # [w]
        d_qx = brute_distances(metric, queries[i], gallery_emb)  # [w, |X|]
        # CA+: c at least as close to every q as every gallery item; CA-: at least as far
        holds = (d_qc[:, None] <= d_qx).all() if sign > 0 else (d_qc[:, None] >= d_qx).all()
        assert (loss[i] == 0.0) == bool(holds)


@pytest.mark.parametrize("direction", ["raise", "lower"])
def test_sorted_and_blockwise_paths_agree_with_gradients(direction):
    torch.manual_seed(1)
    emb = torch.randn(200, 6, dtype=torch.float64)
    queries = torch.randn(4, 3, 6, dtype=torch.float64)
    fast = CandidateObjective(Gallery(emb, chunk_budget=2**20), queries, direction)
    slow = CandidateObjective(Gallery(emb, chunk_budget=50), queries, direction)
    assert fast._sorted is not None and slow._sorted is None
    c1 = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    c2 = c1.detach().clone().requires_grad_(True)
    l1, l2 = fast(c1), slow(c2)
    torch.testing.assert_close(l1, l2)
    g1, g2 = torch.autograd.grad(l1.sum(), c1)[0], torch.autograd.grad(l2.sum(), c2)[0]
    torch.testing.assert_close(g1, g2)
    torch.testing.assert_close(fast.ranks(c1), slow.ranks(c2))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("direction", ["raise", "lower"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_query_loss_matches_eq12(metric, direction, data):
    gallery_emb = data.draw(exact_vectors(metric, data.draw(st.integers(2, 15))))
    n, m, g = (
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(0, 3)),
    )
    cands = data.draw(exact_vectors(metric, n * m)).view(n, m, -1)
    sp = data.draw(exact_vectors(metric, n * g)).view(n, g, -1) if g else None
    queries = data.draw(exact_vectors(metric, n))
    xi = data.draw(st.sampled_from([0.0, 1.0, 100.0]))
    # float64, so that the comparison measures the formula rather than float32 rounding
    # (a hinge t - d of two distances near 14 carries ~1e-6 absolute error in float32)
    gallery = Gallery(
        gallery_emb.double(), metric=metric, chunk_budget=data.draw(st.sampled_from([1, 2**20]))
    )
    sp64 = None if sp is None else sp.double()
    objective = QueryObjective(gallery, cands.double(), direction, xi, sp64)
    loss = objective(queries.double()).numpy()
    sign = 1.0 if direction == "raise" else -1.0
    for i in range(n):
        d_qx = brute_distances(metric, queries[i : i + 1], gallery_emb)[0]
        d_qc = brute_distances(metric, queries[i : i + 1], cands[i])[0]
        main = np.maximum(sign * (d_qc[:, None] - d_qx[None]), 0).sum() / (m * len(gallery_emb))
        sp_term = 0.0
        if sp is not None:
            d_qs = brute_distances(metric, queries[i : i + 1], sp[i])[0]
            sp_term = np.maximum(d_qs[:, None] - d_qx[None], 0).sum() / (g * len(gallery_emb))
        assert loss[i] == pytest.approx(main + xi * sp_term, rel=1e-9, abs=1e-12)


def test_query_ranks_and_sp_ranks():
    emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    gallery = Gallery(emb, metric="cosine")
    objective = QueryObjective(gallery, emb[None, [2]], "raise", 1.0, emb[None, [1]])
    q = emb[:1]
    # d(q, x) = 0, 0.2, 1, 2: item 2 has two items strictly closer, item 1 one
    assert objective.ranks(q).tolist() == [0.5]
    assert objective.sp_ranks(q).tolist() == [0.25]


@pytest.mark.parametrize("metric", METRICS)
def test_max_shift_objective_is_minus_the_shift(metric):
    torch.manual_seed(0)
    ref = torch.randn(5, 4)
    moved = ref + 0.1 * torch.randn(5, 4)
    objective = MaxShiftObjective(ref, metric)
    expected = get_distance(metric)(moved, ref)
    torch.testing.assert_close(objective(moved), -expected)
    torch.testing.assert_close(objective.shift(ref), torch.zeros(5), atol=1e-6, rtol=0)


def test_objectives_validate_arguments():
    gallery = Gallery(torch.randn(5, 3))
    with pytest.raises(ValueError, match="direction"):
        CandidateObjective(gallery, torch.randn(1, 1, 3), "up")
    with pytest.raises(ValueError, match="query_embeddings"):
        CandidateObjective(gallery, torch.randn(1, 3), "raise")
    with pytest.raises(ValueError, match="xi"):
        QueryObjective(gallery, torch.randn(1, 1, 3), "raise", -1.0)
    with pytest.raises(ValueError, match="sp_embeddings"):
        QueryObjective(gallery, torch.randn(2, 1, 3), "raise", 1.0, torch.randn(1, 2, 3))
