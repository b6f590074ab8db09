"""Black-box by transfer: adversarial examples made on one model, ranked by another.

An attacker without access to a retrieval system's model can attack a model of their
own and count on the adversarial examples transferring (Zhou et al., ECCV 2020, Sec.
5.1, Tables 5 and 12). The script trains small ranking models on scikit-learn's digits
with ``rankattack.training`` -- two C2F1 networks from different seeds and a LeNet -- runs
CA+ (Eq. 4) and SP-QA+ (Eq. 12) white-box on each, and ranks every model's adversarial
examples in every model's own gallery of the same test digits
(``rankattack.transfer.transfer_matrix``). Rows: the model attacked; columns: the model
ranking; cells: mean normalized rank (%) before->after; the diagonal is white-box.

    python examples/transfer_attack.py            # 3 models, 200 inputs, CA+ and QA+
    python examples/transfer_attack.py --tiny     # a few seconds: 2 models, CA+ only
"""

from __future__ import annotations

import argparse

import torch
from _digits import train_digits

from rankattack.transfer import attack_factory, transfer_matrix

#: name -> (architecture, training seed)
MODELS = {"C2F1": ("c2f1", 0), "C2F1-s1": ("c2f1", 1), "LeNet": ("lenet", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--attacks", nargs="+", default=["CA+", "QA+"], choices=["CA+", "QA+"])
    parser.add_argument("--n", type=int, default=200, help="attacked inputs")
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--epochs", type=int, default=6, help="training epochs per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.tiny:
        args.models, args.attacks, args.n, args.epochs = ["C2F1", "LeNet"], ["CA+"], 30, 2
    torch.set_num_threads(args.threads)  # one thread is fastest for models this small

    models, galleries = {}, {}
    for name in args.models:
        arch, offset = MODELS[name]
        # one split of the digits (the same X for every model); training seeds differ
        digits = train_digits(args.epochs, model=arch, seed=args.seed + offset)
        models[name], galleries[name] = digits.model, digits.gallery
        print(f"{name:<8} {arch} (seed {args.seed + offset}): R@1 = {digits.recall_at_1:.1%}")
    x = digits.test_x

    gen = torch.Generator().manual_seed(args.seed)
    n = min(args.n, len(x))
    inputs = torch.randperm(len(x), generator=gen)[:n].to(x.device)
    partners = torch.randint(0, len(x), (n, 1), generator=gen).to(x.device)
    for name in args.attacks:
        factory = attack_factory(name, eps=args.eps)
        if name == "CA+":  # perturb candidates towards a random query each (w = 1)
            res = transfer_matrix(models, factory, x[inputs], queries=x[partners],
                                  galleries=galleries)  # fmt: skip
        else:  # perturb queries towards a random candidate each (m = 1)
            res = transfer_matrix(models, factory, x[inputs], candidate_indices=partners,
                                  query_indices=inputs, galleries=galleries)  # fmt: skip
        what = "candidates" if name == "CA+" else "queries"
        print(f"\n{name} transfer, eps = {args.eps}, {n} {what}, ranks before->after (%)")
        print(res.table())


if __name__ == "__main__":
    main()
