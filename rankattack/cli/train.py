"""``rankattack train``: train a ranking model, optionally with a defense.

Trains an embedding model with a ranking loss, optionally with a defense (EST, the
embedding-shift defense of Eq. 13; ACT, the anti-collapse triplet; HM, hardness manipulation;
or the Appendix H variants), writes ``checkpoint.pt`` into ``--out``, resumes from it unless
``--no-resume`` and reports R@1 on the test set.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from rankattack.cli.common import (
    _common,
    _data_args,
    _device,
    _load_data,
    _number,
    _say,
    _train_args,
)

__all__ = ["add_parser", "run"]


def _train_config(args: argparse.Namespace, device: torch.device, **override: Any) -> Any:
    from rankattack.training.recipes import recipe_config

    values: dict[str, Any] = {
        "model": args.model,
        "embedding_dim": args.embedding_dim,
        "loss": args.loss,
        "metric": args.metric,
        "margin": args.margin,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "device": str(device),
        "defense": None if args.defense in (None, "none") else args.defense,
        "eps": _number(args.defense_eps, "--defense-eps"),
        "alpha": _number(args.defense_alpha, "--defense-alpha"),
        "steps": args.defense_steps,
        "miner": args.miner,
    }
    values.update(override)
    given = {k: v for k, v in values.items() if v is not None or k == "defense"}
    return recipe_config(getattr(args, "recipe", "default"), **given)  # given options win


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "train",
        help="train a ranking model (optionally with a defense: est, act, hm)",
        description="Train an embedding model with a ranking loss; writes checkpoint.pt "
        "into --out and resumes from it unless --no-resume.",
    )
    _common(p, None)
    _data_args(p)
    _train_args(p)
    p.add_argument(
        "--recipe", default="default",
        help="training preset: default (this library's settings) or eccv2020 (the paper's "
        "released code: 30 epochs, batches of 1000 images with 100 random triplets per class, "
        "Adam 1e-3, weight decay 1e-7; eps 0.3 with --defense est); options given override it "
        "(default: default)",
    )  # fmt: skip
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack train``; returns the exit status."""
    from rankattack.evaluation import recall_at_1
    from rankattack.gallery import Gallery
    from rankattack.training import train

    device = _device(args.device)
    config = _train_config(args, device)  # bad options fail before the data is read
    data = _load_data(args)
    out = Path(args.out)
    start = time.perf_counter()
    res = train(
        config, data.train_x.to(device), data.train_y.to(device), out_dir=out,
        resume=not args.no_resume, progress=not args.no_progress,
    )  # fmt: skip
    gallery = Gallery.from_inputs(
        res.model, data.test_x.to(device), data.test_y.to(device), metric=config.metric
    )
    r1 = recall_at_1(gallery)
    _say(f"trained {config.model} on {data.name} in {time.perf_counter() - start:.0f}s")
    _say(f"R@1 on the test set ({len(gallery)} items): {r1:.1f}%")
    _say(f"checkpoint: {res.checkpoint}")
    return 0
