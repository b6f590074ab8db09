"""The JSON-lines log a killed benchmark run resumes from, with every per-sample value.

One ``meta`` record (what the numbers depend on: the gallery, the metric, the profile's
budget, the seed, T), then one ``chunk`` record per finished (attack, block of queries):
the positions ``[start, stop)`` among the T queries and, for each raw number the attack
yields, the per-sample values before and after the attack. Records are appended and
flushed as chunks finish; a rerun skips the positions already logged, so a killed run
ends with the numbers an uninterrupted one gives.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Chunk", "RobustnessLog"]

logger = logging.getLogger(__name__)

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


class RobustnessLog:
    """A JSON-lines file: one ``meta`` record, then one ``chunk`` record per line.

    A line cut short by a kill is dropped when the file is read and repaired before the
    next append.

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` file (created with its parent directories when missing).
    """

    def __init__(self, path: str | Path) -> None:
        if not isinstance(path, str | Path):
            raise TypeError(f"results must be a str or Path, got {type(path).__name__}")
        self.path = Path(path)

    def read(self) -> tuple[dict[str, Any] | None, list[Chunk]]:
        """The meta record (or ``None``) and the chunks, in file order."""
        if not self.path.exists():
            return None, []
        meta: dict[str, Any] | None = None
        chunks: list[Chunk] = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: skipping an unreadable (cut-off) line", self.path, n)
                continue
            kind = record.pop("type", None)
            if kind == "meta":
                meta = record
            elif kind == "chunk":
                chunks.append(Chunk.from_dict(record))
        return meta, chunks

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

    def _repair(self) -> None:
        """Drop a last line cut off by a kill, so that appends start on a fresh line."""
        if not self.path.exists():
            return
        with self.path.open("rb+") as fh:
            size = fh.seek(0, 2)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            data = fh.read()
            fh.truncate(data.rfind(b"\n") + 1)

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()

    def write_meta(self, meta: dict[str, Any]) -> None:
        self._append({"type": "meta", **meta})

    def append(self, chunk: Chunk) -> None:
        self._append({"type": "chunk", **chunk.to_dict()})
