"""Every script in examples/ runs in its --tiny configuration and prints sensible figures.

Each example runs in a subprocess (one after the other, a few seconds each) from the
repository root; its output must hold the table it documents, and the figures must say
what the example claims (e.g. an attack moves the ranks the right way). A new example
needs a ``--tiny`` mode and an entry in :data:`CHECKS`, or this file fails.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))

NUM = r"(-?\d+(?:\.\d+)?)"


def rows(pattern: str, out: str, count: int | None = None) -> list[tuple[float, ...]]:
    """The numbers captured by ``pattern`` on every matching output line."""
    found = [tuple(float(v) for v in m.groups()) for m in re.finditer(pattern, out, flags=re.M)]
    assert found, f"no line matches {pattern!r} in:\n{out}"
    if count is not None:
        assert len(found) == count, f"{len(found)} lines match {pattern!r}, expected {count}"
    return found


def check_art_detector(out: str) -> None:
    """Over --seed 0-5: ranks 46.7-49.6% -> 39.8-42.3% (6.5-7.4 points up)."""
    assert re.search(r"eps \| rank before +after \| detection rate false alarms accuracy", out)
    ((eps, before, after, tpr, fpr, acc),) = rows(
        rf"^ *{NUM} \| +{NUM}% +{NUM}% \| +{NUM}% +{NUM}% +{NUM}%$", out
    )
    assert eps == 0.03 and after < before
    assert acc == pytest.approx((tpr + 100 - fpr) / 2, abs=0.1)


def check_art_pgd_as_ca(out: str) -> None:
    """Over --seed 0-5: 47.5-53.6% -> 25.3-29.2%, the three equal at every seed."""
    before = rows(rf"mean normalized rank before: {NUM}%", out, 1)[0][0]
    assert re.search(r"ART PGD +time \| CandidateAttackART +time \| CandidateAttack +time", out)
    (row,) = rows(
        rf"^ *{NUM} +{NUM} +{NUM} \| +{NUM}% +{NUM}s \| +{NUM}% +{NUM}s \| +{NUM}% +{NUM}s$", out
    )
    eps, alpha, steps, art, _, adapter, _, core, _ = row
    assert (eps, alpha, steps) == (0.1, 0.01, 20)  # the paper's schedule
    assert art == adapter == core < before  # ART's PGD on the estimator is CA+


def check_art_preprocessing_defences(out: str) -> None:
    """Over --seed 0-5: R@1 75-95%; transfer and adaptive CA+ raise ranks by 11.7-23.3 points."""
    assert re.search(r"defence +R@1 \| +clean \| transfer survives \| adaptive survives", out)
    names = ("none", "FeatureSqueezing", "SpatialSmoothing", "JpegCompression")
    for name in names:
        ((r1, clean, transfer, kept, adaptive, kept_adaptive),) = rows(
            rf"^{name}\S* +{NUM}% \| +{NUM}% \| +{NUM}% +{NUM}% \| +{NUM}% +{NUM}%$", out
        )
        assert 50 < r1 <= 100 and transfer < clean and adaptive < clean
        if name == "none":
            assert kept == kept_adaptive == 100


def check_attack_digits(out: str) -> None:
    """Over --seed 0-5, eps 0 -> 0.3: CA+ 37-60 -> 2-7, CA- 0.8-1.5 -> 49-56, QA+ 36-61 -> 8-20,
    QA- 0.5-0.7 -> 3.4-6.2."""
    assert re.search(r"R@1 = \d+\.\d%", out)
    assert re.search(r"eps +CA\+ +CA- +QA\+ +QA-", out)
    table = rows(rf"^ *{NUM} +{NUM} +{NUM} +{NUM} +{NUM}$", out, 5)
    (eps0, *clean), (eps3, *strong) = table[0], table[-1]
    assert (eps0, eps3) == (0.0, 0.3)
    assert strong[0] < clean[0] and strong[2] < clean[2]  # CA+ and QA+ raise
    assert strong[1] > clean[1] and strong[3] > clean[3]  # CA- and QA- lower


def check_attack_your_model(out: str) -> None:
    """Over --seed 0-5: CA+ 43-56 -> 25-31, CA- 0.9-1.6 -> 12.6-14.9."""
    assert "without the wrapper: TypeError" in out and "EmbeddingModel(model, output=" in out
    assert re.search(r"with EmbeddingModel\(.*\): gallery \|X\| = 901, R@1 = \d+\.\d%", out)
    assert re.search(r"attack +eps \| before +after \| max \|x_adv - x\|", out)
    ((eps, before, after, linf),) = rows(rf"^CA\+ +{NUM} \| +{NUM} +{NUM} \| +{NUM}$", out)
    assert after < before and linf <= eps + 1e-3  # eps bounds the pixels, not (x - m) / s
    ((eps, before, after, linf),) = rows(rf"^CA- +{NUM} \| +{NUM} +{NUM} \| +{NUM}$", out)
    assert before < 5 and after > before and linf <= eps + 1e-3


def check_defend_a_model(out: str) -> None:
    """Over --seed 0-5: at eps 0.1 a shift of 0.000-0.004 (defended) vs 0.068-0.171; at
    0.3 the defended shift is at most 0.045 of the vanilla one."""
    assert re.search(r"model +R@1 +train \| +eps \| max shift relative \| CA\+ before +after", out)
    shift = rf"\| +{NUM} \| +{NUM} +{NUM} \| +{NUM} +{NUM}$"
    vanilla = rows(rf"^vanilla +{NUM}% +{NUM}s {shift}", out, 1)[0]
    defended = rows(rf"^embedding-shift +{NUM}% +{NUM}s {shift}", out, 1)[0]
    assert vanilla[2] == defended[2] == 0.1
    assert defended[3] < vanilla[3]  # the defense suppresses the embedding shift
    at_03 = rows(rf"^ +{shift}", out, 2)
    assert at_03[1][1] < 0.1 * at_03[0][1]  # at eps = 0.3: defended vs vanilla


def check_sp_query_attack(out: str) -> None:
    """Over --seed 0-5: C ends at 4.0-5.3 (xi 100), 42-52 (xi 1), 64-82 (xi 0); C_SP at
    2.3-2.8, 38-46, 61-79."""
    assert re.search(r"eps +xi \| C before +C after \| C_SP before C_SP after", out)
    table = rows(rf"^ *{NUM} +{NUM} \| +{NUM} +{NUM} \| +{NUM} +{NUM}$", out, 3)
    by_xi = {row[1]: row[2:] for row in table}
    assert set(by_xi) == {0.0, 1.0, 100.0}
    assert all(after > before for before, after, _, _ in by_xi.values())  # C goes down
    # the SP term keeps C_SP near the top: the larger xi, the smaller its drop
    assert by_xi[100.0][3] < by_xi[1.0][3] < by_xi[0.0][3]


def check_transfer_attack(out: str) -> None:
    """Over --seed 0-5, white-box: C2F1 40-57 -> 3.1-5.2, LeNet 46-58 -> 2.7-4.5."""
    assert re.search(r"CA\+ transfer, eps = 0\.3", out)
    assert re.search(r"From \\ To +C2F1 +LeNet", out)
    c2f1 = rows(rf"^C2F1 +{NUM}->{NUM} +{NUM}->{NUM}$", out, 1)[0]
    lenet = rows(rf"^LeNet +{NUM}->{NUM} +{NUM}->{NUM}$", out, 1)[0]
    assert c2f1[1] < c2f1[0] and lenet[3] < lenet[2]  # white-box diagonal
    assert c2f1[0] == lenet[0] and c2f1[2] == lenet[2]  # "before" is per ranking model


def check_universal_perturbation(out: str) -> None:
    """Over --seed 0-5: unseen 46-52 -> 25-33, 10-23 points above the random-sign control
    (a single control draw, one trial, came within 5 points: --tiny runs three)."""
    assert "UniversalRankAttack(model=C2F1" in out
    assert re.search(r"perturbation +inputs +\| before +after", out)
    ((seen_b, seen_a),) = rows(rf"^universal \(fitted\) +seen +\| +{NUM} +{NUM}$", out)
    ((unseen_b, unseen_a),) = rows(rf"^universal \(fitted\) +unseen +\| +{NUM} +{NUM}$", out)
    ((ctrl_b, ctrl_a),) = rows(rf"^random signs \(control\) +unseen +\| +{NUM} +{NUM}$", out)
    assert seen_a < seen_b and unseen_a < unseen_b  # it generalizes to unseen candidates
    assert ctrl_b == unseen_b and unseen_a < ctrl_a  # and beats random noise


CHECKS: dict[str, Callable[[str], None]] = {
    "art_detector.py": check_art_detector,
    "art_pgd_as_ca.py": check_art_pgd_as_ca,
    "art_preprocessing_defences.py": check_art_preprocessing_defences,
    "attack_digits.py": check_attack_digits,
    "attack_your_model.py": check_attack_your_model,
    "defend_a_model.py": check_defend_a_model,
    "sp_query_attack.py": check_sp_query_attack,
    "transfer_attack.py": check_transfer_attack,
    "universal_perturbation.py": check_universal_perturbation,
}


def test_every_example_is_checked() -> None:
    assert sorted(CHECKS) == EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_docstring_states_the_commands(name: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "examples" / name).read_text())) or ""
    assert f"python examples/{name}" in doc
    assert f"python examples/{name} --tiny" in doc


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_tiny(name: str) -> None:
    if name not in CHECKS:
        pytest.fail(f"examples/{name} has no output check in tests/test_examples.py")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(Path("examples") / name), "--tiny"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    CHECKS[name](proc.stdout)
