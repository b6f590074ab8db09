"""The universal (image-agnostic) ranking attack (paper Sec. 5.2, Eq. 14) and its evaluation.

- :mod:`~rankattack.attacks.universalrankattack.attack`: :class:`UniversalRankAttack`,
  fitting one perturbation for every input (Eq. 14) and ranking with it;
- :mod:`~rankattack.attacks.universalrankattack.perturbation`: the perturbation as a
  value: its eps-ball, adding it to inputs, its file format;
- :mod:`~rankattack.attacks.universalrankattack.result`: :class:`UniversalResult` and
  :class:`SeenUnseenResult`;
- :mod:`~rankattack.attacks.universalrankattack.seenunseen`:
  :func:`evaluate_seen_unseen`, the paper's seen / unseen protocol (Tables 6, 13, 14).
"""

from __future__ import annotations

from rankattack.attacks.universalrankattack.attack import UniversalRankAttack
from rankattack.attacks.universalrankattack.result import SeenUnseenResult, UniversalResult
from rankattack.attacks.universalrankattack.seenunseen import evaluate_seen_unseen

__all__ = ["SeenUnseenResult", "UniversalRankAttack", "UniversalResult", "evaluate_seen_unseen"]
