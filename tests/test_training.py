"""Tests for rankattack.training and rankattack.defenses."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rankattack import Gallery, LinfPGD, MaxShiftAttack
from rankattack.data import load_digits
from rankattack.defenses import (
    TripletAscentObjective,
    embedding_shift_step,
    madry_step,
    shift_suppress_step,
    vanilla_step,
)
from rankattack.losses import TripletLoss
from rankattack.metrics import recall_at_k
from rankattack.models import C2F1
from rankattack.training import (
    CHECKPOINT_NAME,
    ClassBalancedSampler,
    TrainConfig,
    batch_triplets,
    load_checkpoint,
    train,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight other jobs for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _blobs(
    n_per_class: int = 12, classes: int = 4, size: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-dependent bright squares plus noise, in [0, 1]."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n_per_class * classes, 1, size, size, generator=gen) * 0.3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    for c in range(classes):
        r, col = divmod(c, 2)
        h = size // 2
        x[y == c, :, r * h : (r + 1) * h, col * h : (col + 1) * h] += 0.6
    return x.clamp(0, 1), y


TINY = {"model": "c2f1", "embedding_dim": 16, "batch_size": 16, "epochs": 2}


# --- config ------------------------------------------------------------------------


def test_config_round_trip_and_schedule() -> None:
    cfg = TrainConfig(defense="embedding-shift", eps=0.3)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert (cfg.pgd_alpha, cfg.pgd_steps) == (0.01, 30)  # the paper's schedule for eps 0.3
    cfg = TrainConfig(defense="embedding-shift", eps=0.3, alpha=0.04, steps=10)
    assert (cfg.pgd_alpha, cfg.pgd_steps) == (0.04, 10)
    assert cfg.lr == 1e-3 and 0 < cfg.weight_decay <= 1e-4
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"modle": "c2f1"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "hinge"}, r"loss must be one of \['triplet', 'contrastive'\]"),
        ({"model": "vgg"}, "model must be one of"),
        ({"metric": "l1"}, "metric"),
        ({"eps": -0.1}, "eps must be >= 0"),
        ({"defense": "pgd"}, "defense must be one of"),
        ({"batch_size": 3}, "batch_size"),
        ({"margin": -1.0}, "margin"),
        ({"epochs": 0}, "epochs"),
        ({"steps": 0}, "steps"),
        ({"alpha": 0.0}, "alpha"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


# --- sampling ----------------------------------------------------------------------


def test_batch_triplets_are_valid() -> None:
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3])
    a, p, n = batch_triplets(labels, torch.Generator().manual_seed(1))
    assert a.tolist() == [0, 1, 2, 3, 4]  # classes 2 and 3 have no positive
    assert bool((labels[a] == labels[p]).all()) and bool((a != p).all())
    assert bool((labels[a] != labels[n]).all())


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.tensor([3, 3, 3, 3]), "single class|two classes"),
        (torch.tensor([0, 1, 2]), "no class has two images"),
    ],
)
def test_batch_triplets_errors(labels: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        batch_triplets(labels)


def test_sampler_batches_are_class_balanced() -> None:
    labels = torch.arange(5).repeat_interleave(20)
    sampler = ClassBalancedSampler(labels, batch_size=8, samples_per_class=2)
    batches = sampler.epoch(torch.Generator().manual_seed(0))
    assert batches.shape == (len(sampler), 8) == (12, 8)
    pairs = labels[batches].view(12, 4, 2)
    assert bool((pairs[..., 0] == pairs[..., 1]).all())  # K images per class slot
    assert all(len(set(row.tolist())) == 4 for row in pairs[..., 0])  # P distinct classes
    counts = torch.bincount(batches.flatten(), minlength=100).view(5, 20)
    # per-class random streams: no image is drawn twice before all of its class was drawn
    assert bool((counts.max(1).values - counts.min(1).values <= 1).all())
    assert int(counts.sum()) == 96


def test_sampler_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        ClassBalancedSampler(torch.zeros(10, dtype=torch.long), 4)


# --- bad training input ------------------------------------------------------------


def test_train_rejects_bad_input(tmp_path: Path) -> None:
    x, y = _blobs()
    cfg = TrainConfig(**TINY)
    with pytest.raises(ValueError, match="train_y must have one label per training input"):
        train(cfg, x, y[:-1], progress=False)
    with pytest.raises(ValueError, match="at least two classes"):
        train(cfg, x, torch.zeros_like(y), progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train(cfg, x * 2, y, progress=False)
    with pytest.raises(TypeError, match="train_y"):
        train(cfg, x, y.float(), progress=False)
    with pytest.raises(TypeError, match="TrainConfig"):
        train({"model": "c2f1"}, x, y)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


# --- checkpoints and resume ---------------------------------------------------------


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("defense", [None, "embedding-shift"])
def test_resume_is_bit_identical(tmp_path: Path, defense: str | None) -> None:
    x, y = _blobs()
    cfg = TrainConfig(**TINY, defense=defense, eps=0.1, alpha=0.05, steps=2)
    state = torch.get_rng_state()
    full = train(cfg, x, y, out_dir=tmp_path / "full", progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    part = train(cfg, x, y, out_dir=tmp_path / "part", progress=False, max_epochs_this_run=1)
    assert part.epochs_done == 1 and not part.complete
    assert not _same_weights(part.model, full.model)
    resumed = train(cfg, x, y, out_dir=tmp_path / "part", progress=False)
    assert resumed.complete
    assert _same_weights(resumed.model, full.model)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert resumed.history[0]["time"] == part.history[0]["time"]  # epoch 1 was not redone
    assert sorted(p.name for p in (tmp_path / "part").iterdir()) == [CHECKPOINT_NAME]


def test_snapshots_keep_the_end_of_epoch_checkpoints(tmp_path: Path) -> None:
    x, y = _blobs()
    cfg = TrainConfig(**{**TINY, "epochs": 3})
    run = train(cfg, x, y, out_dir=tmp_path / "run", progress=False, snapshot_every=2)
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == [CHECKPOINT_NAME, "epoch2.pt"]  # epochs 2 (of 3) only
    two = train(cfg, x, y, out_dir=tmp_path / "two", progress=False, max_epochs_this_run=2)
    snap, saved = load_checkpoint(tmp_path / "run" / "epoch2.pt")
    assert saved == cfg and _same_weights(snap, two.model)
    assert not _same_weights(snap, run.model)
    with pytest.raises(ValueError, match="snapshot_every must be >= 1, got 0"):
        train(cfg, x, y, out_dir=tmp_path / "bad", progress=False, snapshot_every=0)
    with pytest.raises(ValueError, match="snapshot_every needs out_dir"):
        train(cfg, x, y, progress=False, snapshot_every=1)
    assert not (tmp_path / "bad").exists()


class _KilledError(Exception):
    """Stands for the process being killed in the middle of an epoch."""


@pytest.mark.parametrize("defense", [None, "embedding-shift", "act", "hm"])
def test_a_run_killed_inside_an_epoch_resumes_bit_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, defense: str | None
) -> None:
    import rankattack.training.loop as loop

    x, y = _blobs()
    cfg = TrainConfig(**TINY, defense=defense, eps=0.1, alpha=0.05, steps=2)
    full = train(cfg, x, y, out_dir=tmp_path / "full", progress=False)
    steps_per_epoch = full.history[0]["batches"]
    assert steps_per_epoch >= 2
    real_step, calls = loop.train_step, []

    def dying_step(*args, **kwargs):
        if len(calls) == steps_per_epoch + 1:  # the second batch of epoch 2
            raise _KilledError
        calls.append(1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", dying_step)
    with pytest.raises(_KilledError):
        train(cfg, x, y, out_dir=tmp_path / "part", progress=False, checkpoint_seconds=0.0)
    saved = torch.load(tmp_path / "part" / CHECKPOINT_NAME, weights_only=True)
    assert saved["epoch"] == 1 and saved["partial"]["next"] == 1  # inside epoch 2
    monkeypatch.setattr(loop, "train_step", real_step)
    resumed = train(cfg, x, y, out_dir=tmp_path / "part", progress=False)
    assert resumed.complete
    assert _same_weights(resumed.model, full.model)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    final = torch.load(tmp_path / "part" / CHECKPOINT_NAME, weights_only=True)
    assert "partial" not in final  # written at the end of the last epoch


def test_checkpoint_load_and_config_mismatch(tmp_path: Path) -> None:
    x, y = _blobs()
    cfg = TrainConfig(**{**TINY, "epochs": 1})
    result = train(cfg, x, y, out_dir=tmp_path, progress=False)
    model, loaded_cfg = load_checkpoint(tmp_path)
    assert loaded_cfg == cfg and not model.training
    assert _same_weights(model, result.model)
    model2, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME, map_location="cpu")
    assert _same_weights(model2, result.model)
    with pytest.raises(ValueError, match=r"different config \(lr: 0.001 -> 0.01\)"):
        train(
            TrainConfig(**{**TINY, "epochs": 1, "lr": 0.01}), x, y, out_dir=tmp_path, progress=False
        )
    with pytest.raises(ValueError, match="other data"):
        train(cfg, x, y.flip(0), out_dir=tmp_path, progress=False)
    # more epochs resume; resume=False starts over
    longer = train(TrainConfig(**TINY), x, y, out_dir=tmp_path, progress=False)
    assert longer.history[0] == result.history[0] and longer.epochs_done == 2
    fresh = train(cfg, x, y, out_dir=tmp_path, resume=False, progress=False)
    assert _same_weights(fresh.model, result.model)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


class _Custom:
    """An arbitrary Python object: neither a tensor nor a plain value."""


def _write_unreadable(path: Path, kind: str) -> None:
    if kind == "text":
        path.write_text("# rankattack\n\nA README, not a checkpoint.\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "torch-object":
        torch.save({"format": 1, "model": _Custom()}, path)
    elif kind == "pickle-set":
        with open(path, "wb") as fh:
            pickle.dump({1, 2, 3}, fh)
    elif kind == "pickle-class":
        with open(path, "wb") as fh:
            pickle.dump(_Custom, fh)
    elif kind == "truncated":
        torch.save({"format": 1, "model": {"w": torch.zeros(64)}}, path)
        path.write_bytes(path.read_bytes()[:200])
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["text", "empty", "torch-object", "pickle-set", "pickle-class", "truncated"]
)
def test_load_checkpoint_rejects_files_torch_cannot_read_safely(
    tmp_path: Path, kind: str, recwarn: pytest.WarningsRecorder
) -> None:
    path = tmp_path / "checkpoint.pt"
    _write_unreadable(path, kind)
    with pytest.raises(ValueError, match="is not a readable rankattack training checkpoint") as exc:
        load_checkpoint(path)
    message = str(exc.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert "weights_only" not in message  # never advise turning the safe loader off
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]
    # the directory holding it too, and a resuming run
    with pytest.raises(ValueError, match="is not a readable rankattack training checkpoint"):
        load_checkpoint(tmp_path)
    x, y = _blobs()
    with pytest.raises(ValueError, match="is not a readable rankattack training checkpoint"):
        train(TrainConfig(**{**TINY, "epochs": 1}), x, y, out_dir=tmp_path, progress=False)


def test_load_checkpoint_rejects_other_torch_files(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match=r"is not a rankattack training checkpoint \(format 1\)"):
        load_checkpoint(path)


# --- training quality and the defense ------------------------------------------------


@pytest.fixture(scope="module")
def digits_models() -> dict[str, object]:
    """Vanilla and embedding-shift-defended C2F1 on 8x8 digits (a few seconds each).

    The defense's adversary reaches eps = 0.2 in 2 steps of 0.1. A stronger one (eps =
    0.3, 4 steps) makes these 3 epochs collapse the embedding space (the mean distance
    between two test digits falls from 0.5-0.8 to 0.001-0.09 over training seeds 0-5):
    the shift vanishes in absolute terms, while relative to that distance it keeps
    0.61-0.86 of the vanilla model's, and CA+ works as well as on the vanilla model.
    """
    data = load_digits(image_size=8, seed=0)
    out: dict[str, object] = {"data": data}
    for name, defense in (("vanilla", None), ("defended", "embedding-shift")):
        cfg = TrainConfig(
            model="c2f1",
            embedding_dim=32,
            epochs=3,
            batch_size=64,
            seed=0,
            defense=defense,
            eps=0.2,
            alpha=0.1,
            steps=2,
        )
        out[name] = train(cfg, data.train_x, data.train_y, progress=False)
    return out


def test_vanilla_training_reaches_recall(digits_models: dict) -> None:
    """Over training seeds 0-5: the last epoch's loss is 0.15-0.30 of the first's, R@1
    0.939-0.962, mAP 0.818-0.850. The untrained network already has R@1 0.92-0.96 on
    8x8 digits (raw pixels: 0.98); its mAP, 0.52-0.59, is what training changes."""
    from rankattack.metrics import mean_average_precision

    data, result = digits_models["data"], digits_models["vanilla"]
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    gallery = Gallery.from_inputs(result.model, data.test_x, data.test_y, metric="cosine")
    # 3 epochs on 896 digits (8x8): R@1 over the 901 test digits, each querying the rest
    assert recall_at_k(gallery)[1] >= 0.9
    assert mean_average_precision(gallery) >= 0.75


def test_defense_suppresses_the_maximum_embedding_shift(digits_models: dict) -> None:
    """Over training seeds 0-5 (eps = 0.3): the vanilla shift is 1.00-1.29 times the
    mean distance between two test digits; the defended model's shift is 0.18-0.53 of
    the vanilla one in absolute terms and 0.50-0.64 relative to that distance; its R@1
    is 0.939-0.959. CA+ at eps = 0.1 keeps 0.50-0.56 of the vanilla model's ranks and
    0.58-0.64 of the defended one's (0.06-0.12 more, for every seed)."""
    from rankattack import CandidateAttack

    data = digits_models["data"]
    x = data.test_x[:200]
    gen = torch.Generator().manual_seed(0)
    cand = torch.randperm(len(data.test_x), generator=gen)[:60]
    query = torch.randint(0, len(data.test_x), (60, 1), generator=gen)
    shifts, relative, kept = {}, {}, {}
    for name in ("vanilla", "defended"):
        model = digits_models[name].model
        torch.manual_seed(0)
        shift = MaxShiftAttack(model, eps=0.3, alpha=0.05, steps=10).run(x).shift.mean()
        gallery = Gallery.from_inputs(model, data.test_x, data.test_y)
        i, j = torch.randint(0, len(gallery), (2, 2000), generator=torch.Generator().manual_seed(0))
        spread = gallery.distance(gallery.embeddings[i], gallery.embeddings[j]).mean()
        shifts[name], relative[name] = float(shift), float(shift / spread)
        ca = CandidateAttack(model, gallery, "raise", eps=0.1).run(
            data.test_x[cand], data.test_x[query]
        )
        kept[name] = float(ca.rank_after.mean() / ca.rank_before.mean())
    # the paper's Fig. 2 effect: an eps = 0.3 perturbation moves a vanilla embedding
    # as far as the typical distance between two digits; the defense reduces that
    assert relative["vanilla"] > 0.5
    assert shifts["defended"] < 0.75 * shifts["vanilla"]
    # not only a rescaling of the embedding space: the shift relative to the mean
    # distance between test items also drops
    assert relative["defended"] < 0.8 * relative["vanilla"]
    assert kept["defended"] > kept["vanilla"]  # and CA+ moves its candidates less
    gallery = Gallery.from_inputs(digits_models["defended"].model, data.test_x, data.test_y)
    assert recall_at_k(gallery)[1] >= 0.85  # the defense costs a little clean accuracy


