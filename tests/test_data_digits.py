"""Tests for rankattack.data.digits (load_digits)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rankattack.data import DatasetSplit, load_digits


@pytest.fixture(scope="module")
def digits() -> DatasetSplit:
    return load_digits()


@pytest.fixture(scope="module")
def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load

    bunch = sk_load()
    return bunch.images, bunch.target


def test_digits_shapes_and_range(digits: DatasetSplit) -> None:
    assert digits.name == "digits" and digits.num_classes == 10
    assert digits.train_x.shape[1:] == (1, 28, 28)
    assert digits.test_x.shape[1:] == (1, 28, 28)
    assert digits.input_shape == (1, 28, 28)
    assert digits.train_x.shape[0] + digits.test_x.shape[0] == 1797
    assert digits.train_x.dtype == torch.float32
    assert digits.train_y.dtype == torch.int64
    for x in (digits.train_x, digits.test_x):
        assert float(x.min()) == 0.0
        assert 0.9 < float(x.max()) <= 1.0


def test_digits_split_is_stratified_and_disjoint(
    digits: DatasetSplit, sklearn_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    _, target = sklearn_digits
    counts = np.bincount(target, minlength=10)
    train_counts = torch.bincount(digits.train_y, minlength=10).numpy()
    test_counts = torch.bincount(digits.test_y, minlength=10).numpy()
    np.testing.assert_array_equal(train_counts + test_counts, counts)
    # Half of every class (rounding half up) in the test part.
    np.testing.assert_array_equal(test_counts, (counts + 1) // 2)
    assert (train_counts > 0).all() and (test_counts > 0).all()

    train_index = set(digits.train_index.tolist())
    test_index = set(digits.test_index.tolist())
    assert not train_index & test_index
    assert train_index | test_index == set(range(1797))
    # Labels agree with the source rows they claim to come from.
    np.testing.assert_array_equal(digits.train_y.numpy(), target[digits.train_index.numpy()])
    np.testing.assert_array_equal(digits.test_y.numpy(), target[digits.test_index.numpy()])


@pytest.mark.parametrize("fraction", [0.2, 0.75])
def test_digits_test_fraction(fraction: float) -> None:
    split = load_digits(image_size=8, test_fraction=fraction)
    counts = torch.bincount(split.train_y, minlength=10) + torch.bincount(
        split.test_y, minlength=10
    )
    test_counts = torch.bincount(split.test_y, minlength=10)
    expected = torch.floor(counts * fraction + 0.5).long()
    assert torch.equal(test_counts, expected)


def test_digits_native_size_matches_source(
    sklearn_digits: tuple[np.ndarray, np.ndarray],
) -> None:
    images, _ = sklearn_digits
    split = load_digits(image_size=8, seed=3)
    assert split.train_x.shape[1:] == (1, 8, 8)
    expected = torch.from_numpy((images / 16.0).astype(np.float32)).unsqueeze(1)
    torch.testing.assert_close(split.train_x, expected[split.train_index], rtol=0, atol=1e-7)
    torch.testing.assert_close(split.test_x, expected[split.test_index], rtol=0, atol=1e-7)
    # No duplicate images in the source, so disjoint indices mean disjoint images.
    train_rows = {row.tobytes() for row in split.train_x.flatten(1).numpy()}
    test_rows = {row.tobytes() for row in split.test_x.flatten(1).numpy()}
    assert not train_rows & test_rows


def test_digits_resize_is_bilinear(sklearn_digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = sklearn_digits
    split = load_digits(image_size=16, seed=0)
    source = torch.from_numpy((images / 16.0).astype(np.float32)).unsqueeze(1)
    expected = torch.nn.functional.interpolate(
        source[split.train_index], size=(16, 16), mode="bilinear", align_corners=False
    ).clamp(0, 1)
    torch.testing.assert_close(split.train_x, expected)


def test_digits_seeded(digits: DatasetSplit) -> None:
    again = load_digits(seed=0)
    assert torch.equal(again.train_index, digits.train_index)
    assert torch.equal(again.train_x, digits.train_x)
    assert torch.equal(again.test_y, digits.test_y)
    other = load_digits(seed=1)
    assert not torch.equal(other.train_index, digits.train_index)
    # Still stratified the same way.
    assert torch.equal(torch.bincount(other.test_y), torch.bincount(digits.test_y))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 0},
        {"image_size": 2.5},
        {"test_fraction": 0.0},
        {"test_fraction": 1.0},
        {"test_fraction": -0.1},
    ],
)
def test_digits_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        load_digits(**kwargs)  # type: ignore[arg-type]


def test_module_import_does_not_import_sklearn() -> None:
    code = (
        "import sys, rankattack.data; "
        "bad = sorted(m for m in ('sklearn', 'scipy', 'torchvision') if m in sys.modules); "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == ""
