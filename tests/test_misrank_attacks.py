"""The robustness benchmark's misranking attacks: TMA, LTM, GTM, GTT and their objectives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rankattack import (
    Gallery,
    GreedyTopMisrankAttack,
    GreedyTopTranslocationAttack,
    LearningToMisrankAttack,
    LearningToMisrankObjective,
    MismatchResult,
    RecallResult,
    RetainResult,
    TargetDistanceObjective,
    TargetedMismatchAttack,
)
from rankattack.attacks.base import top1_hits
from rankattack.attacks.greedytopmisrankattack import masked_position
from rankattack.metrics import recall_at_k
from tests.strategies import exact_vectors, four_hot

METRICS = ["cosine", "euclidean", "normalized-euclidean"]


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 6))


def brute(metric: str, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """float64 distances ``[len(a), len(b)]``, pair by pair."""
    a64, b64 = a.double().numpy(), b.double().numpy()
    if metric != "euclidean":
        a64 = a64 / np.linalg.norm(a64, axis=1, keepdims=True)
        b64 = b64 / np.linalg.norm(b64, axis=1, keepdims=True)
    if metric == "cosine":
        return 1.0 - a64 @ b64.T
    return np.sqrt(((a64[:, None, :] - b64[None, :, :]) ** 2).sum(-1))


def vectors(metric: str, n: int) -> st.SearchStrategy[torch.Tensor]:
    """Exactly representable embeddings: every distance is exact, so ties are real ties."""
    return four_hot(n) if metric != "euclidean" else exact_vectors("euclidean", n)


@st.composite
def labelled_case(draw: st.DrawFn, metric: str, min_size: int = 2):
    """A labelled gallery (two or three classes), queries, their labels and own copies."""
    size = draw(st.integers(min_size, 12))
    emb = draw(vectors(metric, size)).double()
    classes = draw(st.integers(2, 3))
    labels = torch.tensor(draw(st.lists(st.integers(0, classes - 1), min_size=size, max_size=size)))
    labels[:2] = torch.tensor([0, 1])  # at least two classes
    n = draw(st.integers(1, 4))
    own = None
    if draw(st.booleans()):  # the queries are gallery items (their own copy is "self")
        own = torch.tensor(draw(st.lists(st.integers(0, size - 1), min_size=n, max_size=n)))
        queries, q_labels = emb[own].clone(), labels[own].clone()
        if draw(st.booleans()):  # and moved off their copy, as an attacked query is
            queries = draw(vectors(metric, n)).double()
    else:
        queries = draw(vectors(metric, n)).double()
        q_labels = labels[
            torch.tensor(draw(st.lists(st.integers(0, size - 1), min_size=n, max_size=n)))
        ]
    budget = draw(st.sampled_from([1, 5, 2**20]))  # one item per block, a few, all
    gallery = Gallery(emb, labels, metric=metric, chunk_budget=budget)
    return gallery, queries, q_labels, own


# --- objectives against brute force ----------------------------------------------------


def brute_ltm(metric, gallery, queries, labels, own, keep_self):
    """The LTM hinge and whether its inequality holds, per query, from all distances."""
    d = brute(metric, queries, gallery.embeddings)
    g_labels = gallery.labels.numpy()
    losses, holds = [], []
    for i in range(len(queries)):
        neg = g_labels != int(labels[i])
        pos = ~neg
        if own is not None and not keep_self:
            pos[int(own[i])] = False
        if not neg.any() or not pos.any():
            losses.append(0.0)
            holds.append(True)
            continue
        far_neg, near_pos = d[i, neg].max(), d[i, pos].min()
        losses.append(max(far_neg - near_pos, 0.0))
        holds.append(bool(far_neg <= near_pos))
    return np.array(losses), holds


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("keep_self", [False, True])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_ltm_hinge_matches_brute_force_and_is_zero_iff_the_inequality_holds(
    metric, keep_self, data
):
    gallery, queries, labels, own = data.draw(labelled_case(metric))
    objective = LearningToMisrankObjective(gallery, labels, own, self_in_positives=keep_self)
    loss = objective(queries).numpy()
    expected, holds = brute_ltm(metric, gallery, queries, labels, own, keep_self)
    np.testing.assert_allclose(loss, expected, rtol=1e-9, atol=1e-12)
    assert [bool(v == 0.0) for v in loss] == holds


def test_ltm_without_own_indices_is_the_reference_variant():
    torch.manual_seed(0)
    gallery = Gallery(torch.randn(30, 5), torch.arange(30) % 3)
    own = torch.tensor([0, 4, 8])
    q = gallery.embeddings[own] + 0.05 * torch.randn(3, 5)
    none = LearningToMisrankObjective(gallery, gallery.labels[own])
    reference = LearningToMisrankObjective(gallery, gallery.labels[own], own, True)
    fixed = LearningToMisrankObjective(gallery, gallery.labels[own], own)
    torch.testing.assert_close(none(q), reference(q))
    assert (fixed(q) < reference(q)).all()  # the own copy is each query's nearest positive


@pytest.mark.parametrize("metric", METRICS)
def test_ltm_gradient_is_that_of_the_brute_force_hinge(metric):
    """Gradients flow through the two chosen items exactly (one block or many)."""
    torch.manual_seed(1)
    emb = torch.randn(40, 6, dtype=torch.float64)
    labels = torch.arange(40) % 4
    own = torch.tensor([0, 1, 2, 3, 9])
    q = (emb[own] + 0.3 * torch.randn(5, 6, dtype=torch.float64)).requires_grad_(True)
    for budget in (7, 2**20):
        gallery = Gallery(emb, labels, metric=metric, chunk_budget=budget)
        objective = LearningToMisrankObjective(gallery, labels[own], own)
        (grad,) = torch.autograd.grad(objective(q).sum(), q)
        dist = gallery.distance
        d = dist.paired(dist.prepare(q).unsqueeze(1), dist.prepare(emb).unsqueeze(0))  # [5, 40]
        same = labels[own].unsqueeze(1) == labels.unsqueeze(0)
        pos = same.clone()
        pos[torch.arange(5), own] = False
        far_neg = d.masked_fill(same, -float("inf")).amax(1)
        near_pos = d.masked_fill(~pos, float("inf")).amin(1)
        (expected,) = torch.autograd.grad((far_neg - near_pos).clamp_min(0).sum(), q)
        torch.testing.assert_close(grad, expected)
        assert grad.abs().sum() > 0


@pytest.mark.parametrize("metric", METRICS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_target_distance_objective_is_the_distance_to_each_target(metric, data):
    n = data.draw(st.integers(1, 4))
    emb, targets = data.draw(vectors(metric, n)).double(), data.draw(vectors(metric, n)).double()
    loss = TargetDistanceObjective(targets, metric)(emb).numpy()
    np.testing.assert_allclose(loss, np.diag(brute(metric, emb, targets)), atol=1e-12)
    assert [bool(v == 0) for v in loss] == [
        bool(np.allclose(brute(metric, emb[i : i + 1], targets[i : i + 1]), 0)) for i in range(n)
    ]


# --- target choice and reported numbers against brute force -------------------------------


def brute_top1_sets(d_row, own_i):
    """The items tied for the nearest place, own copy excluded."""
    row = d_row.copy()
    if own_i is not None:
        row[own_i] = np.inf
    return np.flatnonzero(row == row.min())


def brute_gtm_targets(metric, gallery, queries, own, reference):
    """Per query, every target GTM may choose (several when the top-1 is tied)."""
    d = brute(metric, queries, gallery.embeddings)
    g_labels = gallery.labels.numpy()
    allowed = []
    for i in range(len(queries)):
        own_i = None if own is None else int(own[i])
        options = set()
        for top_label in {int(g_labels[t]) for t in brute_top1_sets(d[i], own_i)}:
            other = g_labels != top_label
            if own_i is not None:
                other[own_i] = False
            if not other.any():
                options.add(None)
                continue
            row = np.where(other, d[i], np.inf)
            nearest = int(np.flatnonzero(row == row.min())[0])  # the lowest tied index
            if reference:  # its position among the items of another label, used globally
                nearest = int((g_labels[:nearest] != top_label).sum())
            options.add(nearest)
        allowed.append(options)
    return allowed


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("reference", [False, True])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_gtm_target_choice_matches_brute_force(metric, reference, data):
    gallery, queries, _, own = data.draw(labelled_case(metric, min_size=3))
    atk = GreedyTopMisrankAttack(tiny_model(), gallery, reference_index_bug=reference)
    allowed = brute_gtm_targets(metric, gallery, queries, own, reference)
    if any(None in options for options in allowed):
        with pytest.raises(ValueError, match="no target"):
            atk.choose_targets(queries, own)
        return
    chosen = atk.choose_targets(queries, own)
    assert chosen.dtype == torch.long
    for i, options in enumerate(allowed):
        assert int(chosen[i]) in options


def test_masked_position_counts_items_of_another_label_before_the_index():
    labels = torch.tensor([0, 1, 1, 0, 2, 1, 0])
    gallery = Gallery(torch.randn(7, 3), labels, chunk_budget=2)
    # items not of label 1 before index 6: 0, 3, 4 -> 3; not of label 0 before 5: 1, 2, 4
    got = masked_position(gallery, torch.tensor([1, 0, 2]), torch.tensor([6, 5, 0]))
    assert got.tolist() == [3, 3, 0]


@pytest.mark.parametrize("metric", METRICS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_recall_hits_and_gtt_retain_match_brute_force(metric, data):
    gallery, queries, labels, own = data.draw(labelled_case(metric, min_size=3))
    k = data.draw(st.integers(1, len(gallery) - 1))
    d = brute(metric, queries, gallery.embeddings)
    g_labels = gallery.labels.numpy()
    hits = top1_hits(gallery, queries, labels, own)
    atk = GreedyTopTranslocationAttack(tiny_model(), gallery, k=k)
    top1 = atk.top_k(queries, own)[:, 0]
    retained = atk.retained(queries, top1, own)
    shifted = (top1 + 1) % len(gallery)  # another item: retained iff in the top-k
    retained_other = atk.retained(queries, shifted, own)
    for i in range(len(queries)):
        own_i = None if own is None else int(own[i])
        tied = brute_top1_sets(d[i], own_i)
        assert int(top1[i]) in tied and bool(retained[i])
        tied_labels = {int(g_labels[t]) for t in tied}
        if len(tied_labels) == 1:  # R@1 is decided (no tie across labels)
            assert bool(hits[i]) == (int(labels[i]) in tied_labels)
        # retain@k of another item: decided unless it ties at the k-th place
        row = d[i].copy()
        if own_i is not None:
            row[own_i] = np.inf
        j = int(shifted[i])
        if j == own_i:
            assert not bool(retained_other[i])
            continue
        strictly_closer, at_most = (row < row[j]).sum(), (row <= row[j]).sum()
        if at_most <= k:
            assert bool(retained_other[i])
        elif strictly_closer >= k:
            assert not bool(retained_other[i])


def test_recall_hits_of_the_gallery_itself_give_recall_at_1(trained_digits):
    gallery = trained_digits.gallery
    own = torch.arange(len(gallery))
    hits = top1_hits(gallery, gallery.embeddings, gallery.labels, own)
    assert float(hits.double().mean()) == pytest.approx(recall_at_k(gallery)[1])


@pytest.mark.parametrize("metric", METRICS)
def test_tma_reports_the_cosine_to_its_target(metric):
    model = tiny_model(2)
    pool = torch.rand(20, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    gallery = Gallery.from_inputs(model, pool, metric=metric)
    idx = torch.tensor([5, 6, 7])
    result = TargetedMismatchAttack(model, gallery, eps=0.1, steps=5).run(pool[:3], idx)
    with torch.no_grad():
        before = nn.functional.cosine_similarity(model(pool[:3]), gallery.embeddings[idx])
        after = nn.functional.cosine_similarity(model(result.adversarial), gallery.embeddings[idx])
    torch.testing.assert_close(result.cosine_before, before, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.cosine_after, after, atol=1e-6, rtol=0)
    by_embedding = TargetedMismatchAttack(model, gallery, eps=0.1, steps=5).run(
        pool[:3],
        target_embeddings=3.0 * gallery.embeddings[idx],  # the cosine ignores scale
    )
    torch.testing.assert_close(by_embedding.adversarial, result.adversarial)


# --- constraints and side effects -------------------------------------------------------


def labelled_gallery(model, gen, size=20):
    return Gallery.from_inputs(
        model, torch.rand(size, 1, 4, 4, generator=gen), torch.arange(size) % 3
    )


def make_attacks(model, gallery, eps):
    return [
        ("TMA", TargetedMismatchAttack(model, gallery, eps=eps)),
        ("LTM", LearningToMisrankAttack(model, gallery, eps=eps)),
        ("LTM-ref", LearningToMisrankAttack(model, gallery, eps=eps, reference_self_bug=True)),
        ("GTM", GreedyTopMisrankAttack(model, gallery, eps=eps)),
        ("GTM-ref", GreedyTopMisrankAttack(model, gallery, eps=eps, reference_index_bug=True)),
        ("GTT", GreedyTopTranslocationAttack(model, gallery, eps=eps)),
    ]


def call(name, atk, x, labels, own):
    if name == "TMA":
        return atk(x, (own + 5) % 20)
    if name == "GTT":
        return atk(x, own)
    return atk(x, labels, own)


@settings(max_examples=20, deadline=None)
@given(
    eps=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
    steps=st.integers(1, 4),
    random_start=st.booleans(),
)
def test_adversarial_inputs_stay_in_eps_ball_and_unit_range(eps, seed, steps, random_start):
    gen = torch.Generator().manual_seed(seed)
    model = tiny_model(seed % 5)
    gallery = labelled_gallery(model, gen)
    x = torch.rand(3, 1, 4, 4, generator=gen)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 0.0, 1.0
    own = torch.tensor([0, 1, 2])
    labels = gallery.labels[own]
    for name, atk in make_attacks(model, gallery, eps):
        atk.pgd.steps = steps
        atk.pgd.alpha = max(eps / 2, 1e-3)
        atk.pgd.random_start = random_start
        adv = call(name, atk, x, labels, own)
        assert adv.shape == x.shape and adv.dtype == x.dtype
        assert (adv - x).abs().max() <= eps + 1e-6, name
        assert adv.min() >= 0.0 and adv.max() <= 1.0, name


def test_attacks_leave_inputs_model_mode_and_flags_untouched():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.3), nn.BatchNorm1d(8))
    model.train()
    model[1].weight.requires_grad_(False)
    model[2].eval()
    flags = [p.requires_grad for p in model.parameters()]
    gallery = Gallery(torch.randn(20, 8), torch.arange(20) % 3)
    x = torch.rand(3, 1, 4, 4)
    x.requires_grad_(True)
    own = torch.tensor([0, 1, 2])
    labels = own % 3
    copies = (x.detach().clone(), own.clone(), labels.clone(), gallery.embeddings.clone())
    stats = model[3].running_mean.clone()
    for name, atk in make_attacks(model, gallery, 0.1):
        call(name, atk, x, labels, own)
        assert model.training and not model[2].training and model[1].training, name
        assert [p.requires_grad for p in model.parameters()] == flags, name
        assert x.grad is None
    for before, now in zip(copies, (x, own, labels, gallery.embeddings), strict=True):
        assert torch.equal(before, now)
    assert torch.equal(model[3].running_mean, stats)


def test_runs_are_deterministic_and_results_frozen(trained_digits):
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    own = torch.arange(6)
    labels = gallery.labels[own]
    runs = [
        (
            TargetedMismatchAttack(model, gallery, eps=0.1).run(x[own], own + 10),
            LearningToMisrankAttack(model, gallery, eps=0.1).run(x[own], labels, own),
            GreedyTopMisrankAttack(model, gallery, eps=0.1).run(x[own], labels, own),
            GreedyTopTranslocationAttack(model, gallery, eps=0.1).run(x[own], own),
        )
        for _ in range(2)
    ]
    types = (MismatchResult, RecallResult, RecallResult, RetainResult)
    for first, second, kind in zip(*runs, types, strict=True):
        assert type(first) is kind
        for a, b in zip(vars(first).values(), vars(second).values(), strict=True):
            assert a is None if b is None else torch.equal(a, b)
        with pytest.raises(AttributeError):
            first.adversarial = None  # frozen
    ltm, gtm = runs[0][1], runs[0][2]
    assert ltm.target_indices is None and gtm.target_indices.shape == (6,)
    assert ltm.hit_before.dtype == torch.bool and runs[0][3].top1.dtype == torch.long


def test_repr_shows_every_parameter():
    gallery = Gallery(torch.randn(8, 6), torch.arange(8) % 2)
    model = tiny_model()
    texts = [
        repr(TargetedMismatchAttack(model, gallery, eps=0.1, random_start=True)),
        repr(LearningToMisrankAttack(model, gallery, eps=0.1, reference_self_bug=True)),
        repr(GreedyTopMisrankAttack(model, gallery, eps=0.1, reference_index_bug=True)),
        repr(GreedyTopTranslocationAttack(model, gallery, eps=0.1, k=3)),
    ]
    for text in texts:
        for part in ("eps=0.1", "alpha=0.01", "steps=20", "random_start=", "Gallery(size=8"):
            assert part in text, text
    assert "random_start=True" in texts[0]
    assert "reference_self_bug=True" in texts[1]
    assert "reference_index_bug=True" in texts[2]
    assert "k=3" in texts[3]


# --- effect on a trained model ---------------------------------------------------------


def test_each_attack_moves_its_number_on_a_trained_model(trained_digits):
    """TMA raises the cosine to the target, LTM and GTM lower R@1, GTT evicts the top-1.

    The bounds sit far from what the attacks reach. Over digits models trained with
    seeds 0-5 (40 queries, cosine gallery of the 797 held-out digits, own copies
    excluded), eps = 0.3 gives: TMA cosine -0.05-0.04 -> 0.85-0.89; LTM R@1
    0.95-0.975 -> 0.375-0.525 (the reference variant 0.40-0.55); GTM 0.95-0.975 ->
    0.00-0.05 (reference 0.025-0.15); GTT retain@4 1.0 -> 0.0. eps = 0.1 lands between
    no attack and eps = 0.3 in every case (TMA 0.34-0.42, LTM 0.75-0.90, GTM
    0.425-0.675, GTT 0.0-0.075).
    """
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    gen = torch.Generator().manual_seed(0)
    n = 40
    own = torch.randperm(len(gallery), generator=gen)[:n]
    targets = torch.randint(0, len(gallery), (n,), generator=gen)
    labels = gallery.labels[own]

    def numbers(eps):
        tma = TargetedMismatchAttack(model, gallery, eps=eps).run(x[own], targets)
        ltm = LearningToMisrankAttack(model, gallery, eps=eps).run(x[own], labels, own)
        gtm = GreedyTopMisrankAttack(model, gallery, eps=eps).run(x[own], labels, own)
        gtt = GreedyTopTranslocationAttack(model, gallery, eps=eps).run(x[own], own)
        return {
            "TMA": (tma.cosine_before.mean(), tma.cosine_after.mean()),
            "LTM": (ltm.hit_before.double().mean(), ltm.hit_after.double().mean()),
            "GTM": (gtm.hit_before.double().mean(), gtm.hit_after.double().mean()),
            "GTT": (gtt.retained_before.double().mean(), gtt.retained_after.double().mean()),
        }

    weak, strong = numbers(0.1), numbers(0.3)
    before = {name: float(pair[0]) for name, pair in strong.items()}
    after = {name: float(pair[1]) for name, pair in strong.items()}
    midway = {name: float(pair[1]) for name, pair in weak.items()}
    assert abs(before["TMA"]) < 0.3 and after["TMA"] > 0.6
    assert before["LTM"] > 0.8 and after["LTM"] < before["LTM"] - 0.25
    assert before["GTM"] > 0.8 and after["GTM"] < 0.3
    assert before["GTT"] == 1.0 and after["GTT"] < 0.3
    assert before["TMA"] <= midway["TMA"] <= after["TMA"]
    for name in ("LTM", "GTM", "GTT"):
        assert after[name] <= midway[name] <= before[name], name


# --- bad input --------------------------------------------------------------------------

GALLERY = Gallery(torch.randn(10, 6), torch.arange(10) % 3)
UNLABELLED = Gallery(torch.randn(10, 6))
ONE_CLASS = Gallery(torch.randn(10, 6), torch.zeros(10, dtype=torch.long))
MODEL = tiny_model()
X = torch.rand(2, 1, 4, 4)
Y = torch.tensor([0, 1])
OWN = torch.tensor([0, 1])


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: TargetedMismatchAttack(MODEL, GALLERY, eps=-1.0), ValueError, "eps"),
        (lambda: TargetedMismatchAttack(MODEL, torch.randn(3, 6)), TypeError, "gallery"),
        (lambda: TargetedMismatchAttack(MODEL, GALLERY)(X), ValueError, "target_indices or"),
        (
            lambda: TargetedMismatchAttack(MODEL, GALLERY)(X, torch.tensor([0, 10])),
            ValueError,
            "target_indices",
        ),
        (
            lambda: TargetedMismatchAttack(MODEL, GALLERY)(X, torch.tensor([0, 1, 2])),
            ValueError,
            "target_indices",
        ),
        (
            lambda: TargetedMismatchAttack(MODEL, GALLERY)(X, torch.tensor([[0], [1]])),
            ValueError,
            "target_indices",
        ),
        (
            lambda: TargetedMismatchAttack(MODEL, GALLERY)(X, target_embeddings=torch.randn(2, 5)),
            ValueError,
            "target_embeddings",
        ),
        (
            lambda: TargetedMismatchAttack(MODEL, GALLERY)(X * 3, torch.tensor([0, 1])),
            ValueError,
            "queries",
        ),
        (
            lambda: LearningToMisrankAttack(MODEL, UNLABELLED),
            ValueError,
            "gallery must have labels",
        ),
        (lambda: LearningToMisrankAttack(MODEL, ONE_CLASS), ValueError, "two classes"),
        (
            lambda: LearningToMisrankAttack(MODEL, GALLERY, reference_self_bug=1),
            TypeError,
            "reference_self_bug",
        ),
        (
            lambda: LearningToMisrankAttack(MODEL, GALLERY)(X, torch.tensor([0, 7])),
            ValueError,
            "labels must be classes of the gallery",
        ),
        (lambda: LearningToMisrankAttack(MODEL, GALLERY)(X, Y[:1]), ValueError, "labels"),
        (lambda: LearningToMisrankAttack(MODEL, GALLERY)(X, Y.float()), TypeError, "labels"),
        (
            lambda: LearningToMisrankAttack(MODEL, GALLERY)(X, Y, torch.tensor([1, 0])),
            ValueError,
            "query_indices must point at each query's own copy",
        ),
        (
            lambda: LearningToMisrankAttack(MODEL, GALLERY)(X, Y, torch.tensor([0])),
            ValueError,
            "query_indices",
        ),
        (lambda: GreedyTopMisrankAttack(MODEL, UNLABELLED), ValueError, "gallery must have labels"),
        (lambda: GreedyTopMisrankAttack(MODEL, ONE_CLASS), ValueError, "two classes"),
        (
            lambda: GreedyTopMisrankAttack(MODEL, GALLERY, reference_index_bug="yes"),
            TypeError,
            "reference_index_bug",
        ),
        (
            lambda: GreedyTopMisrankAttack(MODEL, GALLERY).run(X, torch.tensor([5, 1])),
            ValueError,
            "labels must be classes of the gallery",
        ),
        (
            lambda: GreedyTopMisrankAttack(MODEL, GALLERY).run(X, torch.tensor([0, 1, 2])),
            ValueError,
            "labels",
        ),
        (
            lambda: GreedyTopMisrankAttack(MODEL, GALLERY).run(X, Y, torch.tensor([0, 10])),
            ValueError,
            "query_indices",
        ),
        (lambda: GreedyTopTranslocationAttack(MODEL, GALLERY, k=0), ValueError, "k must be >= 1"),
        (lambda: GreedyTopTranslocationAttack(MODEL, GALLERY, k=10), ValueError, "k must be"),
        (lambda: GreedyTopTranslocationAttack(MODEL, GALLERY, k=2.0), TypeError, "k must be"),
        (
            lambda: GreedyTopTranslocationAttack(MODEL, GALLERY)(X, torch.tensor([0, 1, 2])),
            ValueError,
            "query_indices",
        ),
        (lambda: TargetDistanceObjective(torch.randn(2, 6), "l1"), ValueError, "metric"),
        (lambda: TargetDistanceObjective(torch.randn(6), "cosine"), ValueError, "targets"),
        (
            lambda: LearningToMisrankObjective(UNLABELLED, Y),
            ValueError,
            "gallery must have labels",
        ),
        (
            lambda: LearningToMisrankObjective(GALLERY, Y, torch.tensor([0])),
            ValueError,
            "self_indices",
        ),
        (lambda: Gallery(torch.randn(3, 2), metric="manhattan"), ValueError, "metric"),
    ],
)
def test_bad_input_is_rejected_with_a_named_error(make, error, match):
    with pytest.raises(error, match=match):
        make()
