"""Attacks: constraints, side effects, effectiveness on a trained model, argument checks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rankattack import (
    CandidateAttack,
    EmbeddingModel,
    Gallery,
    LinfPGD,
    MaxShiftAttack,
    QueryAttack,
    RankingObjective,
)
from rankattack.attacks.targets import TargetResolver
from rankattack.pgd import default_alpha, default_steps


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 6))


def make_attacks(model, gallery, eps):
    return [
        ("CA+", CandidateAttack(model, gallery, "raise", eps=eps)),
        ("CA-", CandidateAttack(model, gallery, "lower", eps=eps)),
        ("QA+", QueryAttack(model, gallery, "raise", eps=eps, sp_size=2)),
        ("QA-", QueryAttack(model, gallery, "lower", eps=eps, sp_size=2)),
        ("MS", MaxShiftAttack(model, eps=eps)),
    ]


def call(name, atk, x, pool):
    n = x.shape[0]
    if name.startswith("CA"):
        return atk(x, pool[: n * 2].view(n, 2, *x.shape[1:]))
    if name.startswith("QA"):
        return atk(x, candidate_indices=torch.arange(n * 2).view(n, 2) % 20)
    return atk(x)


@settings(max_examples=25, deadline=None)
@given(
    eps=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
    steps=st.integers(1, 4),
    random_start=st.booleans(),
)
def test_adversarial_inputs_stay_in_eps_ball_and_unit_range(eps, seed, steps, random_start):
    gen = torch.Generator().manual_seed(seed)
    model = tiny_model(seed % 7)
    x = torch.rand(3, 1, 4, 4, generator=gen)
    x[0, 0, 0, 0] = 0.0
    x[1, 0, 0, 0] = 1.0
    pool = torch.rand(6, 1, 4, 4, generator=gen)
    gallery = Gallery.from_inputs(model, torch.rand(20, 1, 4, 4, generator=gen))
    for name, atk in make_attacks(model, gallery, eps):
        atk.pgd.steps = steps
        atk.pgd.alpha = max(eps / 2, 1e-3)
        atk.pgd.random_start = random_start
        adv = call(name, atk, x, pool)
        assert adv.shape == x.shape and adv.dtype == x.dtype
        assert (adv - x).abs().max() <= eps + 1e-6, name
        assert adv.min() >= 0.0 and adv.max() <= 1.0, name


def test_attacks_leave_inputs_model_mode_and_flags_untouched():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.3), nn.BatchNorm1d(8))
    model.train()
    model[1].weight.requires_grad_(False)  # a frozen layer must stay frozen, others trainable
    model[2].eval()  # a submodule in its own mode must get it back
    flags = [p.requires_grad for p in model.parameters()]
    gallery = Gallery(torch.randn(20, 8))
    x = torch.rand(3, 1, 4, 4)
    pool = torch.rand(6, 1, 4, 4)
    x.requires_grad_(True)  # a caller's leaf tensor: no gradient may leak into it
    x_copy, pool_copy = x.detach().clone(), pool.clone()
    stats = model[3].running_mean.clone()
    for name, atk in make_attacks(model, gallery, 0.1):
        call(name, atk, x, pool)
        assert model.training and not model[2].training and model[1].training, name
        assert [p.requires_grad for p in model.parameters()] == flags, name
        assert x.grad is None
    assert torch.equal(x, x_copy) and torch.equal(pool, pool_copy)
    assert torch.equal(model[3].running_mean, stats)  # eval mode: no BatchNorm update


def top_percent_neighbours(gallery, idx, count, gen):
    """For each gallery item, ``count`` distinct neighbours drawn from its top 1%."""
    k = max(count, len(gallery) // 100)
    _, nn_idx = gallery.topk(gallery.embeddings[idx], k, exclude_indices=idx[:, None])
    pick = torch.stack([torch.randperm(k, generator=gen)[:count] for _ in range(len(idx))])
    return torch.gather(nn_idx, 1, pick)


def test_four_attacks_succeed_on_a_trained_model(trained_digits):
    """Each attack moves ranks the way its objective asks, with a wide margin.

    The bounds sit far from what the attacks reach: over digits models trained with
    seeds 0-5 (a stronger perturbation of the model than another machine's rounding),
    eps = 0.3 gives CA+ 0.51-0.57 -> 0.03-0.05, CA- 0.011-0.013 -> 0.65-0.69, QA+
    0.50-0.57 -> 0.07-0.10, QA- 0.005 -> 0.056-0.080 with its SP ranks at most 0.025,
    and eps = 0.1 lands between no attack and eps = 0.3 in every case.
    """
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    gen = torch.Generator().manual_seed(0)
    n = 40
    cand = torch.randperm(len(gallery), generator=gen)[:n]
    queries = torch.randint(0, len(gallery), (n, 1), generator=gen)
    top = top_percent_neighbours(gallery, cand, 1, gen)  # CA-/QA-: targets from the top 1%

    def run_all(eps):
        return {
            "CA+": CandidateAttack(model, gallery, "raise", eps=eps).run(x[cand], x[queries]),
            "CA-": CandidateAttack(model, gallery, "lower", eps=eps).run(x[cand], x[top]),
            "QA+": QueryAttack(model, gallery, "raise", eps=eps).run(
                x[cand], candidate_indices=queries, query_indices=cand
            ),
            "QA-": QueryAttack(model, gallery, "lower", eps=eps).run(
                x[cand], candidate_indices=top, query_indices=cand
            ),
        }

    weak, strong = run_all(0.1), run_all(0.3)
    before = {name: float(r.rank_before.mean()) for name, r in strong.items()}
    after = {name: float(r.rank_after.mean()) for name, r in strong.items()}
    midway = {name: float(r.rank_after.mean()) for name, r in weak.items()}

    assert before["CA+"] > 0.3 and before["QA+"] > 0.3  # uniform targets: mid-list
    assert before["CA-"] < 0.03 and before["QA-"] < 0.03  # top-1% targets: near the top
    assert after["CA+"] < 0.25 * before["CA+"]
    assert after["QA+"] < 0.4 * before["QA+"]
    assert after["CA-"] > before["CA-"] + 0.3
    assert after["QA-"] > before["QA-"] + 0.02
    for name in ("CA+", "QA+"):  # raising: a larger ball reaches higher
        assert after[name] <= midway[name] <= before[name], name
    for name in ("CA-", "QA-"):  # lowering: a larger ball pushes further down
        assert after[name] >= midway[name] >= before[name], name
    # the SP term (xi = 100) keeps the query's other top results near the top
    assert strong["QA+"].sp_rank_before.mean() < 0.01
    assert strong["QA-"].sp_rank_after.mean() < 0.06


def test_qa_accepts_candidate_inputs_like_indices(trained_digits):
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    idx = torch.tensor([[3, 4], [5, 6]])
    atk = QueryAttack(model, gallery, "raise", eps=0.05, steps=5)
    by_index = atk.run(x[:2], candidate_indices=idx)
    by_input = atk.run(x[:2], candidates=x[idx])
    torch.testing.assert_close(by_index.rank_before, by_input.rank_before)
    torch.testing.assert_close(by_index.adversarial, by_input.adversarial, atol=1e-5, rtol=0)
    by_embedding = atk.run(x[:2], candidate_embeddings=gallery.embeddings[idx])
    torch.testing.assert_close(by_index.adversarial, by_embedding.adversarial)
    torch.testing.assert_close(by_index.sp_rank_after, by_embedding.sp_rank_after)


def test_semantic_set_excludes_targets_and_the_query_copy(trained_digits):
    model, gallery = trained_digits.model, trained_digits.gallery
    atk = QueryAttack(model, gallery, "lower", eps=0.1, sp_size=5)
    q = torch.tensor([0, 1, 2])
    targets = top_percent_neighbours(gallery, q, 2, torch.Generator().manual_seed(0))
    sp = atk.semantic_set(gallery.embeddings[q], gallery.embeddings[targets], targets, q[:, None])
    _, nearest = gallery.topk(gallery.embeddings[q], 8)
    for i in range(3):
        assert q[i] not in sp[i] and not set(sp[i].tolist()) & set(targets[i].tolist())
        expected = [j for j in nearest[i].tolist() if j != q[i] and j not in targets[i]][:5]
        assert sp[i].tolist() == expected


def test_target_resolver_names_the_same_targets_three_ways():
    """Gallery indices, inputs and embeddings of the chosen candidates resolve alike."""
    model = tiny_model(3)
    pool = torch.rand(12, 1, 4, 4)
    gallery = Gallery.from_inputs(model, pool)
    atk = QueryAttack(model, gallery)
    x, idx = pool[:3], torch.tensor([[4, 5], [6, 7], [8, 9]])
    resolve = TargetResolver(atk, gallery, x, "queries", "query")
    by_index = resolve.candidates(idx, query_indices=torch.arange(3))
    by_input = resolve.candidates(candidates=pool[idx])
    by_embedding = resolve.candidates(candidate_embeddings=gallery.embeddings[idx])
    assert torch.equal(by_index.indices, idx) and by_index.query_indices.shape == (3, 1)
    assert by_input.indices is None and by_input.query_indices is None
    torch.testing.assert_close(by_input.embeddings, by_index.embeddings)
    torch.testing.assert_close(by_embedding.embeddings, by_index.embeddings)
    queries = resolve.queries(pool[idx], None)
    torch.testing.assert_close(queries, resolve.queries(None, gallery.embeddings[idx]))
    with pytest.raises(ValueError, match="give exactly one of queries or query_embeddings"):
        resolve.queries(None, None)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_max_shift_moves_embeddings_more_than_random_noise(trained_digits, metric):
    """Over digits models of seeds 0-5: 9.5-11.3x (cosine), 2.9-3.2x (Euclidean) the noise.

    The attack's jitter is drawn from its own generator: the figure does not depend on
    which tests ran before.
    """
    model, x = trained_digits.model, trained_digits.test_x[:30]
    jitter = torch.Generator().manual_seed(0)
    result = MaxShiftAttack(model, eps=0.1, metric=metric, generator=jitter).run(x)
    signs = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).sign()
    noisy = (x + 0.1 * signs).clamp(0, 1)
    with torch.no_grad():
        from rankattack import get_distance

        random_shift = get_distance(metric)(model(noisy), model(x))
    assert (result.shift > 0).all()
    assert result.shift.mean() > 2 * random_shift.mean()


def test_default_schedule_matches_the_paper():
    assert default_alpha(0.3) == 0.01 and default_steps(0.3, 0.01) == 30
    assert default_alpha(0.01) == pytest.approx(1 / 255) and default_steps(0.01, 1 / 255) == 10
    assert default_alpha(0.03) == pytest.approx(1 / 255) and default_steps(0.03, 1 / 255) == 15
    atk = CandidateAttack(tiny_model(), Gallery(torch.randn(4, 6)), eps=0.1)
    assert (atk.alpha, atk.steps) == (0.01, 20)


def test_repr_shows_every_parameter():
    gallery = Gallery(torch.randn(8, 6))
    text = repr(QueryAttack(tiny_model(), gallery, "raise", eps=0.1, xi=3.0, sp_size=2))
    for part in (
        "direction='raise'",
        "eps=0.1",
        "alpha=0.01",
        "steps=20",
        "xi=3.0",
        "sp_size=2",
        "random_start=False",
        "Gallery(size=8",
    ):
        assert part in text
    assert "metric='euclidean'" in repr(MaxShiftAttack(tiny_model(), metric="euclidean"))


def test_every_attack_repr_shows_each_constructor_parameter_but_the_model():
    import inspect

    import rankattack
    from rankattack.attacks import WhiteBoxOrderAttack

    model = tiny_model()
    gallery = Gallery(torch.randn(8, 6), torch.arange(8) % 2)
    classes = [
        getattr(rankattack, name)
        for name in rankattack.__all__
        if isinstance(getattr(rankattack, name), type)
        and issubclass(getattr(rankattack, name), rankattack.RankingAttack)
        and getattr(rankattack, name) is not rankattack.RankingAttack
    ] + [WhiteBoxOrderAttack]
    assert len(classes) == 9
    for cls in classes:
        names = [n for n in inspect.signature(cls).parameters if n not in ("model", "generator")]
        atk = cls(model) if cls is MaxShiftAttack else cls(model, gallery)
        assert list(atk._params()) == list(atk._param_names)
        assert set(atk._params()) == set(names), cls.__name__
        text = repr(atk)
        assert text.startswith(f"{cls.__name__}(model=Sequential, ")
        assert all(f"{n}=" in text for n in names), cls.__name__


def test_custom_objective_reuses_the_engine():
    class TowardOrigin(RankingObjective):
        def __call__(self, embeddings):
            return embeddings.pow(2).sum(-1)

    x = torch.full((2, 3), 0.5)
    adv = LinfPGD(eps=0.2, alpha=0.05, steps=10)(lambda v: v, x, TowardOrigin())
    torch.testing.assert_close(adv, torch.full((2, 3), 0.3))
    assert torch.equal(LinfPGD(eps=0.0)(lambda v: v, x, TowardOrigin()), x)


def test_embedding_model_wraps_dicts_tuples_and_normalization():
    base = tiny_model()
    as_dict = EmbeddingModel(lambda v: {"emb": base(v)}, output="emb")
    as_tuple = EmbeddingModel(lambda v: (None, base(v)), output=1)
    x = torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(as_dict(x), base(x))
    torch.testing.assert_close(as_tuple(x), base(x))
    normed = EmbeddingModel(base, mean=[0.5], std=[0.25])
    torch.testing.assert_close(normed(x), base((x - 0.5) / 0.25))
    gallery = Gallery.from_inputs(normed, torch.rand(10, 1, 4, 4))
    adv = CandidateAttack(normed, gallery, eps=0.1, steps=3)(x, x[:, None])
    assert (adv - x).abs().max() <= 0.1 + 1e-6
    with pytest.raises(ValueError, match="mean and std"):
        EmbeddingModel(base, mean=[0.5])
    with pytest.raises(ValueError, match="std"):
        EmbeddingModel(base, mean=[0.5], std=[0.0])
    with pytest.raises(KeyError, match="emb2"):
        EmbeddingModel(lambda v: {"emb": v}, output="emb2")(x)


GALLERY = Gallery(torch.randn(10, 6))
MODEL = tiny_model()
X = torch.rand(2, 1, 4, 4)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: CandidateAttack(MODEL, GALLERY, eps=-0.1), ValueError, "eps"),
        (lambda: CandidateAttack(MODEL, GALLERY, eps=float("nan")), ValueError, "eps"),
        (lambda: CandidateAttack(MODEL, GALLERY, alpha=0.0), ValueError, "alpha"),
        (lambda: CandidateAttack(MODEL, GALLERY, steps=-1), ValueError, "steps"),
        (lambda: CandidateAttack(MODEL, GALLERY, steps=2.5), TypeError, "steps"),
        (lambda: CandidateAttack(MODEL, GALLERY, direction="up"), ValueError, "direction"),
        (lambda: CandidateAttack(MODEL, torch.randn(3, 6)), TypeError, "gallery"),
        (lambda: CandidateAttack("model", GALLERY), TypeError, "model"),
        (lambda: QueryAttack(MODEL, GALLERY, xi=-1), ValueError, "xi"),
        (lambda: QueryAttack(MODEL, GALLERY, sp_size=10), ValueError, "sp_size"),
        (lambda: MaxShiftAttack(MODEL, metric="l1"), ValueError, "metric"),
        (lambda: MaxShiftAttack(MODEL, jitter=-1.0), ValueError, "jitter"),
        (lambda: CandidateAttack(MODEL, GALLERY)(X.numpy(), X[:, None]), TypeError, "candidates"),
        (lambda: CandidateAttack(MODEL, GALLERY)(X.long(), X[:, None]), TypeError, "candidates"),
        (lambda: CandidateAttack(MODEL, GALLERY)(X * 2, X[:, None]), ValueError, r"\[0, 1\]"),
        (lambda: CandidateAttack(MODEL, GALLERY)(X, X), ValueError, "queries"),
        (lambda: CandidateAttack(MODEL, GALLERY)(X, X[:1, None]), ValueError, "queries"),
        (lambda: CandidateAttack(MODEL, GALLERY)(X), ValueError, "queries or query_embeddings"),
        (
            lambda: CandidateAttack(MODEL, GALLERY)(X, query_embeddings=torch.randn(2, 11, 6)),
            ValueError,
            "w must be",
        ),
        (
            lambda: CandidateAttack(MODEL, GALLERY)(X, query_embeddings=torch.randn(2, 1, 5)),
            ValueError,
            "query_embeddings",
        ),
        (
            lambda: CandidateAttack(MODEL, GALLERY)(
                X, query_embeddings=torch.full((2, 1, 6), float("nan"))
            ),
            ValueError,
            "NaN",
        ),
        (
            lambda: QueryAttack(MODEL, GALLERY)(X, candidate_indices=torch.tensor([[0], [10]])),
            ValueError,
            "candidate_indices",
        ),
        (
            lambda: QueryAttack(MODEL, GALLERY)(X, candidate_indices=torch.tensor([[0.0], [1.0]])),
            TypeError,
            "candidate_indices",
        ),
        (lambda: QueryAttack(MODEL, GALLERY)(X), ValueError, "candidate_indices, candidates"),
        (
            lambda: QueryAttack(MODEL, GALLERY)(X, candidate_embeddings=torch.randn(2, 1, 4)),
            ValueError,
            "candidate_embeddings",
        ),
        (
            lambda: QueryAttack(MODEL, GALLERY)(X, candidates=torch.rand(2, 1, 1, 3, 3)),
            ValueError,
            "candidates",
        ),
        (
            lambda: QueryAttack(MODEL, GALLERY)(
                X,
                candidate_indices=torch.zeros(2, 1, dtype=torch.long),
                query_indices=torch.tensor([0, 1, 2]),
            ),
            ValueError,
            "query_indices",
        ),
        (lambda: MaxShiftAttack(lambda v: v.flatten(1)[:1])(X), ValueError, "model"),
        (lambda: MaxShiftAttack(lambda v: (v, v))(X), TypeError, "model"),
        (lambda: MaxShiftAttack(lambda v: torch.ones(len(v), 6))(X), ValueError, "depend"),
        (
            lambda: CandidateAttack(lambda v: v.flatten(1)[:, :5], GALLERY)(X, X[:, None]),
            ValueError,
            "dimension",
        ),
    ],
)
def test_bad_input_is_rejected_with_a_named_error(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_importing_rankattack_pulls_in_only_torch_and_numpy():
    code = (
        "import sys, torch, numpy\n"
        "before = set(sys.modules)\n"
        "import rankattack\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - {'rankattack'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_attacks_run_under_no_grad_but_not_inference_mode(trained_digits):
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    atk = CandidateAttack(model, gallery, eps=0.1, steps=5)
    plain = atk(x[:4], x[4:8, None])
    with torch.no_grad():
        inside = atk(x[:4], x[4:8, None])
    torch.testing.assert_close(plain, inside)
    assert not torch.equal(plain, x[:4])
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        atk(x[:4], x[4:8, None])


def test_float64_gallery_with_a_float32_model(trained_digits):
    model, x = trained_digits.model, trained_digits.test_x
    gallery64 = Gallery(trained_digits.gallery.embeddings.double())
    idx = torch.tensor([[1], [2]])
    r64 = QueryAttack(model, gallery64, "raise", eps=0.05, steps=3).run(
        x[:2], candidate_indices=idx
    )
    r32 = QueryAttack(model, trained_digits.gallery, "raise", eps=0.05, steps=3).run(
        x[:2], candidate_indices=idx
    )
    assert r64.rank_after.dtype == torch.float64
    torch.testing.assert_close(r64.rank_before.float(), r32.rank_before)


def test_max_shift_generator_makes_it_reproducible_without_touching_the_global_rng():
    model, x = tiny_model(), torch.rand(3, 1, 4, 4)
    state = torch.get_rng_state()
    a = MaxShiftAttack(model, eps=0.1, generator=torch.Generator().manual_seed(3))(x)
    b = MaxShiftAttack(model, eps=0.1, generator=torch.Generator().manual_seed(3))(x)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)


def test_numpy_scalars_are_accepted_as_parameters():
    import numpy as np

    atk = CandidateAttack(tiny_model(), GALLERY, eps=np.float32(0.25), steps=np.int64(3))
    assert atk.eps == pytest.approx(0.25) and atk.steps == 3 and isinstance(atk.steps, int)
