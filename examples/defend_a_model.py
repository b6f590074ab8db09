"""Defend a ranking model with the embedding-shift defense and measure what it buys.

Every ranking attack works by moving embeddings. The paper's defense (Zhou et al., ECCV
2020, Sec. 3.3, Eq. 13) trains on the maximum-shift adversaries
``x + argmax_{|r|_inf <= eps} d(f(x + r), f(x))`` of every training image, so that no
small perturbation can move an embedding far. The script trains the same C2F1 network
on scikit-learn's digits twice with ``rankattack.training.train`` -- vanilla, then with
``TrainConfig(defense="embedding-shift")`` -- and compares, on the test half (the
gallery X): R@1; the mean maximum embedding shift an L-inf perturbation of eps achieves
(``MaxShiftAttack``, cosine distance, also relative to the mean distance between two
gallery items); and the mean normalized rank (%) of random candidates before and after a
CA+ attack (Eq. 4) towards a random query. The defense's adversary takes 4 PGD steps of
0.1 within eps = 0.3, a cheaper stand-in for the paper's 30 steps of 0.01.

    python examples/defend_a_model.py            # 16 epochs each, 200 test inputs
    python examples/defend_a_model.py --tiny     # a few seconds
"""

from __future__ import annotations

import argparse
import time

import torch

from rankattack import CandidateAttack, Gallery, MaxShiftAttack
from rankattack.data import load_digits
from rankattack.metrics import recall_at_k
from rankattack.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--epochs", type=int, default=16, help="training epochs per model")
    parser.add_argument("--train-eps", type=float, default=0.3, help="the defense's eps")
    parser.add_argument("--train-alpha", type=float, default=0.1, help="its PGD step")
    parser.add_argument("--train-steps", type=int, default=4, help="its PGD iterations")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.3], help="attack eps")
    parser.add_argument("--n", type=int, default=200, help="attacked test inputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.tiny:
        args.epochs, args.n = 2, 30
    torch.set_num_threads(args.threads)  # one thread is fastest for a model this small

    data = load_digits(image_size=8, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    n = min(args.n, len(data.test_x))
    cand = torch.randperm(len(data.test_x), generator=gen)[:n]
    query = torch.randint(0, len(data.test_x), (n, 1), generator=gen)
    pairs = torch.randint(0, len(data.test_x), (2, 2000), generator=gen)

    print(
        f"C2F1 on digits ({len(data.train_x)} training images, |X| = {len(data.test_x)}), "
        f"defense: eps = {args.train_eps}, {args.train_steps} steps of {args.train_alpha}"
    )
    print(
        f"{'model':<16} {'R@1':>6} {'train':>6} | {'eps':>4} | {'max shift':>9} "
        f"{'relative':>8} | {'CA+ before':>10} {'after':>6}"
    )
    for name, defense in (("vanilla", None), ("embedding-shift", "embedding-shift")):
        config = TrainConfig(
            model="c2f1",
            embedding_dim=32,
            batch_size=64,
            lr=2e-3,
            epochs=args.epochs,
            seed=args.seed,
            defense=defense,
            eps=args.train_eps,
            alpha=args.train_alpha,
            steps=args.train_steps,
        )
        start = time.perf_counter()
        model = train(config, data.train_x, data.train_y, progress=False).model
        seconds = time.perf_counter() - start
        device = next(model.parameters()).device
        x, y = data.test_x.to(device), data.test_y.to(device)
        gallery = Gallery.from_inputs(model, x, y, metric="cosine")
        emb = gallery.embeddings
        spread = float(gallery.distance(emb[pairs[0]], emb[pairs[1]]).mean())
        r1 = recall_at_k(gallery, (1,))[1]
        for i, eps in enumerate(args.eps):
            torch.manual_seed(args.seed)  # MaxShiftAttack starts from a small random jitter
            shift = float(MaxShiftAttack(model, eps=eps).run(x[cand]).shift.mean())
            ca = CandidateAttack(model, gallery, "raise", eps=eps).run(x[cand], x[query])
            head = f"{name:<16} {100 * r1:>5.1f}% {seconds:>5.1f}s" if i == 0 else " " * 30
            print(
                f"{head} | {eps:>4.2f} | {shift:>9.3f} {shift / spread:>8.2f} | "
                f"{100 * float(ca.rank_before.mean()):>10.1f} "
                f"{100 * float(ca.rank_after.mean()):>6.1f}"
            )


if __name__ == "__main__":
    main()
