"""``rankattack universal``: an image-agnostic perturbation (I-CA / I-QA).

Fits one universal perturbation on a share of the test set (seen inputs, targets drawn by
the protocol's rules, paper Sec. 5.2) and tests it on a disjoint share (unseen inputs);
writes ``perturbation.pt`` and ``universal.json``.
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


def _targets(gallery: Any, inputs: Any, attack: str, sample: Any, sl: slice) -> dict[str, Any]:
    """Keyword arguments naming the inputs and targets of the anchors in ``sl``."""
    device = gallery.embeddings.device
    a, p = sample.anchors[sl].to(device), sample.partners[sl].to(device)
    if attack.startswith("CA"):
        return {"inputs": inputs[a], "query_embeddings": gallery.embeddings[p]}
    return {"inputs": inputs[a], "candidate_indices": p, "query_indices": a}


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``universal`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "universal",
        help="fit an image-agnostic perturbation (I-CA / I-QA) and test it on unseen inputs",
    )
    _common(p, None)
    _data_args(p, "fashion-mnist")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--attack", default="CA+", choices=ATTACK_CHOICES)
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument(
        "--fraction", type=float, default=0.05,
        help="share of X to fit on (seen), and a disjoint share to test on (unseen); default 0.05",
    )  # fmt: skip
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack universal``; returns the exit status."""
    from rankattack.attacks.universalrankattack import UniversalRankAttack, evaluate_seen_unseen
    from rankattack.evaluation.sampling import cell_seed, sample_cell
    from rankattack.gallery import Gallery

    device = _device(args.device)
    model, config = _load_model(args.checkpoint, device)
    data = _load_data(args)
    inputs, labels = data.test_x.to(device), data.test_y.to(device)
    gallery = Gallery.from_inputs(model, inputs, labels, metric=getattr(config, "metric", "cosine"))
    n = max(1, round(args.fraction * len(gallery)))
    if 2 * n > len(gallery):
        raise ValueError(
            f"--fraction must be at most 0.5 (seen and unseen are disjoint), got {args.fraction}"
        )
    # seen and unseen inputs: 2n distinct anchors with w = m = 1 targets drawn by the
    # protocol's rules (uniform for "+", the anchor's top-1% for "-", paper Sec. 5.2)
    generator = torch.Generator().manual_seed(cell_seed(args.seed, f"I-{args.attack}", args.eps, 1))
    sample = sample_cell(gallery, args.attack, 1, 2 * n, generator)
    kwargs: dict[str, Any] = {"eps": args.eps}
    if args.steps is not None:
        kwargs["steps"] = args.steps
    if args.alpha is not None:
        kwargs["alpha"] = args.alpha
    atk = UniversalRankAttack(
        model, gallery, target="candidate" if args.attack.startswith("CA") else "query",
        direction="raise" if args.attack.endswith("+") else "lower", **kwargs,
    )  # fmt: skip
    res = evaluate_seen_unseen(
        atk,
        _targets(gallery, inputs, args.attack, sample, slice(0, n)),
        _targets(gallery, inputs, args.attack, sample, slice(n, 2 * n)),
        progress=not args.no_progress,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "attack": f"I-{args.attack}", "eps": args.eps, "seed": args.seed, "n_seen": n,
        "n_unseen": n, "checkpoint": str(args.checkpoint),
        "seen": [100 * res.seen.mean_before, 100 * res.seen.mean_after],
        "unseen": [100 * res.unseen.mean_before, 100 * res.unseen.mean_after],
    }  # fmt: skip
    _say(
        f"I-{args.attack} eps={args.eps:g} (mean normalized rank, %): seen "
        f"{summary['seen'][0]:.1f} -> {summary['seen'][1]:.1f}, unseen "
        f"{summary['unseen'][0]:.1f} -> {summary['unseen'][1]:.1f} ({n} inputs each)"
    )
    atk.save(out / "perturbation.pt")
    (out / "universal.json").write_text(json.dumps(summary, indent=1) + "\n")
    _say(f"wrote {out / 'perturbation.pt'}, {out / 'universal.json'}")
    return 0
