"""rankattack.art: the ART estimator and the attack adapters, with the real ART classes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
from art.defences.detector.evasion import BinaryInputDetector
from art.defences.preprocessor import FeatureSqueezing
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from rankattack import (
    CandidateObjective,
    EmbeddingModel,
    Gallery,
    QueryAttack,
    QueryObjective,
)
from rankattack.art import (
    CandidateAttackART,
    MaxShiftAttackART,
    QueryAttackART,
    RankingEstimator,
    UniversalRankAttackART,
)
from tests._models import digits_model, held_out

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Digits:
    model: nn.Module
    x: np.ndarray  # [797, 1, 8, 8] held-out digits: the gallery
    labels: np.ndarray
    est: RankingEstimator


@pytest.fixture(scope="module")
def digits() -> Digits:
    model = digits_model()
    x, y = held_out()
    est = RankingEstimator(model, input_shape=(1, 8, 8))
    est.build_gallery(x.numpy(), y.numpy())
    return Digits(model, x.numpy(), y.numpy(), est)


def _ca_task(d: Digits, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n candidates and one random gallery query each (CA+ as in the paper's protocol)."""
    rng = np.random.default_rng(seed)
    cand = d.x[rng.choice(len(d.x), n, replace=False)]
    gallery = d.est.gallery
    assert gallery is not None
    q_idx = torch.from_numpy(rng.integers(0, len(d.x), (n, 1)))
    return cand, gallery.embeddings[q_idx].numpy()


# -- import boundary ------------------------------------------------------------------
def test_import_rankattack_does_not_import_art() -> None:
    code = "import sys, rankattack; assert 'art' not in sys.modules, 'art imported'"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


# -- the estimator ----------------------------------------------------------------------
def test_predict_numpy_and_tensor(digits: Digits) -> None:
    x = digits.x[:10]
    out = digits.est.predict(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (10, 16)
    with torch.no_grad():
        ref = digits.model(torch.from_numpy(x))
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-6)
    dropout = RankingEstimator(nn.Sequential(digits.model, nn.Dropout(0.5)).eval(), (1, 8, 8))
    np.testing.assert_allclose(dropout.predict(x), out, rtol=1e-5, atol=1e-6)  # eval mode
    torch.manual_seed(0)
    assert not np.allclose(dropout.predict(x, training_mode=True), out)
    assert not dropout.model.training and not dropout.model[1].training  # mode restored
    t = digits.est.predict(torch.from_numpy(x), batch_size=3)
    assert isinstance(t, torch.Tensor) and t.device == ref.device
    torch.testing.assert_close(t, ref)


def test_loss_gradient_is_the_ca_gradient(digits: Digits) -> None:
    cand, qy = _ca_task(digits, 8)
    grad = digits.est.loss_gradient(cand, qy)
    assert isinstance(grad, np.ndarray) and grad.shape == cand.shape
    xg = torch.from_numpy(cand).requires_grad_(True)
    assert digits.est.gallery is not None
    objective = CandidateObjective(digits.est.gallery, torch.from_numpy(qy), "raise")
    objective(digits.model(xg)).sum().backward()
    assert xg.grad is not None and float(xg.grad.abs().sum()) > 0
    np.testing.assert_allclose(grad, xg.grad.numpy(), rtol=1e-4, atol=1e-7)
    tgrad = digits.est.loss_gradient(torch.from_numpy(cand), torch.from_numpy(qy))
    assert isinstance(tgrad, torch.Tensor)
    torch.testing.assert_close(tgrad, xg.grad)
    loss = digits.est.compute_loss(cand, qy)
    np.testing.assert_allclose(loss, objective(digits.model(xg)).detach().numpy(), rtol=1e-5)


