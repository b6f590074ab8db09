"""How much of a ranking attack survives ART's preprocessing defences?

A retrieval system can put an input transformation in front of its embedding model:
ART's ``FeatureSqueezing``, ``SpatialSmoothing`` or ``JpegCompression``. With
``RankingEstimator(model, preprocessing_defences=...)`` the defence runs before the model
for the gallery and for every ranked input, and its gradient is ART's estimate (BPDA:
the identity for these three).

The script trains a small C2F1 retrieval model on scikit-learn's digits (the shared
``_digits.train_digits``, i.e. ``rankattack.training``), attacks candidates with CA+
(Zhou et al., ECCV 2020, Eq. 4) and, for each
defence, measures the rank change that survives: (1) *transfer*, adversaries made on the
undefended model and ranked by the defended system; (2) *adaptive*, adversaries made
through the defence (BPDA). It also reports each defence's R@1, its cost on clean
retrieval.

    python examples/art_preprocessing_defences.py            # 500 candidates, eps = 0.1
    python examples/art_preprocessing_defences.py --tiny     # a few seconds
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _digits import train_digits
from art.defences.preprocessor import FeatureSqueezing, JpegCompression, SpatialSmoothing

from rankattack.art import CandidateAttackART, RankingEstimator
from rankattack.metrics import recall_at_k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=6, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.tiny:
        args.candidates, args.epochs = 50, 2
    torch.set_num_threads(args.threads)  # one thread is fastest for a model this small

    digits = train_digits(args.epochs, seed=args.seed)
    model = digits.model
    x_gal, labels = digits.test_x.cpu().numpy(), digits.test_y.cpu().numpy()
    rng = np.random.default_rng(args.seed)
    cand_idx = rng.choice(len(x_gal), args.candidates, replace=False)
    query_idx = torch.from_numpy(rng.integers(0, len(x_gal), (args.candidates, 1)))
    cand, queries = x_gal[cand_idx], x_gal[query_idx.numpy()]  # queries: [N, 1, 1, 8, 8]

    undefended = RankingEstimator(model, input_shape=(1, 8, 8))
    undefended.build_gallery(x_gal, labels)
    transfer_adv = CandidateAttackART(undefended, eps=args.eps).generate(cand, queries=queries)

    defences = {
        "none": None,
        "FeatureSqueezing(bit_depth=2)": FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=2),
        "SpatialSmoothing(window=3)": SpatialSmoothing(window_size=3, channels_first=True),
        "JpegCompression(quality=50)": JpegCompression(
            clip_values=(0.0, 1.0), quality=50, channels_first=True
        ),
    }
    print(
        f"CA+ on digits (|X| = {len(x_gal)}, N = {args.candidates}, w = 1, eps = {args.eps}); "
        f"ranks are mean normalized ranks (0% = top), survival = rank change kept"
    )
    print(
        f"{'defence':<30} {'R@1':>6} | {'clean':>6} | {'transfer':>8} {'survives':>8} | "
        f"{'adaptive':>8} {'survives':>8}"
    )
    reference = 0.0
    for name, defence in defences.items():
        est = RankingEstimator(model, input_shape=(1, 8, 8), preprocessing_defences=defence)
        gallery = est.build_gallery(x_gal, labels)
        y = est.predict_sets(queries)  # the queries as the defended system embeds them
        clean = float(est.ranks(cand, y).mean())
        transfer = float(est.ranks(transfer_adv, y).mean())
        adaptive_adv = CandidateAttackART(est, eps=args.eps).generate(cand, y)
        adaptive = float(est.ranks(adaptive_adv, y).mean())
        if defence is None:
            reference = clean - transfer
        print(
            f"{name:<30} {100 * recall_at_k(gallery, (1,))[1]:>5.1f}% | {100 * clean:>5.1f}% | "
            f"{100 * transfer:>7.1f}% {100 * (clean - transfer) / reference:>7.0f}% | "
            f"{100 * adaptive:>7.1f}% {100 * (clean - adaptive) / reference:>7.0f}%"
        )


if __name__ == "__main__":
    main()
