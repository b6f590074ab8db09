"""UniversalRankAttack: Eq. 14 (I-CA+) and its I-CA-, I-QA+, I-QA- counterparts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from rankattack import CandidateObjective, Gallery, QueryObjective
from rankattack.attacks.universalrankattack import (
    UniversalRankAttack,
    UniversalResult,
    evaluate_seen_unseen,
)
from tests._models import digits_model, held_out


def linear_model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8)).to(dtype)


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, Tensor, Gallery]:
    model = digits_model(0)
    x, y = held_out()
    return model, x, Gallery.from_inputs(model, x, y)


def split(n: int, seed: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


# -- the perturbation ------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    eps=st.floats(0.0, 0.5),
    steps=st.integers(0, 6),
    seed=st.integers(0, 2**16),
    target=st.sampled_from(["candidate", "query"]),
    direction=st.sampled_from(["raise", "lower"]),
)
def test_perturbation_in_eps_ball_and_apply_in_unit_range(
    eps: float, steps: int, seed: int, target: str, direction: str
) -> None:
    torch.manual_seed(seed)
    model = linear_model(seed % 7)
    x = torch.rand(30, 1, 4, 4)
    x[:5] = 0.0  # saturated inputs: clamping matters on both sides
    x[5:10] = 1.0
    gallery = Gallery.from_inputs(model, x)
    atk = UniversalRankAttack(
        model, gallery, target, direction, eps=eps, alpha=0.05, steps=steps, batch_size=7
    )
    if target == "candidate":
        r = atk.fit(x, query_embeddings=gallery.embeddings[:30].unsqueeze(1), progress=False)
    else:
        r = atk.fit(x, candidate_indices=torch.randint(0, 30, (30, 2)), progress=False)
    assert r.shape == (1, 4, 4)
    assert float(r.abs().max()) <= eps + 1e-7
    assert torch.equal(atk.perturbation, r)
    adv = atk.apply(x)
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert torch.allclose(adv, (x + r).clamp(0, 1))
    # a single input [*S] is accepted too
    assert torch.equal(atk.apply(x[3]), adv[3])


def test_fit_is_pgd_on_the_sum_of_the_core_objective() -> None:
    """One step: r = clip(-alpha * sign(grad_r sum_c L_CA+(clip(c + r), Q; X)))."""
    torch.manual_seed(0)
    model = linear_model(1)
    x = torch.rand(40, 1, 4, 4)
    gallery = Gallery.from_inputs(model, x)
    cands, q_emb = x[:12], gallery.embeddings[20:32].unsqueeze(1)
    r = UniversalRankAttack(model, gallery, eps=0.1, alpha=0.03, steps=1).fit(
        cands, query_embeddings=q_emb, progress=False
    )
    shared = torch.zeros(1, 4, 4, requires_grad=True)
    loss = CandidateObjective(gallery, q_emb, "raise")(model((cands + shared).clamp(0, 1)))
    (grad,) = torch.autograd.grad(loss.sum(), shared)
    assert torch.equal(r, (-0.03 * grad.sign()).clamp(-0.1, 0.1))
    assert int((r != 0).sum()) > 8  # the step actually moved


@pytest.mark.parametrize("target", ["candidate", "query"])
def test_minibatching_gives_the_full_batch_perturbation(target: str) -> None:
    torch.manual_seed(3)
    model = linear_model(2, torch.float64)
    x = torch.rand(50, 1, 4, 4, dtype=torch.float64)
    gallery = Gallery.from_inputs(model, x)
    kw: dict[str, Tensor] = (
        {"query_embeddings": gallery.embeddings[torch.randint(0, 50, (23, 2))]}
        if target == "candidate"
        else {"candidate_indices": torch.randint(0, 50, (23, 2))}
    )
    rs = [
        UniversalRankAttack(model, gallery, target, eps=0.2, steps=8, batch_size=b).fit(
            x[:23], **kw, progress=False
        )
        for b in (23, 5, 1)
    ]
    assert torch.equal(rs[0], rs[1]) and torch.equal(rs[0], rs[2])


def test_query_target_with_sp_term() -> None:
    torch.manual_seed(4)
    model = linear_model(3)
    x = torch.rand(60, 1, 4, 4)
    gallery = Gallery.from_inputs(model, x)
    atk = UniversalRankAttack(
        model, gallery, "query", "raise", eps=0.2, steps=10, xi=1.0, sp_size=3
    )
    idx = torch.randint(0, 60, (10, 1))
    atk.fit(x[:10], candidate_indices=idx, query_indices=torch.arange(10), progress=False)
    res = atk.evaluate(x[:10], candidate_indices=idx, query_indices=torch.arange(10))
    assert res.sp_rank_before is not None and res.sp_rank_after is not None
    assert res.sp_rank_before.shape == (10,)
    # C_SP are the query's nearest items outside C and itself: they start near the top
    assert float(res.sp_rank_before.max()) < 0.1
    # without SP there are no SP ranks
    atk0 = UniversalRankAttack(model, gallery, "query", "raise", eps=0.2, steps=2)
    atk0.fit(x[:10], candidate_indices=idx, progress=False)
    assert atk0.evaluate(x[:10], candidate_indices=idx).sp_rank_before is None


# -- effectiveness on a trained model ---------------------------------------------------


def test_ica_plus_fitted_on_seen_raises_unseen_ranks(trained: tuple) -> None:
    """Eq. 14 with a shared query (w = 1): seen and unseen candidates both move up.

    Over digits models of seeds 0-5: unseen 0.48-0.54 -> 0.033-0.074 (seen after
    0.028-0.065, drop 0.40-0.50, 96-100% of the unseen candidates raised); 120 steps
    instead of 60 change the ranks by at most 0.008 (saturated). "Before" is the mean
    of 100 draws from one query's ranking, a permutation: 0.5 +- 0.03 for any model.
    """
    model, x, gallery = trained
    order = split(len(x), 1)
    q = gallery.embeddings[order[0]].expand(100, 1, -1)
    seen = {"inputs": x[order[1:101]], "query_embeddings": q}
    unseen = {"inputs": x[order[101:201]], "query_embeddings": q}
    atk = UniversalRankAttack(model, gallery, "candidate", "raise", eps=0.3, steps=60)
    res = evaluate_seen_unseen(atk, seen, unseen)
    assert isinstance(res.unseen, UniversalResult)
    assert res.seen.n_counted == res.unseen.n_counted == 100
    # random candidates start mid-list (paper: 50%), end near the top (paper: ~10%)
    assert 0.35 < res.unseen.mean_before < 0.65
    assert res.seen.mean_after < 0.15
    assert res.unseen.mean_after < 0.15
    assert res.unseen.mean_before - res.unseen.mean_after > 0.3
    assert float((res.unseen.rank_after < res.unseen.rank_before).float().mean()) > 0.8
    # the helper's ranks are the core objective's
    obj = CandidateObjective(gallery, q, "raise")
    with torch.no_grad():
        expect = obj.ranks(model(atk.apply(unseen["inputs"])))
    assert torch.allclose(res.unseen.rank_after, expect)


def test_ica_minus_counts_only_targets_in_the_top_percent(trained: tuple) -> None:
    """I-CA- pushes top-ranked candidates down; only those in the top 1% are counted.

    Over digits models of seeds 0-5: counted targets end at 0.20-0.34 (seen) and
    0.21-0.36 (unseen), alike with 80 steps (saturated); the counts depend only on the
    positions drawn, the same for every model.
    """
    model, x, gallery = trained
    order = split(len(x), 2)
    queries = order[:200]
    _, top = gallery.topk(gallery.embeddings[queries], 12, exclude_indices=queries.unsqueeze(1))
    pick = top[
        torch.arange(200), torch.randint(0, 12, (200,), generator=torch.Generator().manual_seed(0))
    ]
    q_emb = gallery.embeddings[queries].unsqueeze(1)
    seen = {"inputs": x[pick[:100]], "query_embeddings": q_emb[:100]}
    unseen = {"inputs": x[pick[100:]], "query_embeddings": q_emb[100:]}
    atk = UniversalRankAttack(model, gallery, "candidate", "lower", eps=0.3, steps=40)
    res = evaluate_seen_unseen(atk, seen, unseen)
    for part in (res.seen, res.unseen):
        assert part.counted is not None
        assert torch.equal(part.counted, part.rank_before < 0.01)
        assert 50 <= part.n_counted < 100  # 12 of 797 is 1.5%: some fall outside the 1%
        assert part.mean_before < 0.01
        assert part.mean_after > 0.1  # from the top 1% to beyond the top 10%
    # the "raise" default counts everyone; an explicit top_fraction overrides
    all_in = atk.evaluate(**unseen, top_fraction=1.0)
    assert all_in.n_counted == 100
    assert all_in.mean_before == pytest.approx(float(all_in.rank_before.mean()))


def test_iqa_plus_shared_candidate(trained: tuple) -> None:
    """Over digits models of seeds 0-5: unseen 0.42-0.64 -> 0.012-0.048."""
    model, x, gallery = trained
    order = split(len(x), 3)
    c = order[0].expand(80, 1)
    seen = {"inputs": x[order[1:81]], "candidate_indices": c}
    unseen = {"inputs": x[order[81:161]], "candidate_indices": c}
    atk = UniversalRankAttack(model, gallery, "query", "raise", eps=0.3, steps=60)
    res = evaluate_seen_unseen(atk, seen, unseen)
    assert res.unseen.mean_before > 0.3
    assert res.unseen.mean_after < 0.15
    obj = QueryObjective(gallery, gallery.embeddings[c])
    with torch.no_grad():
        expect = obj.ranks(model(atk.apply(unseen["inputs"])))
    assert torch.allclose(res.unseen.rank_after, expect)


# -- persistence, validation, repr ------------------------------------------------------


def test_save_load_roundtrip(tmp_path) -> None:
    torch.manual_seed(5)
    model = linear_model(4)
    x = torch.rand(30, 1, 4, 4)
    gallery = Gallery.from_inputs(model, x)
    atk = UniversalRankAttack(model, gallery, eps=0.2, steps=5)
    r = atk.fit(x[:10], query_embeddings=gallery.embeddings[10:20].unsqueeze(1), progress=False)
    path = tmp_path / "r.pt"
    atk.save(path)
    other = UniversalRankAttack(model, gallery, eps=0.2)
    with pytest.raises(RuntimeError, match="fit"):
        other.apply(x)
    assert torch.equal(other.load(path), r)
    assert torch.equal(other.apply(x), atk.apply(x))
    with pytest.raises(ValueError, match="direction"):
        UniversalRankAttack(model, gallery, direction="lower", eps=0.2).load(path)
    with pytest.raises(ValueError, match="target"):
        UniversalRankAttack(model, gallery, target="query", eps=0.2).load(path)
    if float(r.abs().max()) > 0.05:
        with pytest.raises(ValueError, match="eps"):
            UniversalRankAttack(model, gallery, eps=0.05).load(path)
    (tmp_path / "bad.pt").write_bytes(b"")
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a universal perturbation"):
        other.load(tmp_path / "bad.pt")


class _NotPlainData:
    """An object torch's safe loader refuses to unpickle."""


