"""Detect ranking adversaries with ART's BinaryInputDetector.

A Candidate Attack (CA+, Zhou et al., ECCV 2020, Eq. 4) perturbs gallery candidates so
that they climb a retrieval system's rankings. Here rankattack's ``CandidateAttackART``
makes such candidates for a small C2F1 model trained on scikit-learn's digits (the
shared ``_digits.train_digits``, i.e. ``rankattack.training``), and ART's
``BinaryInputDetector`` (a small CNN wrapped in ``PyTorchClassifier``) learns to tell them
from clean ones. The script reports, per eps, the attack's rank change and the
detector's rates on held-out candidates.

    python examples/art_detector.py            # 1000 candidates, eps in {0.01, 0.03, 0.1}
    python examples/art_detector.py --tiny     # a few seconds
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _digits import train_digits
from art.defences.detector.evasion import BinaryInputDetector
from art.estimators.classification import PyTorchClassifier
from torch import nn

from rankattack.art import CandidateAttackART, RankingEstimator


def make_detector(seed: int) -> BinaryInputDetector:
    """ART's BinaryInputDetector around a small CNN (clean = class 0, adversarial = 1)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 2)
    )
    classifier = PyTorchClassifier(
        net,
        loss=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(net.parameters(), lr=1e-2),
        input_shape=(1, 8, 8),
        nb_classes=2,
        clip_values=(0.0, 1.0),
        device_type="gpu" if torch.cuda.is_available() else "cpu",
    )
    return BinaryInputDetector(classifier)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--candidates", type=int, default=1000, help="candidates (half to fit)")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.03, 0.1])
    parser.add_argument("--epochs", type=int, default=30, help="detector training epochs")
    parser.add_argument("--train-epochs", type=int, default=6, help="ranking model epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.tiny:
        args.candidates, args.train_epochs, args.epochs, args.eps = 200, 2, 10, [0.03]
    torch.set_num_threads(args.threads)  # one thread is fastest for models this small

    digits = train_digits(args.train_epochs, seed=args.seed)
    x_test, y_test = digits.test_x.cpu().numpy(), digits.test_y.cpu().numpy()
    est = RankingEstimator(digits.model, input_shape=(1, 8, 8))
    gallery = est.build_gallery(x_test, y_test)

    # candidates may repeat (the gallery holds 901 images); one random query each (CA+)
    rng = np.random.default_rng(args.seed)
    n, half = args.candidates, args.candidates // 2
    cand = x_test[rng.integers(0, len(x_test), n)]
    q = torch.from_numpy(rng.integers(0, len(gallery), (n, 1)))
    y = gallery.embeddings[q.to(gallery.embeddings.device)].cpu().numpy()
    before = float(est.ranks(cand, y).mean())

    print(
        f"CA+ candidates on digits (|X| = {len(gallery)}): {half} clean + {half} adversarial "
        f"to fit the detector, {n - half} + {n - half} held out"
    )
    print(
        f"{'eps':>6} | {'rank before':>11} {'after':>7} | {'detection rate':>14} "
        f"{'false alarms':>12} {'accuracy':>8}"
    )
    for eps in args.eps:
        adv = CandidateAttackART(est, direction="raise", eps=eps).generate(cand, y)
        after = float(est.ranks(adv, y).mean())
        detector = make_detector(args.seed)
        x_fit = np.concatenate([cand[:half], adv[:half]])
        labels = np.eye(2, dtype=np.float32)[[0] * half + [1] * half]
        detector.fit(x_fit, labels, nb_epochs=args.epochs, batch_size=64)
        _, flagged_adv = detector.detect(adv[half:])
        _, flagged_clean = detector.detect(cand[half:])
        tpr, fpr = float(flagged_adv.mean()), float(flagged_clean.mean())
        print(
            f"{eps:>6.3f} | {100 * before:>10.1f}% {100 * after:>6.1f}% | {100 * tpr:>13.1f}% "
            f"{100 * fpr:>11.1f}% {100 * (tpr + 1 - fpr) / 2:>7.1f}%"
        )


if __name__ == "__main__":
    main()
