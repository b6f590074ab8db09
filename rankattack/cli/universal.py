"""``rankattack universal``: an image-agnostic perturbation (I-CA / I-QA).

Fits one universal perturbation on a share of the test set (seen inputs, targets drawn by
the protocol's rules, paper Sec. 5.2) and tests it on a disjoint share (unseen inputs);
reports the mean normalized ranks before and after with 95% intervals, on the dataset the
checkpoint was trained on; writes ``perturbation.pt``, ``universal.json`` (numbers in
percent) and ``perturbation.png`` (the perturbation and an unseen input before and after).
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
    _ints,
    _load_checkpoints,
    _one,
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


def _summary(result: Any) -> tuple[list[float | None], list[float | None], int]:
    """Mean rank ``[before, after]`` (percent), their 95% half-widths, and the count."""
    from rankattack.evaluation import confidence_interval

    keep = result.counted
    before, after = result.rank_before, result.rank_after
    if keep is not None:
        before, after = before[keep], after[keep]
    if before.numel() == 0:
        return [None, None], [None, None], 0
    b, b_ci = confidence_interval(100.0 * before.detach().cpu())
    a, a_ci = confidence_interval(100.0 * after.detach().cpu())
    return [b, a], [b_ci, a_ci], int(before.numel())


def _fmt(means: list[float | None], cis: list[float | None], n: int) -> str:
    if not n or means[0] is None or means[1] is None:
        return "no counted inputs"
    b_ci, a_ci = (f" ± {c:.1f}" if c is not None and c == c else "" for c in cis)
    return f"{means[0]:.1f}{b_ci} -> {means[1]:.1f}{a_ci} ({n} inputs)"


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``universal`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "universal",
        help="fit an image-agnostic perturbation (I-CA / I-QA) and test it on unseen inputs",
        description="Fit one universal perturbation (paper Sec. 5.2, Eq. 14) on a share of "
        "the test set (seen inputs) and test it on a disjoint share (unseen inputs), on the "
        "dataset the checkpoint was trained on. Reports the mean normalized rank (percent) "
        "before and after with 95% intervals; writes perturbation.pt, universal.json and "
        "perturbation.png into --out.",
    )
    _checkpoint_args(p)
    p.add_argument(
        "--attack", default="CA+",
        help="one of CA+ (I-CA+), CA-, QA+, QA- (default: CA+)",
    )  # fmt: skip
    p.add_argument(
        "--eps", default="0.3",
        help="L-inf radius of the perturbation, a number or a fraction such as 8/255 "
        "(default: 0.3)",
    )  # fmt: skip
    p.add_argument(
        "--steps", default="100", help="PGD steps over the whole seen set (default: 100)"
    )
    p.add_argument(
        "--alpha", default="2/255", help="PGD step size (default: 2/255, the reference's)"
    )
    p.add_argument(
        "--fraction", default="0.05",
        help="share of X to fit on (seen), and a disjoint share of the same size to test on "
        "(unseen), at most 0.5 (default: 0.05)",
    )  # fmt: skip
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack universal``; returns the exit status."""
    from rankattack.attacks.universalrankattack import UniversalRankAttack, evaluate_seen_unseen
    from rankattack.evaluation.sampling import cell_seed, sample_cell
    from rankattack.gallery import Gallery
    from rankattack.plots import plot_perturbation

    # every argument is checked before any work starts
    attacks = _choices(args.attack, "--attack", ATTACK_CHOICES)
    if len(attacks) != 1:
        raise ValueError(f"--attack must name one attack, got {args.attack!r}")
    attack = attacks[0]
    eps = _one(_floats(args.eps, "--eps"), "--eps")
    steps = _ints(args.steps, "--steps", low=0)
    if len(steps) != 1:
        raise ValueError(f"--steps must be one integer, got {args.steps!r}")
    alpha = _one(_floats(args.alpha, "--alpha"), "--alpha")
    fraction = _one(_floats(args.fraction, "--fraction"), "--fraction")
    if not alpha > 0:
        raise ValueError(f"--alpha must be > 0, got {args.alpha}")
    if not 0 < fraction <= 0.5:
        raise ValueError(
            f"--fraction must be in (0, 0.5] (seen and unseen are disjoint), got {args.fraction}"
        )
    device = _device(args.device)
    checkpoint = _checkpoint_file(args.checkpoint)
    spec, [(model, config)], data, inputs, labels = _load_checkpoints(args, [checkpoint], device)
    gallery = Gallery.from_inputs(model, inputs, labels, metric=getattr(config, "metric", "cosine"))
    n = max(1, round(fraction * len(gallery)))
    if 2 * n > len(gallery):
        raise ValueError(f"--fraction {args.fraction} leaves no unseen inputs on {len(gallery)}")
    # seen and unseen inputs: 2n distinct anchors with w = m = 1 targets drawn by the
    # protocol's rules (uniform for "+", the anchor's top-1% for "-", paper Sec. 5.2)
    generator = torch.Generator().manual_seed(cell_seed(args.seed, f"I-{attack}", eps, 1))
    sample = sample_cell(gallery, attack, 1, 2 * n, generator)
    atk = UniversalRankAttack(
        model, gallery, target="candidate" if attack.startswith("CA") else "query",
        direction="raise" if attack.endswith("+") else "lower", eps=eps, steps=steps[0],
        alpha=alpha,
    )  # fmt: skip
    seen = _targets(gallery, inputs, attack, sample, slice(0, n))
    unseen = _targets(gallery, inputs, attack, sample, slice(n, 2 * n))
    res = evaluate_seen_unseen(atk, seen, unseen, progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seen_mean, seen_ci, seen_n = _summary(res.seen)
    unseen_mean, unseen_ci, unseen_n = _summary(res.unseen)
    summary = {
        "attack": f"I-{attack}", "eps": eps, "steps": steps[0], "alpha": alpha,
        "seed": args.seed, "n_seen": n, "n_unseen": n, "checkpoint": str(args.checkpoint),
        "dataset": spec.name,
        "dataset_record": spec.to_dict(),
        "units": "[before, after] mean normalized rank in percent of |X| (0 = top); *_ci: "
        "95% interval half-widths; *_counted: inputs the means are taken over",
        "seen": seen_mean, "seen_ci": seen_ci, "seen_counted": seen_n,
        "unseen": unseen_mean, "unseen_ci": unseen_ci, "unseen_counted": unseen_n,
    }  # fmt: skip
    unseen_text = _fmt(unseen_mean, unseen_ci, unseen_n)
    _say(
        f"I-{attack} eps={eps:g} on {spec.describe()}, mean normalized rank (%) ± 95% CI: "
        f"seen {_fmt(seen_mean, seen_ci, seen_n)}; unseen {unseen_text}"
    )
    atk.save(out / "perturbation.pt")
    (out / "universal.json").write_text(json.dumps(summary, indent=1) + "\n")
    example = unseen["inputs"][0]
    figure = plot_perturbation(
        res.perturbation, out / "perturbation.png", eps=eps, example=example,
        title=f"I-{attack}, eps = {eps:g}, on {data.name}: unseen rank (%) {unseen_text}",
    )  # fmt: skip
    _say(f"wrote {out / 'perturbation.pt'}, {out / 'universal.json'}, {figure}")
    return 0
