"""Training ranking models, vanilla or defended, with atomic checkpoints and exact resume.

:func:`train` samples class-balanced batches (P classes x K images), mines one triplet
``(q, c_p, c_n)`` per image inside each batch (:func:`batch_triplets`, or robrank's SPC-2
and soft-hard miners), and minimizes a ranking loss (:mod:`rankattack.losses`) with Adam,
optionally under one of the defenses of :mod:`rankattack.defenses` (EST, the paper's
embedding-shift defense, Eq. 13; ACT; HM; or the less stable Appendix H alternatives).
After every epoch it writes ``checkpoint.pt`` (model and optimizer state, the config, the
history, every random-number state and the defense's state) atomically, so
an interrupted run resumes where it stopped and ends with the weights an uninterrupted
run would have produced.

The package's modules:

* :mod:`~rankattack.training.config`: :class:`TrainConfig` (what determines a run) and
  :class:`TrainResult` (what it returns);
* :mod:`~rankattack.training.samplers`: :class:`ClassBalancedSampler` (the batches) and
  :func:`batch_triplets` (the in-batch triplet miner);
* :mod:`~rankattack.training.loop`: :func:`train` (the epoch loop), :func:`train_step`
  (one vanilla or defended optimizer step), :func:`make_defense` (the config's defense) and
  :func:`build_adversary`;
* :mod:`~rankattack.training.checkpoints`: atomic checkpoint writes, random-number
  states, resume checks and :func:`load_checkpoint`.

Examples
--------
>>> import torch
>>> from rankattack.training import TrainConfig, train
>>> x, y = torch.rand(64, 1, 16, 16), torch.arange(64) % 4
>>> cfg = TrainConfig(model="c2f1", embedding_dim=16, epochs=1, batch_size=16)
>>> result = train(cfg, x, y, progress=False)
>>> len(result.history)
1
"""

from __future__ import annotations

from rankattack.training.checkpoints import CHECKPOINT_NAME, load_checkpoint
from rankattack.training.config import TrainConfig, TrainResult
from rankattack.training.loop import build_adversary, make_defense, train, train_step
from rankattack.training.samplers import ClassBalancedSampler, batch_triplets

__all__ = [
    "CHECKPOINT_NAME",
    "ClassBalancedSampler",
    "TrainConfig",
    "TrainResult",
    "batch_triplets",
    "build_adversary",
    "load_checkpoint",
    "make_defense",
    "train",
    "train_step",
]
