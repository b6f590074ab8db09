"""Ranking objectives: *what* an attack optimizes (paper Eq. 4, 7, 9, 11, 12, 13).

One objective per module, each a [RankingObjective][rankattack.objectives.RankingObjective] mapping
the embeddings of the perturbed inputs ``[N, D]`` to a per-sample loss ``[N]`` that the PGD engine
minimizes:

- ``base``: the interface, ``DIRECTIONS`` and the shared
  helpers;
- ``candidate``: [CandidateObjective][rankattack.objectives.CandidateObjective], CA+ / CA-
  (Eq. 4 / 7);
- ``query``: [QueryObjective][rankattack.objectives.QueryObjective], QA+ / QA- with the
  Semantics-Preserving term (Eq. 11 / 9 / 12);
- ``maxshift``: [MaxShiftObjective][rankattack.objectives.MaxShiftObjective], the maximum
  embedding shift (Eq. 13);
- ``targetdistance``: [TargetDistanceObjective][rankattack.objectives.TargetDistanceObjective], the
  distance to one fixed target per input (the targeted mismatch and greedy top-1
  misranking attacks);
- ``learningtomisrank``:
  [LearningToMisrankObjective][rankattack.objectives.LearningToMisrankObjective], the
  learning-to-misrank hinge between the farthest other-class item and the nearest same-class item;
- ``order``: [OrderObjective][rankattack.objectives.OrderObjective], the Order Attack's
  pairwise hinges on a wanted order (AdvOrder, ICCV 2021) and ``order_agreement``, its
  short-range ranking correlation;
- ``sortedhinge``: the sorted-distance hinge sums behind the
  Candidate Attack's fast path;
- [labelextremes][rankattack.objectives.labelextremes]: nearest / farthest gallery items within
  label-defined subsets, blockwise (the misranking attacks' target selection).
"""

from __future__ import annotations

from rankattack.objectives.base import DIRECTIONS, RankingObjective
from rankattack.objectives.candidate import CandidateObjective
from rankattack.objectives.learningtomisrank import LearningToMisrankObjective
from rankattack.objectives.maxshift import MaxShiftObjective
from rankattack.objectives.order import OrderObjective, order_agreement
from rankattack.objectives.query import QueryObjective
from rankattack.objectives.targetdistance import TargetDistanceObjective

__all__ = [
    "DIRECTIONS",
    "CandidateObjective",
    "LearningToMisrankObjective",
    "MaxShiftObjective",
    "OrderObjective",
    "QueryObjective",
    "RankingObjective",
    "TargetDistanceObjective",
    "order_agreement",
]
