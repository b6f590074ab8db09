"""Black-box attacks: budgets, feasibility, determinism, batch independence, effect, bad input."""

from __future__ import annotations

import pytest
import torch

from rankattack.attacks import WhiteBoxOrderAttack
from rankattack.blackbox import (
    ModelOracle,
    OrderAttack,
    RemovalAttack,
    ScoreCandidateAttack,
    ScoreQueryAttack,
    short_range_correlation,
)

EPS = 16 / 255


class SpyModel(torch.nn.Module):
    """Counts the images the oracle embeds."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        return self.model(x)


def in_ball(adv: torch.Tensor, x: torch.Tensor, eps: float) -> bool:
    return bool(((adv - x).abs() <= eps + 1e-6).all() and (adv >= 0).all() and (adv <= 1).all())


@pytest.mark.parametrize("optimizer", ["spsa", "nes", "rand", "square", "pso", "beta"])
def test_order_attack_respects_budget_ball_and_reports_true_tau(trained_digits, optimizer) -> None:
    d = trained_digits
    spy = SpyModel(d.model)
    budget = 121
    oracle = ModelOracle(spy, d.gallery, top_n=40, budget=budget)  # raises past the budget
    pop = 1 if optimizer == "square" else 20
    atk = OrderAttack(oracle, k=4, eps=EPS, optimizer=optimizer, budget=budget, population=pop)
    x = d.test_x[:6]
    x_copy = x.clone()
    result = atk.run(x)
    assert torch.equal(x, x_copy)
    assert in_ball(result.adversarial, x, EPS)
    used = result.queries_used
    assert used.shape == (6,) and bool((used <= budget).all()) and bool((used >= 1).all())
    assert torch.equal(used.cpu(), oracle.queries_used[:6])
    assert int(used.sum()) == spy.seen  # every image sent is counted, nothing else
    stopped = result.tau > 0.99
    assert bool((used[~stopped] >= budget - 1).all())  # the budget is spent unless stopped
    # the reported tau is what the service answers for the returned inputs
    check = ModelOracle(d.model, d.gallery, top_n=40, budget=None)
    again = short_range_correlation(check(result.adversarial), result.target_order)
    torch.testing.assert_close(again, result.tau)
    assert bool((result.tau >= result.tau_before).all())
    assert torch.equal(result.target_order.sort(1).values, check(x)[:, :4].sort(1).values)


@pytest.mark.parametrize("optimizer", ["nes", "beta"])
def test_order_attack_is_deterministic_and_independent_of_the_batch(
    trained_digits, optimizer
) -> None:
    d = trained_digits
    x = d.test_x[:6]

    def attack(xs: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        oracle = ModelOracle(d.model, d.gallery, top_n=None, budget=200)
        r = OrderAttack(oracle, k=3, eps=EPS, optimizer=optimizer, budget=200, population=10,
                        seed=5).run(xs, query_ids=ids)  # fmt: skip
        return r.adversarial, r.tau, r.queries_used, r.target_order

    whole = attack(x, torch.arange(6))
    again = attack(x, torch.arange(6))
    parts = [attack(x[:2], torch.arange(2)), attack(x[2:], torch.arange(2, 6))]
    for i in range(4):
        assert torch.equal(whole[i], again[i])
        assert torch.equal(whole[i], torch.cat([p[i] for p in parts]))
    other = OrderAttack(ModelOracle(d.model, d.gallery, top_n=None, budget=200), k=3, eps=EPS,
                        optimizer=optimizer, budget=200, population=10, seed=6).run(x)  # fmt: skip
    assert not torch.equal(other.adversarial, whole[0])


def test_order_attack_raises_tau_by_a_wide_margin(trained_digits) -> None:
    # measured mean tau_S gains over seeds 0..4 on these 40 queries: 0.53-0.63 (NES),
    # 0.22-0.23 (SPSA: its probes are 2/255 wide for any eps)
    d = trained_digits
    x = d.test_x[:40]
    for opt, bound in (("nes", 0.3), ("spsa", 0.1)):
        oracle = ModelOracle(d.model, d.gallery, top_n=None, budget=400)
        r = OrderAttack(oracle, k=4, eps=EPS, optimizer=opt, budget=400, population=20).run(x)
        assert float(r.tau.mean() - r.tau_before.mean()) > bound, opt


def test_order_attack_target_order_and_bad_input(trained_digits) -> None:
    d = trained_digits
    oracle = ModelOracle(d.model, d.gallery, top_n=10, budget=100)
    with pytest.raises(ValueError, match="k must be <= the oracle's visible list length 10"):
        OrderAttack(oracle, k=11, budget=100)
    with pytest.raises(ValueError, match="budget must be >= 52"):
        OrderAttack(oracle, k=3, budget=40, population=50)
    with pytest.raises(ValueError, match="budget must be <= the oracle's budget 100"):
        OrderAttack(oracle, k=3, budget=200, population=10)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        OrderAttack(oracle, k=3, optimizer="adam", budget=100, population=10)
    with pytest.raises(ValueError, match="population must be even"):
        OrderAttack(oracle, k=3, optimizer="spsa", budget=100, population=9)
    with pytest.raises(ValueError, match="k must be >= 2"):
        OrderAttack(oracle, k=1, budget=100, population=10)
    atk = OrderAttack(oracle, k=3, eps=EPS, budget=100, population=10)
    assert "k=3" in repr(atk) and "budget=100" in repr(atk) and "SPSA(population=10" in repr(atk)
    x = d.test_x[:2]
    with pytest.raises(ValueError, match="target_order must be"):
        atk.run(x, target_order=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="distinct"):
        atk.run(x, target_order=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="gallery ids in"):
        atk.run(x, target_order=torch.full((2, 3), 10**6, dtype=torch.long))
    with pytest.raises(ValueError, match="query_ids must hold one id per query"):
        atk.run(x, query_ids=torch.arange(3))
    target = torch.tensor([[5, 6, 7], [9, 8, 7]])
    r = atk.run(x, target_order=target)
    assert torch.equal(r.target_order, target) and bool((r.queries_used <= 100).all())


def test_whitebox_order_attack(trained_digits) -> None:
    d = trained_digits
    x = d.test_x[:30]
    atk = WhiteBoxOrderAttack(d.model, d.gallery, k=4, eps=EPS, seed=0)
    r = atk.run(x)
    assert in_ball(r.adversarial, x, EPS)
    # measured gains over seeds 0..4: 0.28-0.57
    assert float(r.tau.mean() - r.tau_before.mean()) > 0.1
    # the same default targets as the black-box attack
    oracle = ModelOracle(d.model, d.gallery, top_n=None, budget=None)
    bb = OrderAttack(oracle, k=4, eps=EPS, budget=60, population=10).run(x)
    assert torch.equal(bb.target_order, r.target_order)
    assert "steps=24" in repr(atk) and "xi=10.0" in repr(atk)
    with pytest.raises(ValueError, match="target_order must be"):
        atk.run(x, target_order=torch.zeros(30, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="k must be >= 2"):
        WhiteBoxOrderAttack(d.model, d.gallery, k=1)


@pytest.mark.parametrize("optimizer", ["nes", "square"])
def test_removal_attack(trained_digits, optimizer) -> None:
    d = trained_digits
    x = d.test_x[:20]
    oracle = ModelOracle(d.model, d.gallery, top_n=10, budget=300)
    pop = 20 if optimizer == "nes" else 1
    r = RemovalAttack(oracle, k=3, eps=32 / 255, optimizer=optimizer, budget=300,
                      population=pop).run(x)  # fmt: skip
    assert in_ball(r.adversarial, x, 32 / 255) and bool((r.queries_used <= 300).all())
    assert bool((r.relevance_before == 1).all())
    # measured mean relevance drops over seeds 0..4: 0.88-0.92 (nes), 0.76-0.84 (square)
    assert float(r.relevance_before.mean() - r.relevance.mean()) > 0.4
    ids = ModelOracle(d.model, d.gallery, top_n=10, budget=None)(r.adversarial)
    left = (ids.unsqueeze(2) == r.removed.unsqueeze(1)).any(1).any(1)
    assert torch.equal(r.success, ~left)
    with pytest.raises(ValueError, match="depth must be below the gallery size"):
        RemovalAttack(ModelOracle(d.model, d.gallery, top_n=None), budget=100, population=10)


def test_removal_with_a_surrogate_prior(trained_digits) -> None:
    from tests._models import digits_model

    d = trained_digits
    x = d.test_x[:20]
    oracle = ModelOracle(d.model, d.gallery, top_n=10, budget=100)
    atk = RemovalAttack(oracle, k=3, eps=32 / 255, budget=100, population=20,
                        surrogate=digits_model(seed=1))  # fmt: skip
    r = atk.run(x)
    assert in_ball(r.adversarial, x, 32 / 255) and bool((r.queries_used <= 100).all())
    assert float(r.relevance.mean()) < 0.6  # measured over seeds 0..4: 0.19-0.27
    assert torch.equal(atk.run(x).adversarial, r.adversarial)


@pytest.mark.parametrize("direction", ["raise", "lower"])
def test_score_based_query_and_candidate_attacks(trained_digits, direction) -> None:
    d = trained_digits
    x = d.test_x
    oracle = ModelOracle(d.model, d.gallery, top_n=None, return_scores=True, budget=300)
    qa = ScoreQueryAttack(oracle, direction=direction, m=2, eps=EPS, budget=300, population=20)
    r = qa.run(x[:10])
    assert in_ball(r.adversarial, x[:10], EPS) and bool((r.queries_used <= 300).all())
    assert bool((r.loss <= r.loss_before).all()) and float((r.loss_before - r.loss).mean()) > 0
    g = torch.Generator().manual_seed(0)
    qidx = torch.randint(0, len(d.gallery), (10, 2), generator=g)
    ca = ScoreCandidateAttack(oracle, direction=direction, w=2, eps=EPS, budget=300, population=20)
    r = ca.run(x[10:20], x[qidx], qidx)
    assert in_ball(r.adversarial, x[10:20], EPS) and bool((r.queries_used <= 300).all())
    assert float((r.loss_before - r.loss).mean()) > 0
    # the ranks are those the candidate would have: check against the gallery
    emb_q = d.model(x[qidx].flatten(0, 1))
    emb_c = d.model(r.adversarial).repeat_interleave(2, 0)
    want = d.gallery.rank(emb_q, emb_c.unsqueeze(1)).view(10, 2).mean(1)
    torch.testing.assert_close(r.rank_after, want, atol=2 / len(d.gallery), rtol=0)
    with pytest.raises(ValueError, match="oracle must return scores"):
        ScoreQueryAttack(ModelOracle(d.model, d.gallery, budget=300), budget=300)
