"""Gallery: ranks, nearest neighbours and hinge sums against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rankattack import Gallery, get_distance
from rankattack.distances import row_chunks
from tests.strategies import brute_distances, exact_vectors

METRICS = ["cosine", "euclidean"]


@st.composite
def ranking_case(draw: st.DrawFn, metric: str):
    n_gallery = draw(st.integers(1, 25))
    n_query = draw(st.integers(1, 4))
    k = draw(st.integers(1, 3))
    gallery = draw(exact_vectors(metric, n_gallery))
    queries = draw(exact_vectors(metric, n_query))
    # candidates: a mix of gallery copies (ties) and fresh vectors
    fresh = draw(exact_vectors(metric, n_query * k)).view(n_query, k, -1)
    pick = draw(st.lists(st.integers(0, n_gallery - 1), min_size=n_query * k, max_size=n_query * k))
    copies = gallery[torch.tensor(pick)].view(n_query, k, -1)
    use_copy = draw(st.lists(st.booleans(), min_size=n_query * k, max_size=n_query * k))
    mask = torch.tensor(use_copy).view(n_query, k, 1)
    candidates = torch.where(mask, copies, fresh)
    budget = draw(st.sampled_from([1, 7, 64, 2**20]))
    return gallery, queries, candidates, budget


@pytest.mark.parametrize("metric", METRICS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_rank_equals_brute_force_sorting(metric, data):
    gallery_emb, queries, candidates, budget = data.draw(ranking_case(metric))
    gallery = Gallery(gallery_emb, metric=metric, chunk_budget=budget)
    ranks = gallery.rank(queries, candidates)
    d_qx = brute_distances(metric, queries, gallery_emb)  # [N, |X|]
    for i in range(queries.shape[0]):
        order = np.sort(d_qx[i])
        for j in range(candidates.shape[1]):
            d_qc = brute_distances(metric, queries[i : i + 1], candidates[i, j : j + 1])[0, 0]
            # position of the first gallery item not strictly closer, in the sorted list
            expected = int(np.searchsorted(order, d_qc, side="left"))
            assert ranks[i, j].item() == pytest.approx(expected / len(gallery_emb))


@pytest.mark.parametrize("metric", METRICS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_topk_matches_brute_force_with_exclusions(metric, data):
    gallery_emb, queries, _, budget = data.draw(ranking_case(metric))
    n_x = len(gallery_emb)
    k = data.draw(st.integers(0, n_x))
    excl = data.draw(
        st.lists(st.integers(-1, n_x - 1), min_size=2 * len(queries), max_size=2 * len(queries))
    )
    excl_t = torch.tensor(excl).view(len(queries), 2)
    gallery = Gallery(gallery_emb, metric=metric, chunk_budget=budget)
    dist, idx = gallery.topk(queries, k, exclude_indices=excl_t)
    d_qx = brute_distances(metric, queries, gallery_emb)
    for i in range(len(queries)):
        allowed = [x for x in range(n_x) if x not in excl[2 * i : 2 * i + 2]]
        expected = sorted(d_qx[i, allowed])[:k]
        got = dist[i][torch.isfinite(dist[i])].double().numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)
        valid = idx[i][idx[i] >= 0].tolist()
        assert not set(valid) & set(excl[2 * i : 2 * i + 2])
        np.testing.assert_allclose(d_qx[i, valid], expected, atol=1e-6)
        assert (idx[i][len(expected) :] == -1).all()


def test_topk_skips_copies_of_excluded_embeddings():
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    gallery = Gallery(emb, metric="cosine")
    _, idx = gallery.topk(emb[:1], 2, exclude_embeddings=emb[:1].unsqueeze(1))
    assert idx.tolist() == [[2, 3]]


@st.composite
def hinge_case(draw: st.DrawFn, metric: str):
    gallery = draw(exact_vectors(metric, draw(st.integers(1, 20))))
    anchors = draw(exact_vectors(metric, draw(st.integers(1, 4))))
    k = draw(st.integers(1, 3))
    t = draw(
        st.lists(
            st.floats(0.0, 6.0, width=32), min_size=len(anchors) * k, max_size=len(anchors) * k
        )
    )
    signs = draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=k, max_size=k))
    budget = draw(st.sampled_from([1, 5, 2**20]))
    return gallery, anchors, torch.tensor(t).view(len(anchors), k), torch.tensor(signs), budget


@pytest.mark.parametrize("metric", METRICS)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_hinge_values_and_gradients_match_autograd(metric, data):
    gallery_emb, anchors, t, signs, budget = data.draw(hinge_case(metric))
    gallery = Gallery(gallery_emb.double(), metric=metric, chunk_budget=budget)
    dist = get_distance(metric)
    # move anchors off the lattice so no distance sits exactly on a hinge kink
    a = (anchors.double() + 0.01 * torch.randn_like(anchors.double())).requires_grad_(True)
    tt = t.double().requires_grad_(True)
    out = gallery.hinge(dist.prepare(a), tt, signs.double())
    weights = torch.rand_like(out)
    ga, gt = torch.autograd.grad((out * weights).sum(), (a, tt))

    a2 = a.detach().clone().requires_grad_(True)
    t2 = tt.detach().clone().requires_grad_(True)
    pa = dist.prepare(a2)
    d = dist.paired(pa.unsqueeze(1), gallery.prepared.unsqueeze(0))  # [M, |X|]
    ref = (signs.double().view(1, -1, 1) * (t2.unsqueeze(2) - d.unsqueeze(1))).clamp_min(0).sum(-1)
    ga2, gt2 = torch.autograd.grad((ref * weights).sum(), (a2, t2))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(gt, gt2)
    torch.testing.assert_close(ga, ga2)


def test_blocks_respect_the_budget(monkeypatch):
    """No gallery-wide intermediate exceeds chunk_budget elements."""
    torch.manual_seed(0)
    budget = 300
    gallery = Gallery(torch.randn(1000, 16), metric="euclidean", chunk_budget=budget)
    seen: list[int] = []
    original = type(gallery.distance).pairwise

    def recording(self, a, b):
        out = original(self, a, b)
        seen.append(out.numel())
        return out

    monkeypatch.setattr(type(gallery.distance), "pairwise", recording)
    q = torch.randn(6, 16, requires_grad=True)
    gallery.rank(q.detach(), torch.randn(6, 2, 16))
    gallery.topk(q.detach(), 5)
    h = gallery.hinge(q, torch.rand(6, 3), (1.0, -1.0, 1.0))
    h.sum().backward()
    assert seen and max(seen) <= budget
    assert all(e - s <= budget // 6 for s, e in row_chunks(6, 1000, budget))


def test_gallery_metadata_and_repr():
    emb = torch.randn(5, 3)
    labels = torch.arange(5)
    g = Gallery(emb, labels, metric="euclidean")
    assert len(g) == 5 and g.dim == 3 and g.metric == "euclidean"
    assert torch.equal(g.embeddings, emb) and torch.equal(g.labels, labels)
    assert "size=5" in repr(g) and "euclidean" in repr(g)
    d = g.distances(emb[:2])
    assert d.shape == (2, 5) and torch.allclose(d.diagonal(), torch.zeros(2), atol=1e-3)


def test_from_inputs_batches_and_restores_mode():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Dropout(0.5))
    model.train()
    x = torch.rand(10, 1, 2, 2)
    g = Gallery.from_inputs(model, x, batch_size=3)
    assert model.training
    model.eval()
    torch.testing.assert_close(g.embeddings, model(x).detach())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"embeddings": [[1.0]]}, TypeError, "embeddings"),
        ({"embeddings": torch.ones(3)}, ValueError, "embeddings"),
        ({"embeddings": torch.ones(3, 2, dtype=torch.long)}, TypeError, "embeddings"),
        ({"embeddings": torch.tensor([[1.0, float("nan")]])}, ValueError, "NaN"),
        (
            {"embeddings": torch.ones(3, 2), "labels": torch.ones(2, dtype=torch.long)},
            ValueError,
            "labels",
        ),
        ({"embeddings": torch.ones(3, 2), "labels": torch.ones(3)}, TypeError, "labels"),
        ({"embeddings": torch.ones(3, 2), "metric": "manhattan"}, ValueError, "metric"),
        ({"embeddings": torch.ones(3, 2), "chunk_budget": 0}, ValueError, "chunk_budget"),
    ],
)
def test_gallery_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        Gallery(**kwargs)


def test_rank_rejects_bad_shapes():
    g = Gallery(torch.randn(4, 3))
    with pytest.raises(ValueError, match="candidate_embeddings"):
        g.rank(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="dimension 3"):
        g.rank(torch.randn(2, 5), torch.randn(2, 1, 5))
    with pytest.raises(ValueError, match="N = 2"):
        g.rank(torch.randn(2, 3), torch.randn(3, 1, 3))
    with pytest.raises(ValueError, match="k must be"):
        g.topk(torch.randn(1, 3), 5)


@pytest.mark.parametrize("metric", METRICS)
def test_a_candidates_own_gallery_copy_is_not_strictly_closer(metric):
    """Rounding of different distance kernels must not count c's copy as closer than c."""
    gen = torch.Generator().manual_seed(0)
    emb = 8.0 * torch.randn(2000, 64, generator=gen)  # norms around 64
    gallery = Gallery(emb, metric=metric)
    pick = torch.randperm(2000, generator=gen)[:500]
    queries = emb[torch.randint(0, 2000, (500,), generator=gen)]
    ranks = gallery.rank(queries, emb[pick].unsqueeze(1))[:, 0]
    d = brute_distances(metric, queries, emb)  # float64
    d_c = d[np.arange(500), pick.numpy()]
    counts = np.rint(ranks.double().numpy() * 2000)
    scale = d.max()
    # items closer by a clear margin are counted; the copy itself (d == d_c) never is, nor
    # anything farther; only genuine float32 near-ties (within 1e-5 scale) may go either way
    surely_closer = (d < d_c[:, None] - 1e-5 * scale).sum(1)
    d[np.arange(500), pick.numpy()] = np.inf  # the copy
    maybe_closer = (d < d_c[:, None] + 1e-5 * scale).sum(1)
    assert (counts >= surely_closer).all() and (counts <= maybe_closer).all()


