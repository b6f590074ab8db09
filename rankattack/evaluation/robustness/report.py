"""The benchmark's result for one model
([RobustnessReport][rankattack.evaluation.robustness.report.RobustnessReport]) and its tables.

A report holds the ten raw numbers, their ERS terms and ERS, each with the half-width
of its 95% Student-t interval over the T queries, and the clean R@1 and mAP (over the
whole test set, exact). [robustness_table][rankattack.evaluation.robustness.report.robustness_table]
puts several models side by side, each optionally beside a published row
([PublishedRow][rankattack.evaluation.robustness.published.PublishedRow]).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from rankattack.evaluation.robustness.ers import NORMALIZATION, ers, ers_defined, normalize
from rankattack.evaluation.robustness.profiles import RAW_KEYS, RobustnessProfile
from rankattack.evaluation.robustness.published import PublishedRow
from rankattack.evaluation.statistics import confidence_interval

__all__ = ["RobustnessReport", "robustness_table"]

#: Display name and decimals of each row of the tables.
_ROWS: dict[str, tuple[str, int]] = {
    "R@1": ("R@1 (%)", 1),
    "mAP": ("mAP (%)", 1),
    "CA+": ("CA+ rank (%)", 1),
    "CA-": ("CA- rank (%)", 1),
    "QA+": ("QA+ rank (%)", 1),
    "QA-": ("QA- rank (%)", 1),
    "TMA": ("TMA cosine", 3),
    "ESD": ("ESD distance", 3),
    "ESR": ("ESR R@1 (%)", 1),
    "LTM": ("LTM R@1 (%)", 1),
    "GTM": ("GTM R@1 (%)", 1),
    "GTT": ("GTT retain@4 (%)", 1),
    "ERS": ("ERS", 1),
}


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _none_to_nan(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class RobustnessReport:
    """The robustness benchmark's result for one model.

    Attributes
    ----------
    name : str
    profile : RobustnessProfile
    metric : str
        "cosine", "normalized-euclidean" or "euclidean".
    samples : int
        T, the number of queries every attack ran on.
    seed : int
    recall_at_1, mean_average_precision : float
        Clean retrieval quality in percent, over the whole test set (each item queries
        the others).
    raw, raw_ci : dict
        ``{"CA+", "CA-", "QA+", "QA-", "TMA", "ESD", "ESR", "LTM", "GTM", "GTT"} -> float``
        (those the profile's attacks yield): mean after the attack and the half-width of
        its 95% interval (``nan`` for T = 1).
    before : dict
        The same numbers on the clean queries.
    scores, scores_ci : dict
        The ERS terms ([normalize][rankattack.evaluation.robustness.ers.normalize]) and their
        half-widths; ``None`` for ESD under "euclidean".
    ers, ers_ci : float or None
        ERS and its half-width (from the per-query ERS values); ``None`` when a term is
        missing or the metric is "euclidean".
    seconds : dict
        Wall time per attack, summed over its chunks (including earlier, resumed runs).
    """

    name: str
    profile: RobustnessProfile
    metric: str
    samples: int
    seed: int
    recall_at_1: float
    mean_average_precision: float
    raw: dict[str, float]
    raw_ci: dict[str, float]
    before: dict[str, float]
    scores: dict[str, float | None]
    scores_ci: dict[str, float | None]
    ers: float | None
    ers_ci: float | None
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_values(
        cls,
        *,
        name: str,
        profile: RobustnessProfile,
        metric: str,
        seed: int,
        recall_at_1: float,
        mean_average_precision: float,
        before: Mapping[str, Tensor],
        after: Mapping[str, Tensor],
        seconds: Mapping[str, float] | None = None,
    ) -> RobustnessReport:
        """Summarize per-query values ``[T]`` (before / after each attack) into a report."""
        keys = [k for k in RAW_KEYS if k in after]
        if not keys:
            raise ValueError("after must hold the values of at least one raw number")
        t = int(after[keys[0]].shape[0])
        bounded = ers_defined(metric)
        raw, raw_ci, scores, scores_ci, clean = {}, {}, {}, {}, {}
        for k in keys:
            raw[k], raw_ci[k] = confidence_interval(after[k])
            clean[k] = float(before[k].double().mean())
            defined = bounded or k != "ESD"
            scores[k] = normalize(k, raw[k]) if defined else None
            scores_ci[k] = abs(NORMALIZATION[k][0]) * raw_ci[k] if defined else None
        value = ers(raw, metric) if len(keys) == len(RAW_KEYS) else None
        spread = None
        if value is not None:
            per_query = sum(normalize(k, after[k].double()) for k in RAW_KEYS) / len(RAW_KEYS)
            assert isinstance(per_query, Tensor)
            spread = confidence_interval(per_query)[1]
        return cls(
            name=name,
            profile=profile,
            metric=metric,
            samples=t,
            seed=seed,
            recall_at_1=recall_at_1,
            mean_average_precision=mean_average_precision,
            raw=raw,
            raw_ci=raw_ci,
            before=clean,
            scores=scores,
            scores_ci=scores_ci,
            ers=value,
            ers_ci=spread,
            seconds=dict(seconds or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (``nan`` half-widths become ``None``)."""
        return {
            "name": self.name,
            "profile": self.profile.to_dict(),
            "metric": self.metric,
            "samples": self.samples,
            "seed": self.seed,
            "recall_at_1": self.recall_at_1,
            "mean_average_precision": self.mean_average_precision,
            "raw": self.raw,
            "raw_ci": {k: _nan_to_none(v) for k, v in self.raw_ci.items()},
            "before": self.before,
            "scores": self.scores,
            "scores_ci": {k: _nan_to_none(v) for k, v in self.scores_ci.items()},
            "ers": self.ers,
            "ers_ci": _nan_to_none(self.ers_ci),
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RobustnessReport:
        """Rebuild a report from
        [to_dict][rankattack.evaluation.robustness.report.RobustnessReport.to_dict] output."""
        scores_ci = {
            k: (None if data["scores"].get(k) is None else _none_to_nan(v))
            for k, v in data["scores_ci"].items()
        }
        ers_value = data.get("ers")
        return cls(
            name=str(data["name"]),
            profile=RobustnessProfile.from_dict(data["profile"]),
            metric=str(data["metric"]),
            samples=int(data["samples"]),
            seed=int(data["seed"]),
            recall_at_1=float(data["recall_at_1"]),
            mean_average_precision=float(data["mean_average_precision"]),
            raw={k: float(v) for k, v in data["raw"].items()},
            raw_ci={k: _none_to_nan(v) for k, v in data["raw_ci"].items()},
            before={k: float(v) for k, v in data["before"].items()},
            scores={k: None if v is None else float(v) for k, v in data["scores"].items()},
            scores_ci=scores_ci,
            ers=None if ers_value is None else float(ers_value),
            ers_ci=None if ers_value is None else _none_to_nan(data.get("ers_ci")),
            seconds={k: float(v) for k, v in data.get("seconds", {}).items()},
        )

    def value(self, row: str) -> tuple[float | None, float | None]:
        """``(value, half-width)`` of a table row: "R@1", "mAP", a raw number or "ERS"."""
        if row == "R@1":
            return self.recall_at_1, None
        if row == "mAP":
            return self.mean_average_precision, None
        if row == "ERS":
            return self.ers, self.ers_ci
        return self.raw.get(row), self.raw_ci.get(row)

    def table(self, markdown: bool = False) -> str:
        """This model's numbers: before, after +- CI and the ERS term +- CI of each attack."""
        header = ["", "clean", "attacked", "ERS term"]
        rows = [
            [_ROWS["R@1"][0], _fmt(self.recall_at_1, None, 1), "", ""],
            [_ROWS["mAP"][0], _fmt(self.mean_average_precision, None, 1), "", ""],
        ]
        for k in RAW_KEYS:
            if k not in self.raw:
                continue
            label, dec = _ROWS[k]
            rows.append(
                [
                    label,
                    _fmt(self.before[k], None, dec),
                    _fmt(self.raw[k], self.raw_ci[k], dec),
                    _fmt(self.scores[k], self.scores_ci[k], 1),
                ]
            )
        rows.append(["ERS", "", "", _fmt(self.ers, self.ers_ci, 1)])
        title = f"{self.name}: {_describe(self.profile, self.samples, self.metric, self.seed)}"
        return _render(title, header, rows, markdown, notes=_notes([self.metric], False))


def _describe(profile: RobustnessProfile, samples: int, metric: str | None, seed: int) -> str:
    text = (
        f"profile {profile.name} (eps = {profile.eps:.4g}, alpha = {profile.alpha:.4g}, "
        f"{profile.steps} steps), T = {samples}, seed {seed}"
    )
    return text + (f", {metric}" if metric else "")


def _fmt(value: float | None, ci: float | None, decimals: int) -> str:
    if value is None:
        return "-"
    text = f"{value:.{decimals}f}"
    if ci is not None and not math.isnan(ci):
        text += f" ± {ci:.{decimals}f}"
    return text


def _notes(metrics: Sequence[str], published: bool) -> list[str]:
    notes = ["± is the half-width of the 95% interval over the T queries."]
    if any(not ers_defined(m) for m in metrics):
        notes.append("ERS is not reported under the euclidean metric: ESD is unbounded there.")
    if published:
        notes.append(
            "robrank: published numbers (cdluminate/robrank, doc/dmltab-fashion.txt); its ERS "
            "is computed from them with this library's ERS function (robrank publishes none)."
        )
    return notes


def _render(
    title: str, header: list[str], rows: list[list[str]], markdown: bool, notes: list[str]
) -> str:
    if markdown:
        lines = [f"**{title}**", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append(
            "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |"
        )
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        for note in notes:
            lines += ["", note]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = [title]
    fmt_row = lambda r: "  ".join(  # noqa: E731
        c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)
    ).rstrip()
    out.append(fmt_row(header))
    out.append("  ".join("-" * w for w in widths))
    out += [fmt_row(r) for r in rows]
    out += notes
    return "\n".join(out)


def robustness_table(
    reports: Sequence[RobustnessReport],
    published: Sequence[PublishedRow | None] | None = None,
    markdown: bool = False,
    title: str | None = None,
) -> str:
    """R@1, mAP, the ten raw numbers and ERS of several models side by side, with CIs.

    Parameters
    ----------
    reports : sequence of RobustnessReport
        One column per model.
    published : sequence of PublishedRow or None, optional
        One entry per report: a published row to print in a column right after that
        model's (its ERS computed by [ers][rankattack.evaluation.robustness.ers.ers]
        and marked so), or ``None``.
    markdown : bool
        A Markdown table instead of aligned plain text.
    title : str, optional
        Default: the first report's profile, T and seed.
    """
    reports = list(reports)
    if not reports or not all(isinstance(r, RobustnessReport) for r in reports):
        raise ValueError("reports must be a non-empty sequence of RobustnessReport")
    pubs = list(published) if published is not None else [None] * len(reports)
    if len(pubs) != len(reports):
        raise ValueError(
            f"published must have one entry per report ({len(reports)}), got {len(pubs)}"
        )
    header = [""]
    for r, p in zip(reports, pubs, strict=True):
        header.append(r.name)
        if p is not None:
            header.append(p.label)
    rows = []
    for row, (label, dec) in _ROWS.items():
        cells = [label]
        for r, p in zip(reports, pubs, strict=True):
            cells.append(_fmt(*r.value(row), dec))
            if p is not None:
                value = p.value(row)
                text = _fmt(value, None, dec)
                cells.append(text + " (computed)" if row == "ERS" and value is not None else text)
        rows.append(cells)
    first = reports[0]
    if title is None:
        title = "Robustness: " + _describe(first.profile, first.samples, None, first.seed)
    metrics = [r.metric for r in reports]
    return _render(title, header, rows, markdown, _notes(metrics, any(p for p in pubs)))
