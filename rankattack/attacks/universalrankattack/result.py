"""What the universal attack reports: ranks before / after, and the seen / unseen pair."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rankattack.attacks.base import AttackResult

__all__ = ["SeenUnseenResult", "UniversalResult"]


@dataclass(frozen=True)
class UniversalResult(AttackResult):
    """Ranks before and after adding a universal perturbation (an
    [AttackResult][rankattack.attacks.universalrankattack.result.AttackResult]).

    Attributes
    ----------
    counted : Tensor
        ``[N]`` bool: the inputs the means are taken over (for the "lower" attacks, those
        whose chosen targets start in the top ``top_fraction`` of the ranking).
    """

    counted: Tensor | None = None

    def _mean(self, ranks: Tensor) -> float:
        if self.counted is None:
            return float(ranks.mean())
        return float(ranks[self.counted].mean()) if bool(self.counted.any()) else float("nan")

    @property
    def n_counted(self) -> int:
        """Number of inputs the means are taken over."""
        return int(self.rank_before.numel() if self.counted is None else self.counted.sum())

    @property
    def mean_before(self) -> float:
        """Mean normalized rank of the counted inputs before the perturbation."""
        return self._mean(self.rank_before)

    @property
    def mean_after(self) -> float:
        """Mean normalized rank of the counted inputs after the perturbation."""
        return self._mean(self.rank_after)


@dataclass(frozen=True)
class SeenUnseenResult:
    """Outcome of
    [evaluate_seen_unseen][rankattack.attacks.universalrankattack.evaluate_seen_unseen] (one cell
    pair of paper Tables 6, 13, 14)."""

    perturbation: Tensor
    seen: UniversalResult
    unseen: UniversalResult
