"""One perturbation for every candidate: a universal I-CA+ attack, fitted and then reused.

A universal adversarial perturbation is image-agnostic: fitted once, it is added to
inputs it has never seen. ``UniversalRankAttack`` (Zhou et al., ECCV 2020, Sec. 5.2,
Eq. 14) learns one ``r`` with ``|r|_inf <= eps`` so that adding it to any candidate
raises the candidate's rank for a target query (I-CA+). The script draws one random
query per trial, fits ``r`` on "seen" candidates from the digits' test half and applies
it to as many disjoint "unseen" ones, as in the paper's Table 6; a random-sign
perturbation of the same eps is the control. Ranks are mean normalized ranks (%, 0 =
top of the list), averaged over the trials.

    python examples/universal_perturbation.py            # 3 trials, 200 seen + 200 unseen
    python examples/universal_perturbation.py --tiny     # a few seconds
"""

from __future__ import annotations

import argparse

import torch
from _digits import train_digits

from rankattack.attacks.universalrankattack import UniversalRankAttack, evaluate_seen_unseen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--n", type=int, default=200, help="seen (and unseen) candidates")
    parser.add_argument("--trials", type=int, default=3, help="target queries")
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--steps", type=int, default=100, help="PGD steps of 2/255")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.tiny:
        # three trials: a single random-sign control can raise the ranks by chance
        args.n, args.trials, args.steps, args.epochs = 50, 3, 20, 2
    torch.set_num_threads(args.threads)  # one thread is fastest for a model this small

    digits = train_digits(args.epochs, seed=args.seed)
    model, gallery, x = digits.model, digits.gallery, digits.test_x
    attack = UniversalRankAttack(
        model, gallery, target="candidate", direction="raise", eps=args.eps, steps=args.steps
    )
    print(attack)  # the parameters, for the record
    gen = torch.Generator().manual_seed(args.seed)
    sums = torch.zeros(6, dtype=torch.float64)
    for _ in range(args.trials):
        perm = torch.randperm(len(gallery), generator=gen).to(x.device)
        query, seen, unseen = perm[0], perm[1 : args.n + 1], perm[args.n + 1 : 2 * args.n + 1]
        q_emb = gallery.embeddings[query]  # the shared target query (w = 1)
        res = evaluate_seen_unseen(
            attack,
            {"inputs": x[seen], "query_embeddings": q_emb.expand(len(seen), 1, -1)},
            {"inputs": x[unseen], "query_embeddings": q_emb.expand(len(unseen), 1, -1)},
        )
        noise = args.eps * torch.randn(x.shape[1:], generator=gen).sign().to(x.device)
        control = UniversalRankAttack(model, gallery, eps=args.eps)
        control.perturbation = noise
        ctrl = control.evaluate(x[unseen], query_embeddings=q_emb.expand(len(unseen), 1, -1))
        sums += torch.tensor(
            [
                res.seen.mean_before,
                res.seen.mean_after,
                res.unseen.mean_before,
                res.unseen.mean_after,
                ctrl.mean_before,
                ctrl.mean_after,
            ],
            dtype=torch.float64,
        )
    m = (100 * sums / args.trials).tolist()
    print(
        f"\nI-CA+ on digits (|X| = {len(gallery)}), eps = {args.eps}, {args.trials} trial(s), "
        f"{args.n} seen + {args.n} unseen candidates each"
    )
    print(f"{'perturbation':<22} {'inputs':<7} | {'before':>6} {'after':>6}")
    print(f"{'universal (fitted)':<22} {'seen':<7} | {m[0]:>6.1f} {m[1]:>6.1f}")
    print(f"{'universal (fitted)':<22} {'unseen':<7} | {m[2]:>6.1f} {m[3]:>6.1f}")
    print(f"{'random signs (control)':<22} {'unseen':<7} | {m[4]:>6.1f} {m[5]:>6.1f}")


if __name__ == "__main__":
    main()