def test_query_objective_y_encodings(digits: Digits) -> None:
    gallery = digits.est.gallery
    assert gallery is not None
    est = RankingEstimator(
        digits.model, (1, 8, 8), gallery, objective="query", direction="lower", sp_size=3
    )
    rng = np.random.default_rng(1)
    q = digits.x[:6]
    c_idx = rng.integers(0, len(digits.x), (6, 2))
    y_idx = est.query_targets(q, c_idx, query_indices=np.arange(6))
    assert isinstance(y_idx, np.ndarray) and y_idx.shape == (6, 5)
    np.testing.assert_array_equal(y_idx[:, :2], c_idx)
    assert not (y_idx[:, 2:] == np.arange(6)[:, None]).any()  # own copy kept out of C_SP
    y_emb = est.query_targets(q, gallery.embeddings[torch.from_numpy(c_idx)].numpy())
    assert y_emb.shape == (6, 5, 16)
    np.testing.assert_allclose(y_emb, gallery.embeddings[torch.from_numpy(y_idx)].numpy())
    g_idx = est.loss_gradient(q, y_idx)
    np.testing.assert_allclose(est.loss_gradient(q, y_emb), g_idx, rtol=1e-5, atol=1e-8)
    # the same loss written with the core objective: C then C_SP weighted by xi = 100
    xg = torch.from_numpy(q).requires_grad_(True)
    emb = gallery.embeddings[torch.from_numpy(y_idx)]
    QueryObjective(gallery, emb[:, :2], "lower", 100.0, emb[:, 2:])(
        digits.model(xg)
    ).sum().backward()
    assert xg.grad is not None
    np.testing.assert_allclose(g_idx, xg.grad.numpy(), rtol=1e-4, atol=1e-7)
    # C_SP is what QueryAttack picks
    helper = QueryAttack(digits.model, gallery, "lower", sp_size=3)
    sp = helper.semantic_set(
        digits.model(torch.from_numpy(q)).detach(), emb[:, :2], torch.from_numpy(c_idx)
    )
    np.testing.assert_array_equal(est.query_targets(q, c_idx)[:, 2:], sp.numpy())


def test_preprocessing_mean_std_with_gradients(digits: Digits) -> None:
    """ART's preprocessing=(mean, std) equals rankattack.EmbeddingModel(mean, std)."""
    gallery = digits.est.gallery
    assert gallery is not None
    est = RankingEstimator(digits.model, (1, 8, 8), gallery, preprocessing=(0.5, 0.25))
    wrapped = EmbeddingModel(digits.model, mean=[0.5], std=[0.25])
    cand, qy = _ca_task(digits, 5)
    with torch.no_grad():
        ref = wrapped(torch.from_numpy(cand))
    np.testing.assert_allclose(est.predict(cand), ref.numpy(), rtol=1e-5, atol=1e-6)
    xg = torch.from_numpy(cand).requires_grad_(True)
    CandidateObjective(gallery, torch.from_numpy(qy))(wrapped(xg)).sum().backward()
    assert xg.grad is not None
    np.testing.assert_allclose(est.loss_gradient(cand, qy), xg.grad.numpy(), rtol=1e-4, atol=1e-7)
    tg = est.loss_gradient(torch.from_numpy(cand), torch.from_numpy(qy))
    torch.testing.assert_close(tg, xg.grad)


class _Blur(PreprocessorPyTorch):
    """A differentiable PyTorch defence: 3x3 mean filter."""

    def __init__(self) -> None:
        super().__init__(device_type="cpu", is_fitted=True, apply_fit=False, apply_predict=True)

    def forward(self, x: torch.Tensor, y: object = None) -> tuple[torch.Tensor, object]:
        return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1), y


