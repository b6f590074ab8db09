"""The seen / unseen protocol of the universal attack (paper Sec. 5.2, Tables 6, 13, 14).

A universal perturbation is fitted on one sample of inputs ("seen") and evaluated on
that sample and on a disjoint one ("unseen"): how well it generalizes to inputs it was
not fitted on.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from rankattack.attacks.universalrankattack.attack import UniversalRankAttack
from rankattack.attacks.universalrankattack.result import SeenUnseenResult

__all__ = ["evaluate_seen_unseen"]

#: The keyword arguments naming an input's targets in
#: [UniversalRankAttack.fit][rankattack.attacks.universalrankattack.UniversalRankAttack.fit].
_TARGET_ARGS = ("queries", "query_embeddings", "candidate_indices", "candidates", "query_indices")


def evaluate_seen_unseen(
    attack: UniversalRankAttack,
    seen: Mapping[str, Tensor],
    unseen: Mapping[str, Tensor],
    *,
    fit: bool = True,
    top_fraction: float | None = None,
    progress: bool = False,
) -> SeenUnseenResult:
    """Fit a universal perturbation on "seen" inputs and rank "unseen" ones (Tables 6, 13, 14).

    Parameters
    ----------
    attack : UniversalRankAttack
    seen, unseen : mapping
        Keyword arguments of
        [UniversalRankAttack.fit][rankattack.attacks.universalrankattack.UniversalRankAttack.fit]:
        ``inputs`` and the targets (``queries`` / ``query_embeddings`` for candidate targets,
        ``candidate_indices`` / ``candidates`` and optional ``query_indices`` for query targets).
        The two sets should be disjoint, as in the paper (two non-overlapping 5% samples of X).
    fit : bool
        Fit on ``seen`` first; ``False`` evaluates the attack's current perturbation.
    top_fraction : float, optional
        See
        [UniversalRankAttack.evaluate][rankattack.attacks.universalrankattack.UniversalRankAttack.evaluate]
        (default: the paper's top-1% rule for the "lower" attacks).
    progress : bool
        Progress bar while fitting.
    """
    if not isinstance(attack, UniversalRankAttack):
        raise TypeError(f"attack must be a UniversalRankAttack, got {type(attack).__name__}")
    parts = {}
    for name, part in (("seen", seen), ("unseen", unseen)):
        if not isinstance(part, Mapping) or "inputs" not in part:
            raise TypeError(f"{name} must be a mapping with an 'inputs' entry")
        unknown = sorted(set(part) - {"inputs", *_TARGET_ARGS})
        if unknown:
            raise ValueError(
                f"{name} has unknown keys {unknown}; expected 'inputs' and some of "
                f"{list(_TARGET_ARGS)}"
            )
        parts[name] = dict(part)
    if fit:
        attack.fit(**parts["seen"], progress=progress)
    return SeenUnseenResult(
        perturbation=attack._fitted(),
        seen=attack.evaluate(**parts["seen"], top_fraction=top_fraction),
        unseen=attack.evaluate(**parts["unseen"], top_fraction=top_fraction),
    )
