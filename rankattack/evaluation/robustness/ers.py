"""The Empirical Robustness Score: ten raw numbers, each mapped to "higher = more robust".

ERS (robrank: Zhou et al., T-PAMI 2024 and CVPR 2022; the formula of robrank's
``tools/pjswipe.py``, ``ersnormalize`` and ``ers``) is the mean of ten terms::

    2 CA+,  100 - CA-,  2 QA+,  100 - QA-,  100 (1 - TMA),  100 (2 - ESD) / 2,
    ESR,  LTM,  GTM,  GTT

with CA+/CA-/QA+/QA- mean normalized ranks in percent, TMA a mean cosine similarity,
ESD a mean embedding distance and ESR/LTM/GTM/GTT percentages. Each term is an affine
map of its raw number, so the mean of per-sample ERS values is the ERS of the means, and
a confidence interval over per-sample values is a valid interval for ERS.

The ESD term assumes distances in ``[0, 2]``: true for cosine and normalized Euclidean
distances, false for Euclidean distances on raw embeddings, where ESD is unbounded and
the term (and so ERS) means nothing; there it is not reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from torch import Tensor

from rankattack._validation import check_choice
from rankattack.evaluation.robustness.profiles import RAW_KEYS

__all__ = ["BOUNDED_METRICS", "METRICS", "NORMALIZATION", "ers", "ers_defined", "normalize"]

#: The distances the benchmark runs under.
METRICS: tuple[str, ...] = ("cosine", "normalized-euclidean", "euclidean")

#: The distances bounded by 2, for which the ESD term and ERS are defined.
BOUNDED_METRICS: tuple[str, ...] = ("cosine", "normalized-euclidean")

#: ``score = scale * raw + offset`` for each raw number.
NORMALIZATION: dict[str, tuple[float, float]] = {
    "CA+": (2.0, 0.0),
    "CA-": (-1.0, 100.0),
    "QA+": (2.0, 0.0),
    "QA-": (-1.0, 100.0),
    "TMA": (-100.0, 100.0),
    "ESD": (-50.0, 100.0),
    "ESR": (1.0, 0.0),
    "LTM": (1.0, 0.0),
    "GTM": (1.0, 0.0),
    "GTT": (1.0, 0.0),
}

_V = TypeVar("_V", float, Tensor)


def ers_defined(metric: str) -> bool:
    """Whether ERS (its ESD term) is defined under ``metric``: bounded distances only."""
    return check_choice(metric, "metric", METRICS) in BOUNDED_METRICS


def normalize(key: str, value: _V) -> _V:
    """The ERS term of the raw number ``key`` (a float, or a tensor of per-sample values).

    Examples
    --------
    >>> normalize("CA-", 12.5), normalize("TMA", 0.66), normalize("ESD", 0.04)
    (87.5, 34.0, 98.0)
    """
    scale, offset = NORMALIZATION[check_choice(key, "key", RAW_KEYS)]
    return value * scale + offset


def ers(raw: Mapping[str, float], metric: str = "cosine") -> float | None:
    """ERS from the ten raw numbers, or ``None`` where it is undefined.

    Parameters
    ----------
    raw : mapping
        ``{"CA+", "CA-", "QA+", "QA-", "TMA", "ESD", "ESR", "LTM", "GTM", "GTT"} -> float``
        in the units of [normalize][rankattack.evaluation.robustness.ers.normalize] (percent,
        cosine, distance).
    metric : {"cosine", "normalized-euclidean", "euclidean"}
        The model's distance; ERS is ``None`` for "euclidean" (ESD is unbounded).

    Returns
    -------
    float or None
        ``None`` if a raw number is missing or ``metric`` is "euclidean".

    Examples
    --------
    robrank's cosine C2F2 on Fashion-MNIST (``doc/dmltab-fashion.txt``):

    >>> raw = dict(zip(["CA+", "CA-", "QA+", "QA-", "TMA", "ESD", "ESR", "LTM", "GTM", "GTT"],
    ...                [1.0, 99.5, 0.3, 99.0, 0.986, 1.594, 30.7, 11.6, 13.8, 0.0]))
    >>> round(ers(raw), 1)
    8.2
    """
    if not ers_defined(metric) or any(raw.get(k) is None for k in RAW_KEYS):
        return None
    return sum(normalize(k, float(raw[k])) for k in RAW_KEYS) / len(RAW_KEYS)
