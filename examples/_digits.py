"""Shared by the examples: a small ranking model trained on scikit-learn's digits.

scikit-learn ships the 1797 8x8 digits, so nothing is downloaded.
:func:`rankattack.data.load_digits` splits them per class in halves (896 training
images, 901 test images that serve as the candidate set X), and
:func:`rankattack.training.train` trains the paper's C2F1 network (Sec. 4.1) with the
triplet loss (Eq. 3) on cosine distance, in well under a second per epoch (8x8 digits,
one CPU thread).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rankattack import Gallery
from rankattack.data import load_digits
from rankattack.metrics import recall_at_k
from rankattack.training import TrainConfig, train

#: The examples' small C2F1: 32-d embeddings, batches of 32 classes x 2 images.
SMALL = {"model": "c2f1", "embedding_dim": 32, "batch_size": 64, "lr": 2e-3}


@dataclass
class TrainedDigits:
    """A trained model, the digits on the model's device and the test split as gallery."""

    model: nn.Module
    config: TrainConfig
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    gallery: Gallery
    recall_at_1: float
    seconds: float


def train_digits(
    epochs: int, *, image_size: int = 8, seed: int = 0, split_seed: int = 0, **config: Any
) -> TrainedDigits:
    """Train a ranking model on the digits' training half; X = the test half.

    Parameters
    ----------
    epochs : int
        Training epochs (14 batches each).
    image_size : int
        Side of the (bilinearly resized) digit images.
    seed : int
        Seeds the training run (weights and batches).
    split_seed : int
        Seeds the train/test split (models to compare share one).
    **config
        :class:`rankattack.training.TrainConfig` fields overriding :data:`SMALL`, e.g.
        ``model="lenet"`` or ``defense="embedding-shift", eps=0.1``.
    """
    data = load_digits(image_size=image_size, seed=split_seed)
    cfg = TrainConfig(**{**SMALL, **config, "epochs": epochs, "seed": seed})
    start = time.perf_counter()
    model = train(cfg, data.train_x, data.train_y, progress=False).model
    seconds = time.perf_counter() - start
    device = next(model.parameters()).device  # the config's device (CUDA when available)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    gallery = Gallery.from_inputs(model, test_x, test_y, metric=cfg.metric)
    return TrainedDigits(
        model=model,
        config=cfg,
        train_x=data.train_x.to(device),
        train_y=data.train_y.to(device),
        test_x=test_x,
        test_y=test_y,
        gallery=gallery,
        recall_at_1=recall_at_k(gallery, (1,))[1],
        seconds=seconds,
    )


def top_fraction_indices(
    gallery: Gallery, anchors: Tensor, fraction: float, generator: torch.Generator
) -> Tensor:
    """For each anchor index ``[N]``, one random gallery item among its top ``fraction``.

    The anchor itself is left out; returns indices ``[N, 1]`` (the paper's CA- queries
    and QA- candidates come from the top 1%, Sec. 4).
    """
    k = max(1, round(fraction * len(gallery)))
    _, top = gallery.topk(gallery.embeddings[anchors], k, exclude_indices=anchors[:, None])
    col = torch.randint(0, k, (anchors.shape[0], 1), generator=generator).to(top.device)
    return top.gather(1, col)
