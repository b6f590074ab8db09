"""``rankattack transfer``: attacks transferred between models (black-box).

Adversarial examples made on each model are tested on every other (paper Tab. 5 / 11):
one matrix per attack, rows the source model and columns the target, each cell the mean
normalized rank (percent) with its 95% interval, on the dataset the checkpoints were
trained on; written to ``transfer.json`` as numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from rankattack.cli.common import (
    ATTACK_CHOICES,
    _checkpoint_args,
    _checkpoint_file,
    _choices,
    _device,
    _floats,
    _int_option,
    _load_checkpoints,
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
        description="Make adversarial examples on each model and rank them with every "
        "other (paper Tab. 5 / 11), on the dataset the checkpoints were trained on: one "
        "matrix per attack, rows the source model, columns the target, each cell the mean "
        "normalized rank (percent) before -> after with 95% intervals. Writes "
        "transfer.json (numbers) into --out.",
    )
    _checkpoint_args(
        p, nargs="+", help="two or more checkpoints (rows/columns of the matrix) (required)"
    )
    p.add_argument(
        "--names", default=None,
        help="comma-separated model names (default: each checkpoint's folder name)",
    )  # fmt: skip
    p.add_argument(
        "--attacks", nargs="+", default=list(ATTACK_CHOICES), metavar="ATTACK",
        help="attacks among CA+ CA- QA+ QA-, comma- or space-separated (default: all four)",
    )  # fmt: skip
    p.add_argument(
        "--eps", default="0.3",
        help="L-inf radius, a number or a fraction such as 8/255 (default: 0.3)",
    )  # fmt: skip
    p.add_argument(
        "--samples", type=_int_option, default=1000, help="T, attacks per matrix (default: 1000)"
    )
    p.set_defaults(func=run)
    return p


def _matrix(res: Any) -> dict[str, Any]:
    """The transfer matrix as numbers: percent, with 95% half-widths."""
    from rankattack.evaluation import confidence_interval

    def summary(ranks: torch.Tensor) -> tuple[float, float]:
        return confidence_interval(100.0 * ranks.detach().double().cpu())

    before = [summary(r) for r in res.rank_before]
    after = [[summary(r) for r in row] for row in res.rank_after]
    return {
        "before": [m for m, _ in before],
        "before_ci": [c for _, c in before],
        "after": [[m for m, _ in row] for row in after],
        "after_ci": [[c for _, c in row] for row in after],
    }


def _table(names: list[str], matrix: dict[str, Any]) -> str:
    width = max(22, *(len(n) + 2 for n in names))
    head = "From \\ To".ljust(width) + "".join(n.rjust(width) for n in names)
    rows = []
    for i, name in enumerate(names):
        cells = [
            f"{matrix['before'][t]:.1f}->{matrix['after'][i][t]:.1f}±{matrix['after_ci'][i][t]:.1f}"
            for t in range(len(names))
        ]
        rows.append(name.ljust(width) + "".join(c.rjust(width) for c in cells))
    return "\n".join([head, *rows])


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack transfer``; returns the exit status."""
    from rankattack.evaluation.sampling import cell_seed, sample_cell
    from rankattack.gallery import Gallery
    from rankattack.transfer import attack_factory, transfer_matrix

    # every argument is checked before any work starts
    attacks = _choices(args.attacks, "--attacks", ATTACK_CHOICES)
    eps_values = _floats(args.eps, "--eps")
    if len(eps_values) != 1:
        raise ValueError(f"--eps must be one number, got {args.eps!r}")
    eps = eps_values[0]
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    if len(args.checkpoint) < 2:
        raise ValueError("--checkpoint must name at least two checkpoints")
    device = _device(args.device)
    names = (
        [n.strip() for n in args.names.split(",")]
        if args.names
        else [Path(p).parent.name if Path(p).is_file() else Path(p).name for p in args.checkpoint]
    )
    if len(names) != len(args.checkpoint) or len(set(names)) != len(names) or not all(names):
        raise ValueError(
            f"--names must give {len(args.checkpoint)} distinct names (one per --checkpoint), "
            f"got {names}"
        )
    files = [_checkpoint_file(p) for p in args.checkpoint]
    spec, loaded, _, inputs, labels = _load_checkpoints(args, files, device)
    models = {name: m for name, (m, _) in zip(names, loaded, strict=True)}
    metrics = {
        name: getattr(c, "metric", "cosine") for name, (_, c) in zip(names, loaded, strict=True)
    }
    galleries = {
        name: Gallery.from_inputs(m, inputs, labels, metric=metrics[name])
        for name, m in models.items()
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "names": names,
        "eps": eps,
        "samples": args.samples,
        "seed": args.seed,
        "dataset": spec.name,
        "dataset_record": spec.to_dict(),
        "units": "mean normalized rank in percent of |X| (0 = top); before[to], "
        "after[from][to]; *_ci: 95% interval half-widths",
    }
    for attack in attacks:
        # w = m = 1 targets drawn by the protocol's rules on the first model's gallery
        generator = torch.Generator().manual_seed(cell_seed(args.seed, f"T-{attack}", eps, 1))
        sample = sample_cell(galleries[names[0]], attack, 1, args.samples, generator)
        a = sample.anchors.to(device)
        p = sample.partners.to(device)
        kw: dict[str, Any] = (
            {"queries": inputs[p]} if attack.startswith("CA")
            else {"candidate_indices": p, "query_indices": a}
        )  # fmt: skip
        res = transfer_matrix(
            models, attack_factory(attack, eps=eps), inputs[a], galleries=galleries,
            progress=not args.no_progress, **kw,
        )  # fmt: skip
        matrix = _matrix(res)
        _say(
            f"{attack}, eps={eps:g}, w = m = 1, T = {args.samples}: mean normalized rank (%) "
            "before -> after ± 95% CI (rows: from, columns: to)"
        )
        _say(_table(names, matrix))
        _say()
        summary[attack] = matrix
    (out / "transfer.json").write_text(json.dumps(summary, indent=1) + "\n")
    _say(f"wrote {out / 'transfer.json'}")
    return 0
