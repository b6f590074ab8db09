"""What a defended training epoch costs against a vanilla one: EST, ACT and HM on C2F2.

Target (issue "defenses of the field"): a defended epoch costs at most
``1.15 x (steps + 1)`` vanilla epochs, ``steps`` being the adversary's PGD iterations: a
defended step runs ``steps`` forward/backward passes to the input (parameters frozen) plus
about one training step.

Setup: Fashion-MNIST-shaped data (random 28x28 images in [0, 1], 10 classes; the timing does
not depend on the pixels), robrank's C2F2 and recipe (batches of 256 images in same-class
pairs, Adam), each defense with the training loop's defaults (:func:`TrainConfig`: 77/255,
3/255, 32 steps; ACT with robrank's SPC-2 miner, HM with its soft-hard miner, EST with one
triplet per image) and the vanilla model with the default miner. Every variant runs the
training loop's own step (:func:`rankattack.training.train_step` with the config's defense).

The variants take turns in one process: each round times ``--batches`` batches of every
variant (in a rotating order), so a slow spell of the machine hits them all alike. Reported:
seconds per batch (best and median over the rounds) and the ratio defended / vanilla of the
best times, against the bound.

HM stops perturbing a triplet once it reaches the destination hardness (exact: its gradient is
zero from then on), so its cost depends on the model: on this untrained model most mined
triplets start at or past the destination. The row ``hm-unpruned`` makes every triplet take
every step (the reference implementation's cost): HM perturbs the anchor, positive and negative
of each of its 128 triplets, 384 images per PGD step against 256 for EST, hence about 1.5x
EST's ratio. The per-epoch time of a real training run is in
docs/results/robustness-fashion-mnist.md.

Run: ``nice -n 10 python benchmarks/defense_overhead.py --threads 1 --clock cpu`` (a few
minutes; ``--steps 8`` for a quicker look, ``--json FILE`` to keep the figures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from rankattack.defenses import HardnessManipulationDefense
from rankattack.models import build_model
from rankattack.training import ClassBalancedSampler, TrainConfig, make_defense, train_step


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--defenses", default="est,act,hm,hm-unpruned", help="comma-separated (default: all)"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=2, help="batches per variant and round")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=None, help="PGD steps (default: 32)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    clock: Callable[[], float] = time.process_time if args.clock == "cpu" else time.perf_counter
    gen = torch.Generator().manual_seed(args.seed)
    n = args.batch_size * args.batches
    x = torch.rand(n, 1, 28, 28, generator=gen)
    y = torch.arange(10).repeat(n // 10 + 1)[:n]
    batches = ClassBalancedSampler(y, args.batch_size, 2).epoch(gen)
    names = ["vanilla", *[d for d in args.defenses.split(",") if d]]
    setups = {}
    for name in names:
        defense = None if name == "vanilla" else name.removesuffix("-unpruned")
        steps = None if defense is None else args.steps
        cfg = TrainConfig(model="c2f2", batch_size=args.batch_size, defense=defense, steps=steps)
        torch.manual_seed(args.seed)
        model = build_model("c2f2").train()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        made = make_defense(cfg, torch.Generator().manual_seed(0))
        if isinstance(made, HardnessManipulationDefense) and name.endswith("-unpruned"):
            made.prune = False
        setups[name] = (cfg, model, opt, made)

    def run(name: str, count: int) -> float:
        _, model, opt, defense = setups[name]
        start = clock()
        for idx in batches[:count]:
            loss = train_step(model, None, opt, x[idx], None, defense, labels=y[idx])
            float(loss)
        return (clock() - start) / count

    for name in names:  # warm-up
        run(name, 1)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(run(name, args.batches))
            print(f"round {r + 1}: {name} {times[name][-1]:.3f} s/batch", flush=True)
    vanilla = min(times["vanilla"])
    rows = {}
    print(f"\nC2F2, batch {args.batch_size}, {args.threads} thread(s), {args.clock} time")
    print("| variant | steps | s / batch (best) | median | ratio | bound 1.15 (steps+1) | ok |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        cfg = setups[name][0]
        steps = 0 if cfg.defense is None else cfg.pgd_steps
        best, median = min(times[name]), statistics.median(times[name])
        ratio, bound = best / vanilla, 1.15 * (steps + 1)
        rows[name] = {
            "steps": steps, "best_s": best, "median_s": median, "ratio": ratio,
            "median_ratio": median / statistics.median(times["vanilla"]), "bound": bound,
            "miner": cfg.triplet_miner,
        }  # fmt: skip
        ok = "yes" if ratio <= bound else "NO"
        print(
            f"| {name} | {steps} | {best:.3f} | {median:.3f} | {ratio:.2f} | {bound:.2f} | {ok} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows, "times": times}, fh, indent=1)
    return 0 if all(r["ratio"] <= r["bound"] for r in rows.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
