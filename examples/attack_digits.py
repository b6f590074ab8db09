"""Attack a small ranking model on scikit-learn's digits with CA+, CA-, QA+ and QA-.

Trains the paper's C2F1 network with the cosine triplet loss (Eq. 3) for a few seconds
(:mod:`rankattack.training`), uses the digits' test half as the gallery X, then runs
the four attacks of the paper -- CA+ (Eq. 4), CA- (Eq. 7), SP-QA+ and SP-QA- (Eq. 12)
-- at several eps with w = m = 1 and prints the mean normalized ranks (%) in the layout
of the paper's tables. CA+ and QA+ pair each input with a random partner; CA- and QA-
pair it with one from its top 1%.

    python examples/attack_digits.py            # 200 attacks per cell, 16x16 digits
    python examples/attack_digits.py --tiny     # a few seconds
"""

from __future__ import annotations

import argparse

import torch
from _digits import top_fraction_indices, train_digits

from rankattack import CandidateAttack, QueryAttack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--samples", type=int, default=200, help="attacks per cell (T)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.0, 0.01, 0.03, 0.1, 0.3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.tiny:
        args.samples, args.epochs, args.image_size = 20, 2, 8
    torch.set_num_threads(args.threads)  # one thread is fastest for a model this small

    digits = train_digits(args.epochs, image_size=args.image_size, seed=args.seed)
    model, gallery, x = digits.model, digits.gallery, digits.test_x
    print(
        f"C2F1 trained in {digits.seconds:.1f} s; gallery |X| = {len(gallery)}, "
        f"R@1 = {digits.recall_at_1:.1%}"
    )

    gen = torch.Generator().manual_seed(args.seed)
    n = min(args.samples, len(gallery))
    cand = torch.randperm(len(gallery), generator=gen)[:n].to(x.device)
    rand = torch.randint(0, len(gallery), (n, 1), generator=gen).to(x.device)
    top = top_fraction_indices(gallery, cand, 0.01, gen)  # CA- queries / QA- candidates

    print(f"\nmean normalized rank (%), w = m = 1, T = {n}")
    print(f"{'eps':>6} {'CA+':>8} {'CA-':>8} {'QA+':>8} {'QA-':>8}")
    for eps in args.eps:
        cells = [
            CandidateAttack(model, gallery, "raise", eps=eps).run(x[cand], x[rand]),
            CandidateAttack(model, gallery, "lower", eps=eps).run(x[cand], x[top]),
            QueryAttack(model, gallery, "raise", eps=eps).run(
                x[cand], candidate_indices=rand, query_indices=cand
            ),
            QueryAttack(model, gallery, "lower", eps=eps).run(
                x[cand], candidate_indices=top, query_indices=cand
            ),
        ]
        ranks = " ".join(f"{100 * float(c.rank_after.mean()):8.1f}" for c in cells)
        print(f"{eps:>6} {ranks}")


if __name__ == "__main__":
    main()
