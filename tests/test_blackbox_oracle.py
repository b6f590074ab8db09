"""The oracles' answers and accounting: ranked ids, positions, budgets, counts."""

from __future__ import annotations

import pytest
import torch

from rankattack import Gallery
from rankattack.blackbox import BudgetExceededError, ModelOracle
from rankattack.blackbox.oracle import locate_in_lists, rank_among
from rankattack.objectives import order_agreement


def test_model_oracle_ranks_like_the_gallery(trained_digits) -> None:
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    oracle = ModelOracle(model, gallery, top_n=20, return_scores=True, budget=None)
    ids, dist = oracle(x[:8])
    assert ids.dtype == torch.int64 and ids.shape == (8, 20) and dist.shape == (8, 20)
    want_d, want_i = gallery.topk(model(x[:8]), 20)
    torch.testing.assert_close(dist, want_d)
    assert torch.equal(ids, want_i)
    assert bool((dist[:, 1:] >= dist[:, :-1]).all())
    assert torch.equal(ids[:, 0], torch.arange(8))  # the query's own copy is in the gallery


def test_locate_matches_the_returned_lists(trained_digits) -> None:
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    for top_n in (None, 30):
        oracle = ModelOracle(model, gallery, top_n=top_n, budget=None)
        ids = oracle(x[:10])
        items = torch.randint(0, len(gallery), (10, 6), generator=torch.Generator().manual_seed(1))
        items[:, :3] = ids[:, [4, 0, 2]]
        pos = oracle.locate(x[:10], items)
        assert torch.equal(pos, locate_in_lists(ids, items))
        assert torch.equal(pos[:, :3], torch.tensor([4, 0, 2]).expand(10, 3))
        order = oracle.order_of(x[:10], items)
        assert torch.equal(order, rank_among(pos))
        torch.testing.assert_close(order_agreement(order), order_agreement(pos))


def test_ties_are_broken_by_gallery_index() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    gallery = Gallery(emb)
    oracle = ModelOracle(torch.nn.Flatten(), gallery, top_n=None, budget=None)
    q = torch.tensor([[[1.0, 0.0]]])
    assert oracle(q).tolist() == [[0, 2, 3, 1, 4]]
    assert oracle.locate(q, torch.tensor([[3, 2, 0, 4]])).tolist() == [[2, 1, 0, 4]]
    short = ModelOracle(torch.nn.Flatten(), gallery, top_n=2, budget=None)
    assert short(q).tolist() == [[0, 2]]
    assert short.locate(q, torch.tensor([[3, 2]])).tolist() == [[-1, 1]]
    assert short.order_of(q, torch.tensor([[3, 2, 0]])).tolist() == [[-1, 1, 0]]
    assert oracle.order_of(q, torch.tensor([[3, 2, 0, 4]])).tolist() == [[2, 1, 0, 3]]


def test_whole_list_order_needs_no_pass_over_the_gallery(trained_digits, monkeypatch) -> None:
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    oracle = ModelOracle(model, gallery, top_n=None, budget=None)
    items = torch.randint(0, len(gallery), (12, 5), generator=torch.Generator().manual_seed(2))
    want = rank_among(oracle.locate(x[:12], items))

    def no_pass(*args: object) -> None:
        raise AssertionError("a pass over the gallery")

    monkeypatch.setattr(gallery, "distances_prepared", no_pass)
    assert torch.equal(oracle.order_of(x[:12], items), want)


def test_counts_are_exact_and_the_budget_is_enforced_before_sending(trained_digits) -> None:
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    calls = []

    def counting(v: torch.Tensor) -> torch.Tensor:
        calls.append(v.shape[0])
        return model(v)

    oracle = ModelOracle(counting, gallery, top_n=5, budget=4)
    oracle(x[:3])
    assert oracle.queries_used.tolist() == [1, 1, 1]
    oracle.locate(x[:3], torch.zeros(3, 2, dtype=torch.long), owner=torch.tensor([2, 2, 0]))
    assert oracle.queries_used.tolist() == [2, 1, 3]
    sent = sum(calls)
    with pytest.raises(
        BudgetExceededError, match="query 2 would use 5 oracle queries, past its budget of 4"
    ):
        oracle(x[:2], owner=torch.tensor([2, 2]))
    assert sum(calls) == sent and oracle.queries_used.tolist() == [2, 1, 3]  # nothing sent
    oracle(x[:1], owner=torch.tensor([4]))
    assert oracle.queries_used.tolist() == [2, 1, 3, 0, 1]
    oracle.reset()
    assert oracle.queries_used.numel() == 0


def test_oracle_never_touches_the_model_parameters(trained_digits) -> None:
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    before = [p.detach().clone() for p in model.parameters()]
    flags = [p.requires_grad for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    model.train()
    ModelOracle(model, gallery, top_n=5, budget=None)(x[:4])
    assert model.training  # mode restored
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    for g, p in zip(grads, model.parameters(), strict=True):
        assert (g is None and p.grad is None) or torch.equal(g, p.grad)
    model.eval()


def test_oracle_bad_input_names_the_argument(trained_digits) -> None:
    model, gallery, x = trained_digits.model, trained_digits.gallery, trained_digits.test_x
    with pytest.raises(ValueError, match="top_n must be <= the gallery size"):
        ModelOracle(model, gallery, top_n=len(gallery) + 1)
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        ModelOracle(model, gallery, top_n=0)
    with pytest.raises(ValueError, match="budget must be >= 1"):
        ModelOracle(model, gallery, budget=0)
    with pytest.raises(TypeError, match=r"gallery must be a rankattack\.Gallery"):
        ModelOracle(model, gallery.embeddings)
    oracle = ModelOracle(model, gallery, top_n=5, budget=None)
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\]"):
        oracle(x[:2] + 2)
    with pytest.raises(ValueError, match="owner must hold one slot per image"):
        oracle(x[:2], owner=torch.tensor([0]))
    with pytest.raises(ValueError, match="items must have one row per image"):
        oracle.locate(x[:2], torch.zeros(3, 2, dtype=torch.long))
    assert "top_n=5" in repr(oracle) and "budget=None" in repr(oracle)
