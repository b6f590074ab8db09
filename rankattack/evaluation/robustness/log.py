"""The JSON-lines log a killed benchmark run resumes from, with every per-sample value.

One ``meta`` record (what the numbers depend on: the gallery, the metric, the profile's
budget, the seed, T), then one ``chunk`` record per finished (attack, block of queries):
the positions ``[start, stop)`` among the T queries and, for each raw number the attack
yields, the per-sample values before and after the attack. Records are appended and
flushed as chunks finish; a rerun skips the positions already logged, so a killed run
ends with the numbers an uninterrupted one gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rankattack.evaluation.jsonlines import JsonLinesLog

__all__ = ["Chunk", "RobustnessLog"]

#: Meta fields that must match for a log to be resumed (the rest are informative).
_MATCH = ("version", "gallery_size", "dim", "metric", "eps", "alpha", "steps", "seed", "samples")
#: Meta fields compared with a relative tolerance (fingerprints of the gallery).
_CLOSE = ("embedding_sum", "embedding_abs_sum", "label_sum")


@dataclass(frozen=True)
class Chunk:
    """Per-sample values of one attack on queries ``[start, stop)`` of the T queries.

    Attributes
    ----------
    attack : str
        One of ``ATTACKS``.
    start, stop : int
        Positions among the T queries.
    before, after : dict
        ``{raw number: [value per query]}`` before and after the attack, in the units of
        [normalize][rankattack.evaluation.robustness.ers.normalize].
    seconds : float
        Wall time of the chunk.
    """

    attack: str
    start: int
    stop: int
    before: dict[str, list[float]]
    after: dict[str, list[float]]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "start": self.start,
            "stop": self.stop,
            "before": self.before,
            "after": self.after,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(
            attack=str(data["attack"]),
            start=int(data["start"]),
            stop=int(data["stop"]),
            before={k: [float(v) for v in vs] for k, vs in data["before"].items()},
            after={k: [float(v) for v in vs] for k, vs in data["after"].items()},
            seconds=float(data.get("seconds", 0.0)),
        )


class RobustnessLog(JsonLinesLog):
    """A JSON-lines file: one ``meta`` record, then one ``chunk`` record per line.

    A line cut short by a kill is dropped when the file is read and repaired before the
    next append ([JsonLinesLog][rankattack.evaluation.jsonlines.JsonLinesLog]).

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` file (created with its parent directories when missing).
    """

    path_argument = "results"

    def read(self) -> tuple[dict[str, Any] | None, list[Chunk]]:
        """The meta record (or ``None``) and the chunks, in file order."""
        return self._read("chunk", Chunk.from_dict)

    def check_meta(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Raise if ``old`` (from the file) was written by a run that ``new`` cannot resume."""
        for key in _MATCH:
            if old.get(key) != new.get(key):
                raise ValueError(
                    f"results file {self.path} was written by another run ({key}="
                    f"{old.get(key)!r}, now {new.get(key)!r}); use another file"
                )
        for key in _CLOSE:
            a, b = old.get(key), new.get(key)
            if a is None or b is None or not math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6):
                raise ValueError(
                    f"results file {self.path} was written for another model or test set "
                    f"(gallery {key} {a!r}, now {b!r}); use another file"
                )

    def append(self, chunk: Chunk) -> None:
        self._append("chunk", chunk.to_dict())
