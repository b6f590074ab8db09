"""Tiny embedding models trained in about a second on scikit-learn's bundled digits.

Shared by the universal-attack and transfer tests; results are cached per process.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn


@functools.cache
def digits() -> tuple[Tensor, Tensor]:
    """The 1797 8x8 digits as ``[N, 1, 8, 8]`` floats in ``[0, 1]`` and int64 labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    return x, torch.tensor(data.target, dtype=torch.long)


def _triplet_step(
    model: nn.Module, x: Tensor, y: Tensor, gen: torch.Generator, batch: int, margin: float
) -> Tensor:
    """Cosine triplet loss on random (anchor, positive, negative) triplets."""
    a = torch.randint(0, x.shape[0], (batch,), generator=gen)
    # positives: same label, negatives: different label (rejection by resampling once more)
    perm = torch.randperm(x.shape[0], generator=gen)
    same = y[perm].unsqueeze(0) == y[a].unsqueeze(1)  # [batch, N]
    pos = perm[same.float().argmax(1)]
    neg = perm[(~same).float().argmax(1)]
    emb = nn.functional.normalize(model(torch.cat([x[a], x[pos], x[neg]])), dim=1)
    ea, ep, en = emb.split(batch)
    d_ap = 1 - (ea * ep).sum(1)
    d_an = 1 - (ea * en).sum(1)
    return (d_ap - d_an + margin).clamp_min(0).mean()


@functools.cache
def digits_model(seed: int = 0, hidden: int = 64, steps: int = 300) -> nn.Module:
    """An MLP ``[N, 1, 8, 8] -> [N, 16]`` trained with a cosine triplet loss.

    Trained on the first 1000 digits; the rest (797) are left for galleries and attacks.
    """
    x, y = digits()
    x, y = x[:1000], y[:1000]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 16))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra threads only contend on a shared machine
    try:
        for _ in range(steps):
            loss = _triplet_step(model, x, y, gen, batch=128, margin=0.3)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def held_out() -> tuple[Tensor, Tensor]:
    """The digits not used for training (797 of them)."""
    x, y = digits()
    return x[1000:], y[1000:]


def recall_at_1(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Leave-one-out Recall@1 of ``model`` on ``(x, y)`` with cosine distance."""
    with torch.no_grad():
        e = nn.functional.normalize(model(x), dim=1)
    sim = e @ e.T
    sim.fill_diagonal_(-2.0)
    return float((y[sim.argmax(1)] == y).float().mean())
