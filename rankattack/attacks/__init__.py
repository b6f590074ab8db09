"""Ranking attacks: thin classes binding a model, a gallery, an objective and PGD."""

from __future__ import annotations

from rankattack.attacks.base import AttackResult, RankingAttack
from rankattack.attacks.candidateattack import CandidateAttack
from rankattack.attacks.maxshiftattack import MaxShiftAttack, ShiftResult
from rankattack.attacks.queryattack import QueryAttack
from rankattack.attacks.universalrankattack import (
    SeenUnseenResult,
    UniversalRankAttack,
    UniversalResult,
    evaluate_seen_unseen,
)

__all__ = [
    "AttackResult",
    "CandidateAttack",
    "MaxShiftAttack",
    "QueryAttack",
    "RankingAttack",
    "SeenUnseenResult",
    "ShiftResult",
    "UniversalRankAttack",
    "UniversalResult",
    "evaluate_seen_unseen",
]
