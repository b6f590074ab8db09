"""Shared fixtures: a small ranking model trained for a few seconds on scikit-learn digits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from rankattack import Gallery, get_distance


@dataclass
class TrainedDigits:
    model: nn.Module
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    gallery: Gallery


def small_convnet(dim: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, dim),
    )


def digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy((data.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(data.target.astype(np.int64))
    return x, y


def train_triplet(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 300, seed: int = 0
) -> nn.Module:
    """Random-triplet training with the cosine triplet loss (Eq. 3, margin 0.2)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dist = get_distance("cosine")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    by_class = [torch.nonzero(y == c).flatten() for c in range(10)]
    model.train()
    for _ in range(steps):
        anchor = torch.randint(0, len(x), (128,), generator=gen)
        cls = y[anchor]
        pos = torch.stack(
            [by_class[c][torch.randint(0, len(by_class[c]), (1,), generator=gen)][0] for c in cls]
        )
        neg = torch.randint(0, len(x), (128,), generator=gen)
        keep = y[neg] != cls
        ea, ep, en = model(x[anchor]), model(x[pos]), model(x[neg])
        loss = (0.2 + dist(ea, ep) - dist(ea, en)).clamp_min(0)[keep].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


@pytest.fixture(scope="session")
def trained_digits() -> TrainedDigits:
    x, y = digits_tensors()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = perm[:1200], perm[1200:]
    torch.manual_seed(0)
    model = train_triplet(small_convnet(), x[train], y[train])
    for p in model.parameters():
        p.requires_grad_(True)
    gallery = Gallery.from_inputs(model, x[test], y[test], metric="cosine")
    return TrainedDigits(model, x[train], y[train], x[test], y[test], gallery)
