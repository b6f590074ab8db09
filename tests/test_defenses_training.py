"""The defenses in the training loop and at the command line: config, resume, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rankattack.cli import main
from rankattack.defenses import AntiCollapseDefense, HardnessManipulationDefense
from rankattack.defenses.miners import RandomTripletMiner, SoftHardTripletMiner
from rankattack.training import CHECKPOINT_NAME, TrainConfig, make_defense, train


def _blobs(n_per_class: int = 12, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-dependent bright squares plus noise, 16x16, in [0, 1]."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n_per_class * classes, 1, 16, 16, generator=gen) * 0.3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    for c in range(classes):
        r, col = divmod(c, 2)
        x[y == c, :, r * 8 : (r + 1) * 8, col * 8 : (col + 1) * 8] += 0.6
    return x.clamp(0, 1), y


TINY = {"model": "c2f1", "embedding_dim": 16, "batch_size": 16, "epochs": 2}


def test_config_defaults_per_defense() -> None:
    for name in ("est", "act", "hm"):
        cfg = TrainConfig(defense=name)
        assert (cfg.pgd_eps, cfg.pgd_alpha, cfg.pgd_steps) == (77 / 255, 3 / 255, 32)
    assert TrainConfig(defense="embedding-shift") == TrainConfig(defense="est")
    assert TrainConfig(defense="embedding-shift").defense == "est"
    assert TrainConfig(defense="act").triplet_miner == "spc2"
    assert TrainConfig(defense="hm").triplet_miner == "softhard"
    assert TrainConfig(defense="est").triplet_miner == TrainConfig().triplet_miner == "random"
    assert TrainConfig(defense="act", miner="random").triplet_miner == "random"
    cfg = TrainConfig(defense="madry")
    assert (cfg.pgd_eps, cfg.pgd_alpha, cfg.pgd_steps) == (0.3, 0.01, 30)
    cfg = TrainConfig(defense="hm", eps=8 / 255)  # eps given: the paper's schedule for it
    assert (cfg.pgd_alpha, cfg.pgd_steps) == (1 / 255, 16)
    cfg = TrainConfig(defense="hm", steps=8)
    assert (cfg.pgd_eps, cfg.pgd_alpha, cfg.pgd_steps) == (77 / 255, 3 / 255, 8)


def test_make_defense_follows_the_config() -> None:
    act = make_defense(TrainConfig(defense="act", steps=4, metric="euclidean"))
    assert isinstance(act, AntiCollapseDefense)
    assert (act.pgd.eps, act.pgd.alpha, act.pgd.steps, act.metric) == (
        77 / 255, 3 / 255, 4, "euclidean",
    )  # fmt: skip
    assert isinstance(act.miner, RandomTripletMiner) and act.miner.anchors == "pairs"
    hm = make_defense(TrainConfig(defense="hm", margin=0.3))
    assert isinstance(hm, HardnessManipulationDefense) and hm.margin == 0.3
    assert isinstance(hm.miner, SoftHardTripletMiner)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"defense": "pgd"}, "defense must be one of"),
        ({"defense": "act", "eps": -0.1}, "eps must be >= 0"),
        ({"defense": "hm", "steps": 0}, "steps must be >= 1"),
        ({"miner": "hardest"}, "miner must be one of"),
    ],
)
def test_config_rejects_bad_defense_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_hm_state_matters_for_the_resumed_run(tmp_path: Path) -> None:
    """Without its saved state a resumed HM run would differ: the state is what keeps it exact
    (tests/test_training.py resumes ACT and HM runs killed inside an epoch bit-identically)."""
    x, y = _blobs()
    cfg = TrainConfig(**TINY, defense="hm", eps=0.2, alpha=0.1, steps=2)
    full = train(cfg, x, y, out_dir=tmp_path / "full", progress=False)
    train(cfg, x, y, out_dir=tmp_path / "part", progress=False, max_epochs_this_run=1)
    path = tmp_path / "part" / CHECKPOINT_NAME
    data = torch.load(path, weights_only=True)
    assert data["defense"]["previous_loss"].shape == ()  # the checkpoint holds l_prev
    data["defense"] = {}  # l_prev back to its initial 2.0
    torch.save(data, path)
    forgetful = train(cfg, x, y, out_dir=tmp_path / "part", progress=False)
    assert not _same_weights(forgetful.model, full.model)


def test_old_checkpoints_with_the_default_eps_still_resume(tmp_path: Path) -> None:
    """A vanilla checkpoint made when eps defaulted to 0.3 resumes under today's config."""
    x, y = _blobs()
    cfg = TrainConfig(**TINY)
    train(cfg, x, y, out_dir=tmp_path, progress=False, max_epochs_this_run=1)
    data = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    data["config"] = {**data["config"], "eps": 0.3, "defense": None}
    del data["config"]["miner"]
    data.pop("defense")
    torch.save(data, tmp_path / CHECKPOINT_NAME)
    assert train(cfg, x, y, out_dir=tmp_path, progress=False).epochs_done == 2


def test_train_command_with_a_defense(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from rankattack.training import load_checkpoint

    out = tmp_path / "run"
    argv = [
        "train", "--dataset", "digits", "--image-size", "8", "--train-size", "100",
        "--test-size", "50", "--epochs", "1", "--batch-size", "50", "--embedding-dim", "16",
        "--defense", "hm", "--defense-eps", "8/255", "--defense-steps", "2", "--miner", "spc2",
        "--out", str(out), "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    assert main(argv) == 0
    assert "R@1 on the test set (50 items):" in capsys.readouterr().out
    _, config = load_checkpoint(out)
    assert config.defense == "hm" and config.eps == pytest.approx(8 / 255)
    assert config.steps == 2 and config.triplet_miner == "spc2"


@pytest.mark.parametrize(
    ("option", "match"),
    [
        (["--defense", "pgd"], "defense must be one of"),
        (["--defense", "act", "--defense-eps", "-0.1"], "eps must be >= 0"),
        (["--defense", "act", "--defense-steps", "0"], "steps must be >= 1"),
        (["--defense", "act", "--defense-eps", "1/0"], "--defense-eps must be a number"),
        (["--miner", "hardest"], "miner must be one of"),
    ],
)
def test_train_command_rejects_bad_defense_options(
    tmp_path: Path, capsys: pytest.CaptureFixture, option: list[str], match: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dataset", "digits", "--out", str(tmp_path / "x"), *option])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rankattack train: error: ") and err.count("\n") == 1
    assert match in err
    assert not (tmp_path / "x").exists()
