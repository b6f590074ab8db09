"""Tests for rankattack.data.split (DatasetSplit and its stratified subset)."""

from __future__ import annotations

import pytest
import torch

from rankattack.data import DatasetSplit, load_digits


@pytest.fixture(scope="module")
def digits() -> DatasetSplit:
    return load_digits()


def test_subset_is_stratified(digits: DatasetSplit) -> None:
    small = digits.subset(n_train=100, n_test=37, seed=5)
    assert small.train_x.shape == (100, 1, 28, 28)
    assert small.test_x.shape == (37, 1, 28, 28)
    assert small.name == digits.name and small.num_classes == 10
    for part, n in (("train", 100), ("test", 37)):
        full = torch.bincount(getattr(digits, f"{part}_y"), minlength=10).double()
        got = torch.bincount(getattr(small, f"{part}_y"), minlength=10).double()
        share = full * n / full.sum()
        # Largest-remainder allocation: floor or ceil of the exact share.
        assert bool(((got - torch.floor(share)) >= 0).all())
        assert bool(((got - torch.ceil(share)) <= 0).all())
        assert int(got.sum()) == n
    # Rows are the rows of the original split, in original order.
    assert set(small.train_index.tolist()) <= set(digits.train_index.tolist())
    assert bool((small.train_index[1:] > small.train_index[:-1]).all())
    position = {int(i): k for k, i in enumerate(digits.train_index)}
    rows = torch.tensor([position[int(i)] for i in small.train_index])
    assert torch.equal(small.train_x, digits.train_x[rows])
    assert torch.equal(small.train_y, digits.train_y[rows])


def test_subset_exact_balance(digits: DatasetSplit) -> None:
    small = digits.subset(n_train=50, n_test=20)
    assert torch.equal(torch.bincount(small.train_y), torch.full((10,), 5))
    assert torch.equal(torch.bincount(small.test_y), torch.full((10,), 2))


def test_subset_is_seeded(digits: DatasetSplit) -> None:
    a = digits.subset(n_train=60, n_test=30, seed=7)
    b = digits.subset(n_train=60, n_test=30, seed=7)
    c = digits.subset(n_train=60, n_test=30, seed=8)
    assert torch.equal(a.train_index, b.train_index)
    assert torch.equal(a.test_x, b.test_x)
    assert not torch.equal(a.train_index, c.train_index)
    # Each part's draw depends only on its own size and the seed.
    assert torch.equal(digits.subset(n_test=30, seed=7).test_index, a.test_index)
    assert torch.equal(digits.subset(n_train=60, seed=7).train_index, a.train_index)


def test_subset_none_keeps_part(digits: DatasetSplit) -> None:
    small = digits.subset(n_test=10)
    assert small.train_x is digits.train_x
    assert small.test_x.shape[0] == 10


@pytest.mark.parametrize("n", [0, -1, 10_000, 2.5, True])
def test_subset_bad_sizes(digits: DatasetSplit, n: object) -> None:
    with pytest.raises(ValueError, match="n_train"):
        digits.subset(n_train=n)  # type: ignore[arg-type]


def test_dataset_split_validates() -> None:
    x = torch.zeros(4, 1, 2, 2)
    y = torch.tensor([0, 1, 0, 1])
    DatasetSplit(x, y, x, y, name="toy", num_classes=2)
    with pytest.raises(ValueError, match="train_y"):
        DatasetSplit(x, y[:3], x, y, name="toy", num_classes=2)
    with pytest.raises(ValueError, match="test_y"):
        DatasetSplit(x, y, x, y.int(), name="toy", num_classes=2)
    with pytest.raises(ValueError, match=r"labels in \[0, 1\)"):
        DatasetSplit(x, y, x, y, name="toy", num_classes=1)
    assert "toy" in repr(DatasetSplit(x, y, x, y, name="toy", num_classes=2))
