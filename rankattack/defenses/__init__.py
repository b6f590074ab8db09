"""Defenses of ranking models: one interface, ``(model, images, labels) -> training loss``.

``defense.loss(model, images, labels)`` is a training loss for any loop (a plain PyTorch loop,
[rankattack.training.train][], a pytorch-metric-learning loop). One module per defense:

* [embeddingshift][rankattack.defenses.embeddingshift], **EST** (the paper's defense, Zhou et al.,
  ECCV 2020, Sec. 3.3, Eq. 13): every image of the batch is replaced by its maximum-shift
  adversary ([MaxShiftAttack][rankattack.MaxShiftAttack]), and the ranking loss is applied to the
  adversarial triplets ([EmbeddingShiftDefense][rankattack.defenses.EmbeddingShiftDefense]).
* [anticollapse][rankattack.defenses.anticollapse], **ACT** (anti-collapse triplet, robrank, T-PAMI
  2024): the positive and negative of each triplet are perturbed together to collapse onto
  each other, and the triplet loss keeps them apart around the benign anchor
  ([AntiCollapseDefense][rankattack.defenses.AntiCollapseDefense]).
* [hardnessmanipulation][rankattack.defenses.hardnessmanipulation], **HM** with gradual adversary
  and intra-class structure (CVPR 2022): the triplets are perturbed to a destination hardness that
  follows the training progress
  ([HardnessManipulationDefense][rankattack.defenses.HardnessManipulationDefense]).
* [madry][rankattack.defenses.madry] (Appendix H.1, Eq. 19) and
  [shiftsuppress][rankattack.defenses.shiftsuppress] (Appendix H.3, Eq. 22): the paper's *less
  stable* alternatives ([MadryDefense][rankattack.defenses.MadryDefense],
  [ShiftSuppressDefense][rankattack.defenses.ShiftSuppressDefense]).
* [vanilla][rankattack.defenses.vanilla]: no defense, the clean ranking loss
  ([VanillaDefense][rankattack.defenses.VanillaDefense]).

[miners][rankattack.defenses.miners] holds the in-batch triplet miners (random, robrank's SPC-2
and soft-hard), [registry][rankattack.defenses.registry] the names the training loop understands,
[base][rankattack.defenses.base] the interface and what the defenses share. The functional API
of the earlier versions (``embedding_shift_loss`` / ``embedding_shift_step`` and so on: a loss
of a batch with explicit triplet indices, and one optimizer step on explicit triplets) is kept;
each function builds the defense object and calls it.
"""

from __future__ import annotations

from rankattack.defenses.anticollapse import AntiCollapseDefense, PairCollapseObjective
from rankattack.defenses.base import DEFENSES, Defense, TripletMiner, Triplets
from rankattack.defenses.embeddingshift import (
    EmbeddingShiftDefense,
    embedding_shift_loss,
    embedding_shift_step,
)
from rankattack.defenses.hardnessmanipulation import (
    HardnessManipulationDefense,
    HardnessObjective,
    gradual_destination,
)
from rankattack.defenses.madry import MadryDefense, TripletAscentObjective, madry_loss, madry_step
from rankattack.defenses.miners import RandomTripletMiner, SoftHardTripletMiner, random_triplets
from rankattack.defenses.registry import build_defense
from rankattack.defenses.shiftsuppress import (
    ShiftSuppressDefense,
    shift_suppress_loss,
    shift_suppress_step,
)
from rankattack.defenses.vanilla import VanillaDefense, vanilla_loss, vanilla_step

__all__ = [
    "DEFENSES",
    "AntiCollapseDefense",
    "Defense",
    "EmbeddingShiftDefense",
    "HardnessManipulationDefense",
    "HardnessObjective",
    "MadryDefense",
    "PairCollapseObjective",
    "RandomTripletMiner",
    "ShiftSuppressDefense",
    "SoftHardTripletMiner",
    "TripletAscentObjective",
    "TripletMiner",
    "Triplets",
    "VanillaDefense",
    "build_defense",
    "embedding_shift_loss",
    "embedding_shift_step",
    "gradual_destination",
    "madry_loss",
    "madry_step",
    "random_triplets",
    "shift_suppress_loss",
    "shift_suppress_step",
    "vanilla_loss",
    "vanilla_step",
]
