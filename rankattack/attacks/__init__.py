"""Ranking attacks: thin classes binding a model, a gallery, an objective and PGD.

One attack per module, each named for its class: ``candidateattack``
(CA, Eq. 1-7), ``queryattack`` (QA and SP-QA, Eq. 8-12),
``maxshiftattack`` (Eq. 13), the
``universalrankattack`` package (Eq. 14, with its perturbation
file, results and seen / unseen protocol), and the robustness benchmark's misranking
attacks: [targetedmismatchattack][rankattack.attacks.targetedmismatchattack] (TMA),
``learningtomisrankattack`` (LTM),
[greedytopmisrankattack][rankattack.attacks.greedytopmisrankattack] (GTM) and
[greedytoptranslocationattack][rankattack.attacks.greedytoptranslocationattack] (GTT), and
``whiteboxorderattack`` (the Order Attack of AdvOrder, ICCV 2021).
[base][rankattack.attacks.base] holds what every attack shares (model handling, the PGD
engine, results, repr) and
[targets][rankattack.attacks.targets] the one argument resolver: the ways a user names an
attack's targets (queries, candidates, their indices or embeddings), validated.
"""

from __future__ import annotations

from rankattack.attacks.base import AttackResult, RankingAttack, RecallResult
from rankattack.attacks.candidateattack import CandidateAttack
from rankattack.attacks.greedytopmisrankattack import GreedyTopMisrankAttack
from rankattack.attacks.greedytoptranslocationattack import (
    GreedyTopTranslocationAttack,
    RetainResult,
)
from rankattack.attacks.learningtomisrankattack import LearningToMisrankAttack
from rankattack.attacks.maxshiftattack import MaxShiftAttack, ShiftResult
from rankattack.attacks.queryattack import QueryAttack
from rankattack.attacks.targetedmismatchattack import MismatchResult, TargetedMismatchAttack
from rankattack.attacks.universalrankattack import (
    SeenUnseenResult,
    UniversalRankAttack,
    UniversalResult,
    evaluate_seen_unseen,
)
from rankattack.attacks.whiteboxorderattack import (
    OrderResult,
    WhiteBoxOrderAttack,
    random_target_order,
)

__all__ = [
    "AttackResult",
    "CandidateAttack",
    "GreedyTopMisrankAttack",
    "GreedyTopTranslocationAttack",
    "LearningToMisrankAttack",
    "MaxShiftAttack",
    "MismatchResult",
    "OrderResult",
    "QueryAttack",
    "RankingAttack",
    "RecallResult",
    "RetainResult",
    "SeenUnseenResult",
    "ShiftResult",
    "TargetedMismatchAttack",
    "UniversalRankAttack",
    "UniversalResult",
    "WhiteBoxOrderAttack",
    "evaluate_seen_unseen",
    "random_target_order",
]
