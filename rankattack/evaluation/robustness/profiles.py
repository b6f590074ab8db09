"""The benchmark's settings: its nine attacks, ten raw numbers and the named profiles.

A [RobustnessProfile][rankattack.evaluation.robustness.profiles.RobustnessProfile] fixes the L-inf
PGD budget every attack of the suite runs with (eps, step size, iterations) and which attacks run.
The two named profiles are robrank's (Zhou et al., "Adversarial Attack and Defense in Deep Ranking",
T-PAMI 2024; ``robrank/cmdline.py``, ``Swipe.profile_rob28`` and ``profile_rob224``): ``rob28`` for
28x28 inputs (eps = 77/255) and ``rob224`` for 224x224 inputs (eps = 8/255), both with steps of
3/255 and 32 iterations. A custom profile is a ``dataclasses.replace`` of one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rankattack._validation import check_int, check_real

__all__ = ["ATTACKS", "OUTPUTS", "PROFILES", "RAW_KEYS", "RobustnessProfile", "get_profile"]

#: The nine attacks of the suite, in robrank's column order.
ATTACKS: tuple[str, ...] = ("CA+", "CA-", "QA+", "QA-", "TMA", "ES", "LTM", "GTM", "GTT")

#: The raw numbers each attack yields (ES yields two: the shift ESD and the recall ESR).
OUTPUTS: dict[str, tuple[str, ...]] = {a: (a,) for a in ATTACKS} | {"ES": ("ESD", "ESR")}

#: The ten raw numbers ERS folds, in robrank's column order.
RAW_KEYS: tuple[str, ...] = tuple(k for a in ATTACKS for k in OUTPUTS[a])


@dataclass(frozen=True)
class RobustnessProfile:
    """The attack budget and attack list of one benchmark run.

    Parameters
    ----------
    name : str
        Shown in tables and recorded in results logs.
    eps : float
        L-inf radius of every attack, ``>= 0`` (inputs in ``[0, 1]``).
    alpha : float
        PGD step size, ``> 0``.
    steps : int
        PGD iterations, ``>= 0`` (0 measures the clean model).
    attacks : sequence of str, default all nine
        A subset of ``ATTACKS``; stored as a tuple in ``ATTACKS`` order. ERS
        needs all nine.

    Examples
    --------
    >>> import dataclasses
    >>> from rankattack.robustness import PROFILES
    >>> mine = dataclasses.replace(PROFILES["rob28"], name="mine", eps=16 / 255, steps=16)
    >>> mine.steps, len(mine.attacks)
    (16, 9)
    """

    name: str
    eps: float
    alpha: float
    steps: int
    attacks: tuple[str, ...] = field(default=ATTACKS)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "eps", check_real(self.eps, "eps", low=0.0))
        object.__setattr__(self, "alpha", check_real(self.alpha, "alpha", low=0.0, low_open=True))
        object.__setattr__(self, "steps", check_int(self.steps, "steps", low=0))
        attacks = self.attacks
        if isinstance(attacks, str) or not hasattr(attacks, "__iter__"):
            raise TypeError(
                f"attacks must be a sequence of attack names, got {type(attacks).__name__}"
            )
        attacks = tuple(attacks)
        unknown = [a for a in attacks if a not in ATTACKS]
        if unknown:
            raise ValueError(f"attacks must be among {list(ATTACKS)}, got {unknown}")
        if not attacks:
            raise ValueError("attacks must name at least one attack")
        if len(set(attacks)) != len(attacks):
            raise ValueError(f"attacks must not repeat an attack, got {list(attacks)}")
        object.__setattr__(self, "attacks", tuple(a for a in ATTACKS if a in attacks))

    @property
    def raw_keys(self) -> tuple[str, ...]:
        """The raw numbers this profile's attacks yield, in ``RAW_KEYS`` order."""
        return tuple(k for a in self.attacks for k in OUTPUTS[a])

    @property
    def complete(self) -> bool:
        """All nine attacks run, so ERS can be computed."""
        return self.attacks == ATTACKS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict
        ([from_dict][rankattack.evaluation.robustness.profiles.RobustnessProfile.from_dict] reads it
        back)."""
        return {
            "name": self.name,
            "eps": self.eps,
            "alpha": self.alpha,
            "steps": self.steps,
            "attacks": list(self.attacks),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RobustnessProfile:
        """Rebuild a profile from
        [to_dict][rankattack.evaluation.robustness.profiles.RobustnessProfile.to_dict] output."""
        return cls(
            name=data["name"],
            eps=data["eps"],
            alpha=data["alpha"],
            steps=data["steps"],
            attacks=tuple(data["attacks"]),
        )


#: The named profiles: robrank's ``rob28`` (28x28 inputs) and ``rob224`` (224x224).
PROFILES: dict[str, RobustnessProfile] = {
    "rob28": RobustnessProfile("rob28", eps=77 / 255, alpha=3 / 255, steps=32),
    "rob224": RobustnessProfile("rob224", eps=8 / 255, alpha=3 / 255, steps=32),
}


def get_profile(profile: str | RobustnessProfile) -> RobustnessProfile:
    """A profile given by name (a key of ``PROFILES``) or as a
    [RobustnessProfile][rankattack.evaluation.robustness.profiles.RobustnessProfile]."""
    if isinstance(profile, RobustnessProfile):
        return profile
    if isinstance(profile, str):
        if profile in PROFILES:
            return PROFILES[profile]
        raise ValueError(
            f"profile must be one of {sorted(PROFILES)} or a RobustnessProfile, got {profile!r}"
        )
    raise TypeError(
        f"profile must be a profile name or a RobustnessProfile, got {type(profile).__name__}"
    )
