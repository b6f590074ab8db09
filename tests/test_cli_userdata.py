"""A user's own data at the command line: train, evaluate and robustness on an image folder
and on a .npz tensor file, with the dataset recorded in the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankattack.cli import main
from rankattack.training.checkpoints import checkpoint_dataset

Image = pytest.importorskip("PIL.Image")

FAST = ["--no-progress", "--device", "cpu"]
TRAIN = ["--epochs", "1", "--batch-size", "12", "--embedding-dim", "8"]


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(("ant", "bee", "cow")):
        (root / name).mkdir(parents=True)
        for i in range(12):
            arr = rng.integers(0, 120, (10, 10, 3), dtype=np.uint8)
            arr[..., c] += 120  # a class colour, so that the classes differ
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def test_image_folder_end_to_end(tmp_path: Path, capsys) -> None:
    data = _folder(tmp_path / "my images")
    run = tmp_path / "run"
    argv = ["train", "--dataset", str(data), "--image-size", "8", "--test-fraction", "0.25",
            *TRAIN, "--out", str(run), *FAST]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"image-folder 3x8x8 from {data}" in text and "(9 items)" in text
    record = checkpoint_dataset(run)
    assert record["name"] == "image-folder" and record["path"] == str(data)
    assert record["input_shape"] == [3, 8, 8] and record["test_fraction"] == 0.25
    ev = tmp_path / "ev"
    argv = ["evaluate", "--checkpoint", str(run), "--attacks", "CA+", "--eps", "0,0.05",
            "--sizes", "1", "--samples", "3", "--out", str(ev), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert "|X| = 9" in capsys.readouterr().out
    assert (ev / "ranking-CAplus.png").read_bytes().startswith(b"\x89PNG")  # class names shown
    rob = tmp_path / "rob"
    argv = ["robustness", "--checkpoint", str(run), "--attacks", "CA+", "--samples", "3",
            "--steps", "1", "--no-figures", "--out", str(rob), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((rob / "robustness.json").read_text())["dataset"] == "image-folder"
    # another folder is refused for this checkpoint
    other = _folder(tmp_path / "other")
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--checkpoint", str(run), "--dataset", str(other), "--out",
              str(tmp_path / "x"), *FAST])  # fmt: skip
    assert exc.value.code == 2
    assert f"the data at {other} (trained on {data})" in capsys.readouterr().err


def test_npz_end_to_end(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(1)
    y = np.arange(40) % 4
    x = rng.integers(0, 100, (40, 8, 8), dtype=np.uint8) + (30 * y)[:, None, None].astype(np.uint8)
    np.savez(tmp_path / "mine.npz", images=x, labels=y)
    run = tmp_path / "run"
    argv = ["train", "--dataset", str(tmp_path / "mine.npz"), *TRAIN, "--out", str(run), *FAST]
    assert main(argv) == 0
    assert "tensor-file 1x8x8" in capsys.readouterr().out
    ev = tmp_path / "ev"
    argv = ["evaluate", "--checkpoint", str(run), "--attacks", "QA+", "--eps", "0.05",
            "--sizes", "1", "--samples", "3", "--no-figures", "--out", str(ev), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert "|X| = 8" in capsys.readouterr().out  # 20% of each class of 10


def test_missing_pillow_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    import builtins

    data = _folder(tmp_path / "imgs")
    real = builtins.__import__

    def no_pil(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dataset", str(data), "--out", str(tmp_path / "o"), *FAST])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert 'pip install "rankattack[images]"' in err and err.count("\n") == 1
