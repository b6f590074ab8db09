"""Shared fixtures: one thread for tiny models, a small ranking model trained on digits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from rankattack import Gallery
from tests._models import digits, digits_model, held_out


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """The tests' models are tiny: extra threads only contend with each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class TrainedDigits:
    model: nn.Module
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    gallery: Gallery


@pytest.fixture(scope="session")
def trained_digits() -> TrainedDigits:
    """The cached digits model of ``tests._models`` with its held-out digits as gallery."""
    x, y = digits()
    test_x, test_y = held_out()
    model = digits_model()
    gallery = Gallery.from_inputs(model, test_x, test_y, metric="cosine")
    return TrainedDigits(model, x[:1000], y[:1000], test_x, test_y, gallery)