# --- step functions -------------------------------------------------------------------


def _triplet_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, _ = _blobs(n_per_class=4, classes=2)
    return x[:2], x[2:4], x[4:6]  # class 0, class 0, class 1


def test_step_functions_update_the_model() -> None:
    q, p, n = _triplet_inputs()
    for make in (
        lambda m: vanilla_step(m, TripletLoss(), torch.optim.SGD(m.parameters(), 0.1), q, p, n),
        lambda m: embedding_shift_step(
            m,
            TripletLoss(),
            torch.optim.SGD(m.parameters(), 0.1),
            q,
            p,
            n,
            MaxShiftAttack(m, eps=0.1, alpha=0.05, steps=2),
        ),
        lambda m: madry_step(
            m,
            TripletLoss(margin=5.0),
            torch.optim.SGD(m.parameters(), 0.1),
            q,
            p,
            n,
            LinfPGD(eps=0.1, alpha=0.05, steps=2),
        ),
        lambda m: shift_suppress_step(
            m,
            TripletLoss(),
            torch.optim.SGD(m.parameters(), 0.1),
            q,
            p,
            n,
            MaxShiftAttack(m, eps=0.1, alpha=0.05, steps=2),
        ),
    ):
        torch.manual_seed(0)
        model = C2F1(embedding_dim=8).train()
        before = model.conv1.weight.detach().clone()
        loss = make(model)
        assert loss.shape == () and not loss.requires_grad and torch.isfinite(loss)
        assert model.training
        assert not torch.equal(before, model.conv1.weight)