def test_euclidean_neighbours_skip_the_query_copy_at_large_norms():
    gen = torch.Generator().manual_seed(1)
    emb = 8.0 + torch.randn(3000, 32, generator=gen)  # far from the origin: cancellation-prone
    gallery = Gallery(emb, metric="euclidean")
    q = emb[:300]
    _, idx = gallery.topk(q, 3, exclude_embeddings=q.unsqueeze(1))
    assert not (idx == torch.arange(300).unsqueeze(1)).any()
    d = brute_distances("euclidean", q, emb)
    d[np.arange(300), np.arange(300)] = np.inf
    np.testing.assert_array_equal(idx.numpy(), np.argsort(d, axis=1, kind="stable")[:, :3])


def test_hinge_and_from_inputs_reject_bad_input():
    g = Gallery(torch.randn(5, 3))
    with pytest.raises(ValueError, match="anchors"):
        g.hinge(torch.randn(3, 3), torch.rand(4, 1), (1.0,))
    with pytest.raises(ValueError, match="thresholds"):
        g.hinge(torch.randn(3, 3), torch.rand(3), (1.0,))
    with pytest.raises(ValueError, match="signs"):
        g.hinge(torch.randn(3, 3), torch.rand(3, 2), (1.0, 0.5))
    with pytest.raises(ValueError, match="inputs"):
        Gallery.from_inputs(lambda v: v.flatten(1), torch.rand(0, 1, 2, 2))