def test_pytorch_defence_is_differentiated(digits: Digits) -> None:
    gallery = digits.est.gallery
    assert gallery is not None
    smooth = _Blur()
    est = RankingEstimator(digits.model, (1, 8, 8), gallery, preprocessing_defences=smooth)
    assert est.all_framework_preprocessing
    cand, qy = _ca_task(digits, 5)
    xg = torch.from_numpy(cand).requires_grad_(True)
    emb = digits.model(smooth.forward(xg)[0])
    CandidateObjective(gallery, torch.from_numpy(qy))(emb).sum().backward()
    assert xg.grad is not None
    np.testing.assert_allclose(est.loss_gradient(cand, qy), xg.grad.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(est.predict(cand), emb.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_numpy_defence_uses_bpda(digits: Digits) -> None:
    """A NumPy defence runs forward; its gradient is ART's estimate (identity for squeezing).

    Over digits models of seeds 0-5 the adaptive attack moves the ranks 0.16-0.34 -> 0.01-0.03.
    """
    gallery = digits.est.gallery
    assert gallery is not None
    squeeze = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=2)
    est = RankingEstimator(digits.model, (1, 8, 8), gallery, preprocessing_defences=squeeze)
    assert not est.all_framework_preprocessing
    cand, qy = _ca_task(digits, 5)
    squeezed = squeeze(cand)[0].astype(np.float32)
    assert not np.allclose(squeezed, cand)
    xs = torch.from_numpy(squeezed).requires_grad_(True)
    emb = digits.model(xs)
    CandidateObjective(gallery, torch.from_numpy(qy))(emb).sum().backward()
    assert xs.grad is not None
    np.testing.assert_allclose(est.predict(cand), emb.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.loss_gradient(cand, qy), xs.grad.numpy(), rtol=1e-4, atol=1e-7)
    tg = est.loss_gradient(torch.from_numpy(cand), torch.from_numpy(qy))
    assert isinstance(tg, torch.Tensor)
    torch.testing.assert_close(tg, xs.grad)
    # the adapters attack through the defence (adaptive, BPDA)
    adv = CandidateAttackART(est, eps=0.2).generate(cand, qy)
    assert float(est.ranks(adv, qy).mean()) < float(est.ranks(cand, qy).mean())


def test_bad_y_is_rejected(digits: Digits) -> None:
    cand, qy = _ca_task(digits, 4)
    with pytest.raises(ValueError, match="y must hold query embeddings"):
        digits.est.loss_gradient(cand, qy[:3])
    with pytest.raises(ValueError, match="y must hold query embeddings"):
        digits.est.loss_gradient(cand, qy[..., :5])
    with pytest.raises(ValueError, match="y is required"):
        digits.est.loss_gradient(cand, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x must have shape"):
        digits.est.predict(cand[:, :, :4])


def test_estimator_set_params_raises_valueerror(digits: Digits) -> None:
    est = RankingEstimator(digits.model, (1, 8, 8), digits.est.gallery)
    with pytest.raises(ValueError, match="objective"):
        est.set_params(objective="ranking")
    with pytest.raises(ValueError, match="sp_size"):
        est.set_params(sp_size=-1)
    with pytest.raises(ValueError, match="Unexpected parameter"):
        est.set_params(temperature=1.0)
    with pytest.raises(ValueError, match="metric"):
        est.set_params(metric="manhattan")
    with pytest.raises(ValueError, match="differs from the gallery"):
        est.set_params(metric="euclidean")  # the gallery is cosine
    assert est.objective == "candidate" and est.metric == "cosine"  # old values kept
    with pytest.raises(ValueError, match="objective"):
        RankingEstimator(digits.model, (1, 8, 8), objective="ranking")


def test_euclidean_metric(digits: Digits) -> None:
    est = RankingEstimator(digits.model, (1, 8, 8), metric="euclidean")
    gallery = est.build_gallery(digits.x)
    assert gallery.metric == "euclidean"
    cand, qy = _ca_task(digits, 6)
    xg = torch.from_numpy(cand).requires_grad_(True)
    CandidateObjective(gallery, torch.from_numpy(qy))(digits.model(xg)).sum().backward()
    assert xg.grad is not None
    np.testing.assert_allclose(est.loss_gradient(cand, qy), xg.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_get_activations(digits: Digits) -> None:
    est = digits.est
    assert est.layer_names == ["0", "1", "2", "3"]
    act = est.get_activations(digits.x[:7], 1, batch_size=4)
    assert isinstance(act, np.ndarray) and act.shape == (7, 64)
    np.testing.assert_allclose(
        act,
        digits.model[1](torch.from_numpy(digits.x[:7]).flatten(1)).detach().numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    assert isinstance(est.get_activations(digits.x[:2], "3", framework=True), torch.Tensor)


# -- ART's own attacks through the estimator ------------------------------------------
def test_art_pgd_is_a_ca_plus_attack(digits: Digits) -> None:
    """Over digits models of seeds 0-5: ranks 0.47-0.53, of which ART's PGD keeps
    0.39-0.52 (ours: the same ranks to the last digit); FGSM keeps 0.59-0.70 of the loss."""
    cand, qy = _ca_task(digits, 40)
    est = digits.est
    pgd = ProjectedGradientDescent(
        est, eps=0.1, eps_step=0.01, max_iter=20, targeted=True, batch_size=16, verbose=False
    )
    adv = pgd.generate(cand, qy)
    assert np.abs(adv - cand).max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    before, after = est.ranks(cand, qy), est.ranks(adv, qy)
    assert float(before.mean()) > 0.3
    assert float(after.mean()) < 0.6 * float(before.mean())
    assert float(est.compute_loss(adv, qy).mean()) < float(est.compute_loss(cand, qy).mean())
    # the same schedule through rankattack's engine reaches the same ranks
    ours = CandidateAttackART(est, eps=0.1, eps_step=0.01, max_iter=20).generate(cand, qy)
    assert abs(float(est.ranks(ours, qy).mean()) - float(after.mean())) < 0.02
    # one FGSM step on the generic path also descends the CA+ loss
    fgm = FastGradientMethod(est, eps=0.05, targeted=True)
    x_fgm = fgm.generate(cand, qy)
    assert float(est.compute_loss(x_fgm, qy).mean()) < float(est.compute_loss(cand, qy).mean())


def test_art_pgd_shift_objective_pulls_toward_target(digits: Digits) -> None:
    """Over digits models of seeds 0-5 the loss keeps 0.20-0.31 of its value."""
    est = RankingEstimator(digits.model, (1, 8, 8), objective="shift")
    x, target = digits.x[:20], est.predict(digits.x[20:40])
    pgd = ProjectedGradientDescent(
        est, eps=0.2, eps_step=0.02, max_iter=20, targeted=True, verbose=False
    )
    adv = pgd.generate(x, target)
    assert float(est.compute_loss(adv, target).mean()) < 0.5 * float(
        est.compute_loss(x, target).mean()
    )


# -- the adapters ---------------------------------------------------------------------
def _check_ball(adv: np.ndarray, x: np.ndarray, eps: float) -> None:
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert np.abs(adv - x).max() <= eps + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0


def test_candidate_attack_art_numpy_and_tensor(digits: Digits) -> None:
    """Over digits models of seeds 0-5, CA+ keeps 0.63-0.69 of the rank; CA- adds 0.15-0.19."""
    est = digits.est
    cand, qy = _ca_task(digits, 30)
    atk = CandidateAttackART(est, eps=0.05, batch_size=8)
    adv = atk.generate(cand, qy)
    assert isinstance(adv, np.ndarray)
    _check_ball(adv, cand, 0.05)
    assert float(est.ranks(adv, qy).mean()) < 0.8 * float(est.ranks(cand, qy).mean())
    t = atk.generate(torch.from_numpy(cand), torch.from_numpy(qy))
    assert isinstance(t, torch.Tensor) and t.device == torch.device("cpu")
    np.testing.assert_allclose(t.numpy(), adv, atol=1e-6)
    # queries given as images: the same attack
    rng = np.random.default_rng(5)
    q_img = digits.x[rng.integers(0, len(digits.x), (30, 2))]
    y2 = est.predict_sets(q_img)
    np.testing.assert_allclose(atk.generate(cand, queries=q_img), atk.generate(cand, y2), atol=1e-6)
    low = CandidateAttackART(est, direction="lower", eps=0.05).generate(cand, qy)
    assert float(est.ranks(low, qy).mean()) > float(est.ranks(cand, qy).mean())


def test_query_attack_art_numpy_and_tensor(digits: Digits) -> None:
    """Over digits models of seeds 0-5, QA+ keeps 0.69-0.79 of the candidates' rank at
    eps = 0.05 and 0.12-0.15 at eps = 0.3 (random signs of 0.05: 0.99-1.01)."""
    gallery = digits.est.gallery
    assert gallery is not None
    rng = np.random.default_rng(2)
    qi = rng.choice(len(digits.x), 20, replace=False)
    q = digits.x[qi]
    c_idx = rng.integers(0, len(digits.x), (20, 1))
    atk = QueryAttackART(digits.est, direction="raise", eps=0.05, sp_size=3)
    adv = atk.generate(q, c_idx, query_indices=qi)
    _check_ball(adv, q, 0.05)
    ranker = RankingEstimator(digits.model, (1, 8, 8), gallery, objective="query")
    strong = QueryAttackART(digits.est, direction="raise", eps=0.3, sp_size=3)
    adv_strong = strong.generate(q, c_idx, query_indices=qi)
    before = float(ranker.ranks(q, c_idx).mean())
    after, after_strong = (float(ranker.ranks(a, c_idx).mean()) for a in (adv, adv_strong))
    assert after_strong < 0.25 * before  # a large ball: the candidates reach the top
    assert after_strong < after < 0.9 * before  # eps = 0.05 lands between
    t = atk.generate(torch.from_numpy(q), torch.from_numpy(c_idx), query_indices=qi)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), adv, atol=1e-6)
    c_emb = gallery.embeddings[torch.from_numpy(c_idx)].numpy()
    np.testing.assert_allclose(atk.generate(q, c_emb, query_indices=qi), adv, atol=1e-6)
    np.testing.assert_allclose(
        atk.generate(q, candidates=digits.x[c_idx]), atk.generate(q, c_idx), atol=1e-6
    )


def test_max_shift_attack_art_numpy_and_tensor(digits: Digits) -> None:
    """Over digits models of seeds 0-5 the shift is 6.6-10.2x that of random signs."""
    x = digits.x[:25]
    atk = MaxShiftAttackART(digits.est, eps=0.05)
    adv = atk.generate(x)
    _check_ball(adv, x, 0.05)
    shift = RankingEstimator(digits.model, (1, 8, 8), objective="shift")
    clean = shift.predict(x)
    rng = np.random.default_rng(3)
    noise = np.clip(x + 0.05 * rng.choice([-1.0, 1.0], x.shape), 0, 1).astype(np.float32)
    moved = shift.compute_loss(adv, clean)
    assert float(moved.min()) > 0 and float(moved.mean()) > 3 * float(
        shift.compute_loss(noise, clean).mean()
    )
    t = atk.generate(torch.from_numpy(x))
    assert isinstance(t, torch.Tensor) and t.shape == x.shape
    with pytest.raises(ValueError, match="untargeted"):
        atk.generate(x, clean)


def test_universal_rank_attack_art(digits: Digits) -> None:
    """Over digits models of seeds 0-5 the ranks drop by 0.04-0.10 (from 0.41-0.48)."""
    try:
        from rankattack.attacks.universalrankattack import UniversalRankAttack  # noqa: F401
    except ImportError:
        pytest.skip("rankattack.attacks.universalrankattack.UniversalRankAttack is absent")
    est = digits.est
    cand, qy = _ca_task(digits, 60, seed=4)
    atk = UniversalRankAttackART(est, eps=0.1, eps_step=0.01, max_iter=20)
    adv = atk.generate(cand, qy)
    _check_ball(adv, cand, 0.1)
    r = atk.perturbation
    assert r is not None and r.shape == (1, 8, 8) and float(r.abs().max()) <= 0.1 + 1e-6
    np.testing.assert_allclose(adv, np.clip(cand + r.numpy(), 0, 1), atol=1e-6)
    assert float(est.ranks(adv, qy).mean()) < float(est.ranks(cand, qy).mean())
    unseen = atk.apply(torch.from_numpy(digits.x[:5]))
    assert isinstance(unseen, torch.Tensor) and unseen.shape == (5, 1, 8, 8)
    t = atk.generate(torch.from_numpy(cand), torch.from_numpy(qy))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), adv, atol=1e-6)
    qa = UniversalRankAttackART(est, target="query", eps=0.1, eps_step=0.01, max_iter=5)
    c_idx = np.random.default_rng(0).integers(0, len(digits.x), (10, 1))
    _check_ball(qa.generate(digits.x[:10], c_idx), digits.x[:10], 0.1)


