"""The demo: its verdict, its figure, its dataset record, and a rerun that resumes."""

from __future__ import annotations

import pytest

from rankattack.cli import main
from rankattack.evaluation import EvaluationResult
from rankattack.training.checkpoints import checkpoint_dataset

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")


def test_tiny_demo_verdict_record_and_resume(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--tiny", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "training the defended model (1 epochs, ACT, 2 PGD steps at eps 0.3 per batch)" in first
    assert "defended vs vanilla, mean rank after the attack (%)" in first
    verdict = next(line for line in first.splitlines() if line.startswith("  eps 0.1: better"))
    assert "; shift / spread " in verdict and "eps 0:" not in first
    record = checkpoint_dataset(out / "vanilla")
    assert record["name"] == "digits" and record["input_shape"] == [1, 8, 8]
    assert record["test_size"] == 100
    result = EvaluationResult.load(out / "defended" / "results.json")
    assert result.spread and result.relative_shift(0.1) is not None
    # the same command again: nothing is retrained or recomputed
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "10 of 10 cells already done" in second and second.count("already done") == 2
    assert (
        first.split("vanilla: mean normalized rank")[1].split("training the defended")[0]
        == (second.split("vanilla: mean normalized rank")[1].split("training the defended")[0])
    )
