"""Defenses by name: what ``TrainConfig(defense=...)`` and ``rankattack train --defense`` build.

[build_defense][rankattack.defenses.registry.build_defense] maps a name of ``DEFENSES`` (or
``None``, no defense) to its class; ``TRAINING_DEFAULTS`` holds the adversary settings the training
loop uses for 28x28 images when none are given, and ``DEFAULT_MINERS`` each defense's miner.
"""

from __future__ import annotations

from typing import Any

from rankattack.defenses.anticollapse import AntiCollapseDefense
from rankattack.defenses.base import Defense, canonical_defense
from rankattack.defenses.embeddingshift import EmbeddingShiftDefense
from rankattack.defenses.hardnessmanipulation import HardnessManipulationDefense
from rankattack.defenses.madry import MadryDefense
from rankattack.defenses.shiftsuppress import ShiftSuppressDefense
from rankattack.defenses.vanilla import VanillaDefense

__all__ = ["DEFAULT_MINERS", "DEFENSE_CLASSES", "TRAINING_DEFAULTS", "build_defense"]

#: Canonical defense name -> class.
DEFENSE_CLASSES: dict[str, type[Defense]] = {
    "est": EmbeddingShiftDefense,
    "act": AntiCollapseDefense,
    "hm": HardnessManipulationDefense,
    "madry": MadryDefense,
    "shift-suppress": ShiftSuppressDefense,
}

#: The adversary's ``(eps, alpha, steps)`` the training loop uses on 28x28 images when no eps
#: is given: robrank's 28x28 adversarial-training constants (77/255, 3/255, 32 steps) for EST,
#: ACT and HM; 0.3 with the paper's PGD schedule (None) for the Appendix H variants.
TRAINING_DEFAULTS: dict[str, tuple[float, float | None, int | None]] = {
    "est": (77 / 255, 3 / 255, 32),
    "act": (77 / 255, 3 / 255, 32),
    "hm": (77 / 255, 3 / 255, 32),
    "madry": (0.3, None, None),
    "shift-suppress": (0.3, None, None),
}

#: Each defense's miner (a name of ``rankattack.defenses.miners.MINERS``); "" is vanilla.
DEFAULT_MINERS: dict[str, str] = {
    "": "random",
    "est": "random",
    "madry": "random",
    "shift-suppress": "random",
    "act": "spc2",
    "hm": "softhard",
}


def build_defense(name: str | None, **kwargs: Any) -> Defense:
    """The defense called ``name`` (``None``:
    [VanillaDefense][rankattack.defenses.registry.VanillaDefense]), built with ``kwargs``.

    Raises
    ------
    ValueError
        If ``name`` is not one of ``DEFENSES``.

    Examples
    --------
    >>> build_defense("act", steps=8).pgd.steps
    8
    """
    if name is None:
        return VanillaDefense(**kwargs)
    return DEFENSE_CLASSES[canonical_defense(name)](**kwargs)
