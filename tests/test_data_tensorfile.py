"""Inputs and labels in a .npz or .pt file: layouts, scaling, labels, safe reading, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rankattack.data import DatasetSpec, load_dataset, load_tensor_file
from rankattack.data.tensorfile import has_split_arrays


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 6), dtype=np.uint8)


def test_npz_unsplit_is_split_per_class(tmp_path: Path) -> None:
    x, y = _images(30), np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_tensor_file(tmp_path / "d.npz", test_fraction=0.2, seed=4)
    assert data.train_x.shape[1:] == (1, 6, 6) and data.num_classes == 3
    assert torch.bincount(data.test_y).tolist() == [2, 2, 2] and data.name == "d"
    row = int(data.test_index[0])
    assert torch.allclose(data.test_x[0, 0], torch.from_numpy(x[row]).float() / 255)
    assert int(data.test_y[0]) == y[row]
    assert not has_split_arrays(tmp_path / "d.npz")
    assert DatasetSpec("tensor-file", path=str(tmp_path / "d.npz")).effective_test_fraction == 0.2


def test_pt_split_channels_last_and_string_labels(tmp_path: Path) -> None:
    train = torch.rand(8, 5, 5, 3)  # channels-last RGB floats in [0, 1]
    test = torch.rand(4, 5, 5, 3)
    torch.save(
        {"train_x": train, "train_y": ["b", "a"] * 4, "test_x": test, "test_y": ["a"] * 4},
        tmp_path / "d.pt",
    )
    assert has_split_arrays(tmp_path / "d.pt")
    data = load_dataset(str(tmp_path / "d.pt"))
    assert data.train_x.shape == (8, 3, 5, 5) and data.class_names == ("a", "b")
    assert torch.allclose(data.train_x[0], train[0].permute(2, 0, 1))
    assert data.train_y.tolist()[:2] == [1, 0] and data.test_y.tolist() == [0] * 4
    spec = DatasetSpec("tensor-file", path=str(tmp_path / "d.pt"))
    assert "train_x/train_y and test_x/test_y" in spec.split_rule


def test_keras_names_and_class_names(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "k.npz", x_train=_images(6), y_train=np.array([0, 1] * 3),
        x_test=_images(2, 1), y_test=np.array([1, 0]), class_names=np.array(["no", "yes"]),
    )  # fmt: skip
    data = load_tensor_file(tmp_path / "k.npz")
    assert data.class_names == ("no", "yes") and data.test_x.shape == (2, 1, 6, 6)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": _images(4)}, "has no labels"),
        ({"y": np.arange(4)}, "has no inputs"),
        ({"x": _images(4), "y": np.arange(3)}, "4 inputs but 3 labels"),
        ({"x": _images(4), "y": np.array([0.5, 1, 2, 3])}, "labels must be a 1-D array"),
        ({"x": _images(4), "y": np.array([0, -1, 0, -1])}, "labels must be >= 0"),
        (
            {"x": _images(4).astype(np.float32), "y": np.arange(4) % 2},
            r"values must be in \[0, 1\]",
        ),
    ],
)
def test_bad_contents_are_named(tmp_path: Path, arrays, match) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match) as exc:
        load_tensor_file(tmp_path / "bad.npz")
    assert "bad.npz" in str(exc.value)


def test_files_are_read_without_running_code(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", x=np.array([object(), object()], dtype=object), y=[0, 1])
    with pytest.raises(ValueError, match=r"obj\.npz is not a readable tensor file"):
        load_tensor_file(tmp_path / "obj.npz")  # object arrays need pickle: refused
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"x": {1, 2}}, fh)
    with pytest.raises(ValueError, match=r"evil\.pt is not a readable tensor file"):
        load_tensor_file(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError, match="no tensor file"):
        load_tensor_file(tmp_path / "missing.npz")
