"""Tests for the defense interface of rankattack.defenses: EST, ACT, HM and the others."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from rankattack import LinfPGD
from rankattack.defenses import (
    AntiCollapseDefense,
    Defense,
    EmbeddingShiftDefense,
    HardnessManipulationDefense,
    HardnessObjective,
    MadryDefense,
    PairCollapseObjective,
    RandomTripletMiner,
    ShiftSuppressDefense,
    SoftHardTripletMiner,
    VanillaDefense,
    build_defense,
    embedding_shift_loss,
    gradual_destination,
)
from rankattack.distances import get_distance
from rankattack.losses import TripletLoss
from rankattack.models import C2F1

EPS = 0.1


def _batch(classes: int = 4, per_class: int = 2, size: int = 16) -> tuple[Tensor, Tensor]:
    """Class-dependent bright squares plus noise; SPC-2 layout (same-class pairs in a row)."""
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(classes).repeat_interleave(per_class)
    x = torch.rand(y.numel(), 1, size, size, generator=gen) * 0.4
    for c in range(classes):
        x[y == c, :, c : c + 4, c : c + 4] += 0.5
    return x.clamp(0, 1), y


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return C2F1(embedding_dim=8).train()


DEFENSES: dict[str, Callable[[], Defense]] = {
    "vanilla": VanillaDefense,
    "est": lambda: EmbeddingShiftDefense(eps=EPS, alpha=0.05, steps=2),
    "act": lambda: AntiCollapseDefense(eps=EPS, alpha=0.05, steps=2),
    "hm": lambda: HardnessManipulationDefense(eps=EPS, alpha=0.05, steps=2),
    "madry": lambda: MadryDefense(eps=EPS, alpha=0.05, steps=2),
    "shift-suppress": lambda: ShiftSuppressDefense(eps=EPS, alpha=0.05, steps=2),
}


class _RecordingPGD(LinfPGD):
    """A LinfPGD that records what it was asked to perturb and what it returned."""

    def __init__(self, pgd: LinfPGD) -> None:
        super().__init__(pgd.eps, pgd.alpha, pgd.steps)
        self.calls: list[tuple[Tensor, Tensor]] = []

    def __call__(self, model, inputs, objective, init=None, generator=None):  # type: ignore[no-untyped-def]
        out = super().__call__(model, inputs, objective, init, generator)
        self.calls.append((inputs.clone(), out.clone()))
        return out


# --- the interface -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DEFENSES))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_loss_is_finite_differentiable_and_leaves_model_and_inputs_alone(
    name: str, mode: str
) -> None:
    x, y = _batch()
    x0, y0 = x.clone(), y.clone()
    model = _model()
    model.train(mode == "train")
    model.conv1.bias.requires_grad_(False)  # a frozen parameter must stay frozen
    flags = [p.requires_grad for p in model.parameters()]
    loss = DEFENSES[name]().loss(model, x, y)
    assert loss.shape == () and bool(torch.isfinite(loss)) and loss.requires_grad
    loss.backward()
    grad = model.fc1.weight.grad
    assert grad is not None and bool(torch.isfinite(grad).all()) and bool(grad.abs().sum() > 0)
    assert model.conv1.bias.grad is None
    assert [m.training for m in model.modules()] == [mode == "train"] * len(list(model.modules()))
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(x, x0) and torch.equal(y, y0)


@pytest.mark.parametrize("name", list(DEFENSES))
def test_step_updates_the_model(name: str) -> None:
    x, y = _batch()
    model = _model()
    before = model.conv1.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = DEFENSES[name]().step(model, opt, x, y)
    assert loss.shape == () and not loss.requires_grad
    assert not torch.equal(before, model.conv1.weight)


def test_repr_shows_every_parameter() -> None:
    text = repr(HardnessManipulationDefense())
    for part in ("eps=0.0313", "alpha=0.0039", "steps=8", "metric='cosine'", "margin=0.2"):
        assert part in text
    assert "ics_weight=0.5" in text and "initial_loss=2.0" in text
    assert "SoftHardTripletMiner" in text
    assert "steps=32" in repr(AntiCollapseDefense()) and "steps=32" in repr(EmbeddingShiftDefense())
    assert "jitter=0.001" in repr(EmbeddingShiftDefense())


def test_defaults_are_the_papers() -> None:
    act, est, hm = AntiCollapseDefense(), EmbeddingShiftDefense(), HardnessManipulationDefense()
    assert (act.pgd.eps, act.pgd.alpha, act.pgd.steps) == (77 / 255, 3 / 255, 32)
    assert (est.eps, est.alpha, est.steps) == (77 / 255, 3 / 255, 32)
    assert (hm.pgd.eps, hm.pgd.alpha, hm.pgd.steps) == (8 / 255, 1 / 255, 8)
    assert act.margin == hm.margin == 0.2
    assert HardnessManipulationDefense(metric="euclidean").margin == 1.0
    assert hm.ics_weight == 0.5 and isinstance(hm.ranking_loss, TripletLoss)
    assert isinstance(act.miner, RandomTripletMiner) and act.miner.anchors == "pairs"
    assert isinstance(hm.miner, SoftHardTripletMiner)
    assert isinstance(est.miner, RandomTripletMiner) and est.miner.anchors == "all"


def test_build_defense_by_name() -> None:
    assert isinstance(build_defense("embedding-shift"), EmbeddingShiftDefense)
    assert isinstance(build_defense("est"), EmbeddingShiftDefense)
    assert isinstance(build_defense(None), VanillaDefense)
    assert build_defense("hm", steps=3).pgd.steps == 3


# --- ACT -----------------------------------------------------------------------------


def test_act_perturbs_only_the_positive_and_the_negative() -> None:
    x, y = _batch()
    model = _model()
    seen: dict[str, Tensor] = {}

    def record(a: Tensor, p: Tensor, n: Tensor) -> Tensor:
        seen.update(a=a.detach(), p=p.detach(), n=n.detach())
        return TripletLoss()(a, p, n)

    triplets = RandomTripletMiner("pairs", torch.Generator().manual_seed(0))(x, y)
    defense = AntiCollapseDefense(eps=EPS, alpha=0.05, steps=3, ranking_loss=record)
    defense.pgd = pgd = _RecordingPGD(defense.pgd)
    defense.triplet_loss(model, x, triplets)
    a, p, n = triplets
    assert a.tolist() == [0, 2, 4, 6] and p.tolist() == [1, 3, 5, 7]  # SPC-2 on pairs
    (inputs, adversarial) = pgd.calls[0]
    assert torch.equal(inputs, torch.cat([x[p], x[n]]))  # p and n, perturbed together
    delta = (adversarial - inputs).abs()
    assert float(delta.max()) <= EPS + 1e-6 and bool((delta.flatten(1).amax(1) > 0).all())
    with torch.no_grad():
        assert torch.equal(seen["a"], model(x[a]))  # the anchor stays benign
        assert torch.allclose(seen["p"], model(adversarial[:4]), atol=1e-6)
        assert not torch.allclose(seen["p"], model(x[p]), atol=1e-4)
        assert not torch.allclose(seen["n"], model(x[n]), atol=1e-4)


def test_pair_collapse_objective_pulls_the_pairs_together() -> None:
    x, _ = _batch()
    model = _model().eval()
    objective = PairCollapseObjective("cosine")
    inputs = torch.cat([x[0::2], x[torch.tensor([2, 4, 6, 0])]])
    adv = LinfPGD(eps=EPS, alpha=0.02, steps=10)(model, inputs, objective)
    with torch.no_grad():
        before, after = objective.pair_distance(model(inputs)), objective.pair_distance(model(adv))
    assert bool((after < before).all())
    assert objective(model(inputs)).shape == (8,)


# --- HM ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "margin", "expected"),
    [(2.0, 0.2, -0.2), (0.2, 0.2, -0.2), (0.1, 0.2, -0.1), (0.05, 0.2, -0.05), (0.0, 0.2, 0.0),
     (-0.3, 0.2, 0.0), (0.5, 1.0, -0.5), (3.0, 1.0, -1.0), (0.5, 0.0, 0.0)],
)  # fmt: skip
def test_gradual_adversary_destination(previous: float, margin: float, expected: float) -> None:
    assert float(gradual_destination(previous, margin)) == pytest.approx(expected, abs=1e-7)


def test_hm_keeps_the_previous_adversarial_loss_as_state() -> None:
    x, y = _batch()
    model = _model()
    defense = HardnessManipulationDefense(eps=EPS, alpha=0.05, steps=2, ics_weight=0.0)
    assert defense.state_dict() == {}
    assert float(defense.destination()) == pytest.approx(-0.2)  # l_prev starts at 2.0
    loss = defense.loss(model, x, y)
    state = defense.state_dict()
    assert torch.equal(state["previous_loss"], loss.detach())  # without ICS: the same
    assert float(defense.destination()) == pytest.approx(
        -0.2 * min(max(float(loss.detach()), 0.0), 0.2) / 0.2
    )
    fresh = HardnessManipulationDefense(eps=EPS, alpha=0.05, steps=2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.destination(), defense.destination())
    with pytest.raises(ValueError, match="state keys"):
        fresh.load_state_dict({"prev": 1.0})
    with pytest.raises(ValueError, match="keeps no state"):
        AntiCollapseDefense().load_state_dict({"previous_loss": torch.tensor(1.0)})


def test_hm_perturbs_anchor_positive_and_negative_and_adds_the_ics_term() -> None:
    x, y = _batch()
    model = _model()
    miner = SoftHardTripletMiner(generator=torch.Generator().manual_seed(0))
    triplets = miner(model(x).detach(), y)
    a, p, n = triplets
    losses = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        defense = HardnessManipulationDefense(eps=EPS, alpha=0.05, steps=3, ics_weight=weight)
        defense.pgd = pgd = _RecordingPGD(defense.pgd)
        losses[weight] = defense.triplet_loss(model, x, triplets)
        inputs, adversarial = pgd.calls[0]
        assert torch.equal(inputs, torch.cat([x[a], x[p], x[n]]))
        assert float((adversarial - inputs).abs().max()) <= EPS + 1e-6
    # ICS: 0.5 * [d(a, a~) - d(a, p)]_+ on top of the adversarial triplet loss
    with torch.no_grad():
        emb = model(torch.cat([adversarial, x[a], x[p]]))
        adv_a, _, _, clean_a, clean_p = emb.split(a.numel())
        ics = TripletLoss(margin=0.0)(clean_a, adv_a, clean_p)
    torch.testing.assert_close(losses[0.5].detach(), losses[0.0].detach() + 0.5 * ics)


def test_hardness_objective_raises_the_hardness_to_the_destination() -> None:
    x, _ = _batch()
    model = _model().eval()
    a, p, n = torch.tensor([0, 2, 4]), torch.tensor([1, 3, 5]), torch.tensor([6, 7, 0])
    inputs = torch.cat([x[a], x[p], x[n]])
    objective = HardnessObjective(0.5, "cosine")  # above every triplet's hardness
    pgd = LinfPGD(eps=EPS, alpha=0.02, steps=10)
    adv = pgd(model, inputs, objective)
    with torch.no_grad():
        before, after = objective.hardness(model(inputs)), objective.hardness(model(adv))
        d = get_distance("cosine")
        e = d.prepare(model(inputs))
        brute = d.paired(e[:3], e[3:6]) - d.paired(e[:3], e[6:])
    torch.testing.assert_close(before, brute)
    assert bool((after > before).all())
    assert objective(model(inputs)).shape == (9,)
    # triplets already at least as hard as the destination are left where they are
    assert torch.equal(pgd(model, inputs, HardnessObjective(-2.0, "cosine")), inputs)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), destination=st.floats(-0.6, 0.6), steps=st.integers(1, 8))
def test_pgd_drops_settled_triplets_without_changing_the_result(
    seed: int, destination: float, steps: int
) -> None:
    # A row-wise model (no mixing across rows, no batch-size dependent reduction), so the
    # pruned and unpruned runs must agree exactly.
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(16, generator=gen, dtype=torch.float64)
    rows_seen: list[int] = []

    def model(x: Tensor) -> Tensor:
        rows_seen.append(x.shape[0])
        return torch.tanh(x.flatten(1)[:, :16] * weight + x.flatten(1)[:, 16:32])

    inputs = torch.rand(3 * 6, 1, 8, 8, generator=gen, dtype=torch.float64)
    pgd = LinfPGD(eps=0.2, alpha=0.05, steps=steps)
    pruned = pgd(model, inputs, HardnessObjective(destination, "cosine"))
    calls = list(rows_seen)
    rows_seen.clear()
    full = pgd(model, inputs, HardnessObjective(destination, "cosine", prune=False))
    assert torch.equal(pruned, full)
    assert rows_seen == [18] * steps
    assert calls[0] == 18 and all(r % 3 == 0 for r in calls)
    assert calls == sorted(calls, reverse=True)  # settled triplets never come back
    with torch.no_grad():
        done = HardnessObjective(destination, "cosine")(model(pruned))
    if len(calls) < steps:  # stopped early: every triplet reached the destination
        assert bool((done == 0).all())


def test_restrict_keeps_the_destination_of_the_kept_triplets() -> None:
    objective = HardnessObjective(torch.tensor([-0.1, 0.0, 0.2]), "cosine")
    keep = torch.tensor([True, False, True] * 3)
    assert objective.restrict(keep).destination.tolist() == pytest.approx([-0.1, 0.2])
    with pytest.raises(TypeError, match="prune must be a bool"):
        HardnessObjective(0.0, "cosine", prune=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep must mark"):
        objective.restrict(torch.tensor([True, False, True, True, True, True, True, False, True]))


# --- miners --------------------------------------------------------------------------


def test_spc2_miner_on_pairs_and_on_any_batch() -> None:
    y = torch.tensor([3, 3, 1, 1, 3, 3, 0, 0])
    a, p, n = RandomTripletMiner("pairs", torch.Generator().manual_seed(0))(torch.zeros(8, 2), y)
    assert a.tolist() == [0, 2, 4, 6] and p.tolist() == [1, 3, 5, 7]
    assert bool((y[n] != y[a]).all())
    # any order: the images of each class are paired in batch order; an odd one out is no anchor
    y = torch.tensor([2, 0, 2, 0, 2, 1, 1])
    a, p, _ = RandomTripletMiner("pairs")(torch.zeros(7, 2), y)
    assert sorted(zip(a.tolist(), p.tolist(), strict=True)) == [(0, 2), (1, 3), (5, 6)]


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=4, max_size=16),
    seed=st.integers(0, 2**16),
    anchors=st.sampled_from(["pairs", "all"]),
)
def test_soft_hard_miner_against_brute_force(labels: list[int], seed: int, anchors: str) -> None:
    y = torch.tensor(labels)
    if len(set(labels)) < 2 or max(labels.count(c) for c in set(labels)) < 2:
        with pytest.raises(ValueError, match="labels"):
            SoftHardTripletMiner(anchors=anchors)(torch.randn(len(labels), 3), y)
        return
    emb = torch.randn(len(labels), 3, generator=torch.Generator().manual_seed(seed))
    miner = SoftHardTripletMiner("euclidean", anchors, torch.Generator().manual_seed(seed))
    a, p, n = miner(emb, y)
    dist = torch.cdist(emb, emb)
    expected_anchors = []
    seen: dict[int, int] = {}
    for i, c in enumerate(labels):
        rank = seen.get(c, 0)
        seen[c] = rank + 1
        has_pos = labels.count(c) > 1
        later = any(labels[j] == c for j in range(i + 1, len(labels)))
        if (anchors == "all" and has_pos) or (anchors == "pairs" and rank % 2 == 0 and later):
            expected_anchors.append(i)
    assert a.tolist() == expected_anchors
    for i, j, k in zip(a.tolist(), p.tolist(), n.tolist(), strict=True):
        assert labels[j] == labels[i] and j != i and labels[k] != labels[i]
        pos = [q for q in range(len(labels)) if labels[q] == labels[i] and q != i]
        neg = [q for q in range(len(labels)) if labels[q] != labels[i]]
        far_pos, near_neg = max(dist[i, pos]), min(dist[i, neg])
        if any(dist[i, q] < far_pos for q in neg):
            assert dist[i, k] < far_pos  # a soft-hard negative when there is one
        if any(dist[i, q] > near_neg for q in pos):
            assert dist[i, j] > near_neg  # a soft-hard positive when there is one


# --- the older functional API ---------------------------------------------------------


def test_functional_loss_is_the_defense_object() -> None:
    from rankattack import MaxShiftAttack

    x, _ = _batch()
    model = _model()
    triplets = (torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([4, 6]))
    attack = MaxShiftAttack(model, eps=EPS, alpha=0.05, steps=2)
    torch.manual_seed(1)
    functional = embedding_shift_loss(model, TripletLoss(), x, triplets, attack)
    torch.manual_seed(1)
    obj = EmbeddingShiftDefense(eps=EPS, alpha=0.05, steps=2).triplet_loss(model, x, triplets)
    torch.testing.assert_close(functional, obj)


# --- pytorch-metric-learning ---------------------------------------------------------


@pytest.mark.parametrize("name", ["est", "act", "hm"])
def test_trains_with_pytorch_metric_learning_losses_and_miners(name: str) -> None:
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import losses, miners

    assert pml.__version__
    x, y = _batch(classes=4, per_class=4)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    defense = build_defense(
        name, eps=EPS, alpha=0.05, steps=2,
        ranking_loss=losses.TripletMarginLoss(margin=0.2),
        miner=miners.BatchHardMiner(),
    )  # fmt: skip
    before = model.fc1.weight.detach().clone()
    for _ in range(3):  # a plain PML-style loop
        loss = defense.loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert bool(torch.isfinite(loss))
    assert not torch.equal(before, model.fc1.weight)
    # the adapted loss sees exactly the defense's triplets
    emb = torch.randn(6, 4)
    ours = defense.ranking_loss(emb[:2], emb[2:4], emb[4:])
    theirs = losses.TripletMarginLoss(margin=0.2)(
        emb, None, (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    )
    torch.testing.assert_close(ours, theirs)
    with pytest.raises(TypeError, match="miner must return"):
        build_defense(name, steps=1, miner=miners.MultiSimilarityMiner()).loss(model, x, y)


def test_an_empty_mining_gives_a_zero_loss() -> None:
    x, _ = _batch()
    model = _model()
    empty = torch.zeros(0, dtype=torch.long)
    for factory in DEFENSES.values():
        loss = factory().triplet_loss(model, x, (empty, empty, empty))
        loss.backward()
        assert float(loss.detach()) == 0.0


# --- bad input -----------------------------------------------------------------------


ADVERSARIAL = [
    EmbeddingShiftDefense,
    AntiCollapseDefense,
    HardnessManipulationDefense,
    MadryDefense,
    ShiftSuppressDefense,
]


@pytest.mark.parametrize("cls", ADVERSARIAL)
def test_constructors_reject_bad_arguments(cls: type) -> None:
    with pytest.raises(ValueError, match="eps must be >= 0"):
        cls(eps=-0.1)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        cls(steps=0)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        cls(alpha=0.0)
    with pytest.raises(ValueError, match="metric"):
        cls(metric="l1")
    with pytest.raises(ValueError, match="margin"):
        cls(margin=-1.0)
    with pytest.raises(TypeError, match="ranking_loss must be callable"):
        cls(ranking_loss="triplet")
    with pytest.raises(TypeError, match="miner must be callable"):
        cls(miner=3)


def test_bad_names_and_batches() -> None:
    with pytest.raises(ValueError, match="defense must be one of"):
        build_defense("pgd")
    with pytest.raises(ValueError, match="anchors must be one of"):
        RandomTripletMiner("odd")
    with pytest.raises(ValueError, match="ics_weight"):
        HardnessManipulationDefense(ics_weight=-1.0)
    x, y = _batch()
    model = _model()
    for factory in DEFENSES.values():
        defense = factory()
        with pytest.raises(ValueError, match="labels: a batch must hold at least two classes"):
            defense.loss(model, x, torch.zeros_like(y))
        with pytest.raises(ValueError, match="labels must hold one label per image"):
            defense.loss(model, x, y[:-1])
        with pytest.raises(TypeError, match="labels must be an integer tensor"):
            defense.loss(model, x, y.float())
        with pytest.raises(ValueError, match=r"images must lie in \[0, 1\]"):
            defense.loss(model, x * 3, y)
        with pytest.raises(TypeError, match="images must be a floating-point"):
            defense.loss(model, (x * 255).long(), y)
    with pytest.raises(ValueError, match="labels: no class has two images"):
        AntiCollapseDefense().loss(model, x[:4], torch.arange(4))
