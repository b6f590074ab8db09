"""ART's ProjectedGradientDescent as a CA+ attack, through rankattack's ART estimator.

With ``RankingEstimator(objective="candidate")`` the estimator's loss is the CA+ hinge
loss (Zhou et al., ECCV 2020, Eq. 4) and ``targeted=True`` makes ART descend it: ART's
own PGD becomes a Candidate Attack. This script runs it beside rankattack's
``CandidateAttack`` with the same eps, step size and iterations (the paper's schedule)
on a small C2F1 retrieval model trained on scikit-learn's digits (the shared
``_digits.train_digits``, i.e. ``rankattack.training``), and prints the rank change and
the time of each.

    python examples/art_pgd_as_ca.py            # 500 candidates, eps in {0.01, 0.03, 0.1, 0.3}
    python examples/art_pgd_as_ca.py --tiny     # a few seconds
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
from _digits import train_digits
from art.attacks.evasion import ProjectedGradientDescent

from rankattack import CandidateAttack
from rankattack.art import CandidateAttackART, RankingEstimator
from rankattack.pgd import default_alpha, default_steps

T = TypeVar("T")


def timed(
    repeat: int,
    fn: Callable[..., T],
    *args: Any,
    setup: Callable[[], object] | None = None,
    **kwargs: Any,
) -> tuple[T, float]:
    """Result of ``fn(*args, **kwargs)`` and its best wall time over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--candidates", type=int, default=500, help="attacked candidates")
    parser.add_argument("--w", type=int, default=1, help="queries per candidate")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3])
    parser.add_argument("--epochs", type=int, default=6, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeat", type=int, default=3, help="timing: best of this many runs")
    args = parser.parse_args()
    if args.tiny:
        args.candidates, args.epochs, args.eps, args.repeat = 100, 2, [0.1], 1
    torch.set_num_threads(args.threads)  # one thread is fastest for a model this small

    digits = train_digits(args.epochs, seed=args.seed)
    model, device = digits.model, digits.test_x.device
    x_test, y_test = digits.test_x.cpu().numpy(), digits.test_y.cpu().numpy()
    est = RankingEstimator(model, input_shape=(1, 8, 8))
    gallery = est.build_gallery(x_test, y_test)

    # CA+ as in the paper's protocol: random candidates, w random gallery queries each
    rng = np.random.default_rng(args.seed)
    cand = x_test[rng.choice(len(x_test), args.candidates, replace=False)]
    q_idx = torch.from_numpy(rng.integers(0, len(gallery), (args.candidates, args.w)))
    y_emb = gallery.embeddings[q_idx.to(device)]  # [N, w, D]: the estimator's "candidate" y
    y = y_emb.cpu().numpy()
    before = float(est.ranks(cand, y).mean())

    print(
        f"CA+ on digits (|X| = {len(gallery)}, N = {args.candidates}, w = {args.w}), "
        f"mean normalized rank before: {100 * before:.1f}%"
    )
    print(
        f"{'eps':>6} {'alpha':>7} {'steps':>5} | {'ART PGD':>8} {'time':>7} | "
        f"{'CandidateAttackART':>18} {'time':>7} | {'CandidateAttack':>15} {'time':>7}"
    )
    for eps in args.eps:
        alpha, steps = default_alpha(eps), default_steps(eps, default_alpha(eps))
        pgd = ProjectedGradientDescent(
            est,
            eps=eps,
            eps_step=alpha,
            max_iter=steps,
            targeted=True,
            batch_size=args.candidates,
            verbose=False,
        )
        art_adv, art_t = timed(args.repeat, pgd.generate, cand, y, setup=est.clear_cache)
        adapter = CandidateAttackART(est, eps=eps, eps_step=alpha, max_iter=steps)
        ada_adv, ada_t = timed(args.repeat, adapter.generate, cand, y, setup=est.clear_cache)
        core = CandidateAttack(model, gallery, "raise", eps=eps, alpha=alpha, steps=steps)
        core_adv, core_t = timed(
            args.repeat, core, torch.from_numpy(cand).to(device), query_embeddings=y_emb
        )
        adversarial = (art_adv, ada_adv, core_adv.cpu().numpy())
        ranks = [float(est.ranks(a, y).mean()) for a in adversarial]
        print(
            f"{eps:>6.3f} {alpha:>7.4f} {steps:>5d} | {100 * ranks[0]:>7.1f}% {art_t:>6.2f}s | "
            f"{100 * ranks[1]:>17.1f}% {ada_t:>6.2f}s | {100 * ranks[2]:>14.1f}% {core_t:>6.2f}s"
        )


if __name__ == "__main__":
    main()
