"""The robustness benchmark: profiles, the ERS normalization, reports, resume, errors.

The attacks themselves are tested in their own files; here the suite runs on the tiny
digits model of ``tests._models`` with a small profile (few PGD steps), in seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rankattack.evaluation.robustness.runner as runner
from rankattack.evaluation import confidence_interval
from rankattack.evaluation.robustness import (
    ATTACKS,
    PROFILES,
    RAW_KEYS,
    RobustnessLog,
    RobustnessProfile,
    RobustnessReport,
    ers,
    find_published,
    load_published,
    normalize,
    robustness_report,
    robustness_table,
    select_queries,
)
from tests._models import digits_model, held_out

#: A small budget: the whole suite on 60 digits in about a second.
SMALL = dataclasses.replace(PROFILES["rob28"], name="small", eps=0.1, alpha=0.03, steps=3)
N = 120


@pytest.fixture(scope="module")
def data() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    x, y = held_out()
    return digits_model(), x[:N], y[:N]


def _same(a: RobustnessReport, b: RobustnessReport) -> bool:
    """Equal in every number (wall times aside)."""
    return dataclasses.replace(a, seconds={}) == dataclasses.replace(b, seconds={})


# --------------------------------------------------------------------------------------
# profiles
def test_named_profiles_are_robranks() -> None:
    rob28, rob224 = PROFILES["rob28"], PROFILES["rob224"]
    assert (rob28.eps, rob28.alpha, rob28.steps) == (77 / 255, 3 / 255, 32)
    assert (rob224.eps, rob224.alpha, rob224.steps) == (8 / 255, 3 / 255, 32)
    assert rob28.attacks == ATTACKS and len(ATTACKS) == 9 and rob28.complete
    assert rob28.raw_keys == RAW_KEYS and len(RAW_KEYS) == 10
    assert RAW_KEYS[5:7] == ("ESD", "ESR")  # ES yields two numbers
    with pytest.raises(dataclasses.FrozenInstanceError):
        rob28.eps = 0.1  # type: ignore[misc]


def test_custom_profile_is_validated_and_ordered() -> None:
    mine = dataclasses.replace(PROFILES["rob28"], name="mine", eps=16 / 255, attacks=["GTT", "CA+"])
    assert mine.attacks == ("CA+", "GTT") and not mine.complete
    assert mine.raw_keys == ("CA+", "GTT")
    assert RobustnessProfile.from_dict(mine.to_dict()) == mine
    for kw, name in [
        ({"eps": -0.1}, "eps"), ({"alpha": 0.0}, "alpha"), ({"steps": -1}, "steps"),
        ({"attacks": ["CA*"]}, "attacks"), ({"attacks": []}, "attacks"),
        ({"attacks": ["ES", "ES"]}, "attacks"), ({"name": ""}, "name"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=name):
            dataclasses.replace(PROFILES["rob28"], **kw)


# --------------------------------------------------------------------------------------
# ERS
def test_ers_of_robranks_cosine_row_by_hand() -> None:
    raw = dict(
        zip(RAW_KEYS, [1.0, 99.5, 0.3, 99.0, 0.986, 1.594, 30.7, 11.6, 13.8, 0.0], strict=True)
    )
    terms = [2 * 1.0, 100 - 99.5, 2 * 0.3, 100 - 99.0, 100 * (1 - 0.986),
             100 * (2 - 1.594) / 2, 30.7, 11.6, 13.8, 0.0]  # fmt: skip
    assert ers(raw) == pytest.approx(sum(terms) / 10) == pytest.approx(8.19)
    assert ers(raw, "normalized-euclidean") == ers(raw)
    assert ers(raw, "euclidean") is None  # ESD is unbounded there
    assert ers({k: v for k, v in raw.items() if k != "GTT"}) is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=10, max_size=10))
def test_ers_is_the_mean_of_the_ten_terms(values: list[float]) -> None:
    ca_p, ca_m, qa_p, qa_m, tma, esd, esr, ltm, gtm, gtt = values
    raw = dict(zip(RAW_KEYS, values, strict=True))
    by_hand = [2 * ca_p, 100 - ca_m, 2 * qa_p, 100 - qa_m, 100 * (1 - tma),
               100 * (2 - esd) / 2, esr, ltm, gtm, gtt]  # fmt: skip
    for key, term in zip(RAW_KEYS, by_hand, strict=True):
        assert normalize(key, raw[key]) == pytest.approx(term, abs=1e-9)
    assert ers(raw) == pytest.approx(sum(by_hand) / 10, abs=1e-9)
    # affine: the ERS of means is the mean of per-sample ERS values
    other = dict(zip(RAW_KEYS, [v / 2 + 1 for v in values], strict=True))
    mid = {k: (raw[k] + other[k]) / 2 for k in RAW_KEYS}
    assert ers(mid) == pytest.approx((ers(raw) + ers(other)) / 2, abs=1e-9)  # type: ignore[operator]


def test_published_rows_and_their_computed_ers() -> None:
    rows = load_published()
    assert len(rows) == 9
    c = find_published("fashion-mnist", "rob28", "c2f2", "cosine", None)
    assert c is not None and c.config == "rc2f2:ptripletC" and c.recall_at_1 == 87.3
    assert c.raw["ESR"] == 30.7 and "doc/dmltab-fashion.txt line 40" in c.source
    est = find_published("Fashion_MNIST", "rob28", "C2F2", "cosine", "embedding-shift")
    assert est is not None and est.defense == "est" and est.raw["CA+"] == 33.5
    computed = {(r.metric, r.defense): None if r.ers is None else round(r.ers, 1) for r in rows}
    assert computed[("cosine", "none")] == 8.2 and computed[("cosine", "est")] == 61.6
    assert computed[("normalized-euclidean", "none")] == 4.2
    assert computed[("normalized-euclidean", "est")] == 38.7
    assert computed[("euclidean", "none")] is None
    assert find_published("fashion-mnist", "rob224", "c2f2", "cosine", None) is None
    assert find_published("fashion-mnist", "rob28", "c2f1", "cosine", None) is None
    assert find_published("fashion-mnist", "rob28", "c2f2", "cosine", "madry") is None
    assert find_published("fashion-mnist", "rob28", "c2f2", "cosine", None, "contrastive") is None


# --------------------------------------------------------------------------------------
# the report
def test_report_on_digits(data, tmp_path: Path) -> None:
    model, x, y = data
    path = tmp_path / "r.jsonl"
    report = robustness_report(model, x, y, profile=SMALL, samples=60, progress=False,
                               results=path, name="digits")  # fmt: skip
    assert report.samples == 60 and report.profile == SMALL and report.metric == "cosine"
    assert set(report.raw) == set(report.raw_ci) == set(report.scores) == set(RAW_KEYS)
    # the attacks work (margins far beyond the runs of several seeds)
    assert report.raw["CA+"] < report.before["CA+"] - 10
    assert report.raw["CA-"] > report.before["CA-"] + 3
    assert report.raw["QA+"] < report.before["QA+"] - 10
    assert report.raw["QA-"] > report.before["QA-"] + 3
    assert report.raw["TMA"] > report.before["TMA"] + 0.1
    assert report.raw["ESD"] > 0.02 and report.before["ESD"] == 0.0
    assert report.before["GTT"] == 100.0 and report.raw["GTT"] < 90
    for k in ("ESR", "LTM", "GTM"):
        assert report.before[k] > 80 and report.raw[k] <= report.before[k]
    # clean quality over the whole test set, in percent
    assert 80 < report.recall_at_1 <= 100 and 50 < report.mean_average_precision <= 100
    # every number and its interval, from the logged per-query values
    _, chunks = RobustnessLog(path).read()
    values: dict[str, list[float]] = {k: [math.nan] * 60 for k in RAW_KEYS}
    for c in chunks:
        for k, vs in c.after.items():
            values[k][c.start : c.stop] = vs
    per_query = torch.zeros(60, dtype=torch.float64)
    for k in RAW_KEYS:
        v = torch.tensor(values[k], dtype=torch.float64)
        mean, half = confidence_interval(v)
        assert report.raw[k] == pytest.approx(mean) and report.raw_ci[k] == pytest.approx(half)
        assert report.scores[k] == pytest.approx(normalize(k, mean))
        scale = abs(normalize(k, 1.0) - normalize(k, 0.0))
        assert report.scores_ci[k] == pytest.approx(scale * half)
        per_query += normalize(k, v) / 10
    assert report.ers == pytest.approx(ers(report.raw))
    assert report.ers == pytest.approx(float(per_query.mean()))
    assert report.ers_ci == pytest.approx(confidence_interval(per_query)[1])
    assert 0 < report.ers_ci < 10  # type: ignore[operator]
    # round trips and tables
    again = RobustnessReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    table = report.table()
    assert "ERS" in table and f"{report.ers:.1f} ± {report.ers_ci:.1f}" in table
    assert "| CA+ rank (%) |" in report.table(markdown=True)


def test_samples_none_attacks_every_input(data) -> None:
    model, x, y = data
    few = dataclasses.replace(SMALL, attacks=("CA+", "ES"))
    report = robustness_report(model, x[:40], y[:40], profile=few, progress=False)
    assert report.samples == 40 and report.ers is None and set(report.raw) == {"CA+", "ESD", "ESR"}
    assert torch.equal(select_queries(40, None, 0), torch.arange(40))
    assert torch.equal(select_queries(40, 40, 3), torch.arange(40))
    sub = select_queries(40, 10, 3)
    assert sub.shape == (10,) and len(set(sub.tolist())) == 10
    assert torch.equal(sub, select_queries(40, 10, 3))
    assert not torch.equal(sub, select_queries(40, 10, 4))


def test_batch_size_does_not_change_the_numbers(data) -> None:
    # float64, so that the rounding of batched forward passes (which depends on the batch
    # shape) cannot flip a sign(grad) entry or a rank comparison
    model, x, y = data
    model64 = copy.deepcopy(model).double()
    kw = {"profile": SMALL, "samples": 30, "seed": 2, "progress": False}
    a = robustness_report(model64, x.double(), y, batch_size=7, **kw)
    b = robustness_report(model64, x.double(), y, batch_size=100, **kw)
    assert _same(a, b)
    c = robustness_report(model64, x.double(), y, batch_size=7, **{**kw, "seed": 3})
    assert c.raw["CA+"] != a.raw["CA+"]  # another seed draws other targets


class _KilledError(Exception):
    """Stands for the process being killed in the middle of the run."""


def test_a_killed_run_resumes_with_identical_numbers(data, tmp_path: Path, monkeypatch) -> None:
    model, x, y = data
    kw = {"profile": SMALL, "samples": 45, "seed": 1, "progress": False, "name": "m"}
    full = robustness_report(model, x, y, batch_size=10, results=tmp_path / "full.jsonl", **kw)
    real_run, calls = runner._Suite.run, []

    def dying_run(self, *args, **kwargs):
        if len(calls) == 12:  # inside the third attack
            raise _KilledError
        calls.append(1)
        return real_run(self, *args, **kwargs)

    path = tmp_path / "part.jsonl"
    monkeypatch.setattr(runner._Suite, "run", dying_run)
    with pytest.raises(_KilledError):
        robustness_report(model, x, y, batch_size=10, results=path, **kw)
    meta, chunks = RobustnessLog(path).read()
    assert meta is not None and meta["samples"] == 45 and len(chunks) == 12
    with path.open("a") as fh:  # a kill while writing leaves a cut-off line
        fh.write('{"type": "chunk", "attack": "QA')
    monkeypatch.setattr(runner._Suite, "run", real_run)
    seen: list[str] = []

    def counting_run(self, name, *args, **kwargs):
        seen.append(name)
        return real_run(self, name, *args, **kwargs)

    monkeypatch.setattr(runner._Suite, "run", counting_run)
    resumed = robustness_report(model, x, y, batch_size=10, results=path, **kw)
    assert _same(resumed, full)
    assert len(seen) == 9 * 5 - 12  # only the missing chunks ran
    _, chunks = RobustnessLog(path).read()
    assert len(chunks) == 9 * 5
    seen.clear()
    assert _same(robustness_report(model, x, y, batch_size=10, results=path, **kw), full)
    assert seen == []  # a finished log computes nothing
    # a resumed run may use another batch size: only the missing positions run
    part = tmp_path / "other.jsonl"
    few = {**kw, "profile": dataclasses.replace(SMALL, attacks=("CA+", "LTM"))}
    robustness_report(model, x, y, batch_size=20, results=part, **{**few, "samples": 45})
    lines = part.read_text().splitlines()
    part.write_text("\n".join(lines[:2]) + "\n")  # meta and one chunk of 20
    seen.clear()
    robustness_report(model, x, y, batch_size=7, results=part, **few)
    assert seen.count("CA+") == 4 and seen.count("LTM") == 7  # 25 = 7+7+7+4 and 45 = 6*7+3


def test_a_log_of_another_run_is_refused(data, tmp_path: Path) -> None:
    model, x, y = data
    few = dataclasses.replace(SMALL, attacks=("CA+",))
    path = tmp_path / "r.jsonl"
    robustness_report(model, x, y, profile=few, samples=10, progress=False, results=path)
    with pytest.raises(ValueError, match="another run"):
        robustness_report(model, x, y, profile=few, samples=10, seed=1, progress=False,
                          results=path)  # fmt: skip
    with pytest.raises(ValueError, match="another run"):
        robustness_report(model, x, y, profile=dataclasses.replace(few, steps=4), samples=10,
                          progress=False, results=path)  # fmt: skip
    other = digits_model(seed=1)
    with pytest.raises(ValueError, match="another model"):
        robustness_report(other, x, y, profile=few, samples=10, progress=False, results=path)
    # more attacks on the same run extend the log
    more = dataclasses.replace(few, name="more", attacks=("CA+", "ES"))
    report = robustness_report(model, x, y, profile=more, samples=10, progress=False,
                               results=path)  # fmt: skip
    assert set(report.raw) == {"CA+", "ESD", "ESR"}


def test_euclidean_warns_and_reports_no_ers(data) -> None:
    model, x, y = data
    with pytest.warns(UserWarning, match="ESD is unbounded"):
        report = robustness_report(model, x[:30], y[:30], profile=SMALL, metric="euclidean",
                                   progress=False)  # fmt: skip
    assert report.ers is None and report.ers_ci is None
    assert report.scores["ESD"] is None and report.scores["CA+"] is not None
    assert "ERS is not reported" in report.table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        n = robustness_report(model, x[:30], y[:30], profile=SMALL,
                              metric="normalized-euclidean", progress=False)  # fmt: skip
    assert n.ers is not None and n.metric == "normalized-euclidean"


def test_arguments_are_checked_before_any_work(data) -> None:
    model, x, y = data

    def call(**kw):
        args = {"model": model, "inputs": x, "labels": y, "profile": SMALL, "progress": False}
        return robustness_report(**{**args, **kw})

    with pytest.raises(ValueError, match="profile"):
        call(profile="rob32")
    with pytest.raises(TypeError, match="profile"):
        call(profile=3)
    with pytest.raises(ValueError, match="samples"):
        call(samples=0)
    with pytest.raises(ValueError, match="samples"):
        call(samples=N + 1)
    with pytest.raises(ValueError, match="labels"):
        call(labels=y[:-1])
    with pytest.raises(TypeError, match="labels"):
        call(labels=y.float())
    with pytest.raises(ValueError, match="metric"):
        call(metric="manhattan")
    with pytest.raises(ValueError, match="batch_size"):
        call(batch_size=0)
    with pytest.raises(ValueError, match="inputs"):
        call(inputs=x * 2)
    with pytest.raises(TypeError, match="model"):
        call(model="not a model")
    with pytest.raises(ValueError, match="model"):
        call(model=lambda t: t.flatten(1)[:1])  # one row for the whole batch
    with pytest.raises(ValueError, match="model"):
        call(model=lambda t: t.flatten())  # not [N, D]


def test_side_by_side_table_with_published_rows(data) -> None:
    model, x, y = data
    a = robustness_report(model, x, y, profile=SMALL, samples=20, progress=False, name="a")
    b = dataclasses.replace(a, name="b")
    pub = find_published("fashion-mnist", "rob28", "c2f2", "cosine", None)
    text = robustness_table([a, b], [pub, None])
    header = text.splitlines()[1]
    assert header.split() == ["a", "robrank", "C2F2", "triplet", "C", "b"]
    assert "8.2 (computed)" in text and "its ERS is computed" in text
    md = robustness_table([a, b], [pub, None], markdown=True, title="T")
    assert md.startswith("**T**") and "| --- | ---: | ---: | ---: |" in md
    with pytest.raises(ValueError, match="published"):
        robustness_table([a, b], [pub])
