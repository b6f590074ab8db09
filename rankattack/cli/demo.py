"""``rankattack demo``: vanilla vs defended on the bundled digits, end to end.

Trains a small vanilla and a defended (embedding-shift, Eq. 13) C2F1 on scikit-learn's
bundled digits, runs CA+/CA-/QA+/QA- at a few eps with w = m = 1 (the paper's protocol,
Sec. 4), prints the tables in the paper's layout and saves the figures. ``--tiny`` is a
seconds-long configuration for smoke tests.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rankattack.cli.common import (
    ATTACK_CHOICES,
    _common,
    _device,
    _floats,
    _ranking_figures,
    _say,
    _write_outputs,
)

__all__ = ["add_parser", "run"]


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "demo",
        help="train vanilla and defended models on digits, attack them, print and plot",
        description="Train a small vanilla and a defended (embedding-shift, Eq. 13) C2F1 "
        "on scikit-learn's bundled digits, run CA+/CA-/QA+/QA- at a few eps with w = m = 1, "
        "print the tables in the paper's layout and save the figures.",
    )
    _common(p, "rankattack-demo")
    p.add_argument("--samples", type=int, default=None, help="T per cell (default: 100)")
    p.add_argument("--epochs", type=int, default=None, help="vanilla training epochs")
    p.add_argument("--eps", default=None, help="comma-separated radii (default: 0,0.03,0.1,0.3)")
    p.add_argument(
        "--tiny", action="store_true", help="a seconds-long configuration (for smoke tests)"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack demo``; returns the exit status."""
    from rankattack.data import load_digits
    from rankattack.evaluation import evaluate, recall_at_1
    from rankattack.gallery import Gallery
    from rankattack.plots import plot_attack_curves
    from rankattack.training import TrainConfig, train

    device = _device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    progress = not args.no_progress
    if args.tiny:
        data = load_digits(image_size=8, seed=args.seed).subset(200, 100, seed=args.seed)
        epochs, def_epochs, samples, eps, def_steps = 2, 1, 10, [0.0, 0.1], 2
    else:
        data = load_digits(image_size=16, seed=args.seed)
        epochs, def_epochs, samples, eps, def_steps = 10, 4, 100, [0.0, 0.03, 0.1, 0.3], 5
    epochs = args.epochs if args.epochs is not None else epochs
    samples = args.samples if args.samples is not None else samples
    eps = _floats(args.eps, "--eps") if args.eps else eps
    _say(
        f"rankattack demo: {data.name} ({data.train_x.shape[0]} train, {data.test_x.shape[0]} "
        f"test images), device {device}"
    )
    x_tr, y_tr = data.train_x.to(device), data.train_y.to(device)
    x_te, y_te = data.test_x.to(device), data.test_y.to(device)
    base: dict[str, Any] = {
        "model": "c2f1", "embedding_dim": 128, "loss": "triplet", "metric": "cosine",
        "batch_size": 64 if args.tiny else 128, "seed": args.seed, "device": str(device),
    }  # fmt: skip
    configs = {
        "vanilla": TrainConfig(**base, epochs=epochs),
        "defended": TrainConfig(
            **base,
            epochs=def_epochs,
            defense="embedding-shift",
            eps=0.3,
            steps=def_steps,
            alpha=0.75 / def_steps,
        ),
    }
    results = []
    models = {}
    for label, config in configs.items():
        t0 = time.perf_counter()
        _say(f"training the {label} model ({config.epochs} epochs) ...")
        res = train(config, x_tr, y_tr, out_dir=out / label, resume=False, progress=progress)
        models[label] = res.model
        gallery = Gallery.from_inputs(res.model, x_te, y_te, metric="cosine")
        _say(f"  R@1 {recall_at_1(gallery):.1f}% after {time.perf_counter() - t0:.0f}s")
        _say(f"attacking the {label} model: T = {samples} per cell, eps = {eps}, w = m = 1 ...")
        log = out / label / "results.jsonl"
        log.unlink(missing_ok=True)  # the model was just retrained: old cells are stale
        result = evaluate(
            res.model, x_te, y_te, eps=eps, sizes=[1], samples=samples, seed=args.seed,
            gallery=gallery, results=log, name=label,
            progress=progress,
        )  # fmt: skip
        results.append(result)
        _say()
        _say(result.table())
        _say()
        _write_outputs(result, out / label, None, figures=False)
        if not args.tiny or label == "vanilla":
            figs = ["CA+"] if args.tiny else ATTACK_CHOICES
            _ranking_figures(res.model, gallery, x_te, out / label, max(eps), args.seed, figs)
    curves = plot_attack_curves(results, out / "vanilla-vs-defended.png")
    _say(f"done in {time.perf_counter() - start:.0f}s. Figures and tables are in {out}/:")
    _say(f"  {curves}  rank vs eps per attack, vanilla vs defended, and max embedding shift")
    for label in configs:
        _say(f"  {out / label}/ranking-*.png  ranking lists before/after each attack ({label})")
        _say(f"  {out / label}/table.txt, results.csv, results.json, results.jsonl")
    return 0
