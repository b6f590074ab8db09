"""Detect ranking adversaries with ART's BinaryInputDetector.

A Candidate Attack (CA+, Zhou et al., ECCV 2020, Eq. 4) perturbs gallery candidates so
that they climb a retrieval system's rankings. Here rankattack's ``CandidateAttackART``
makes such candidates for a small model trained on scikit-learn's digits, and ART's
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
from art.defences.detector.evasion import BinaryInputDetector
from art.estimators.classification import PyTorchClassifier
from torch import nn

from rankattack import get_distance
from rankattack.art import CandidateAttackART, RankingEstimator


def digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits in [0, 1]: a 1200-image training split and the rest."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy((data.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(data.target.astype(np.int64))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[perm[:1200]], y[perm[:1200]], x[perm[1200:]], y[perm[1200:]]


def train(x: torch.Tensor, y: torch.Tensor, steps: int, seed: int) -> nn.Module:
    """A small embedding MLP trained with the cosine triplet loss (paper Eq. 3)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32))
    dist, opt = get_distance("cosine"), torch.optim.Adam(model.parameters(), lr=2e-3)
    order, counts = torch.argsort(y), torch.bincount(y, minlength=10)
    starts = torch.cumsum(counts, 0) - counts
    for _ in range(steps):
        a = torch.randint(0, len(x), (128,), generator=gen)
        pos = order[starts[y[a]] + (torch.rand(128, generator=gen) * counts[y[a]]).long()]
        neg = torch.randint(0, len(x), (128,), generator=gen)
        ea, ep, en = model(x[a]), model(x[pos]), model(x[neg])
        loss = (0.2 + dist(ea, ep) - dist(ea, en)).clamp_min(0)[y[neg] != y[a]].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


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
        device_type="cpu",
    )
    return BinaryInputDetector(classifier)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--candidates", type=int, default=1000, help="candidates (half to fit)")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.03, 0.1])
    parser.add_argument("--epochs", type=int, default=30, help="detector training epochs")
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.tiny:
        args.candidates, args.train_steps, args.epochs, args.eps = 300, 150, 20, [0.03]
    torch.set_num_threads(args.threads)

    x_train, y_train, x_test, y_test = digits(args.seed)
    model = train(x_train, y_train, args.train_steps, args.seed)
    est = RankingEstimator(model, input_shape=(1, 8, 8))
    gallery = est.build_gallery(x_test.numpy(), y_test.numpy())

    # candidates may repeat (the gallery holds 597 images); one random query each (CA+)
    rng = np.random.default_rng(args.seed)
    n, half = args.candidates, args.candidates // 2
    cand = x_test.numpy()[rng.integers(0, len(x_test), n)]
    y = gallery.embeddings[torch.from_numpy(rng.integers(0, len(gallery), (n, 1)))].numpy()
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
