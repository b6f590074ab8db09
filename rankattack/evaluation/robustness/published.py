"""robrank's published robustness numbers, to print beside ours when the setting matches.

``robrank_fashion.json`` (package data beside [rankattack.evaluation][]) transcribes
robrank's Fashion-MNIST table (cdluminate/robrank, ``doc/dmltab-fashion.txt`` lines
36-55): its C2F2 network trained with the triplet loss under the three metrics (C:
cosine, N: normalized Euclidean, E: Euclidean) without defense, with EST (embedding
shift) and with ACT (anti-collapse triplet), attacked with the ``rob28`` profile. The
file publishes no ERS;
[PublishedRow.ers][rankattack.evaluation.robustness.published.PublishedRow.ers] computes it from the
raw numbers with [ers][rankattack.evaluation.robustness.ers.ers].
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from rankattack.evaluation.robustness.ers import ers
from rankattack.evaluation.robustness.profiles import RAW_KEYS

__all__ = ["DEFENSE_TAGS", "PublishedRow", "find_published", "load_published"]

#: robrank's defense tags for this library's ``TrainConfig.defense`` values.
DEFENSE_TAGS: dict[str | None, str] = {
    None: "none",
    "none": "none",
    "embedding-shift": "est",
    "est": "est",
    "act": "act",
    "anti-collapse": "act",
}

_METRIC_LETTERS = {"cosine": "C", "normalized-euclidean": "N", "euclidean": "E"}


@dataclass(frozen=True)
class PublishedRow:
    """One published row: a model, metric and defense with its clean and raw numbers.

    Attributes
    ----------
    config : str
        robrank's name of the run, e.g. "rc2f2d:ptripletC".
    dataset, profile, model, loss, metric, defense : str
        The setting (metric: "cosine", "normalized-euclidean" or "euclidean"; defense:
        "none", "est" or "act").
    recall_at_1, mean_average_precision : float
        Clean R@1 and mAP in percent.
    raw : dict
        The ten raw numbers (``RAW_KEYS``).
    source : str
        Repository, commit, file and line.
    """

    config: str
    dataset: str
    profile: str
    model: str
    loss: str
    metric: str
    defense: str
    recall_at_1: float
    mean_average_precision: float
    raw: dict[str, float]
    source: str

    @property
    def ers(self) -> float | None:
        """ERS computed from ``raw`` (not published); ``None`` for the E rows."""
        return ers(self.raw, self.metric)

    @property
    def label(self) -> str:
        """A column header: "robrank C2F2 triplet C EST"."""
        defense = "" if self.defense == "none" else f" {self.defense.upper()}"
        letter = _METRIC_LETTERS.get(self.metric, self.metric)
        return f"robrank {self.model.upper()} {self.loss} {letter}{defense}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict, with
        [label][rankattack.evaluation.robustness.published.PublishedRow.label] and the computed
        ERS."""
        return {
            "label": self.label,
            "config": self.config,
            "dataset": self.dataset,
            "profile": self.profile,
            "model": self.model,
            "loss": self.loss,
            "metric": self.metric,
            "defense": self.defense,
            "recall_at_1": self.recall_at_1,
            "mean_average_precision": self.mean_average_precision,
            "raw": self.raw,
            "ers_computed": self.ers,
            "source": self.source,
        }

    def value(self, row: str) -> float | None:
        """A table row: "R@1", "mAP", a raw number or "ERS"."""
        if row == "R@1":
            return self.recall_at_1
        if row == "mAP":
            return self.mean_average_precision
        if row == "ERS":
            return self.ers
        return self.raw.get(row)


@functools.cache
def _rows() -> tuple[PublishedRow, ...]:
    from importlib import resources

    text = resources.files("rankattack.evaluation").joinpath("robrank_fashion.json").read_text()
    data: dict[str, Any] = json.loads(text)
    if list(data["columns"]) != list(RAW_KEYS):
        raise ValueError("robrank_fashion.json: unexpected columns")
    return tuple(
        PublishedRow(
            config=r["config"],
            dataset=data["dataset"],
            profile=data["profile"],
            model=r["model"],
            loss=r["loss"],
            metric=r["metric"],
            defense=r["defense"],
            recall_at_1=float(r["recall_at_1"]),
            mean_average_precision=float(r["mean_average_precision"]),
            raw={k: float(v) for k, v in zip(RAW_KEYS, r["raw"], strict=True)},
            source=f"{data['source'].split(' lines ')[0]} line {r['line']}",
        )
        for r in data["rows"]
    )


def load_published() -> list[PublishedRow]:
    """All published rows (robrank's Fashion-MNIST C2F2 table)."""
    return list(_rows())


def find_published(
    dataset: str,
    profile: str,
    model: str,
    metric: str,
    defense: str | None,
    loss: str = "triplet",
) -> PublishedRow | None:
    """The published row of exactly this setting, or ``None``.

    ``defense`` is a robrank tag ("none", "est", "act") or one of this library's defense
    names (``DEFENSE_TAGS``); ``dataset`` is compared case-insensitively with "_"
    read as "-".
    """
    tag = DEFENSE_TAGS.get(defense)
    key = dataset.strip().lower().replace("_", "-")
    for row in _rows():
        if (
            row.dataset == key
            and row.profile == profile
            and row.model == model.lower()
            and row.loss == loss
            and row.metric == metric
            and row.defense == tag
        ):
            return row
    return None
