"""The robustness benchmark: robrank's ten attacks and the Empirical Robustness Score.

Zhou et al., "Adversarial Attack and Defense in Deep Ranking" (T-PAMI 2024) and
"Enhancing Adversarial Robustness for Deep Metric Learning" (CVPR 2022) measure a
ranking model's robustness with ten numbers from nine white-box L-inf PGD attacks on
the test set (CA+, CA-, QA+, QA-, TMA, ES -> ESD and ESR, LTM, GTM, GTT), folded into
one Empirical Robustness Score (ERS, higher = more robust).

Modules
-------
profiles
    ``RobustnessProfile`` and the named ``PROFILES`` (``rob28``, ``rob224``).
ers
    The normalization of each raw number and ``ers``.
runner
    ``robustness_report``: the suite on one model, resumable from a results log.
report
    ``RobustnessReport`` and ``robustness_table`` (several models side by side).
log
    ``RobustnessLog``, the JSON-lines log with every per-query value.
published
    robrank's published Fashion-MNIST rows (``load_published``, ``find_published``).

``from rankattack.robustness import PROFILES, robustness_report`` is the short import.
"""

from __future__ import annotations

from rankattack.evaluation.robustness.ers import (
    BOUNDED_METRICS,
    METRICS,
    NORMALIZATION,
    ers,
    ers_defined,
    normalize,
)
from rankattack.evaluation.robustness.log import Chunk, RobustnessLog
from rankattack.evaluation.robustness.profiles import (
    ATTACKS,
    OUTPUTS,
    PROFILES,
    RAW_KEYS,
    RobustnessProfile,
    get_profile,
)
from rankattack.evaluation.robustness.published import (
    DEFENSE_TAGS,
    PublishedRow,
    find_published,
    load_published,
)
from rankattack.evaluation.robustness.report import RobustnessReport, robustness_table
from rankattack.evaluation.robustness.runner import (
    draw_targets,
    robustness_report,
    select_queries,
)

__all__ = [
    "ATTACKS",
    "BOUNDED_METRICS",
    "DEFENSE_TAGS",
    "METRICS",
    "NORMALIZATION",
    "OUTPUTS",
    "PROFILES",
    "RAW_KEYS",
    "Chunk",
    "PublishedRow",
    "RobustnessLog",
    "RobustnessProfile",
    "RobustnessReport",
    "draw_targets",
    "ers",
    "ers_defined",
    "find_published",
    "get_profile",
    "load_published",
    "normalize",
    "robustness_report",
    "robustness_table",
    "select_queries",
]
