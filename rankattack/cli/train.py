"""``rankattack train``: train a ranking model, optionally with a defense.

Trains an embedding model with a ranking loss, optionally with a defense (EST, the
embedding-shift defense of Eq. 13; ACT, the anti-collapse triplet; HM, hardness manipulation;
or the Appendix H variants), writes ``checkpoint.pt`` into ``--out``, resumes from it unless
``--no-resume`` and reports R@1 on the test set. The checkpoint records the dataset (name,
files, image size, normalization, train/test split), so that ``evaluate``, ``universal``,
``transfer`` and ``robustness`` use the same data by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from rankattack.cli.common import (
    _common,
    _data_args,
    _device,
    _int_option,
    _number,
    _requested_spec,
    _say,
    _train_args,
)

__all__ = ["add_parser", "interrupted", "run"]


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
    try:
        return recipe_config(getattr(args, "recipe", "default"), **given)  # given options win
    except (TypeError, ValueError) as exc:
        raise ValueError(_as_option(str(exc))) from None


#: TrainConfig fields set by options of another name.
_OPTIONS = {"eps": "--defense-eps", "alpha": "--defense-alpha", "steps": "--defense-steps"}


def _as_option(message: str) -> str:
    """``"epochs must be >= 1"`` -> ``"--epochs must be >= 1"``: a TrainConfig error in the
    terms of the command line."""
    head, sep, rest = message.partition(" ")
    if head in _OPTIONS:
        return f"{_OPTIONS[head]}{sep}{rest}"
    if head.isidentifier() and head.islower():
        return f"--{head.replace('_', '-')}{sep}{rest}"
    return message


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "train",
        help="train a ranking model (optionally with a defense: est, act, hm)",
        description="Train an embedding model with a ranking loss, optionally with a "
        "defense; writes checkpoint.pt into --out (recording the dataset, its image size, "
        "scaling and train/test split) and resumes from it unless --no-resume. A defended "
        "epoch costs about 1 + --defense-steps times a vanilla one (32 steps by default for "
        "est, act and hm: start with --epochs 1 to time it).",
    )
    _common(p, None)
    _data_args(p)
    _train_args(p)
    p.add_argument(
        "--recipe", default="default",
        help="training preset: default (this library's settings) or eccv2020 (the paper's "
        "released code: 30 epochs, batches of 1000 images with 100 random triplets per class, "
        "Adam 1e-3, weight decay 1e-7; eps 0.3 with --defense est) or robrank (C2F2, 8 epochs, "
        "128 same-class pairs per batch, SPC-2 triplets, Adam 1e-3, weight decay 1e-7); options "
        "given override it (default: default)",
    )  # fmt: skip
    p.add_argument(
        "--snapshot-every", type=_int_option, default=None, metavar="N",
        help="also keep the checkpoint of every N-th epoch as epochN.pt in --out, to evaluate "
        "the model along the way (default: only checkpoint.pt, the latest)",
    )  # fmt: skip
    p.set_defaults(func=run)
    return p


def interrupted(args: argparse.Namespace) -> str:
    """What to tell a user who stopped the command with Ctrl-C."""
    return (
        f"the finished epochs are kept in {Path(args.out) / 'checkpoint.pt'}; run the same "
        "command to resume (add --no-resume to start over)"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack train``; returns the exit status."""
    from rankattack.evaluation import recall_at_1
    from rankattack.gallery import Gallery
    from rankattack.training import train
    from rankattack.training.checkpoints import (
        ResumeMismatchError,
        record_dataset,
        write_dataset_record,
    )

    # every option is checked before the data is read
    device = _device(args.device)
    config = _train_config(args, device)
    if args.snapshot_every is not None and args.snapshot_every < 1:
        raise ValueError(f"--snapshot-every must be >= 1, got {args.snapshot_every}")
    spec = _requested_spec(args, "digits")
    data = spec.load()
    spec = spec.loaded(data)
    if data.input_shape[0] != config.in_channels:
        config = dataclasses.replace(config, in_channels=int(data.input_shape[0]))
    out = Path(args.out)
    if config.defense is not None:
        _say(
            f"defense {config.defense}: {config.pgd_steps} PGD steps at eps {config.pgd_eps:.4g} "
            f"per batch, so an epoch costs about {1 + config.pgd_steps}x a vanilla one "
            "(--defense-steps sets it)"
        )
    start = time.perf_counter()
    try:
        with record_dataset(spec):
            res = train(
                config, data.train_x.to(device), data.train_y.to(device), out_dir=out,
                resume=not args.no_resume, progress=not args.no_progress,
                snapshot_every=args.snapshot_every,
            )  # fmt: skip
    except ResumeMismatchError as exc:
        raise ValueError(
            f"--out {out} holds a checkpoint made with {exc.reason}; use another --out, or "
            "--no-resume to start over"
        ) from None
    from rankattack.distributed import is_main_process

    if not is_main_process():
        return 0  # rank 0 of a torchrun job writes the checkpoint and reports
    assert res.checkpoint is not None
    write_dataset_record(res.checkpoint, spec)  # also when the run was already complete
    gallery = Gallery.from_inputs(
        res.model, data.test_x.to(device), data.test_y.to(device), metric=config.metric
    )
    r1 = recall_at_1(gallery)
    _say(f"trained {config.model} on {spec.describe()} in {time.perf_counter() - start:.0f}s")
    _say(f"R@1 on the test set ({len(gallery)} items): {r1:.1f}%")
    _say(f"checkpoint: {res.checkpoint}")
    return 0
