"""Checkpoints record their dataset; the evaluating commands default to it and refuse others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rankattack.cli import main
from rankattack.data import DatasetSpec
from rankattack.training import load_checkpoint
from rankattack.training.checkpoints import checkpoint_dataset

pytest.importorskip("sklearn")

FAST = ["--no-progress", "--device", "cpu"]
DIGITS = ["--dataset", "digits", "--image-size", "8", "--train-size", "120", "--test-size", "60"]
EVAL = ["--attacks", "CA+", "--eps", "0,0.05", "--sizes", "1", "--samples", "4", "--no-shift"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch digits model (8x8, 120 train / 60 test images), trained by the CLI."""
    out = tmp_path_factory.mktemp("ckpt") / "digits8"
    argv = [
        "train", *DIGITS, "--epochs", "1", "--batch-size", "40", "--embedding-dim", "8",
        "--seed", "3", "--out", str(out), *FAST,
    ]  # fmt: skip
    assert main(argv) == 0
    return out


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_train_records_the_dataset(trained: Path) -> None:
    record = checkpoint_dataset(trained)
    assert record is not None
    assert record["name"] == "digits" and record["image_size"] == 8
    assert record["input_shape"] == [1, 8, 8] and record["num_classes"] == 10
    assert record["train_size"] == 120 and record["test_size"] == 60
    assert record["subset_seed"] == 3 and record["split_seed"] == 0
    assert record["normalization"].startswith("[0, 1]")
    assert "stratified: 50% of each class held out, seed 0" in record["split"]
    spec = DatasetSpec.from_dict(record)
    assert spec.load().test_x.shape == (60, 1, 8, 8)
    model, _ = load_checkpoint(trained)  # still an ordinary checkpoint
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 8)


def test_train_snapshot_every_keeps_epochs_with_their_dataset(tmp_path: Path) -> None:
    out = tmp_path / "snap"
    argv = [
        "train", *DIGITS, "--epochs", "2", "--batch-size", "40", "--embedding-dim", "8",
        "--snapshot-every", "1", "--out", str(out), *FAST,
    ]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "epoch1.pt", "epoch2.pt"]
    first = checkpoint_dataset(out / "epoch1.pt")
    assert first is not None and first == checkpoint_dataset(out)
    last, _ = load_checkpoint(out / "epoch2.pt")
    final, _ = load_checkpoint(out)
    one, _ = load_checkpoint(out / "epoch1.pt")
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(last(x), final(x)) and not torch.equal(one(x), final(x))


