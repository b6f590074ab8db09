"""Gallery: ranks, nearest neighbours and hinge sums against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rankattack.gallery as gallery_module
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


@st.composite
def multi_target_case(draw: st.DrawFn, metric: str):
    """Hinges over several targets, with thresholds tied to gallery distances and each other."""
    gallery = draw(exact_vectors(metric, draw(st.integers(1, 25))))
    anchors = draw(exact_vectors(metric, draw(st.integers(1, 4))))
    k = draw(st.integers(1, 7))
    # exact distances as the kernel computes them, so that ties are real ties
    dist = get_distance(metric)
    d = dist.pairwise(dist.prepare(anchors), dist.prepare(gallery))  # [M, |X|]
    columns = []
    for _ in range(k):
        kind = draw(st.sampled_from(["tie", "tie", "copy", "free"]))
        if kind == "tie" or not columns:
            pick = draw(st.lists(st.integers(0, len(gallery) - 1), min_size=len(anchors)))
            pick = (pick * len(anchors))[: len(anchors)]
            columns.append(d[torch.arange(len(anchors)), torch.tensor(pick)])
        elif kind == "copy":
            columns.append(columns[draw(st.integers(0, len(columns) - 1))].clone())
        else:
            values = draw(st.lists(st.floats(-0.5, 6.0, width=32), min_size=len(anchors)))
            columns.append(torch.tensor((values * len(anchors))[: len(anchors)]))
    signs = tuple(draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=k, max_size=k)))
    budget = draw(st.sampled_from([1, 5, 7, 2**20]))
    tile = draw(st.sampled_from([1, 3, 2**17]))
    compare_max = draw(st.sampled_from([0, 32]))  # binary search, or one comparison per target
    return gallery, anchors, torch.stack(columns, 1), signs, budget, tile, compare_max


def brute_hinge(metric, anchors, gallery, thresholds, signs, weights):
    """float64 hinge sums, their counts and d(sum w H)/d(anchor) pair by pair (strict kinks).

    ``H_ij = sum_x [s_j (t_ij - d(a_i, x))]_+``; a distance equal to its threshold is inactive.
    """
    dist = get_distance(metric)
    a = dist.prepare(anchors.double())
    g = dist.prepare(gallery.double())
    # float64 distances rounded to float32, as exact as the kernel's (correctly rounded)
    d = brute_distances(metric, anchors, gallery).astype(np.float32).astype(np.float64)
    m, k = thresholds.shape
    values, counts = np.zeros((m, k)), np.zeros((m, k))
    grad = np.zeros(tuple(a.shape))
    for i in range(m):
        for j in range(k):
            s, t = signs[j], float(thresholds[i, j])
            for x in range(len(gallery)):
                if s * (t - d[i, x]) > 0:
                    values[i, j] += s * (t - d[i, x])
                    counts[i, j] += 1
                    # d d(a, x) / d a, for prepared a
                    if metric == "cosine":
                        dd = -g[x].numpy()
                    elif d[i, x] > 0:
                        dd = (a[i] - g[x]).numpy() / d[i, x]
                    else:
                        dd = np.zeros(a.shape[1])
                    grad[i] += -s * float(weights[i, j]) * dd
    return values, counts, grad


@pytest.mark.parametrize("metric", METRICS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fused_multi_target_hinge_equals_per_target_and_brute_force(metric, data):
    """One pass for all targets = one pass per target = brute force, values and gradients.

    Thresholds tie with gallery distances and with each other; tiny budgets, tiles and
    both ways of placing a distance among the thresholds are exercised.
    """
    gallery_emb, anchors, t, signs, budget, tile, compare_max = data.draw(multi_target_case(metric))
    dist = get_distance(metric)
    gallery = Gallery(gallery_emb, metric=metric, chunk_budget=budget)
    prepared = dist.prepare(anchors)
    weights = torch.rand(t.shape, generator=torch.Generator().manual_seed(len(signs)))

    def run(fn):
        a = prepared.clone().requires_grad_(True)
        tt = t.clone().requires_grad_(True)
        out = fn(a, tt)
        ga, gt = torch.autograd.grad((out * weights).sum(), (a, tt))
        return out.detach(), ga, gt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gallery_module, "_TILE", tile)
        mp.setattr(gallery_module, "_COMPARE_MAX", compare_max)
        fused = run(lambda a, tt: gallery.hinge(a, tt, signs))
        columns = run(
            lambda a, tt: torch.cat(
                [gallery.hinge(a, tt[:, j : j + 1], signs[j : j + 1]) for j in range(len(signs))],
                1,
            )
        )
    per_target = run(
        lambda a, tt: gallery_module._GalleryHinge.apply(
            a, tt, signs, gallery.prepared, gallery.distance, budget, False
        )
    )
    for other in (columns, per_target):
        for x, y in zip(fused, other, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)

    values, counts, grad = brute_hinge(metric, anchors, gallery_emb, t, signs, weights)
    out, ga, gt = fused
    np.testing.assert_allclose(out.double().numpy(), values, rtol=1e-5, atol=1e-5)
    # zero exactly when no gallery item crosses the threshold
    np.testing.assert_array_equal(out.numpy() == 0, counts == 0)
    sign_t = np.array(signs)
    np.testing.assert_allclose(gt.double().numpy(), weights.numpy() * sign_t * counts, atol=1e-5)
    np.testing.assert_allclose(ga.double().numpy(), grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "normalized-euclidean"])
def test_fused_hinge_matches_per_target_over_blocks_and_tiles(metric):
    """Random float64 data: several gallery blocks, several tiles, many targets."""
    gen = torch.Generator().manual_seed(3)
    emb = torch.randn(3000, 16, generator=gen, dtype=torch.float64)
    anchors = get_distance(metric).prepare(torch.randn(9, 16, generator=gen, dtype=torch.float64))
    for budget, tile, k in [(2**20, 2**17, 15), (9 * 700, 1000, 40), (50, 7, 5)]:
        gallery = Gallery(emb, metric=metric, chunk_budget=budget)
        d = gallery.distances_prepared(anchors)
        t = d.quantile(torch.rand(k, generator=gen, dtype=torch.float64), dim=1).T.contiguous()
        t[:, 0] = d[:, 5]  # a tie
        signs = tuple(1.0 if v else -1.0 for v in (torch.rand(k, generator=gen) < 0.5).tolist())
        outs = []
        for fused in (True, False):
            a = anchors.clone().requires_grad_(True)
            tt = t.clone().requires_grad_(True)
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(gallery_module, "_TILE", tile)
                h = gallery_module._GalleryHinge.apply(
                    a, tt, signs, gallery.prepared, gallery.distance, budget, fused
                )
            w = torch.linspace(0.5, 1.5, h.numel(), dtype=torch.float64).view_as(h)
            outs.append((h.detach(), *torch.autograd.grad((h * w).sum(), (a, tt))))
        for x, y in zip(*outs, strict=True):
            torch.testing.assert_close(x, y)


def test_fused_hinge_with_infinite_thresholds_equals_per_target():
    """An infinite threshold activates every distance or none, as in the per-target loop."""
    gallery = Gallery(torch.randn(50, 4, generator=torch.Generator().manual_seed(0)))
    anchors = gallery.prepared[:3]
    inf = float("inf")
    t = torch.tensor([[inf, 0.5], [-inf, 0.5], [1.0, inf]])
    for signs in [(-1.0, 1.0), (1.0, -1.0)]:
        outs = []
        for fused in (True, False):
            a = anchors.clone().requires_grad_(True)
            tt = t.clone().requires_grad_(True)
            h = gallery_module._GalleryHinge.apply(
                a, tt, signs, gallery.prepared, gallery.distance, gallery.chunk_budget, fused
            )
            active = torch.isfinite(h)
            ga, gt = torch.autograd.grad(h[active].sum(), (a, tt))
            outs.append((h.detach(), ga, gt))
        (h1, ga1, gt1), (h2, ga2, gt2) = outs
        assert torch.equal(torch.isinf(h1), torch.isinf(h2)) and not h1.isnan().any()
        finite = torch.isfinite(h2)
        torch.testing.assert_close(h1[finite], h2[finite])
        torch.testing.assert_close(ga1, ga2)
        torch.testing.assert_close(gt1, gt2)
