"""The ``rankattack`` command: help, the tiny demo, evaluate with resume, plot."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from rankattack.cli import build_parser, main
from rankattack.evaluation import EvaluationResult, ResultsLog

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

COMMANDS = ("demo", "train", "evaluate", "universal", "transfer", "plot")


def test_module_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rankattack", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("usage: rankattack")
    for cmd in COMMANDS:
        assert cmd in out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_subcommand_help(cmd: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: rankattack {cmd}" in text and "--device" in text and "--seed" in text


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["evaluate", "--checkpoint", "c.pt", "--out", "o"])
    assert args.dataset is None and args.samples == 1000  # None: the checkpoint's dataset
    assert args.eps == "0,0.01,0.03,0.1,0.3" and args.sizes == "1,2,5,10"
    assert args.attacks == ["CA+", "CA-", "QA+", "QA-"]
    demo = build_parser().parse_args(["demo"])
    assert demo.out == "rankattack-demo" and demo.device == "auto"


def test_bad_arguments_exit_with_message(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--tiny", "--eps", "0,abc", "--out", str(tmp_path / "d")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--eps must be numbers or fractions such as 8/255, comma-separated" in err
    assert err.count("\n") == 1 and not (tmp_path / "d").exists()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dataset", "cifar", "--out", str(tmp_path / "t"), "--no-progress"])
    assert exc.value.code == 2
    assert "unknown dataset 'cifar'" in capsys.readouterr().err


def test_tiny_demo_then_evaluate_resume_and_plot(tmp_path, capsys) -> None:
    """Over demo --seed 0-5 (points, both models): CA+ at eps 0.1 raises by 16.6-35.0,
    CA- lowers by 8.7-19.1; I-CA+ raises the seen candidates by 8.0-14.9; white-box CA+
    in the transfer table raises by 19.8-33.1."""
    out = tmp_path / "demo"
    assert main(["demo", "--tiny", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert f"Figures and tables are in {out}" in text
    assert "vanilla: mean normalized rank" in text and "defended: mean normalized rank" in text
    assert (out / "vanilla-vs-defended.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "vanilla" / "ranking-CAplus.png").exists()
    for label in ("vanilla", "defended"):
        meta, cells = ResultsLog(out / label / "results.jsonl").read()
        assert meta is not None and meta["gallery_size"] == 100
        assert len(cells) == 2 + 4 * 2  # max shift at 2 eps + 4 attacks x 2 eps, w = m = 1
        by_key = {(c.attack, c.eps): c for c in cells}
        for attack in ("CA+", "CA-", "QA+", "QA-"):
            clean = by_key[(attack, 0.0)]
            assert clean.mean == pytest.approx(clean.before, abs=1e-6)
            assert clean.samples == 10 and clean.size == 1
        assert by_key[("CA+", 0.1)].mean < by_key[("CA+", 0.1)].before
        assert by_key[("CA-", 0.1)].mean > by_key[("CA-", 0.1)].before
        table = (out / label / "table.txt").read_text()
        assert "CA+ w=1" in table and "QA- m=1" in table

    # evaluate the demo's vanilla checkpoint on the same images, then resume
    ev = tmp_path / "eval"
    argv = [
        "evaluate", "--dataset", "digits", "--image-size", "8", "--train-size", "200",
        "--test-size", "100", "--checkpoint", str(out / "vanilla" / "checkpoint.pt"),
        "--attacks", "CA+", "QA-", "--eps", "0,0.1", "--sizes", "1,2", "--samples", "6",
        "--out", str(ev), "--no-progress", "--no-figures", "--device", "cpu", "--name", "v",
    ]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr().out
    lines = (ev / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 2 + 2 * 2 * 2  # meta, 2 shift cells, 2 attacks x 2 eps x 2 sizes
    assert main(argv) == 0  # resumes: nothing left to compute
    second = capsys.readouterr().out
    assert (ev / "results.jsonl").read_text().splitlines() == lines
    table = lambda s: s[s.index("v: mean normalized rank") : s.index("wall time")]  # noqa: E731
    assert table(first) == table(second)
    summary = json.loads((ev / "results.json").read_text())
    assert summary["name"] == "v" and len(summary["cells"]) == 10
    assert EvaluationResult.load(ev / "results.json").get("QA-", 0.1, 2) is not None
    assert (ev / "results.csv").read_text().startswith("model,attack,eps,size")
    run = json.loads((ev / "run.json").read_text())
    assert run["command"].startswith("rankattack evaluate --dataset digits --image-size 8")

    # plot vanilla vs defended from the demo's logs
    plots = tmp_path / "plots"
    argv = [
        "plot", str(out / "vanilla" / "results.jsonl"), str(out / "defended" / "results.jsonl"),
        "--labels", "vanilla,defended", "--out", str(plots),
    ]  # fmt: skip
    assert main(argv) == 0
    assert (plots / "curves.png").read_bytes().startswith(b"\x89PNG")

    # universal and transfer on the demo's checkpoints (thin wrappers)
    data = ["--dataset", "digits", "--image-size", "8", "--train-size", "200", "--test-size", "100"]
    uni = tmp_path / "uni"
    argv = [
        "universal", *data, "--checkpoint", str(out / "vanilla"), "--attack", "CA+",
        "--eps", "0.2", "--steps", "5", "--alpha", "0.05", "--fraction", "0.1", "--out", str(uni),
        "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((uni / "universal.json").read_text())
    assert summary["n_seen"] == summary["n_unseen"] == 10
    assert summary["seen"][1] < summary["seen"][0]  # I-CA+ raises the seen candidates
    assert (uni / "perturbation.pt").exists()
    tr = tmp_path / "transfer"
    argv = [
        "transfer", *data, "--checkpoint", str(out / "vanilla" / "checkpoint.pt"),
        str(out / "defended" / "checkpoint.pt"), "--attacks", "CA+", "--eps", "0.1",
        "--samples", "6", "--out", str(tr), "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "From \\ To" in text and "vanilla" in text and "defended" in text
    matrix = json.loads((tr / "transfer.json").read_text())["CA+"]
    assert len(matrix["after"]) == 2 and all(len(row) == 2 for row in matrix["after"])
    before, after = matrix["before"][0], matrix["after"][0][0]
    assert after < before  # white-box CA+ on the vanilla model raises the candidates


def test_train_command_writes_checkpoint(tmp_path, capsys) -> None:
    from rankattack.training import load_checkpoint

    out = tmp_path / "run"
    argv = [
        "train", "--dataset", "digits", "--image-size", "8", "--train-size", "100",
        "--test-size", "50", "--epochs", "1", "--batch-size", "50", "--embedding-dim", "16",
        "--out", str(out), "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "R@1 on the test set (50 items):" in text
    model, config = load_checkpoint(out)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 16)
    assert config.epochs == 1 and config.embedding_dim == 16 and config.defense is None
    assert config.batch_size == 50 and config.metric == "cosine"


@pytest.mark.parametrize("kind", ["text", "torch-object", "pickle"])
def test_evaluate_reports_a_file_that_is_not_a_checkpoint(tmp_path, capsys, kind) -> None:
    import pathlib
    import pickle
    import warnings

    bad = tmp_path / ("README.md" if kind == "text" else "checkpoint.pt")
    if kind == "text":
        bad.write_text("# rankattack\n\nA README, not a checkpoint.\n")
    elif kind == "torch-object":  # an object the safe loader refuses
        torch.save({"format": 1, "model": pathlib.Path("weights.bin")}, bad)
    else:
        with open(bad, "wb") as fh:
            pickle.dump({1, 2, 3}, fh)
    argv = ["evaluate", "--checkpoint", str(bad), "--out", str(tmp_path / "out"), "--device", "cpu"]
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as exc:
        warnings.simplefilter("always")
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("rankattack evaluate: error: ") and err.count("\n") == 1
    assert str(bad) in err and "not a readable rankattack training checkpoint" in err
    assert "Traceback" not in err and "weights_only=False" not in err
    assert not [w for w in caught if "pickle" in str(w.message)]