@pytest.mark.parametrize("kind", ["text", "object"])
def test_load_of_an_unreadable_file_is_one_clear_error(tmp_path, kind: str) -> None:
    path = tmp_path / "r.pt"
    if kind == "text":
        path.write_text("# not a torch file\n")
    else:
        torch.save({"format": "rankattack.universal/1", "x": _NotPlainData()}, path)
    atk = UniversalRankAttack(linear_model(4), Gallery(torch.randn(8, 4)), eps=0.2)
    with pytest.raises(ValueError, match="is not a readable universal perturbation") as exc:
        atk.load(path)
    assert "weights_only" not in str(exc.value) and "\n" not in str(exc.value)
    assert exc.value.__cause__ is None


def test_validation() -> None:
    model = linear_model()
    x = torch.rand(20, 1, 4, 4)
    g = Gallery.from_inputs(model, x)
    with pytest.raises(ValueError, match="target"):
        UniversalRankAttack(model, g, target="gallery")
    with pytest.raises(ValueError, match="direction"):
        UniversalRankAttack(model, g, direction="up")
    with pytest.raises(ValueError, match="eps"):
        UniversalRankAttack(model, g, eps=-0.1)
    with pytest.raises(ValueError, match="batch_size"):
        UniversalRankAttack(model, g, batch_size=0)
    with pytest.raises(TypeError, match="steps"):
        UniversalRankAttack(model, g, steps=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="xi"):
        UniversalRankAttack(model, g, target="candidate", xi=1.0)
    with pytest.raises(ValueError, match="sp_size"):
        UniversalRankAttack(model, g, target="query", sp_size=20)
    with pytest.raises(TypeError, match="gallery"):
        UniversalRankAttack(model, x)  # type: ignore[arg-type]
    atk = UniversalRankAttack(model, g, steps=1)
    with pytest.raises(ValueError, match="exactly one"):
        atk.fit(x[:3], progress=False)
    with pytest.raises(ValueError, match="target='query'"):
        atk.fit(x[:3], candidate_indices=torch.zeros(3, 1, dtype=torch.long), progress=False)
    with pytest.raises(ValueError, match="queries must be"):
        atk.fit(x[:3], x[:2].unsqueeze(1), progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        atk.fit(x[:3] + 2, x[:3].unsqueeze(1), progress=False)
    with pytest.raises(ValueError, match="init"):
        atk.fit(x[:3], x[:3].unsqueeze(1), init=torch.zeros(4, 4), progress=False)
    qa = UniversalRankAttack(model, g, target="query", steps=1)
    with pytest.raises(ValueError, match="candidate_indices"):
        qa.fit(x[:3], candidate_indices=torch.full((3, 1), 99), progress=False)
    with pytest.raises(ValueError, match="target='candidate'"):
        qa.fit(x[:3], x[:3].unsqueeze(1), progress=False)
    atk.fit(x[:3], x[:3].unsqueeze(1), progress=False)
    with pytest.raises(ValueError, match="x must be"):
        atk.apply(torch.rand(3, 1, 5, 5))
    with pytest.raises(ValueError, match="top_fraction"):
        atk.evaluate(x[:3], x[:3].unsqueeze(1), top_fraction=0.0)
    with pytest.raises(ValueError, match="ball"):
        atk.perturbation = torch.ones(1, 4, 4)
    with pytest.raises(ValueError, match="unknown keys"):
        evaluate_seen_unseen(atk, {"inputs": x[:3], "query": x}, {"inputs": x[:3]})
    with pytest.raises(TypeError, match="UniversalRankAttack"):
        evaluate_seen_unseen(object(), {"inputs": x}, {"inputs": x})  # type: ignore[arg-type]


def test_repr_lists_every_parameter() -> None:
    model = linear_model()
    g = Gallery.from_inputs(model, torch.rand(20, 1, 4, 4))
    text = repr(UniversalRankAttack(model, g, "query", "lower", eps=0.1, alpha=0.02, steps=7,
                                    batch_size=3, xi=0.5, sp_size=2))  # fmt: skip
    for part in ("target='query'", "direction='lower'", "eps=0.1", "alpha=0.02", "steps=7",
                 "batch_size=3", "xi=0.5", "sp_size=2", "Gallery(size=20"):  # fmt: skip
        assert part in text, (part, text)


def test_candidate_images_and_indices_agree() -> None:
    """I-QA with candidate images embeds them itself; same result as gallery indices.

    Over seeds 0-5 of the model and data, I-QA- (6 steps of 0.05) lowers the candidates
    by 0.031-0.088 (the default step of 2/255 only by 0.008-0.036).
    """
    torch.manual_seed(6)
    model = linear_model(5, torch.float64)
    x = torch.rand(40, 1, 4, 4, dtype=torch.float64)
    gallery = Gallery.from_inputs(model, x)
    idx = torch.randint(0, 40, (15, 2))
    atk = UniversalRankAttack(model, gallery, "query", "lower", eps=0.2, alpha=0.05, steps=6)
    r_idx = atk.fit(x[:15], candidate_indices=idx, progress=False)
    res_idx = atk.evaluate(x[:15], candidate_indices=idx, top_fraction=1.0)
    r_img = atk.fit(x[:15], candidates=x[idx], progress=False)
    res_img = atk.evaluate(x[:15], candidates=x[idx], top_fraction=1.0)
    assert torch.equal(r_idx, r_img)
    assert torch.allclose(res_idx.rank_before, res_img.rank_before)
    assert torch.allclose(res_idx.rank_after, res_img.rank_after)
    assert float(res_img.rank_after.mean()) > float(res_img.rank_before.mean())
