"""rankattack: adversarial ranking attacks and defenses for deep retrieval models.

Implements Zhou et al., "Adversarial Ranking Attack and Defense" (ECCV 2020):
Candidate Attack (CA+/CA-), Query Attack (QA+/QA-, with the Semantics-Preserving
term), the maximum-shift attack behind the embedding-shift defense, and the tools
to evaluate them, over any embedding model.
"""

from __future__ import annotations

__version__ = "0.1.0"
