"""ART's ProjectedGradientDescent as a CA+ attack, through rankattack's ART estimator.

With ``RankingEstimator(objective="candidate")`` the estimator's loss is the CA+ hinge
loss (Zhou et al., ECCV 2020, Eq. 4) and ``targeted=True`` makes ART descend it: ART's
own PGD becomes a Candidate Attack. This script runs it beside rankattack's
``CandidateAttack`` with the same eps, step size and iterations (the paper's schedule)
on a small retrieval model trained on scikit-learn's digits, and prints the rank change
and the time of each.

    python examples/art_pgd_as_ca.py            # 500 candidates, eps in {0.01, 0.03, 0.1, 0.3}
    python examples/art_pgd_as_ca.py --tiny     # a few seconds
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from torch import nn

from rankattack import CandidateAttack, get_distance
from rankattack.art import CandidateAttackART, RankingEstimator
from rankattack.pgd import default_alpha, default_steps


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


def timed(
    repeat: int, fn: object, *args: object, setup: object = None, **kwargs: object
) -> tuple[object, float]:
    """Result of ``fn(*args, **kwargs)`` and its best wall time over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        if setup is not None:
            setup()  # type: ignore[operator]
        start = time.perf_counter()
        out = fn(*args, **kwargs)  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--candidates", type=int, default=500, help="attacked candidates")
    parser.add_argument("--w", type=int, default=1, help="queries per candidate")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3])
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeat", type=int, default=3, help="timing: best of this many runs")
    args = parser.parse_args()
    if args.tiny:
        args.candidates, args.train_steps, args.eps, args.repeat = 100, 150, [0.03, 0.1], 1
    torch.set_num_threads(args.threads)

    x_train, y_train, x_test, y_test = digits(args.seed)
    model = train(x_train, y_train, args.train_steps, args.seed)
    est = RankingEstimator(model, input_shape=(1, 8, 8))
    gallery = est.build_gallery(x_test.numpy(), y_test.numpy())

    # CA+ as in the paper's protocol: random candidates, w random gallery queries each
    rng = np.random.default_rng(args.seed)
    cand = x_test.numpy()[rng.choice(len(x_test), args.candidates, replace=False)]
    q_idx = torch.from_numpy(rng.integers(0, len(gallery), (args.candidates, args.w)))
    y = gallery.embeddings[q_idx].numpy()  # [N, w, D]: the estimator's "candidate" y
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
            args.repeat, core, torch.from_numpy(cand), query_embeddings=torch.from_numpy(y)
        )
        assert isinstance(core_adv, torch.Tensor)
        ranks = [float(est.ranks(a, y).mean()) for a in (art_adv, ada_adv, core_adv.numpy())]
        print(
            f"{eps:>6.3f} {alpha:>7.4f} {steps:>5d} | {100 * ranks[0]:>7.1f}% {art_t:>6.2f}s | "
            f"{100 * ranks[1]:>17.1f}% {ada_t:>6.2f}s | {100 * ranks[2]:>14.1f}% {core_t:>6.2f}s"
        )


if __name__ == "__main__":
    main()