def test_embedding_shift_step_trains_on_the_max_shift_adversary() -> None:
    q, p, n = _triplet_inputs()
    torch.manual_seed(0)
    model = C2F1(embedding_dim=8)
    attack = MaxShiftAttack(model, eps=0.2, alpha=0.1, steps=3)
    loss_fn = TripletLoss(margin=1.5)
    torch.manual_seed(1)
    adv = attack(torch.cat([q, p, n]))
    with torch.no_grad():
        e = model(adv)
        expected = loss_fn(e[:2], e[2:4], e[4:])
    torch.manual_seed(1)
    got = embedding_shift_step(
        model, loss_fn, torch.optim.SGD(model.parameters(), 0.0), q, p, n, attack
    )
    torch.testing.assert_close(got, expected)
    with torch.no_grad():
        clean = model(torch.cat([q, p, n]))
    assert not torch.allclose(expected, loss_fn(clean[:2], clean[2:4], clean[4:]))


def test_madry_objective_raises_the_triplet_loss() -> None:
    q, p, n = _triplet_inputs()
    torch.manual_seed(0)
    model = C2F1(embedding_dim=8).eval()
    with torch.no_grad():
        ep, en = model(p), model(n)
    objective = TripletAscentObjective(ep, en, "cosine")
    adv = LinfPGD(eps=0.1, alpha=0.02, steps=10)(model, q, objective)
    loss = TripletLoss("cosine", margin=10.0, reduction="none")
    with torch.no_grad():
        assert bool((loss(model(adv), ep, en) > loss(model(q), ep, en)).all())


def test_step_functions_reject_bad_input() -> None:
    q, p, n = _triplet_inputs()
    model = C2F1(embedding_dim=8)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.raises(ValueError, match="same shape"):
        vanilla_step(model, TripletLoss(), opt, q, p[:1], n)
    with pytest.raises(TypeError, match="MaxShiftAttack"):
        embedding_shift_step(model, TripletLoss(), opt, q, p, n, LinfPGD(eps=0.1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps must be >= 0"):
        MaxShiftAttack(model, eps=-0.1)