def test_clip_values_are_honoured(digits: Digits) -> None:
    gallery = digits.est.gallery
    assert gallery is not None
    cand, qy = _ca_task(digits, 10)
    cand = cand * 0.8
    upper = np.full((1, 8, 8), 0.8, dtype=np.float32)
    for clip in [(0.0, 0.8), (np.zeros_like(upper), upper)]:
        est = RankingEstimator(digits.model, (1, 8, 8), gallery, clip_values=clip)
        adv = CandidateAttackART(est, eps=0.3).generate(cand, qy)
        assert adv.max() <= 0.8 + 1e-6 and np.abs(adv - cand).max() <= 0.3 + 1e-6
        art_adv = ProjectedGradientDescent(
            est, eps=0.3, eps_step=0.05, max_iter=5, targeted=True, verbose=False
        ).generate(cand, qy)
        assert art_adv.max() <= 0.8 + 1e-6
    with pytest.raises(ValueError, match="clip_values"):
        wide = RankingEstimator(digits.model, (1, 8, 8), gallery, clip_values=(0.0, 255.0))
        CandidateAttackART(wide).generate(cand, qy)


def test_adapter_set_params_raises_like_art(digits: Digits) -> None:
    atk = CandidateAttackART(digits.est, eps=0.05)
    with pytest.raises(ValueError, match="eps"):
        atk.set_params(eps=-0.1)
    assert atk.eps == 0.05  # the old value is kept
    with pytest.raises(ValueError, match="direction"):
        atk.set_params(direction="up")
    with pytest.raises(ValueError, match="cannot be set"):
        atk.set_params(temperature=2.0)
    with pytest.raises(ValueError, match="max_iter"):
        atk.set_params(max_iter=2.5)
    with pytest.raises(ValueError, match="sp_size"):
        QueryAttackART(digits.est, sp_size=10_000)
    with pytest.raises(ValueError, match="unexpected keyword"):
        atk.generate(digits.x[:2], np.zeros((2, 1, 16), np.float32), mask=None)
    cand, qy = _ca_task(digits, 10)
    atk.set_params(eps=0.0)
    np.testing.assert_array_equal(atk.generate(cand, qy), cand)
    assert "eps=0.0" in repr(atk)


