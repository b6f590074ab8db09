"""Tests for rankattack.data.mnist (load_mnist)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rankattack.data import load_mnist
from tests._idx import MNIST_BASES, fake_mnist, write_idx


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
