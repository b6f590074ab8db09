"""Each defense, trained for a few seconds on digits, suppresses the maximum embedding shift.

A plain PyTorch loop (``defense.step`` on class-balanced batches) trains the same small MLP
(``[N, 1, 8, 8] -> [N, 16]``, cosine triplet loss) vanilla and with EST, ACT and HM, each the
same number of steps from the same seed. The maximum-shift attack (eps 0.2) then moves the
held-out embeddings far less on the defended models, also relative to the spread of the
embeddings (so not by shrinking the embedding space), at little cost in R@1.

Measured over seeds 0-5 (`relative` = mean shift / mean distance between random test pairs):

========= ============= ============= ============= ============= ==============
variant   shift         relative      shift ratio   relative ratio R@1
========= ============= ============= ============= ============= ==============
vanilla   0.827 - 0.896 0.914 - 0.961 1             1             0.956 - 0.972
EST       0.124 - 0.146 0.210 - 0.225 0.14 - 0.17   0.22 - 0.24   0.957 - 0.969
ACT       0.289 - 0.337 0.301 - 0.344 0.32 - 0.41   0.31 - 0.38   0.949 - 0.961
HM        0.220 - 0.261 0.295 - 0.339 0.25 - 0.30   0.31 - 0.36   0.957 - 0.971
========= ============= ============= ============= ============= ==============

(ratios: the defended model's figure over the vanilla model's of the same seed.)

The robustness benchmark with a small profile (all nine attacks at eps 0.2, 5 steps of 0.05,
200 test queries) agrees: ERS over seeds 0-5 is 30.8 - 34.1 vanilla, 52.5 - 54.4 EST,
53.5 - 55.4 ACT and 56.3 - 58.8 HM (every defended model at least 18 points above the
vanilla model of its seed).
The assertions sit far from every measured value.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from rankattack import Gallery, MaxShiftAttack
from rankattack.defenses import build_defense
from rankattack.defenses.miners import get_miner
from rankattack.metrics import recall_at_k
from rankattack.robustness import RobustnessProfile, robustness_report
from rankattack.training import ClassBalancedSampler
from rankattack.training.config import TrainConfig
from tests._models import digits

EPS, ALPHA, STEPS, ITERATIONS = 0.2, 0.05, 5, 150


@functools.cache
def _trained(name: str, seed: int = 0) -> nn.Module:
    """The MLP after ``ITERATIONS`` steps of ``name``'s loss (a plain loop over the defense)."""
    x, y = digits()
    x, y = x[:1000], y[:1000]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    defense_name = None if name == "vanilla" else name
    miner = get_miner(TrainConfig(defense=defense_name).triplet_miner, "cosine", gen)
    pgd = {} if defense_name is None else {"eps": EPS, "alpha": ALPHA, "steps": STEPS}
    defense = build_defense(defense_name, metric="cosine", miner=miner, **pgd)
    sampler = ClassBalancedSampler(y, batch_size=128, samples_per_class=2)
    done = 0
    while done < ITERATIONS:
        for idx in sampler.epoch(gen)[: ITERATIONS - done]:
            defense.step(model, opt, x[idx], y[idx])
            done += 1
    return model.eval()


def _measure(model: nn.Module) -> tuple[float, float, float]:
    """Mean maximum shift of 300 held-out digits, that shift relative to the spread, R@1."""
    x, y = digits()
    test_x, test_y = x[1000:], y[1000:]
    torch.manual_seed(0)
    shift = MaxShiftAttack(model, eps=EPS, alpha=EPS / 8, steps=16).run(test_x[:300]).shift
    gallery = Gallery.from_inputs(model, test_x, test_y, metric="cosine")
    i, j = torch.randint(0, len(gallery), (2, 2000), generator=torch.Generator().manual_seed(0))
    spread = gallery.distance(gallery.embeddings[i], gallery.embeddings[j]).mean()
    return float(shift.mean()), float(shift.mean() / spread), recall_at_k(gallery)[1]


@pytest.mark.parametrize("name", ["est", "act", "hm"])
def test_defense_lowers_the_maximum_embedding_shift(name: str) -> None:
    shift_v, relative_v, recall_v = _measure(_trained("vanilla"))
    shift, relative, recall = _measure(_trained(name))
    assert shift_v > 0.6 and recall_v > 0.93  # the vanilla model is easy to shift
    assert shift < 0.55 * shift_v  # measured 0.14 - 0.41 of the vanilla shift
    assert relative < 0.55 * relative_v  # measured 0.22 - 0.38
    assert recall > 0.9  # measured 0.949 - 0.971


@pytest.mark.parametrize("name", ["est", "act", "hm"])
def test_defense_raises_a_small_profile_ers(name: str) -> None:
    x, y = digits()
    profile = RobustnessProfile(name="digits-small", eps=EPS, alpha=ALPHA, steps=STEPS)

    def ers(model: nn.Module) -> float:
        report = robustness_report(
            model, x[1000:], y[1000:], profile=profile, samples=200, seed=0, progress=False
        )
        return report.ers

    vanilla, defended = ers(_trained("vanilla")), ers(_trained(name))
    assert vanilla < 45  # measured 30.8 - 34.1
    assert defended > vanilla + 9  # measured gaps 18.4 - 26.9