# -- ART pipelines on ranking adversaries ----------------------------------------------
def test_binary_input_detector_detects_ca_adversaries(digits: Digits) -> None:
    """Over digits models of seeds 0-5 and detector seeds 0-2: accuracy 0.98-1.00."""
    cand, qy = _ca_task(digits, 300, seed=7)
    adv = CandidateAttackART(digits.est, eps=0.05).generate(cand, qy)
    half = 150
    x_fit = np.concatenate([cand[:half], adv[:half]])
    y_fit = np.eye(2, dtype=np.float32)[[0] * half + [1] * half]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(512, 2))
    classifier = PyTorchClassifier(
        net,
        loss=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(net.parameters(), lr=1e-2),
        input_shape=(1, 8, 8),
        nb_classes=2,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    detector = BinaryInputDetector(classifier)
    detector.fit(x_fit, y_fit, nb_epochs=30, batch_size=64)
    _, flagged_adv = detector.detect(adv[half:])
    _, flagged_clean = detector.detect(cand[half:])
    accuracy = (flagged_adv.mean() + 1.0 - flagged_clean.mean()) / 2
    assert accuracy > 0.75, f"held-out detection accuracy {accuracy:.2f}"


def test_gallery_must_exist_for_ranking_objectives(digits: Digits) -> None:
    est = RankingEstimator(digits.model, (1, 8, 8))
    cand, qy = _ca_task(digits, 2)
    with pytest.raises(ValueError, match="build_gallery"):
        est.loss_gradient(cand, qy)
    with pytest.raises(ValueError, match="build_gallery"):
        CandidateAttackART(est).generate(cand, qy)
    assert isinstance(est.build_gallery(digits.x), Gallery)
    assert est.loss_gradient(cand, qy).shape == cand.shape


def test_loss_cache_never_matches_a_new_y(digits: Digits) -> None:
    """A fresh y allocated where a freed one lived must get its own loss."""
    est = digits.est
    x = torch.from_numpy(digits.x[:3])
    gallery = Gallery(torch.from_numpy(est.predict(digits.x)))
    for seed in range(20):
        y = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(seed))
        got = est.loss_gradient(x, y)
        xg = x.clone().requires_grad_(True)
        CandidateObjective(gallery, y)(digits.model(xg)).sum().backward()
        torch.testing.assert_close(got, xg.grad, rtol=1e-4, atol=1e-7)
        del y
