"""The universal (image-agnostic) ranking attack (paper Sec. 5.2, Eq. 14) and its evaluation.

- ``attack``: [UniversalRankAttack][rankattack.attacks.universalrankattack.UniversalRankAttack],
  fitting one perturbation for every input (Eq. 14) and ranking with it;
- ``perturbation``: the perturbation as a
  value: its eps-ball, adding it to inputs, its file format;
- [result][rankattack.attacks.universalrankattack.result]:
  [UniversalResult][rankattack.attacks.universalrankattack.UniversalResult] and
  [SeenUnseenResult][rankattack.attacks.universalrankattack.SeenUnseenResult];
- [seenunseen][rankattack.attacks.universalrankattack.seenunseen]:
  [evaluate_seen_unseen][rankattack.attacks.universalrankattack.evaluate_seen_unseen], the paper's
  seen / unseen protocol (Tables 6, 13, 14).
"""

from __future__ import annotations

from rankattack.attacks.universalrankattack.attack import UniversalRankAttack
from rankattack.attacks.universalrankattack.result import SeenUnseenResult, UniversalResult
from rankattack.attacks.universalrankattack.seenunseen import evaluate_seen_unseen

__all__ = ["SeenUnseenResult", "UniversalRankAttack", "UniversalResult", "evaluate_seen_unseen"]
