"""Training ranking models, vanilla or defended, with atomic checkpoints and exact resume.

[train][rankattack.training.train] samples class-balanced batches (P classes x K images), mines one
triplet ``(q, c_p, c_n)`` per image inside each batch
([batch_triplets][rankattack.training.batch_triplets], or robrank's SPC-2 and soft-hard miners), and
minimizes a ranking loss ([rankattack.losses][]) with Adam, optionally under one of the defenses of
[rankattack.defenses][] (EST, the paper's embedding-shift defense, Eq. 13; ACT; HM; or the less
stable Appendix H alternatives). After every epoch it writes ``checkpoint.pt`` (model and optimizer
state, the config, the history, every random-number state and the defense's state) atomically, so an
interrupted run resumes where it stopped and ends with the weights an uninterrupted run would have
produced.

The package's modules:

* [config][rankattack.training.config]: [TrainConfig][rankattack.training.TrainConfig] (what
  determines a run) and [TrainResult][rankattack.training.TrainResult] (what it returns);
* [samplers][rankattack.training.samplers]:
  [ClassBalancedSampler][rankattack.training.ClassBalancedSampler] (the batches) and
  [batch_triplets][rankattack.training.batch_triplets] (the in-batch triplet miner);
* [loop][rankattack.training.loop]: [train][rankattack.training.train] (the epoch loop),
  [train_step][rankattack.training.train_step] (one vanilla or defended optimizer step),
  [make_defense][rankattack.training.make_defense] (the config's defense) and
  [build_adversary][rankattack.training.build_adversary];
* [checkpoints][rankattack.training.checkpoints]: atomic checkpoint writes, random-number
  states, resume checks and [load_checkpoint][rankattack.training.load_checkpoint].

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
