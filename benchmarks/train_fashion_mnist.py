"""Train vanilla and defended ranking models on Fashion-MNIST; report R@1 and epoch times.

The paper (Zhou et al., ECCV 2020, Tab. 3) reports R@1 = 88.8% for the vanilla C2F1
(cosine distance, triplet loss) and 79.6% with the embedding-shift defense (Eq. 13).

Each variant trains into its own directory (``<out-root>/fmnist-<model>-<variant>``)
with a checkpoint after every epoch, so an interrupted run resumes when the same command
is run again. At the end R@1 and mAP are measured on the 10k test images (every test
image queries the others) and written, with the per-epoch wall times, to
``results.json`` in the run directory.

Examples
--------
Both variants, the defaults of the benchmark (vanilla 8 epochs, defended 2 epochs with a
10-step PGD of step 0.04 in eps = 0.3)::

    python benchmarks/train_fashion_mnist.py

One variant, e.g. in its own background process::

    nohup python benchmarks/train_fashion_mnist.py --variants defended \\
        > runs/defended.log 2>&1 &

A quick smoke run on 2000 images::

    python benchmarks/train_fashion_mnist.py --limit 2000 --epochs 1 --defended-epochs 1 \\
        --out-root /tmp/fmnist-smoke

The paper's released training recipe (``--recipe eccv2020``, see
:mod:`rankattack.training.recipes`: 30 epochs of 1,000-image batches with 100 random
triplets per class, Adam 1e-3, weight decay 1e-7; the defended model with EST at eps 0.3 and
the paper's PGD schedule, 0.01 x 30 steps, for 30 epochs too), into
``<out-root>/fmnist-<model>-<variant>-eccv2020``; options given override the recipe::

    python benchmarks/train_fashion_mnist.py --recipe eccv2020 --variants vanilla --threads 1

and its cost, from a few timed batches (no training run)::

    python benchmarks/train_fashion_mnist.py --recipe eccv2020 --variants --timing-batches 5 \\
        --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rankattack import Gallery
from rankattack.data import DEBIAN_FASHION_MNIST_DIR, load_mnist
from rankattack.metrics import mean_average_precision, recall_at_k
from rankattack.training import TrainConfig, build_adversary, train, train_step
from rankattack.training.recipes import RECIPES, recipe_config

#: The benchmark's own settings for the "default" recipe (the recipe's otherwise).
BENCHMARK_DEFAULTS: dict[str, Any] = {
    "epochs": 8, "defended_epochs": 2, "batch_size": 128, "alpha": 0.04, "steps": 10,
}  # fmt: skip

PAPER_R1 = {"vanilla": 88.8, "defended": 79.6}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=DEBIAN_FASHION_MNIST_DIR)
    p.add_argument("--out-root", default="runs")
    p.add_argument(
        "--variants",
        nargs="*",
        default=["vanilla", "defended"],
        choices=["vanilla", "defended"],
        help="variants to train (none: only the --timing-batches measurement)",
    )
    p.add_argument("--model", default="c2f1", choices=["c2f1", "lenet", "resnet18"])
    p.add_argument("--embedding-dim", type=int, default=None)
    p.add_argument("--loss", default="triplet", choices=["triplet", "contrastive"])
    p.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    p.add_argument(
        "--recipe",
        default="default",
        choices=sorted(RECIPES),
        help="training preset (rankattack.training.recipes); eccv2020: the paper's released "
        "code (default: default, with this benchmark's defaults below)",
    )
    p.add_argument("--epochs", type=int, default=None, help="vanilla epochs (default 8)")
    p.add_argument(
        "--defended-epochs", type=int, default=None, help="(default 2; the recipe's epochs)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="(default 128)")
    p.add_argument("--lr", type=float, default=None, help="(default 1e-3)")
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument(
        "--alpha", type=float, default=None, help="(default 0.04; eccv2020: the schedule, 0.01)"
    )
    p.add_argument(
        "--steps", type=int, default=None, help="(default 10; eccv2020: the schedule, 30)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--limit", type=int, default=None, help="use the first N training images")
    p.add_argument(
        "--timing-batches",
        type=int,
        default=0,
        help="also time N vanilla and N defended steps, interleaved in this process",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace, variant: str) -> TrainConfig:
    """The variant's config: the recipe's settings, the benchmark's defaults for "default",
    then the options given."""
    defended = variant == "defended"
    values: dict[str, Any] = {
        "model": args.model,
        "embedding_dim": args.embedding_dim,
        "loss": args.loss,
        "metric": args.metric,
        "seed": args.seed,
        "device": args.device,
        "defense": "embedding-shift" if defended else None,
    }
    chosen = {
        "epochs": args.defended_epochs if defended else args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
    }
    pgd = {"eps": args.eps, "alpha": args.alpha, "steps": args.steps} if defended else {}
    if args.recipe == "default":
        own = dict(BENCHMARK_DEFAULTS)
        own["epochs"] = own.pop("defended_epochs") if defended else own["epochs"]
        chosen = {k: own[k] if v is None and k in own else v for k, v in chosen.items()}
        pgd = {k: own[k] if v is None and k in own else v for k, v in pgd.items()}
    values.update({k: v for k, v in {**chosen, **pgd}.items() if v is not None})
    return recipe_config(args.recipe, **values)


def run_dir(args: argparse.Namespace, variant: str) -> Path:
    """``<out-root>/fmnist-<model>-<variant>[-<recipe>]``."""
    suffix = "" if args.recipe == "default" else f"-{args.recipe}"
    return Path(args.out_root) / f"fmnist-{args.model}-{variant}{suffix}"


def evaluate(
    model: torch.nn.Module, test_x: torch.Tensor, test_y: torch.Tensor, metric: str
) -> dict[str, float]:
    device = next(model.parameters()).device
    gallery = Gallery.from_inputs(model, test_x.to(device), test_y.to(device), metric=metric)
    rec = recall_at_k(gallery, ks=(1, 2, 4, 8))
    return {
        "recall_at_1": rec[1],
        "recall_at_2": rec[2],
        "recall_at_4": rec[4],
        "recall_at_8": rec[8],
        "map": mean_average_precision(gallery),
    }


def time_steps(
    args: argparse.Namespace, train_x: torch.Tensor, train_y: torch.Tensor
) -> dict[str, float]:
    """Seconds per batch of vanilla and defended steps, measured alternately (same load).

    Wall seconds, and the process's CPU seconds (with one torch thread, what the step costs
    on an idle core, whatever else shares the machine).
    """
    from rankattack.losses import get_loss
    from rankattack.models import build_model
    from rankattack.training import batch_triplets
    from rankattack.training.samplers import recipe_sampler

    cfg_v, cfg_d = make_config(args, "vanilla"), make_config(args, "defended")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    sampler = recipe_sampler(cfg_v.recipe, train_y, cfg_v.batch_size, cfg_v.samples_per_class)
    batches = sampler.epoch(gen)
    setups = []
    for cfg in (cfg_v, cfg_d):
        model = build_model(cfg.model, cfg.embedding_dim).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        setups.append(
            (cfg, model, opt, build_adversary(cfg, model), get_loss(cfg.loss, cfg.metric))
        )
    spent, cpu = [0.0, 0.0], [0.0, 0.0]
    for i in range(args.timing_batches + 1):
        batch = batches[i % len(batches)]
        if batch.ndim == 1:  # images: mine their triplets
            idx = batch
            a, pos, neg = batch_triplets(train_y[idx], gen)
        else:  # triplets of images: each image once
            idx, (a, pos, neg) = torch.unique(batch, return_inverse=True)
        trip = (a.to(device), pos.to(device), neg.to(device))
        x = train_x[idx].to(device)
        for j, (cfg, model, opt, adv, loss_fn) in enumerate(setups):
            t0, c0 = time.perf_counter(), time.process_time()
            loss = train_step(model, loss_fn, opt, x, trip, cfg.defense, adv, cfg.metric)
            float(loss)
            if i > 0:  # the first batch warms up
                spent[j] += time.perf_counter() - t0
                cpu[j] += time.process_time() - c0
    v, d = spent[0] / args.timing_batches, spent[1] / args.timing_batches
    return {
        "vanilla_s_per_batch": v,
        "defended_s_per_batch": d,
        "ratio": d / v,
        "vanilla_cpu_s_per_batch": cpu[0] / args.timing_batches,
        "defended_cpu_s_per_batch": cpu[1] / args.timing_batches,
        "batches_per_epoch": len(batches),
        "vanilla_epochs": cfg_v.epochs,
        "defended_epochs": cfg_d.epochs,
        "defended_steps": cfg_d.pgd_steps,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_mnist(args.data_root, kind="fashion-mnist")
    train_x, train_y = data.train_x, data.train_y
    if args.limit:
        train_x, train_y = train_x[: args.limit], train_y[: args.limit]
    print(f"Fashion-MNIST: {len(train_x)} training, {len(data.test_x)} test images", flush=True)
    command = " ".join([Path(sys.executable).name, *sys.argv])
    summary: dict[str, Any] = {}
    for variant in args.variants:
        config = make_config(args, variant)
        out_dir = run_dir(args, variant)
        print(f"[{variant}] training into {out_dir}: {config}", flush=True)
        result = train(
            config,
            train_x,
            train_y,
            out_dir=out_dir,
            resume=not args.fresh,
            progress=not args.no_progress,
        )
        scores = evaluate(result.model, data.test_x, data.test_y, config.metric)
        times = [h["time"] for h in result.history]
        record = {
            "variant": variant,
            "config": config.to_dict(),
            "pgd": {"eps": config.pgd_eps, "alpha": config.pgd_alpha, "steps": config.pgd_steps}
            if config.defense
            else None,
            "epochs_done": result.epochs_done,
            "diverged": result.diverged,
            "history": result.history,
            "seconds_per_epoch": sum(times) / len(times) if times else None,
            "train_images": len(train_x),
            "paper_recall_at_1": PAPER_R1[variant] if args.model == "c2f1" else None,
            "recipe": args.recipe,
            "command": command,
            "threads": torch.get_num_threads(),
            **scores,
        }
        (out_dir / "results.json").write_text(json.dumps(record, indent=2))
        summary[variant] = record
        paper = f" (paper {PAPER_R1[variant]}%)" if args.model == "c2f1" else ""
        print(
            f"[{variant}] R@1 = {100 * scores['recall_at_1']:.1f}%{paper}, "
            f"mAP = {100 * scores['map']:.1f}%, "
            f"{result.epochs_done} epochs, {record['seconds_per_epoch']:.1f} s/epoch "
            f"(per epoch: {', '.join(f'{t:.0f}' for t in times)})",
            flush=True,
        )
    steps = make_config(args, "defended").pgd_steps
    if "vanilla" in summary and "defended" in summary:
        v, d = summary["vanilla"]["seconds_per_epoch"], summary["defended"]["seconds_per_epoch"]
        bound = (steps + 1) * 1.15
        print(f"defended/vanilla epoch time = {d / v:.2f} (bound (steps+1) x 1.15 = {bound:.2f})")
    if args.timing_batches:
        t = time_steps(args, train_x, train_y)
        bound = (steps + 1) * 1.15
        print(
            f"interleaved timing over {args.timing_batches} batches: vanilla "
            f"{t['vanilla_s_per_batch']:.3f} s/batch, defended {t['defended_s_per_batch']:.3f} "
            f"s/batch, ratio {t['ratio']:.2f} (bound {bound:.2f})",
            flush=True,
        )
        nb = t["batches_per_epoch"]
        for variant in ("vanilla", "defended"):
            epoch_s = t[f"{variant}_s_per_batch"] * nb
            epoch_cpu = t[f"{variant}_cpu_s_per_batch"] * nb
            epochs = t[f"{variant}_epochs"]
            t[f"{variant}_projected_epoch_s"] = epoch_s
            t[f"{variant}_projected_epoch_cpu_s"] = epoch_cpu
            print(
                f"projected {variant}: per epoch of {nb} batches {epoch_s:.0f} s wall "
                f"({epoch_cpu:.0f} s CPU); {epochs} epochs {epoch_s * epochs / 3600:.2f} h wall "
                f"({epoch_cpu * epochs / 3600:.2f} h CPU)",
                flush=True,
            )
        suffix = "" if args.recipe == "default" else f"-{args.recipe}"
        out = Path(args.out_root) / f"fmnist-{args.model}-timing{suffix}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps({**t, "steps": steps, "bound": bound, "command": command}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
