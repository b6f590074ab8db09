"""ART integration: an estimator for embedding models and adapters of the ranking attacks.

Imported on demand (``import rankattack`` never imports ART)::

    from rankattack.art import RankingEstimator, CandidateAttackART

[RankingEstimator][rankattack.art.RankingEstimator] lets ART's own gradient attacks
(``ProjectedGradientDescent``, ``FastGradientMethod``), preprocessing defences and detectors work on
a retrieval model; the adapters run rankattack's attacks (Zhou et al., ECCV 2020) behind ART's
``EvasionAttack`` interface.
"""

from __future__ import annotations

try:
    import art as _art  # noqa: F401
except ImportError as err:  # pragma: no cover - art is a declared dependency
    raise ImportError(
        "rankattack.art needs the Adversarial Robustness Toolbox: "
        "pip install adversarial-robustness-toolbox"
    ) from err

from rankattack.art.attacks import CandidateAttackART, MaxShiftAttackART, QueryAttackART
from rankattack.art.base import RankingEvasionAttack
from rankattack.art.estimator import OBJECTIVES, RankingEstimator
from rankattack.art.universal import UniversalRankAttackART

__all__ = [
    "OBJECTIVES",
    "CandidateAttackART",
    "MaxShiftAttackART",
    "QueryAttackART",
    "RankingEstimator",
    "RankingEvasionAttack",
    "UniversalRankAttackART",
]
