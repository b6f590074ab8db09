"""Tests for rankattack.data.userdata (as_tensors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from rankattack.data import as_tensors


class PairDataset(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, x: torch.Tensor, y: list[int]) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], self.y[i]


class BareDataset(Dataset[np.ndarray]):
    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.x[i]


class StreamDataset(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    def __iter__(self):  # type: ignore[no-untyped-def]
        for i in range(3):
            yield torch.full((2, 2), i / 4), torch.tensor(i)


def test_as_tensors_tensor() -> None:
    x = torch.rand(5, 3, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0], dtype=torch.int32)
    out_x, out_y = as_tensors(x, y)
    assert out_x.dtype == torch.float32 and out_y is not None and out_y.dtype == torch.int64
    torch.testing.assert_close(out_x, x.float())
    assert out_y.tolist() == [0, 1, 2, 1, 0]
    assert as_tensors(x)[1] is None


def test_as_tensors_numpy_and_uint8() -> None:
    x = np.linspace(0, 1, 24, dtype=np.float64).reshape(2, 3, 4)
    out_x, out_y = as_tensors(x, np.array([3, 4]))
    torch.testing.assert_close(out_x, torch.from_numpy(x).float())
    assert out_y is not None and out_y.tolist() == [3, 4]

    u = np.array([[0, 51, 255], [1, 2, 3]], dtype=np.uint8)
    out_u, _ = as_tensors(u, [1, 0])
    assert out_u.dtype == torch.float32
    torch.testing.assert_close(out_u, torch.from_numpy(u).float() / 255)
    assert float(out_u[0, 2]) == 1.0 and float(out_u[0, 1]) == pytest.approx(0.2)
    torch.testing.assert_close(as_tensors(torch.from_numpy(u))[0], out_u)

    # Big-endian, read-only and reversed arrays are converted too.
    be = np.array([[0.25, 0.5]], dtype=">f8")
    assert as_tensors(be)[0].tolist() == [[0.25, 0.5]]
    ro = np.frombuffer(bytes([0, 255, 0, 255]), dtype=np.uint8).reshape(2, 2)
    assert as_tensors(ro)[0].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert as_tensors(x[::-1])[0][0, 0, 0] == pytest.approx(x[1, 0, 0])


def test_as_tensors_dataset_of_pairs() -> None:
    x = torch.rand(6, 1, 3, 3)
    labels = [0, 1, 2, 0, 1, 2]
    out_x, out_y = as_tensors(PairDataset(x, labels))
    assert torch.equal(out_x, x)
    assert out_y is not None and out_y.dtype == torch.int64 and out_y.tolist() == labels

    # TensorDataset of (x, y) and of x alone; an IterableDataset of pairs.
    out_x, out_y = as_tensors(TensorDataset(x, torch.tensor(labels)))
    assert torch.equal(out_x, x) and out_y is not None and out_y.tolist() == labels
    out_x, out_y = as_tensors(TensorDataset(x), labels=labels)
    assert torch.equal(out_x, x) and out_y is not None and out_y.tolist() == labels
    out_x, out_y = as_tensors(StreamDataset())
    assert out_x.shape == (3, 2, 2) and out_y is not None and out_y.tolist() == [0, 1, 2]


def test_as_tensors_dataset_of_bare_inputs() -> None:
    x = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    out_x, out_y = as_tensors(BareDataset(x), labels=torch.tensor([1, 0]))
    torch.testing.assert_close(out_x, torch.from_numpy(x).float() / 255)
    assert out_y is not None and out_y.tolist() == [1, 0]
    assert as_tensors(BareDataset(x))[1] is None


GOOD_X = torch.rand(4, 2, 2)


@pytest.mark.parametrize(
    ("data", "labels", "error", "pattern"),
    [
        # data: type, dtype, values, shape
        ([[0.0, 1.0]], None, TypeError, "^data: expected a torch.Tensor"),
        ("images", None, TypeError, "^data"),
        (torch.ones(3, 2, dtype=torch.int64), None, TypeError, "^data: unsupported dtype"),
        (torch.ones(3, 2, dtype=torch.bool), None, TypeError, "^data"),
        (np.ones((3, 2), dtype=np.int32), None, TypeError, "^data: .*int32"),
        (np.ones((3, 2), dtype=np.complex64), None, TypeError, "^data"),
        (torch.tensor([[0.5, float("nan")]]), None, ValueError, "^data: .*NaN"),
        (torch.tensor([[0.5, float("inf")]]), None, ValueError, "^data: .*infinite"),
        (torch.tensor([[0.5, 1.5]]), None, ValueError, r"^data: values must be in \[0, 1\]"),
        (torch.tensor([[-0.1, 0.5]]), None, ValueError, r"^data: values must be in \[0, 1\]"),
        (torch.rand(5), None, ValueError, "^data: expected at least 2 dimensions"),
        (torch.tensor(0.5), None, ValueError, "^data: expected at least 2 dimensions"),
        (torch.rand(0, 3), None, ValueError, "^data: expected at least one sample"),
        # labels: type, dtype, shape, length, values
        (GOOD_X, "0123", TypeError, "^labels"),
        (GOOD_X, torch.tensor([0.0, 1.0, 0.0, 1.0]), TypeError, "^labels: expected an integer"),
        (GOOD_X, np.array([0.0, 1.0, 0.0, 1.0]), TypeError, "^labels: expected an integer"),
        (GOOD_X, torch.tensor([True, False, True, False]), TypeError, "^labels"),
        (GOOD_X, [0, 1, 0.5, 1], TypeError, "^labels: element 2"),
        (GOOD_X, torch.zeros(4, 1, dtype=torch.int64), ValueError, "^labels: expected a 1-D"),
        (GOOD_X, torch.zeros(3, dtype=torch.int64), ValueError, "^labels: expected length 4"),
        (GOOD_X, [0, 1, 2], ValueError, "^labels: expected length 4"),
        (GOOD_X, np.array([0, -1, 0, 1]), ValueError, "^labels: expected non-negative"),
    ],
)
def test_as_tensors_rejects(data: object, labels: object, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        as_tensors(data, labels)


class MixedDataset(Dataset[object]):
    def __init__(self, items: list[object]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> object:
        return self.items[i]


class NoLenDataset(Dataset[torch.Tensor]):
    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.zeros(2)


@pytest.mark.parametrize(
    ("dataset", "labels", "error", "pattern"),
    [
        (MixedDataset([]), None, ValueError, "^data: the Dataset is empty"),
        (
            MixedDataset([torch.zeros(2, 2), torch.zeros(3, 2)]),
            None,
            ValueError,
            r"^data: item 1 has shape \(3, 2\)",
        ),
        (
            MixedDataset([torch.zeros(2), torch.zeros(2, dtype=torch.float64)]),
            None,
            ValueError,
            "^data: item 1 .*dtype",
        ),
        (
            MixedDataset([(torch.zeros(2), 0), torch.zeros(2)]),
            None,
            TypeError,
            "^data: item 1 is a bare input",
        ),
        (MixedDataset([(torch.zeros(2), "cat")]), None, TypeError, "^data: item 0 has a label"),
        (MixedDataset([(torch.zeros(2), 1.0)]), None, TypeError, "^data: item 0 has a label"),
        (MixedDataset([([0.0, 1.0], 1)]), None, TypeError, "^data: item 0 is a list"),
        (MixedDataset([torch.full((2,), 2.0)]), None, ValueError, r"^data: values must be in"),
        (NoLenDataset(), None, TypeError, "^data: a map-style Dataset must define __len__"),
        (
            MixedDataset([(torch.zeros(2), 0), (torch.zeros(2), 1)]),
            [0, 1],
            ValueError,
            "^labels: must be None when data yields",
        ),
    ],
)
def test_as_tensors_rejects_bad_datasets(
    dataset: Dataset[object], labels: object, error: type, pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        as_tensors(dataset, labels)


def test_as_tensors_accepts_label_scalars() -> None:
    items = [
        (torch.zeros(2), np.int64(3)),
        (torch.zeros(2), torch.tensor(4)),
        (torch.zeros(2), np.array([5])),
    ]
    _, y = as_tensors(MixedDataset(items))  # type: ignore[arg-type]
    assert y is not None and y.tolist() == [3, 4, 5]
