"""The robustness benchmark under its short name: ``from rankattack.robustness import ...``.

Everything here is defined in [rankattack.evaluation.robustness][] (robrank's ten
attacks and the Empirical Robustness Score); this module re-exports it.
"""

from __future__ import annotations

from rankattack.evaluation.robustness import *  # noqa: F403
from rankattack.evaluation.robustness import __all__ as __all__
