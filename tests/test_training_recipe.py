"""Training recipes: the "eccv2020" preset, its per-class triplet sampler, resume, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rankattack.training import CHECKPOINT_NAME, TrainConfig, load_checkpoint, train
from rankattack.training.loop import _batch_images
from rankattack.training.recipes import RECIPES, Recipe, recipe_config
from rankattack.training.samplers import (
    ClassBalancedSampler,
    PerClassTripletSampler,
    recipe_sampler,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _shuffled_labels(per_class: int, classes: int = 10, seed: int = 0) -> torch.Tensor:
    y = torch.arange(classes).repeat_interleave(per_class)
    return y[torch.randperm(y.numel(), generator=torch.Generator().manual_seed(seed))]


def _blobs(n_per_class: int = 12, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-dependent bright squares plus noise, 16x16, in [0, 1] (as in test_training)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n_per_class * classes, 1, 16, 16, generator=gen) * 0.3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    for c in range(classes):
        r, col = divmod(c, 2)
        x[y == c, :, r * 8 : (r + 1) * 8, col * 8 : (col + 1) * 8] += 0.6
    return x.clamp(0, 1), y


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the preset ----------------------------------------------------------------------


def test_eccv2020_recipe_has_the_released_settings() -> None:
    cfg = recipe_config("eccv2020")
    assert cfg.recipe == "eccv2020"
    assert (cfg.model, cfg.loss, cfg.metric, cfg.margin) == ("c2f1", "triplet", "cosine", 0.2)
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay) == (30, 1000, 1e-3, 1e-7)
    assert cfg.defense is None and cfg.miner is None
    eff = cfg.effective()
    assert eff["miner"] is None and eff["samples_per_class"] is None  # unused by the recipe
    # the defended model: EST at eps 0.3 with the paper's schedule (0.01, 30 steps)
    est = recipe_config("eccv2020", defense="embedding-shift")
    assert (est.defense, est.pgd_eps, est.pgd_alpha, est.pgd_steps) == ("est", 0.3, 0.01, 30)
    # given values win over the recipe's; other defenses keep their own eps
    mine = recipe_config("eccv2020", epochs=2, batch_size=500, defense="est", eps=0.1)
    assert (mine.epochs, mine.batch_size, mine.pgd_eps, mine.weight_decay) == (2, 500, 0.1, 1e-7)
    assert recipe_config("eccv2020", defense="act").pgd_eps == pytest.approx(77 / 255)
    # "default" is TrainConfig as it is
    assert recipe_config() == TrainConfig() and TrainConfig().recipe == "default"
    assert recipe_config("default", epochs=3) == TrainConfig(epochs=3)
    # samples_per_class does not bound the batch of a triplet recipe (the classes do, in
    # the sampler)
    assert recipe_config("eccv2020", batch_size=3).batch_size == 3
    with pytest.raises(ValueError, match="batch_size must hold at least two classes"):
        TrainConfig(batch_size=3)
    assert set(RECIPES) == {"default", "eccv2020", "robrank"}
    assert all(isinstance(r, Recipe) and r.source for r in RECIPES.values())


def test_robrank_recipe_has_robranks_28x28_settings_and_miners() -> None:
    cfg = recipe_config("robrank")
    assert (cfg.model, cfg.loss, cfg.metric, cfg.margin) == ("c2f2", "triplet", "cosine", 0.2)
    assert (cfg.epochs, cfg.batch_size, cfg.samples_per_class) == (8, 256, 2)
    assert (cfg.lr, cfg.weight_decay) == (1e-3, 1e-7)
    # one triplet per same-class pair for every run but HM, whose sources are soft-hard
    assert cfg.triplet_miner == "spc2" and cfg.effective()["miner"] == "spc2"
    wanted = {"est": "spc2", "act": "spc2", "hm": "softhard", "madry": "random"}
    for defense, miner in wanted.items():
        assert recipe_config("robrank", defense=defense).triplet_miner == miner
        assert TrainConfig(defense=defense, recipe="robrank").triplet_miner == miner
    # the default recipe keeps the defenses' own miners; a given miner wins over both
    assert TrainConfig().triplet_miner == "random"
    assert TrainConfig(defense="est").triplet_miner == "random"
    assert recipe_config("robrank", miner="random").triplet_miner == "random"
    # the adversary: robrank's 28x28 one, 32 steps of 3/255 within 77/255
    hm = recipe_config("robrank", defense="hm", metric="normalized-euclidean")
    assert (hm.pgd_eps, hm.pgd_alpha, hm.pgd_steps) == (77 / 255, 3 / 255, 32)
    assert hm.metric == "normalized-euclidean"
    # a recipe names real miners for canonical defense names
    with pytest.raises(ValueError, match=r"miners\['act'\] must be one of"):
        Recipe("mine", "class-balanced", miners={"act": "hard"})
    with pytest.raises(ValueError, match=r"miners' keys must be one of .* got 'embedding-shift'"):
        Recipe("mine", "class-balanced", miners={"embedding-shift": "spc2"})
    # the recipe's miner is part of what a resumed run is checked against
    assert cfg.effective() != TrainConfig(**{**cfg.to_dict(), "recipe": "default"}).effective()


def test_recipe_config_round_trips_and_old_configs_read_as_default() -> None:
    cfg = recipe_config("eccv2020", defense="est")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    old = TrainConfig().to_dict()
    del old["recipe"]  # a checkpoint written before the field existed
    assert TrainConfig.from_dict(old).recipe == "default"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: recipe_config("eccv2021"),
            r"recipe must be one of \['default', 'eccv2020', 'robrank'\]",
        ),
        (lambda: recipe_config("ECCV2020"), "recipe must be one of"),
        (lambda: TrainConfig(recipe="paper"), "recipe must be one of"),
        (lambda: recipe_config("eccv2020", recipe="default"), "overrides must be TrainConfig"),
        (lambda: recipe_config("eccv2020", epoch=3), r"overrides .* got \['epoch'\]"),
        (lambda: recipe_config("eccv2020", miner="spc2"), "miner must be left unset"),
        (lambda: recipe_config("eccv2020", epochs=0), "epochs must be >= 1"),
        (lambda: recipe_config("eccv2020", defense="pgd"), "defense"),
        (lambda: recipe_sampler("nope", torch.arange(4) % 2, 2), "recipe must be one of"),
    ],
)
def test_bad_recipe_input_names_the_argument(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_recipe_sampler_picks_the_recipes_sampler() -> None:
    y = torch.arange(40) % 4
    assert isinstance(recipe_sampler("default", y, 8), ClassBalancedSampler)
    assert isinstance(recipe_sampler("eccv2020", y, 8), PerClassTripletSampler)


# --- the sampler ---------------------------------------------------------------------


def test_batches_have_the_stated_composition() -> None:
    y = _shuffled_labels(per_class=300)  # 3000 images, 10 classes, like Fashion-MNIST
    sampler = PerClassTripletSampler(y, batch_size=500)
    batches = sampler.epoch(_gen())
    assert len(sampler) == 6 and sampler.triplets_per_batch == 500
    assert batches.shape == (6, 3, 500) and batches.dtype == torch.long
    used = []
    for a, p, n in batches:
        # per class, batch/10 = 50 anchors, in class order; positives of the anchor's class,
        # negatives of another class
        assert y[a].tolist() == torch.arange(10).repeat_interleave(50).tolist()
        assert torch.equal(y[p], y[a])
        assert bool((y[n] != y[a]).all())
        images = torch.cat([a, p, n]).unique()
        assert images.numel() <= 500  # drawn among the batch's 500 images
        used.append(images)
    every = torch.cat(used)
    assert every.unique().numel() == every.numel()  # each image in at most one batch
    # with replacement: about 50 anchors among about 50 images of a class repeat some
    assert all(a.unique().numel() < a.numel() for a, _, _ in batches)


def test_triplets_are_drawn_uniformly_with_replacement_within_the_batch() -> None:
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    sampler = PerClassTripletSampler(y, batch_size=12)  # 3 triplets per class per batch
    images = torch.tensor([0, 1, 2, 3, 5, 6, 9]).repeat(4000, 1)  # 4000 copies of one batch
    a, p, n = sampler.triplets(images, _gen()).transpose(0, 1).reshape(3, -1)
    batch = set(images[0].tolist())
    assert set(a.tolist()) | set(p.tolist()) | set(n.tolist()) <= batch
    assert torch.equal(y[p], y[a]) and bool((y[n] != y[a]).all())
    # class 0 has 3 images in the batch: each is an anchor (positive) a third of the time;
    # 12000 draws per class, so the binomial sd is about 52: bounds at about 8 sd
    for draws in (a, p):
        counts = torch.bincount(draws[y[draws] == 0], minlength=12)[:3]
        assert bool(((counts > 3600) & (counts < 4400)).all()), counts
    # class 2 has images 5 and 6 only; its negatives are uniform over the other five images
    neg = n[y[a] == 2]
    counts = torch.bincount(neg, minlength=12)[[0, 1, 2, 3, 9]]
    assert bool(((counts > 2000) & (counts < 2800)).all()), counts
    # an anchor is its own positive about as often as chance says (1/3 for class 0)
    same = (a == p)[y[a] == 0].double().mean()
    assert 0.30 < float(same) < 0.37


def test_a_class_missing_from_a_batch_falls_back_to_the_whole_set() -> None:
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])
    sampler = PerClassTripletSampler(y, batch_size=6)  # 2 triplets per class
    missing_two = torch.tensor([[0, 1, 2, 3, 0, 1]])  # no image of class 2
    a, p, n = sampler.triplets(missing_two, _gen())[0]
    assert y[a].tolist() == [0, 0, 1, 1, 2, 2] and torch.equal(y[p], y[a])
    assert set(a[4:].tolist()) <= {4, 5, 6, 7} and set(n[4:].tolist()) <= {0, 1, 2, 3}
    one_class = torch.tensor([[4, 5, 6, 7, 4, 5]])  # only class 2: negatives from the set
    a, p, n = sampler.triplets(one_class, _gen())[0]
    assert torch.equal(y[p], y[a]) and bool((y[n] != y[a]).all())
    assert set(a[4:].tolist()) <= {4, 5, 6, 7}


def test_the_sampler_is_deterministic_under_a_seed() -> None:
    y = _shuffled_labels(per_class=50)
    sampler = PerClassTripletSampler(y, batch_size=100)
    g = _gen(3)
    first = sampler.epoch(g)
    assert torch.equal(first, sampler.epoch(_gen(3)))
    assert torch.equal(first, PerClassTripletSampler(y, 100).epoch(_gen(3)))
    assert not torch.equal(first, sampler.epoch(_gen(4)))
    assert not torch.equal(first, sampler.epoch(g))  # the next epoch draws new batches


@pytest.mark.parametrize(
    ("labels", "batch_size", "match", "error"),
    [
        (torch.zeros(10, dtype=torch.long), 2, "at least two classes", ValueError),
        (torch.arange(10) % 5, 4, "batch_size must be >= 5", ValueError),
        (torch.arange(10) % 5, 11, r"at most the number of labels \(10\)", ValueError),
        (torch.arange(10) % 5, 5.0, "batch_size must be an int", TypeError),
        (torch.rand(10), 5, "labels", TypeError),
    ],
)  # fmt: skip
def test_sampler_rejects_bad_input(labels, batch_size, match: str, error: type) -> None:
    with pytest.raises(error, match=match):
        PerClassTripletSampler(labels, batch_size)


def test_sampler_triplets_rejects_bad_images() -> None:
    sampler = PerClassTripletSampler(torch.arange(10) % 2, 4)
    with pytest.raises(ValueError, match=r"images must be non-empty indices in \[0, 10\)"):
        sampler.triplets(torch.tensor([[0, 10]]), _gen())
    with pytest.raises(ValueError, match="images"):
        sampler.triplets(torch.tensor([0, 1]), _gen())


def test_a_triplet_batch_embeds_each_image_once() -> None:
    batch = torch.tensor([[7, 3, 7], [3, 9, 9], [1, 1, 12]])
    images, (a, p, n) = _batch_images(batch, torch.device("cpu"))
    assert images.tolist() == [1, 3, 7, 9, 12]
    assert images[a].tolist() == [7, 3, 7] and images[p].tolist() == [3, 9, 9]
    assert images[n].tolist() == [1, 1, 12]
    plain = torch.tensor([4, 2, 8])
    assert _batch_images(plain, torch.device("cpu")) == (plain, None)


# --- training with the recipe -----------------------------------------------------------

TINY = {"embedding_dim": 16, "batch_size": 16, "epochs": 2}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class _KilledError(Exception):
    """Stands for the process being killed in the middle of an epoch."""


@pytest.mark.parametrize("defense", [None, "est"])
def test_a_recipe_run_killed_inside_an_epoch_resumes_bit_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, defense: str | None
) -> None:
    import rankattack.training.loop as loop

    x, y = _blobs()
    cfg = recipe_config("eccv2020", **TINY, defense=defense, eps=0.1, alpha=0.05, steps=2)
    full = train(cfg, x, y, out_dir=tmp_path / "full", progress=False)
    steps_per_epoch = full.history[0]["batches"]
    assert steps_per_epoch == 3  # 48 images // 16
    real_step, calls = loop.train_step, []

    def dying_step(*args, **kwargs):
        if len(calls) == steps_per_epoch + 1:  # the second batch of epoch 2
            raise _KilledError
        calls.append(args[4])  # the triplets the loop passes
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", dying_step)
    with pytest.raises(_KilledError):
        train(cfg, x, y, out_dir=tmp_path / "part", progress=False, checkpoint_seconds=0.0)
    assert all(t is not None and t[0].numel() == 16 for t in calls)  # 4 classes x 4 triplets
    saved = torch.load(tmp_path / "part" / CHECKPOINT_NAME, weights_only=True)
    assert saved["epoch"] == 1 and saved["partial"]["next"] == 1  # inside epoch 2
    assert saved["partial"]["batches"].shape == (3, 3, 16)  # the epoch's triplets are kept
    assert saved["config"]["recipe"] == "eccv2020"
    monkeypatch.setattr(loop, "train_step", real_step)
    resumed = train(cfg, x, y, out_dir=tmp_path / "part", progress=False)
    assert resumed.complete
    assert _same_weights(resumed.model, full.model)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    model, loaded = load_checkpoint(tmp_path / "part")
    assert loaded == cfg and _same_weights(model, full.model)


def test_recipes_train_differently_and_do_not_resume_each_other(tmp_path: Path) -> None:
    x, y = _blobs()
    ours = train(TrainConfig(**{**TINY, "epochs": 1}), x, y, out_dir=tmp_path, progress=False)
    theirs = train(recipe_config("eccv2020", **{**TINY, "epochs": 1}), x, y, progress=False)
    assert not _same_weights(ours.model, theirs.model)
    with pytest.raises(ValueError, match=r"recipe: 'default' -> 'eccv2020'"):
        train(recipe_config("eccv2020", **TINY), x, y, out_dir=tmp_path, progress=False)


def test_a_checkpoint_without_the_recipe_field_resumes_as_default(tmp_path: Path) -> None:
    x, y = _blobs()
    cfg = TrainConfig(**TINY)
    full = train(cfg, x, y, out_dir=tmp_path / "full", progress=False)
    train(cfg, x, y, out_dir=tmp_path / "old", progress=False, max_epochs_this_run=1)
    path = tmp_path / "old" / CHECKPOINT_NAME
    state = torch.load(path, weights_only=True)
    del state["config"]["recipe"]  # as written before the field existed
    torch.save(state, path)
    resumed = train(cfg, x, y, out_dir=tmp_path / "old", progress=False)
    assert resumed.epochs_done == 2 and _same_weights(resumed.model, full.model)
    assert load_checkpoint(path)[1].recipe == "default"


# --- the command ---------------------------------------------------------------------


def test_train_command_takes_a_recipe(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from rankattack.cli import main

    def trained(recipe: str, batch_size: int) -> TrainConfig:
        out = tmp_path / recipe
        argv = [
            "train", "--dataset", "digits", "--image-size", "8", "--train-size", "100",
            "--test-size", "50", "--recipe", recipe, "--epochs", "1",
            "--batch-size", str(batch_size), "--embedding-dim", "16", "--out", str(out),
            "--no-progress", "--device", "cpu",
        ]  # fmt: skip
        assert main(argv) == 0
        return load_checkpoint(out)[1]

    config = trained("eccv2020", 50)
    assert config.recipe == "eccv2020" and config.weight_decay == 1e-7 and config.margin == 0.2
    assert config.epochs == 1 and config.batch_size == 50  # the options given win
    config = trained("robrank", 20)  # --model, --loss, --metric unset: the recipe's
    assert (config.recipe, config.model, config.weight_decay) == ("robrank", "c2f2", 1e-7)
    assert config.triplet_miner == "spc2" and config.batch_size == 20
    bad = ["train", "--recipe", "eccv", "--dataset", "digits", "--out", str(tmp_path / "b")]
    with pytest.raises(SystemExit) as exc:
        main(bad)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "recipe must be one of ['default', 'eccv2020', 'robrank']" in err
    )
