"""``rankattack robustness``: the table, the figure, resume, robrank's rows, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankattack.cli import main
from rankattack.evaluation.robustness import RAW_KEYS, RobustnessLog, RobustnessReport
from tests._idx import fake_mnist

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

DIGITS = ["--dataset", "digits", "--image-size", "8", "--train-size", "200", "--test-size", "60"]
FAST = ["--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A vanilla cosine and a normalized-Euclidean C2F1 trained for one epoch on digits."""
    root = tmp_path_factory.mktemp("ckpt")
    common = [*DIGITS, "--epochs", "1", "--batch-size", "50", "--embedding-dim", "16", *FAST]
    assert main(["train", *common, "--out", str(root / "cos")]) == 0
    assert (
        main(["train", *common, "--metric", "normalized-euclidean", "--out", str(root / "n")]) == 0
    )
    return root / "cos", root / "n" / "checkpoint.pt"


def test_help(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["robustness", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: rankattack robustness")
    for option in ("--checkpoint", "--profile", "--samples", "--attacks", "--eps", "--out"):
        assert option in text


def test_two_models_side_by_side_then_resume(checkpoints, tmp_path: Path, capsys) -> None:
    cos, norm = checkpoints
    out = tmp_path / "rob"
    argv = [
        "robustness", *DIGITS, "--checkpoint", str(cos), "--checkpoint", str(norm),
        "--steps", "2", "--samples", "20", "--batch-size", "8", "--out", str(out), *FAST,
    ]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "profile rob28-custom (eps = 0.302, alpha = 0.01176, 2 steps), T = 20" in first
    header = first[first.index("Robustness on digits") :].splitlines()[1].split()
    assert header == ["cos", "n"]  # names from the checkpoint paths; no published row
    for name, metric in (("cos", "cosine"), ("n", "normalized-euclidean")):
        meta, chunks = RobustnessLog(out / f"{name}.jsonl").read()
        assert meta is not None and meta["metric"] == metric and meta["samples"] == 20
        assert len(chunks) == 9 * 3  # nine attacks, 20 queries in chunks of 8
    summary = json.loads((out / "robustness.json").read_text())
    assert summary["dataset"] == "digits" and summary["profile"]["steps"] == 2
    reports = [RobustnessReport.from_dict(m) for m in summary["models"]]
    assert [r.name for r in reports] == ["cos", "n"] and all(r.ers is not None for r in reports)
    assert set(reports[0].raw) == set(RAW_KEYS)
    assert summary["models"][0]["published"] is None
    md = (out / "robustness.md").read_text()
    assert "| ERS |" in md and f"{reports[1].ers:.1f} ± {reports[1].ers_ci:.1f}" in md
    assert (out / "robustness.txt").read_text().startswith("Robustness on digits")
    assert (out / "robustness.png").read_bytes().startswith(b"\x89PNG")
    # a rerun resumes: nothing is recomputed, the table is the same
    logs = {p.name: p.read_text() for p in out.glob("*.jsonl")}
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert {p.name: p.read_text() for p in out.glob("*.jsonl")} == logs
    table = lambda s: s[s.index("Robustness on digits") : s.index("wall time")]  # noqa: E731
    assert table(first) == table(second)


def test_robranks_row_beside_a_matching_model(tmp_path: Path, capsys) -> None:
    data = tmp_path / "fashion"
    fake_mnist(data, compress=False, n_train=40, n_test=16)
    fashion = ["--dataset", "fashion-mnist", "--data-dir", str(data)]
    ckpt = tmp_path / "c2f2"
    assert main(["train", *fashion, "--model", "c2f2", "--epochs", "1", "--batch-size", "20",
                 "--out", str(ckpt), *FAST]) == 0  # fmt: skip
    out = tmp_path / "rob"
    argv = ["robustness", *fashion, "--checkpoint", str(ckpt), "--samples", "3",
            "--batch-size", "3", "--out", str(out), "--no-figures", *FAST]  # fmt: skip
    assert main(argv) == 0  # the named rob28 profile, unchanged: robrank's setting
    text = capsys.readouterr().out
    assert "c2f2  robrank C2F2 triplet C" in text and "8.2 (computed)" in text
    summary = json.loads((out / "robustness.json").read_text())
    published = summary["models"][0]["published"]
    assert published["config"] == "rc2f2:ptripletC" and published["raw"]["ESR"] == 30.7
    assert not (out / "robustness.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--profile", "rob32"], "--profile must be one of ['rob224', 'rob28']"),
        (["--samples", "0"], "--samples must be >= 1"),
        (["--eps", "-0.1"], "--eps must be >= 0"),
        (["--alpha", "0"], "--alpha must be > 0"),
        (["--checkpoint", "missing.pt"], "--checkpoint: no checkpoint at missing.pt"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys, extra, message) -> None:
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"")  # never read: the arguments are checked first
    out = tmp_path / "out"
    argv = ["robustness", "--checkpoint", str(ckpt), *extra, "--out", str(out), *FAST]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rankattack robustness: error: ") and err.count("\n") == 1
    assert message in err and "Traceback" not in err
    assert not out.exists()  # no work started
