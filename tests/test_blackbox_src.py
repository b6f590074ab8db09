"""SRC (tau_S) against brute force, Kendall's tau, and the keyed random numbers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau

from rankattack.blackbox import short_range_correlation
from rankattack.keyedrandom import KeyedRandom
from rankattack.objectives import order_agreement


def brute_src(returned: list[int], target: list[int]) -> float:
    """AdvOrder Algorithm 1, one pair at a time."""
    score = 0
    for i, j in itertools.combinations(range(len(target)), 2):
        a, b = target[i], target[j]
        if a in returned and b in returned and returned.index(a) < returned.index(b):
            score += 1
        else:
            score -= 1
    return score / (len(target) * (len(target) - 1) / 2)


@st.composite
def lists_and_targets(draw: st.DrawFn) -> tuple[list[list[int]], list[list[int]]]:
    size = draw(st.integers(4, 12))
    k = draw(st.integers(2, size))
    n = draw(st.integers(1, size))
    rows = draw(st.integers(1, 4))
    returned, targets = [], []
    for _ in range(rows):
        ranking = draw(st.permutations(range(size)))
        returned.append(list(ranking[:n]))
        targets.append(list(draw(st.permutations(range(size)))[:k]))
    return returned, targets


@settings(max_examples=200, deadline=None)
@given(lists_and_targets())
def test_src_matches_brute_force(data: tuple[list[list[int]], list[list[int]]]) -> None:
    returned, targets = data
    got = short_range_correlation(torch.tensor(returned), torch.tensor(targets))
    want = torch.tensor([brute_src(r, t) for r, t in zip(returned, targets, strict=True)])
    assert got.dtype == torch.float32 and got.shape == (len(returned),)
    torch.testing.assert_close(got, want.float(), atol=1e-6, rtol=0)
    assert bool(((got >= -1) & (got <= 1)).all())


@settings(max_examples=100, deadline=None)
@given(
    st.integers(5, 30).flatmap(
        lambda n: st.tuples(st.permutations(range(n)), st.integers(2, 5), st.randoms())
    )
)
def test_src_is_kendall_tau_when_all_visible(data: tuple[list[int], int, object]) -> None:
    ranking, k, rnd = data
    target = rnd.sample(ranking, k)  # type: ignore[attr-defined]
    got = float(short_range_correlation(torch.tensor([ranking]), torch.tensor([target]))[0])
    pos = [ranking.index(t) for t in target]
    want = kendalltau(np.arange(k), pos).statistic
    assert got == pytest.approx(want, abs=1e-6)


def test_src_values() -> None:
    ids = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 9, 8]])
    target = torch.tensor([[0, 1, 2], [0, 1, 2], [0, 1, 2]])
    torch.testing.assert_close(
        short_range_correlation(ids, target), torch.tensor([1.0, -1.0, -1 / 3])
    )
    # a list shorter than k: only visible pairs in order count +1
    assert float(short_range_correlation(torch.tensor([[5]]), torch.tensor([[5, 6]]))[0]) == -1.0


def test_src_bad_input_names_the_argument() -> None:
    ids = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="target_order must hold k >= 2"):
        short_range_correlation(ids, torch.tensor([[0]]))
    with pytest.raises(ValueError, match="distinct"):
        short_range_correlation(ids, torch.tensor([[1, 1]]))
    with pytest.raises(ValueError, match="one row per returned list"):
        short_range_correlation(ids, torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(TypeError, match="returned_ids must be an integer tensor"):
        short_range_correlation(ids.float(), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="positions must hold k >= 2"):
        order_agreement(torch.zeros(2, 1))


def test_keyed_random_rows_do_not_depend_on_the_batch() -> None:
    rng = KeyedRandom(3)
    ids = torch.tensor([0, 5, 9, 2])
    for draw in (rng.uniform, rng.normal, rng.rademacher):
        full = draw(ids, 7, 2, (3, 4))
        for i in range(4):
            torch.testing.assert_close(draw(ids[i : i + 1], 7, 2, (3, 4))[0], full[i])
        assert not torch.equal(draw(ids, 8, 2, (3, 4)), full)  # a new step, new numbers
        assert not torch.equal(
            KeyedRandom(4).uniform(ids, 7, 2, (3, 4)), rng.uniform(ids, 7, 2, (3, 4))
        )
    perm = rng.permutation(torch.arange(50), 5, stream=1)
    assert torch.equal(perm.sort(1).values, torch.arange(5).expand(50, 5))


def test_keyed_random_distributions() -> None:
    rng = KeyedRandom(0)
    ids = torch.arange(20)
    u = rng.uniform(ids, 0, 1, (5000,))
    assert float(u.min()) > 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    z = rng.normal(ids, 0, 2, (5000,))
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    r = rng.rademacher(ids, 0, 3, (5000,))
    assert set(r.unique().tolist()) == {-1.0, 1.0} and abs(float(r.mean())) < 0.02
    # permutations: every position of a 3-permutation is uniform over 6 orders
    p = rng.permutation(torch.arange(6000), 3, stream=4)
    counts = torch.unique(p[:, 0] * 9 + p[:, 1] * 3 + p[:, 2], return_counts=True)[1]
    assert counts.numel() == 6 and int(counts.min()) > 850


@pytest.mark.parametrize("shape", [1e-3, 0.3, 1.0, 2.5, 40.0])
def test_keyed_log_gamma_has_the_gamma_moments(shape: float) -> None:
    # Gamma(a, 1): mean a, variance a; for tiny a, E[log G] = digamma(a) (the log draws
    # stay finite where G itself underflows)
    rng = KeyedRandom(1)
    ids = torch.arange(40)
    a = torch.full((40, 5000), shape, dtype=torch.float64)
    lg = rng.log_gamma(ids, 0, 5, a)
    assert lg.shape == a.shape and bool(torch.isfinite(lg).all())
    n = lg.numel()
    mean_log = float(lg.mean())
    sd_log = float(lg.std()) / n**0.5
    assert abs(mean_log - float(torch.digamma(torch.tensor(shape)))) < 5 * sd_log + 1e-3
    if shape >= 0.3:
        g = lg.exp()
        assert abs(float(g.mean()) - shape) < 5 * (shape / n) ** 0.5
        assert abs(float(g.var()) / shape - 1) < 0.05
    # rows do not depend on the batch
    torch.testing.assert_close(rng.log_gamma(ids[3:4], 0, 5, a[3:4])[0], lg[3])


def test_keyed_beta_draws_through_log_gamma() -> None:
    rng = KeyedRandom(2)
    ids = torch.arange(20)
    a = torch.full((20, 5000), 2.0, dtype=torch.float64)
    b = torch.full((20, 5000), 5.0, dtype=torch.float64)
    s = torch.sigmoid(rng.log_gamma(ids, 0, 1, a) - rng.log_gamma(ids, 0, 2, b))
    # Beta(2, 5): mean 2/7, variance 10 / (49 * 8)
    assert abs(float(s.mean()) - 2 / 7) < 0.003
    assert abs(float(s.var()) - 10 / 392) < 0.001


def test_keyed_log_gamma_bad_input() -> None:
    rng = KeyedRandom(0)
    ids = torch.arange(3)
    with pytest.raises(ValueError, match=r"concentration must have one row per id \(3\), got 2"):
        rng.log_gamma(ids, 0, 1, torch.ones(2, 4))
    with pytest.raises(ValueError, match="concentration must be > 0 everywhere"):
        rng.log_gamma(ids, 0, 1, torch.tensor([[1.0], [0.0], [2.0]]))
    with pytest.raises(ValueError, match="trials"):
        rng.log_gamma(ids, 0, 1, torch.ones(3, 4), trials=0)


def reference_log_gamma(
    rng: KeyedRandom, ids: torch.Tensor, step: int, stream: int, a: torch.Tensor, trials: int
) -> torch.Tensor:
    """Marsaglia-Tsang with every trial drawn for every element from
    ``uniform(ids, step, stream, (4, trials, n))``: the numbers ``log_gamma`` must give."""
    a = a.to(torch.float64).reshape(ids.shape[0], -1)
    n = a.shape[1]
    d = torch.where(a < 1, a + 1, a) - 1 / 3
    c = 1 / torch.sqrt(9 * d)
    u = rng.uniform(ids, step, stream, (4, trials, n), torch.float64)
    out = torch.empty_like(a)
    for r in range(a.shape[0]):
        for j in range(n):
            for t in range(trials):
                z = math.sqrt(-2 * math.log(u[r, 0, t, j])) * math.cos(2 * math.pi * u[r, 1, t, j])
                v = (1 + float(c[r, j]) * z) ** 3
                logv = math.log(v) if v > 0 else 0.0
                dd = float(d[r, j])
                if v > 0 and math.log(u[r, 2, t, j]) < 0.5 * z * z + dd - dd * v + dd * logv:
                    break
            value = math.log(dd) + logv
            if a[r, j] < 1:
                value += math.log(u[r, 3, 0, j]) / float(a[r, j])
            out[r, j] = value
    return out


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    step=st.integers(0, 50),
    trials=st.integers(1, 4),
    shapes=st.lists(st.floats(1e-3, 30.0), min_size=1, max_size=6),
    rows=st.integers(1, 3),
)
def test_keyed_log_gamma_matches_all_trials_drawn_at_once(
    seed: int, step: int, trials: int, shapes: list[float], rows: int
) -> None:
    rng = KeyedRandom(seed)
    ids = torch.arange(rows) * 7 + 3
    a = torch.tensor(shapes, dtype=torch.float64).repeat(rows, 1)
    got = rng.log_gamma(ids, step, 3, a, trials=trials)
    torch.testing.assert_close(got, reference_log_gamma(rng, ids, step, 3, a, trials))


def all_trials_log_gamma(
    rng: KeyedRandom, ids: torch.Tensor, step: int, stream: int, a: torch.Tensor, trials: int
) -> torch.Tensor:
    """The same draw vectorized over every trial of every element (the same tensor ops as
    ``log_gamma`` on each element, so the same bits)."""
    a = a.to(torch.float64).reshape(ids.shape[0], -1)
    d = (torch.where(a < 1, a + 1, a) - 1 / 3).unsqueeze(1)
    c = 1 / torch.sqrt(9 * d)
    u = rng.uniform(ids, step, stream, (4, trials, a.shape[1]), torch.float64)
    z = torch.sqrt(-2.0 * torch.log(u[:, 0])) * torch.cos(2.0 * math.pi * u[:, 1])
    v = (1.0 + c * z) ** 3
    logv = torch.log(v.clamp_min(1e-300))
    ok = (v > 0) & (torch.log(u[:, 2]) < 0.5 * z * z + d - d * v + d * logv)
    ok[:, -1] |= ~ok.any(1)
    first = ok.long().argmax(1, keepdim=True)
    logv = torch.where(v > 0, logv, torch.zeros_like(logv)).gather(1, first).squeeze(1)
    out = torch.log(d.squeeze(1)) + logv
    return torch.where(a < 1, out + torch.log(u[:, 3, 0]) / a, out)


def test_keyed_log_gamma_redraws_exactly_the_rejected_elements() -> None:
    # shape 1 rejects its first proposal about 5% of the time: with 4,000 elements, dozens
    # take a second trial and some a third; every one must be the all-at-once draw, bit for bit
    rng = KeyedRandom(5)
    ids = torch.tensor([0, 9])
    a = torch.cat([torch.full((2, 1000), 1.0), torch.full((2, 1000), 0.2)], 1).double()
    for trials in (1, 2, 4):
        got = rng.log_gamma(ids, 2, 1, a, trials=trials)
        assert torch.equal(got, all_trials_log_gamma(rng, ids, 2, 1, a, trials))
    assert not torch.equal(rng.log_gamma(ids, 2, 1, a, trials=1), rng.log_gamma(ids, 2, 1, a))
