"""DatasetSpec: what a checkpoint records of its data, its checks and its comparisons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rankattack.data import DatasetSpec, load_digits
from rankattack.data.spec import dataset_kind

pytest.importorskip("sklearn")


def test_digits_spec_loads_what_load_digits_gives() -> None:
    spec = DatasetSpec("Digits", image_size=8, split_seed=2, test_size=50, subset_seed=1)
    assert spec.name == "digits" and spec.effective_image_size == 8
    data = spec.load()
    reference = load_digits(image_size=8, seed=2).subset(None, 50, seed=1)
    assert torch.equal(data.test_x, reference.test_x)
    assert torch.equal(data.train_index, reference.train_index)
    loaded = spec.loaded(data)
    assert loaded.input_shape == (1, 8, 8) and loaded.num_classes == 10
    again = DatasetSpec.from_dict(loaded.to_dict())
    assert again == loaded and again.to_dict()["split"] == loaded.split_rule
    assert "digits 1x8x8" in loaded.describe() and "seed 2" in loaded.describe()


def test_effective_values_and_conflicts() -> None:
    a = DatasetSpec("digits")
    assert a.effective_image_size == 28 and a.effective_test_fraction == 0.5
    assert a.conflicts(DatasetSpec("digits", image_size=28, test_fraction=0.5)) == []
    assert a.conflicts(DatasetSpec("digits", test_size=10)) == []  # subsets may differ
    assert a.conflicts(DatasetSpec("digits", image_size=16)) == ["image size 16 (trained on 28)"]
    assert a.conflicts(DatasetSpec("digits", split_seed=1)) == ["split seed 1 (trained with 0)"]
    assert a.conflicts(DatasetSpec("mnist", path="/x")) == ["dataset mnist (trained on digits)"]
    # MNIST's files may move: only the dataset counts
    assert DatasetSpec("mnist", path="/a").conflicts(DatasetSpec("mnist", path="/b")) == []
    assert DatasetSpec("fashion-mnist").effective_test_fraction is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "cifar"}, ValueError, "unknown dataset 'cifar'"),
        ({"name": "mnist", "image_size": 16}, ValueError, "image_size applies to digits"),
        ({"name": "mnist", "test_fraction": 0.2}, ValueError, "official train/test split"),
        (
            {"name": "digits", "test_fraction": 1.5},
            ValueError,
            r"test_fraction must be in \(0, 1\)",
        ),
        ({"name": "digits", "image_size": 0}, ValueError, "image_size must be >= 1"),
        ({"name": "digits", "test_size": 2.5}, TypeError, "test_size must be an int"),
        ({"name": "image-folder"}, ValueError, "path is required"),
    ],
)
def test_bad_specs_are_refused(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        DatasetSpec(**kwargs)


def test_recorded_shape_must_still_match() -> None:
    spec = DatasetSpec("digits", image_size=8, input_shape=(1, 16, 16))
    with pytest.raises(ValueError, match=r"now has inputs of shape \(1, 8, 8\)"):
        spec.load()


def test_dataset_kind(tmp_path: Path) -> None:
    assert dataset_kind("Fashion_MNIST") == ("fashion-mnist", None)
    folder = tmp_path / "pics"
    folder.mkdir()
    assert dataset_kind(str(folder)) == ("image-folder", str(folder))
    npz = tmp_path / "data.npz"
    np.savez(npz, x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, 1]))
    assert dataset_kind(str(npz)) == ("tensor-file", str(npz))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a tensor file"):
        dataset_kind(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match="or the path of a folder of images"):
        dataset_kind(str(tmp_path / "missing"))
    a = DatasetSpec("image-folder", path=str(folder))
    b = DatasetSpec("image-folder", path=str(tmp_path))
    assert a.conflicts(b) == [f"the data at {tmp_path} (trained on {folder})"]
    assert a.source == str(folder) and a.effective_test_fraction == 0.2
