"""Tests for rankattack.datasets."""

from __future__ import annotations

import gzip
import logging
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from rankattack import datasets
from rankattack.datasets import (
    DatasetSplit,
    as_tensors,
    load_dataset,
    load_digits,
    load_mnist,
    read_idx,
)

# --------------------------------------------------------------------------- #
# Helpers: an independent IDX writer
# --------------------------------------------------------------------------- #

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    code = IDX_CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


MNIST_BASES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def fake_mnist(
    directory: Path, compress: bool, seed: int = 0, n_train: int = 12, n_test: int = 7
) -> dict[str, np.ndarray]:
    """Write a tiny MNIST-shaped dataset into ``directory`` and return its arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    # Make sure the extremes 0 and 255 are present.
    arrays["train-images-idx3-ubyte"][0, 0, 0] = 0
    arrays["train-images-idx3-ubyte"][0, 0, 1] = 255
    directory.mkdir(parents=True, exist_ok=True)
    for base, array in arrays.items():
        write_idx(directory / (base + (".gz" if compress else "")), array, compress)
    return arrays


# --------------------------------------------------------------------------- #
# read_idx
# --------------------------------------------------------------------------- #

idx_dtypes = st.sampled_from(sorted(IDX_CODES, key=str))
idx_arrays = idx_dtypes.flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(array=idx_arrays, compress=st.booleans(), suffix=st.booleans())
def test_read_idx_round_trip(
    tmp_path: Path, array: np.ndarray, compress: bool, suffix: bool
) -> None:
    # gzip is detected from the magic bytes even without a .gz suffix.
    name = "a.idx" + (".gz" if compress and suffix else "")
    path = write_idx(tmp_path / name, array, compress)
    back = read_idx(path)
    assert back.dtype == array.dtype
    assert back.dtype.isnative
    assert back.shape == array.shape
    assert back.flags.writeable
    # Bit-exact, NaN payloads and signed zeros included.
    assert back.tobytes() == array.tobytes()


def test_read_idx_known_bytes(tmp_path: Path) -> None:
    # Hand-written big-endian int16 2x3 matrix.
    payload = struct.pack(">6h", 1, -2, 300, -32768, 32767, 0)
    path = tmp_path / "m.idx"
    path.write_bytes(bytes([0, 0, 0x0B, 2]) + struct.pack(">2I", 2, 3) + payload)
    np.testing.assert_array_equal(
        read_idx(path), np.array([[1, -2, 300], [-32768, 32767, 0]], dtype=np.int16)
    )
    # Same thing gzipped, with the suffix, and as a str path.
    gz = tmp_path / "m.idx.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(read_idx(str(gz)), read_idx(path))


def _header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_header(0x08, (2, 3)) + bytes(5), "payload has 5 bytes, expected 6"),
        (_header(0x08, (2, 3)) + bytes(7), "payload has 7 bytes, expected 6"),
        (_header(0x0C, (4,)) + bytes(15), "payload has 15 bytes, expected 16"),
        (bytes([1, 0, 0x08, 1]) + struct.pack(">I", 1) + bytes(1), "bad IDX magic"),
        (bytes([0, 7, 0x08, 1]) + struct.pack(">I", 1) + bytes(1), "bad IDX magic"),
        (bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 1) + bytes(1), "unknown IDX type code 0x0A"),
        (bytes([0, 0, 0x08, 0]), "0 dimensions"),
        # Header claims 3 dimensions but only 2 are there.
        (bytes([0, 0, 0x08, 3]) + struct.pack(">2I", 1, 1), "truncated IDX header"),
        # Header claims 1 dimension for a 2x3 payload (wrong ndim).
        (bytes([0, 0, 0x08, 1]) + struct.pack(">2I", 2, 3) + bytes(6), "expected 2"),
        (bytes([0, 0]), "too short"),
        (b"", "too short"),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_malformed(
    tmp_path: Path, content: bytes, expected: str, compress: bool
) -> None:
    path = tmp_path / ("bad-file.gz" if compress else "bad-file")
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=expected) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a valid gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    # A .gz name on a file that is not gzip data is rejected too.
    raw_named_gz = tmp_path / "raw.gz"
    raw_named_gz.write_bytes(idx_bytes(np.arange(3, dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"raw\.gz"):
        read_idx(raw_named_gz)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------- #
# load_mnist
# --------------------------------------------------------------------------- #


def _layout_dir(root: Path, layout: str, kind: str) -> Path:
    if layout == "root":
        return root
    if layout == "raw":
        return root / "raw"
    return root / ("MNIST" if kind == "mnist" else "FashionMNIST") / "raw"


@pytest.mark.parametrize("kind", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("layout", ["root", "raw", "torchvision"])
@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_layouts(tmp_path: Path, kind: str, layout: str, compress: bool) -> None:
    arrays = fake_mnist(_layout_dir(tmp_path, layout, kind), compress)
    split = load_mnist(tmp_path, kind=kind)

    assert split.name == kind
    assert split.num_classes == 10
    assert split.train_x.shape == (12, 1, 28, 28)
    assert split.test_x.shape == (7, 1, 28, 28)
    assert split.train_x.dtype == torch.float32 and split.test_x.dtype == torch.float32
    assert split.train_y.dtype == torch.int64 and split.test_y.dtype == torch.int64
    for x in (split.train_x, split.test_x):
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(split.train_x[0, 0, 0, 0]) == 0.0
    assert float(split.train_x[0, 0, 0, 1]) == 1.0

    for x, base in ((split.train_x, MNIST_BASES[0]), (split.test_x, MNIST_BASES[2])):
        expected = torch.from_numpy(arrays[base].astype(np.float32) / 255.0).unsqueeze(1)
        torch.testing.assert_close(x, expected, rtol=0, atol=1e-7)
        # The exact uint8 values come back after rescaling.
        np.testing.assert_array_equal(
            np.rint(x.squeeze(1).numpy() * 255).astype(np.uint8), arrays[base]
        )
    np.testing.assert_array_equal(split.train_y.numpy(), arrays[MNIST_BASES[1]])
    np.testing.assert_array_equal(split.test_y.numpy(), arrays[MNIST_BASES[3]])
    assert torch.equal(split.train_index, torch.arange(12))
    assert torch.equal(split.test_index, torch.arange(7))


def test_load_mnist_prefers_root_over_subdirs(tmp_path: Path) -> None:
    fake_mnist(tmp_path, compress=False, seed=1)
    fake_mnist(tmp_path / "raw", compress=True, seed=2, n_train=3)
    assert load_mnist(tmp_path).train_x.shape[0] == 12


def test_load_mnist_mixed_raw_and_gz_in_one_dir(tmp_path: Path) -> None:
    arrays = fake_mnist(tmp_path, compress=True)
    # Replace one .gz file by its raw version; the loader accepts either form.
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", arrays["t10k-labels-idx1-ubyte"])
    split = load_mnist(tmp_path, kind="fashion-mnist")
    np.testing.assert_array_equal(split.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])


@pytest.mark.parametrize("kind", ["mnist", "fashion-mnist"])
def test_load_mnist_missing_files(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "data"
    # Files split across directories do not count: all four must be together.
    fake_mnist(root / "raw", compress=False)
    (root / "raw" / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(root, kind=kind)
    message = str(info.value)
    folder = "MNIST" if kind == "mnist" else "FashionMNIST"
    for directory in (root, root / "raw", root / folder / "raw"):
        assert str(directory) in message
    assert "missing: t10k-images-idx3-ubyte" in message
    assert f"into {root}" in message
    if kind == "fashion-mnist":
        assert "apt-get install dataset-fashion-mnist" in message
    else:
        assert "apt-get" not in message
        assert "yann.lecun.com" in message


def test_load_mnist_rejects_bad_files(tmp_path: Path) -> None:
    arrays = fake_mnist(tmp_path, compress=False)
    # 2-D images (wrong ndim).
    bad = tmp_path / "train-images-idx3-ubyte"
    write_idx(bad, arrays["train-images-idx3-ubyte"].reshape(12, -1))
    with pytest.raises(ValueError, match="shape \\[N, H, W\\]") as info:
        load_mnist(tmp_path)
    assert str(bad) in str(info.value)
    write_idx(bad, arrays["train-images-idx3-ubyte"])

    labels = tmp_path / "train-labels-idx1-ubyte"
    write_idx(labels, np.arange(11, dtype=np.uint8) % 10)
    with pytest.raises(ValueError, match="has 11 labels, expected 12"):
        load_mnist(tmp_path)
    write_idx(labels, np.full(12, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"0\.\.9"):
        load_mnist(tmp_path)
    write_idx(labels, np.zeros(12, dtype=np.int32))
    with pytest.raises(ValueError, match="uint8 labels"):
        load_mnist(tmp_path)


def test_load_mnist_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path, kind="kmnist")


# --------------------------------------------------------------------------- #
# load_digits
# --------------------------------------------------------------------------- #


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
        "import sys, rankattack.datasets; "
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


# --------------------------------------------------------------------------- #
# DatasetSplit.subset
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# as_tensors
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# load_dataset
# --------------------------------------------------------------------------- #


def test_load_dataset_digits() -> None:
    split = load_dataset("digits", image_size=8, seed=2)
    reference = load_digits(image_size=8, seed=2)
    assert torch.equal(split.train_index, reference.train_index)
    assert split.train_x.shape[1:] == (1, 8, 8)
    assert load_dataset("  Digits ", image_size=8).name == "digits"


def test_load_dataset_digits_ignores_data_dir(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rankattack.datasets"):
        split = load_dataset("digits", data_dir="/somewhere", image_size=8)
    assert split.name == "digits"
    assert "not used" in caplog.text


def test_load_dataset_mnist(tmp_path: Path) -> None:
    arrays = fake_mnist(tmp_path / "MNIST" / "raw", compress=True)
    split = load_dataset("mnist", data_dir=str(tmp_path))
    assert split.name == "mnist"
    np.testing.assert_array_equal(split.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_load_dataset_fashion_default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = fake_mnist(tmp_path, compress=True)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path))
    split = load_dataset("fashion_mnist")
    assert split.name == "fashion-mnist"
    np.testing.assert_array_equal(split.train_y.numpy(), arrays["train-labels-idx1-ubyte"])

    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_dataset("fashion-mnist")
    assert str(tmp_path / "absent" / "FashionMNIST" / "raw") in str(info.value)


def test_load_dataset_errors() -> None:
    with pytest.raises(ValueError, match="digits, mnist, fashion-mnist") as info:
        load_dataset("cifar10")
    assert "cifar10" in str(info.value)
    with pytest.raises(ValueError, match="data_dir is required"):
        load_dataset("mnist")
    with pytest.raises(TypeError):
        load_dataset("digits", colour=True)
