"""Tests for rankattack.data.registry (load_dataset)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from rankattack.data import load_dataset, load_digits, mnist
from tests._idx import fake_mnist


def test_load_dataset_digits() -> None:
    split = load_dataset("digits", image_size=8, seed=2)
    reference = load_digits(image_size=8, seed=2)
    assert torch.equal(split.train_index, reference.train_index)
    assert split.train_x.shape[1:] == (1, 8, 8)
    assert load_dataset("  Digits ", image_size=8).name == "digits"


def test_load_dataset_digits_ignores_data_dir(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rankattack.data"):
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
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path))
    split = load_dataset("fashion_mnist")
    assert split.name == "fashion-mnist"
    np.testing.assert_array_equal(split.train_y.numpy(), arrays["train-labels-idx1-ubyte"])

    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
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
