"""The paper's published numbers: its table grid and Table 3 (Fashion-MNIST).

Zhou et al., "Adversarial Ranking Attack and Defense" (ECCV 2020): the eps and w / m of
its MNIST and Fashion-MNIST tables, and the transcription of its tables in
``paper_tables.json`` beside this module (package data), read by
[load_paper_table][rankattack.evaluation.reference.load_paper_table] for printing the published rows
beside ours.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from rankattack._validation import check_choice
from rankattack.evaluation.sampling import ATTACKS

__all__ = ["PAPER_EPS", "PAPER_SIZES", "PaperTable", "load_paper_table"]


#: The eps of the paper's MNIST and Fashion-MNIST tables.
PAPER_EPS = (0.0, 0.01, 0.03, 0.1, 0.3)
#: The w (CA) and m (QA) of the paper's tables.
PAPER_SIZES = (1, 2, 5, 10)


@dataclass(frozen=True)
class PaperTable:
    """Published numbers for one model: ``values[attack][(eps, size)]`` in percent."""

    name: str
    model: str
    recall_at_1: float | None
    values: dict[str, dict[tuple[float, int], float]]

    def get(self, attack: str, eps: float, size: int) -> float | None:
        for (e, s), v in self.values.get(attack, {}).items():
            if math.isclose(e, eps) and s == size:
                return v
        return None


def load_paper_table(name: str) -> PaperTable:
    """The paper's Table 3 (Fashion-MNIST): ``name`` is "CT" (vanilla) or "CTD" (defended).

    Read from ``rankattack/evaluation/paper_tables.json`` (package data).
    """
    from importlib import resources

    name = check_choice(name, "name", ("CT", "CTD"))
    text = resources.files("rankattack.evaluation").joinpath("paper_tables.json").read_text()
    data = json.loads(text)["table3"]
    eps = [float(e) for e in data["eps"]]
    entry = data[name]
    values: dict[str, dict[tuple[float, int], float]] = {}
    for attack in ATTACKS:
        values[attack] = {
            (e, s): float(v)
            for e, row in zip(eps, entry[attack], strict=True)
            for s, v in zip(PAPER_SIZES, row, strict=True)
        }
    return PaperTable(
        name=f"Fashion-MNIST {name}",
        model=entry["model"],
        recall_at_1=entry.get("recall_at_1"),
        values=values,
    )
