"""``rankattack transfer``: attacks transferred between models (black-box).

Adversarial examples made on each model are tested on every other (paper Tab. 5 / 11):
one matrix per attack, rows the source model and columns the target, written to
``transfer.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from rankattack.cli.common import (
    ATTACK_CHOICES,
    _common,
    _data_args,
    _device,
    _load_data,
    _load_model,
    _say,
)

__all__ = ["add_parser", "run"]


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``transfer`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "transfer",
        help="transfer attacks between models (black-box, paper Tab. 5 / 11)",
    )
    _common(p, None)
    _data_args(p, "fashion-mnist")
    p.add_argument(
        "--checkpoint", nargs="+", required=True, help="two or more checkpoints (rows/columns)"
    )
    p.add_argument("--names", default=None, help="comma-separated model names")
    p.add_argument("--attacks", nargs="+", default=list(ATTACK_CHOICES), choices=ATTACK_CHOICES)
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--samples", type=int, default=1000)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack transfer``; returns the exit status."""
    from rankattack.evaluation.sampling import cell_seed, sample_cell
    from rankattack.gallery import Gallery
    from rankattack.transfer import attack_factory, transfer_matrix

    device = _device(args.device)
    if len(args.checkpoint) < 2:
        raise ValueError("give at least two --checkpoint files")
    names = args.names.split(",") if args.names else [Path(p).parent.name for p in args.checkpoint]
    if len(names) != len(args.checkpoint) or len(set(names)) != len(names):
        raise ValueError(f"--names must give {len(args.checkpoint)} distinct names, got {names}")
    loaded = [_load_model(p, device) for p in args.checkpoint]
    models = {name: m for name, (m, _) in zip(names, loaded, strict=True)}
    metrics = {
        name: getattr(c, "metric", "cosine") for name, (_, c) in zip(names, loaded, strict=True)
    }
    data = _load_data(args)
    inputs, labels = data.test_x.to(device), data.test_y.to(device)
    galleries = {
        name: Gallery.from_inputs(m, inputs, labels, metric=metrics[name])
        for name, m in models.items()
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "names": names,
        "eps": args.eps,
        "samples": args.samples,
        "seed": args.seed,
    }
    for attack in args.attacks:
        # w = m = 1 targets drawn by the protocol's rules on the first model's gallery
        generator = torch.Generator().manual_seed(cell_seed(args.seed, f"T-{attack}", args.eps, 1))
        sample = sample_cell(galleries[names[0]], attack, 1, args.samples, generator)
        a = sample.anchors.to(device)
        p = sample.partners.to(device)
        kw: dict[str, Any] = (
            {"queries": inputs[p]} if attack.startswith("CA")
            else {"candidate_indices": p, "query_indices": a}
        )  # fmt: skip
        res = transfer_matrix(
            models, attack_factory(attack, eps=args.eps), inputs[a], galleries=galleries,
            progress=not args.no_progress, **kw,
        )  # fmt: skip
        _say(f"{attack}, eps={args.eps:g}, w = m = 1, T = {args.samples} (rows: from, columns: to)")
        _say(res.table())
        _say()
        summary[attack] = res.cells()
    (out / "transfer.json").write_text(json.dumps(summary, indent=1) + "\n")
    _say(f"wrote {out / 'transfer.json'}")
    return 0
