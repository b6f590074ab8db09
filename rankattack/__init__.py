"""rankattack: adversarial ranking attacks and defenses for deep retrieval models.

Implements Zhou et al., "Adversarial Ranking Attack and Defense" (ECCV 2020):
Candidate Attack (CA+/CA-), Query Attack (QA+/QA-, with the Semantics-Preserving
term), the maximum-shift attack behind the embedding-shift defense, and the tools
to evaluate them, over any embedding model.

The core imports only torch and numpy; training, evaluation, plots, the command line
and the ART adapters live in their own modules and import their dependencies lazily.
"""

from __future__ import annotations

import logging

from rankattack.attacks import (
    AttackResult,
    CandidateAttack,
    GreedyTopMisrankAttack,
    GreedyTopTranslocationAttack,
    LearningToMisrankAttack,
    MaxShiftAttack,
    MismatchResult,
    QueryAttack,
    RankingAttack,
    RecallResult,
    RetainResult,
    SeenUnseenResult,
    ShiftResult,
    TargetedMismatchAttack,
    UniversalRankAttack,
    UniversalResult,
    evaluate_seen_unseen,
)
from rankattack.distances import (
    CosineDistance,
    Distance,
    EuclideanDistance,
    NormalizedEuclideanDistance,
    get_distance,
)
from rankattack.gallery import Gallery
from rankattack.objectives import (
    CandidateObjective,
    LearningToMisrankObjective,
    MaxShiftObjective,
    QueryObjective,
    RankingObjective,
    TargetDistanceObjective,
)
from rankattack.pgd import LinfPGD
from rankattack.transfer import TransferResult, attack_factory, transfer_matrix
from rankattack.wrappers import EmbeddingModel, eval_mode

__version__ = "0.1.0"

__all__ = [
    "AttackResult",
    "CandidateAttack",
    "CandidateObjective",
    "CosineDistance",
    "Distance",
    "EmbeddingModel",
    "EuclideanDistance",
    "Gallery",
    "GreedyTopMisrankAttack",
    "GreedyTopTranslocationAttack",
    "LearningToMisrankAttack",
    "LearningToMisrankObjective",
    "LinfPGD",
    "MaxShiftAttack",
    "MaxShiftObjective",
    "MismatchResult",
    "NormalizedEuclideanDistance",
    "QueryAttack",
    "QueryObjective",
    "RankingAttack",
    "RankingObjective",
    "RecallResult",
    "RetainResult",
    "SeenUnseenResult",
    "ShiftResult",
    "TargetDistanceObjective",
    "TargetedMismatchAttack",
    "TransferResult",
    "UniversalRankAttack",
    "UniversalResult",
    "attack_factory",
    "eval_mode",
    "evaluate_seen_unseen",
    "get_distance",
    "transfer_matrix",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
