"""Black-box ranking attacks: audit a search service that returns only a ranked list.

What the attacker observes is an oracle ([oracle][rankattack.blackbox.oracle]: a
[ModelOracle][rankattack.blackbox.ModelOracle] simulating a service,
[HTTPOracle][rankattack.blackbox.HTTPOracle] for a real one), which counts every query against a
per-query budget. The attacks search with query-based optimizers, each in its own module
([spsa][rankattack.blackbox.spsa], [nes][rankattack.blackbox.nes], [rand][rankattack.blackbox.rand],
[pso][rankattack.blackbox.pso], [beta][rankattack.blackbox.beta],
[randomsearch][rankattack.blackbox.randomsearch]), over a shared driver
([search][rankattack.blackbox.search]): the Order Attack
([orderattack][rankattack.blackbox.orderattack], criterion
[short_range_correlation][rankattack.blackbox.short_range_correlation]), untargeted top-k removal
([removal][rankattack.blackbox.removal]) and score-based CA / QA
([scorebased][rankattack.blackbox.scorebased]). [report][rankattack.blackbox.report] summarizes
results; [server][rankattack.blackbox.server] serves a model as a search service over HTTP.
"""

from __future__ import annotations

from rankattack.attacks.whiteboxorderattack import OrderResult
from rankattack.blackbox.beta import BetaSearch
from rankattack.blackbox.httporacle import HTTPOracle
from rankattack.blackbox.nes import NES
from rankattack.blackbox.oracle import (
    BudgetExceededError,
    ModelOracle,
    OracleError,
    RankingOracle,
)
from rankattack.blackbox.orderattack import OrderAttack
from rankattack.blackbox.pso import PSO
from rankattack.blackbox.rand import RandSearch
from rankattack.blackbox.randomsearch import SquareSearch
from rankattack.blackbox.removal import RemovalAttack, RemovalResult
from rankattack.blackbox.scorebased import ScoreCandidateAttack, ScoreQueryAttack, ScoreResult
from rankattack.blackbox.search import Optimizer, SearchProblem
from rankattack.blackbox.spsa import SPSA
from rankattack.blackbox.src import short_range_correlation

__all__ = [
    "NES",
    "PSO",
    "SPSA",
    "BetaSearch",
    "BudgetExceededError",
    "HTTPOracle",
    "ModelOracle",
    "Optimizer",
    "OracleError",
    "OrderAttack",
    "OrderResult",
    "RandSearch",
    "RankingOracle",
    "RemovalAttack",
    "RemovalResult",
    "ScoreCandidateAttack",
    "ScoreQueryAttack",
    "ScoreResult",
    "SearchProblem",
    "SquareSearch",
    "short_range_correlation",
]
