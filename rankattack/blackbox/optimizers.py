"""Resolve an attack's ``optimizer=`` argument (a name or an
[Optimizer][rankattack.blackbox.optimizers.Optimizer])."""

from __future__ import annotations

from typing import Any

from rankattack.blackbox.beta import BetaSearch
from rankattack.blackbox.nes import NES
from rankattack.blackbox.pso import PSO
from rankattack.blackbox.rand import RandSearch
from rankattack.blackbox.randomsearch import SquareSearch
from rankattack.blackbox.search import Optimizer
from rankattack.blackbox.spsa import SPSA

__all__ = ["OPTIMIZERS", "make_optimizer"]

#: Optimizer classes by name.
OPTIMIZERS: dict[str, type[Optimizer]] = {
    "spsa": SPSA,
    "nes": NES,
    "rand": RandSearch,
    "square": SquareSearch,
    "pso": PSO,
    "beta": BetaSearch,
}


def make_optimizer(value: Any, population: int, choices: tuple[str, ...]) -> Optimizer:
    """An [Optimizer][rankattack.blackbox.optimizers.Optimizer] named among ``choices`` (with
    ``population``), or as given."""
    if isinstance(value, Optimizer):
        return value
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"optimizer must be one of {list(choices)} or an Optimizer, got {value!r}")
    return OPTIMIZERS[value](population=population)