def test_evaluate_defaults_to_the_checkpoints_dataset(trained, tmp_path, capsys) -> None:
    out = tmp_path / "ev"
    argv = ["evaluate", "--checkpoint", str(trained), *EVAL, "--no-figures", "--out", str(out)]
    assert main([*argv, *FAST]) == 0
    text = capsys.readouterr().out
    assert "on digits 1x8x8" in text and "|X| = 60" in text
    meta = json.loads((out / "run.json").read_text())
    assert meta["dataset"] == "digits" and meta["dataset_record"]["test_size"] == 60
    # the same test subset as at training: a 30-item subset of it is allowed
    assert main([*argv[:-1], str(tmp_path / "ev30"), "--test-size", "30", *FAST]) == 0
    assert "|X| = 30" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "fashion-mnist"], "dataset fashion-mnist (trained on digits)"),
        (["--image-size", "16"], "image size 16 (trained on 8)"),
        (["--test-fraction", "0.3"], "test fraction 0.3 (trained with 0.5)"),
        (["--data-dir", "/tmp"], "--data-dir applies to mnist and fashion-mnist only"),
    ],
)
def test_evaluate_refuses_other_data(trained, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "ev"
    argv = ["evaluate", "--checkpoint", str(trained), *extra, "--out", str(out), *FAST]
    err = _error(argv, capsys)
    assert err.startswith("rankattack evaluate: error: ") and message in err
    if "--dataset" in extra or "--image-size" in extra:
        assert "the checkpoint was trained on digits 1x8x8" in err
    assert not out.exists()


def test_matching_options_are_accepted(trained, tmp_path, capsys) -> None:
    argv = [
        "evaluate", "--checkpoint", str(trained), *DIGITS, *EVAL, "--no-figures",
        "--out", str(tmp_path / "ev"), *FAST,
    ]  # fmt: skip
    assert main(argv) == 0


def test_universal_transfer_robustness_default_to_it(trained, tmp_path, capsys) -> None:
    uni = tmp_path / "uni"
    argv = [
        "universal", "--checkpoint", str(trained), "--steps", "2", "--fraction", "0.1",
        "--out", str(uni), *FAST,
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((uni / "universal.json").read_text())
    assert summary["dataset"] == "digits" and summary["n_seen"] == 6
    assert (uni / "perturbation.png").read_bytes().startswith(b"\x89PNG")
    other = tmp_path / "other"
    argv = ["train", *DIGITS, "--epochs", "1", "--batch-size", "40", "--embedding-dim", "8",
            "--seed", "3", "--out", str(other), *FAST]  # fmt: skip
    assert main(argv) == 0
    tr = tmp_path / "tr"
    argv = ["transfer", "--checkpoint", str(trained), str(other), "--attacks", "CA+",
            "--samples", "4", "--eps", "0.05", "--out", str(tr), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((tr / "transfer.json").read_text())["dataset_record"]["image_size"] == 8
    rob = tmp_path / "rob"
    argv = ["robustness", "--checkpoint", str(trained), "--attacks", "CA+", "--samples", "4",
            "--steps", "1", "--no-figures", "--out", str(rob), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((rob / "robustness.json").read_text())["dataset"] == "digits"
    capsys.readouterr()
    # checkpoints trained on different data are refused together
    mnist8 = tmp_path / "digits16"
    argv = ["train", "--dataset", "digits", "--image-size", "6", "--train-size", "120",
            "--test-size", "60", "--epochs", "1", "--batch-size", "40", "--embedding-dim", "8",
            "--out", str(mnist8), *FAST]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    err = _error(
        ["transfer", "--checkpoint", str(trained), str(mnist8), "--out", str(tmp_path / "x")],
        capsys,
    )
    assert "the checkpoints were trained on different data" in err


def test_old_checkpoint_without_record_still_loads(trained, tmp_path, capsys) -> None:
    old = tmp_path / "old"
    old.mkdir()
    state = torch.load(trained / "checkpoint.pt", weights_only=True)
    del state["dataset"]
    torch.save(state, old / "checkpoint.pt")
    assert checkpoint_dataset(old) is None
    load_checkpoint(old)  # loads
    argv = ["evaluate", "--checkpoint", str(old), *DIGITS, *EVAL, "--no-figures",
            "--out", str(tmp_path / "ev"), *FAST]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "does not record its dataset" in err and "using --dataset digits" in err


def test_a_resumed_mismatch_names_the_options(trained, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", *DIGITS, "--epochs", "1", "--batch-size", "40", "--embedding-dim", "8",
            "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    err = _error([*argv[:-5], "--lr", "0.01", "--out", str(out), *FAST], capsys)
    assert "use another --out, or --no-resume to start over" in err
    assert "resume=False" not in err and "lr: 0.001 -> 0.01" in err


def test_evaluate_keeps_per_sample_results(trained, tmp_path, capsys) -> None:
    import csv

    from rankattack.evaluation import CellSamples

    out = tmp_path / "ev"
    argv = ["evaluate", "--checkpoint", str(trained), "--attacks", "CA+,QA-", "--eps", "0.05",
            "--sizes", "1", "--samples", "5", "--save-adversarial", "--no-figures",
            "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "R@2 = " in text and "mAP = " in text and "shift / spread" in text
    files = sorted(p.name for p in (out / "samples").iterdir())
    assert files == [
        "CAplus-eps0.05-size1.pt",
        "QAminus-eps0.05-size1.pt",
        "shift-eps0.05-size0.pt",
    ]
    cell = CellSamples.load(out / "samples" / "QAminus-eps0.05-size1.pt")
    assert cell.adversarial.shape == (5, 1, 8, 8) and cell.partners.shape == (5, 1)
    rows = list(csv.DictReader((out / "samples.csv").open()))
    assert len(rows) == 15 and {r["attack"] for r in rows} == {"CA+", "QA-", "shift"}
    assert "fractions of |X|" in json.loads((out / "run.json").read_text())["units"]
    results = json.loads((out / "results.json").read_text())
    assert set(results["retrieval"]) == {"R@1", "R@2", "R@4", "R@8", "mAP"}


def test_naming_the_same_dataset_alone_is_accepted(trained, tmp_path, capsys) -> None:
    """``--dataset digits`` alone names the checkpoint's data: its image size is kept."""
    argv = ["evaluate", "--checkpoint", str(trained), "--dataset", "digits", *EVAL,
            "--no-figures", "--out", str(tmp_path / "ev"), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert "on digits 1x8x8" in capsys.readouterr().out
