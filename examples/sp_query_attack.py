"""QA- with semantics preservation: hide chosen results, keep the rest of the list in place.

The Query Attack perturbs a query q so that its chosen candidates C drop out of its top
results (QA-, Zhou et al., ECCV 2020, Eq. 9). Naively done, the whole result list
changes and the attack is easy to spot. The Semantics-Preserving term (Eq. 12) adds
``xi * L_QA+(q, C_SP; X)``, which keeps C_SP -- the query's G = 5 nearest other results
-- at the top. The script picks, for random queries from the digits' test half, one
candidate from each query's top 1% and runs QA- for xi in {0, 1, 100} (100 is the
paper's default for QA-), printing the mean normalized ranks of C and of C_SP before
and after, as in the paper's xi search (Sec. 5.3, Table 7): raising xi trades some of
C's drop for a stable C_SP.

    python examples/sp_query_attack.py            # 200 queries, eps 0.1 and 0.3
    python examples/sp_query_attack.py --tiny     # a few seconds
"""

from __future__ import annotations

import argparse

import torch
from _digits import top_fraction_indices, train_digits

from rankattack import QueryAttack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--xi", type=float, nargs="+", default=[0.0, 1.0, 100.0])
    parser.add_argument("--sp-size", type=int, default=5, help="G, the size of C_SP")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.tiny:
        args.queries, args.epochs, args.eps = 30, 2, [0.3]
    torch.set_num_threads(args.threads)  # one thread is fastest for a model this small

    digits = train_digits(args.epochs, seed=args.seed)
    model, gallery, x = digits.model, digits.gallery, digits.test_x
    gen = torch.Generator().manual_seed(args.seed)
    n = min(args.queries, len(gallery))
    q = torch.randperm(len(gallery), generator=gen)[:n].to(x.device)
    c = top_fraction_indices(gallery, q, 0.01, gen)  # [N, 1]: one of q's top 1%

    print(
        f"SP-QA- on digits (|X| = {len(gallery)}, R@1 = {digits.recall_at_1:.1%}): {n} queries, "
        f"m = 1 candidate from each query's top 1%, G = {args.sp_size}"
    )
    print("mean normalized rank (%): C should go down the list, C_SP should stay at the top")
    print(
        f"{'eps':>5} {'xi':>6} | {'C before':>8} {'C after':>8} | "
        f"{'C_SP before':>11} {'C_SP after':>10}"
    )
    for eps in args.eps:
        for xi in args.xi:
            attack = QueryAttack(model, gallery, "lower", eps=eps, xi=xi, sp_size=args.sp_size)
            # query_indices: each query's own gallery copy is kept out of C_SP
            res = attack.run(x[q], candidate_indices=c, query_indices=q)
            assert res.sp_rank_before is not None and res.sp_rank_after is not None
            print(
                f"{eps:>5.2f} {xi:>6g} | {100 * float(res.rank_before.mean()):>8.2f} "
                f"{100 * float(res.rank_after.mean()):>8.2f} | "
                f"{100 * float(res.sp_rank_before.mean()):>11.2f} "
                f"{100 * float(res.sp_rank_after.mean()):>10.2f}"
            )


if __name__ == "__main__":
    main()
