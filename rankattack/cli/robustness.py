"""``rankattack robustness``: the robustness benchmark (ERS) on one or more checkpoints.

Runs robrank's suite (CA+, CA-, QA+, QA-, TMA, ES, LTM, GTM, GTT) with a profile on the
test set for each checkpoint, appending every finished chunk to ``<out>/<model>.jsonl``
so that a rerun resumes; then writes the side-by-side table of R@1, mAP, the ten raw
numbers and ERS with 95% intervals (``robustness.md``, ``robustness.txt``,
``robustness.json``; robrank's published row beside each model whose setting it
matches) and the figure of the ERS terms (``robustness.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from rankattack.cli.common import (
    _checkpoint_args,
    _checkpoint_file,
    _choices,
    _device,
    _floats,
    _int_option,
    _load_checkpoints,
    _one,
    _say,
)

__all__ = ["add_parser", "interrupted", "run"]

_ATTACKS = ("CA+", "CA-", "QA+", "QA-", "TMA", "ES", "LTM", "GTM", "GTT")


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``robustness`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "robustness",
        help="run the robustness benchmark (ten attacks, ERS) on checkpoints (resumable)",
        description="Run robrank's ten-attack robustness suite with a profile on the test set "
        "for each checkpoint and report R@1, mAP, the ten raw numbers and the Empirical "
        "Robustness Score (ERS) side by side with 95% intervals, beside robrank's published "
        "row where the setting matches, on the dataset the checkpoints were trained on. Each "
        "model's per-query results are appended to <out>/<model>.jsonl; rerunning the same "
        "command resumes.",
    )
    _checkpoint_args(
        p, action="append", metavar="CKPT",
        help="checkpoint.pt (or its directory) written by `train`; repeat for more models "
        "(required)",
    )  # fmt: skip
    p.add_argument("--profile", default="rob28", help="rob28 or rob224 (default: rob28)")
    p.add_argument(
        "--eps", default=None,
        help="override the profile's L-inf radius, e.g. 8/255 (default: the profile's, 8/255 "
        "for rob28)",
    )  # fmt: skip
    p.add_argument(
        "--alpha", default=None,
        help="override the profile's PGD step (default: the profile's, 1/255 for rob28)",
    )  # fmt: skip
    p.add_argument(
        "--steps", type=_int_option, default=None,
        help="override the profile's iterations (default: the profile's, 32 for rob28)",
    )  # fmt: skip
    p.add_argument(
        "--attacks", nargs="+", default=None, metavar="ATTACK",
        help="run only these attacks among " + " ".join(_ATTACKS) + ", comma- or "
        "space-separated (default: all; ERS needs all nine)",
    )  # fmt: skip
    p.add_argument(
        "--samples", type=_int_option, default=None,
        help="T, queries per attack: a seeded subset of the test set (default: all of it)",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=_int_option, default=100,
        help="queries per vectorized call (default: 100)",
    )  # fmt: skip
    p.add_argument(
        "--names", default=None, help="comma-separated model names (default: from the paths)"
    )
    p.add_argument(
        "--no-figures", action="store_true", help="do not draw the figure (default: drawn)"
    )
    p.set_defaults(func=run)
    return p


def interrupted(args: argparse.Namespace) -> str:
    """What to tell a user who stopped the command with Ctrl-C."""
    return (
        f"each model's finished chunks are kept in {Path(args.out)}/<model>.jsonl (the chunk "
        "in progress was discarded); run the same command to resume"
    )


def _profile(args: argparse.Namespace) -> Any:
    """The profile the arguments ask for (a named one, or a modified copy named "custom")."""
    from rankattack.evaluation.robustness import get_profile

    if args.eps is not None:
        args.eps = _one(_floats(args.eps, "--eps"), "--eps")
    if args.alpha is not None:
        args.alpha = _one(_floats(args.alpha, "--alpha", low=None), "--alpha")
        if not args.alpha > 0:
            raise ValueError(f"--alpha must be > 0, got {args.alpha:g}")
    if args.steps is not None and args.steps < 0:
        raise ValueError(f"--steps must be >= 0, got {args.steps}")
    if args.attacks is not None:
        args.attacks = _choices(args.attacks, "--attacks", _ATTACKS)
    try:
        profile = get_profile(args.profile)
    except ValueError as exc:
        raise ValueError(f"--{exc}") from None
    changes: dict[str, Any] = {}
    for key in ("eps", "alpha", "steps"):
        value = getattr(args, key)
        if value is not None and value != getattr(profile, key):
            changes[key] = value
    if args.attacks is not None and tuple(args.attacks) != profile.attacks:
        changes["attacks"] = tuple(args.attacks)
    if changes:
        changes["name"] = f"{profile.name}-custom"
        profile = dataclasses.replace(profile, **changes)
    return profile


def _names(args: argparse.Namespace, files: list[Path]) -> list[str]:
    if args.names is not None:
        names = [n.strip() for n in args.names.split(",")]
        if len(names) != len(files) or not all(names):
            raise ValueError(
                f"--names must give {len(files)} non-empty comma-separated names (one per "
                f"--checkpoint), got {args.names!r}"
            )
    else:
        names = [f.parent.name if f.name == "checkpoint.pt" else f.stem for f in files]
        names = [n or "model" for n in names]
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return unique


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack robustness``; returns the exit status."""
    from rankattack.distributed import is_main_process
    from rankattack.evaluation.robustness import (
        find_published,
        robustness_report,
        robustness_table,
    )

    profile = _profile(args)
    if args.samples is not None and args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    files = [_checkpoint_file(c) for c in args.checkpoint]
    names = _names(args, files)
    device = _device(args.device)
    spec, models, data, inputs, labels = _load_checkpoints(args, files, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t = inputs.shape[0] if args.samples is None else args.samples
    _say(
        f"robustness of {len(files)} model(s) on {spec.describe()}: |X| = {inputs.shape[0]}, "
        f"T = {t}, "
        f"profile {profile.name} (eps = {profile.eps:.4g}, alpha = {profile.alpha:.4g}, "
        f"{profile.steps} steps), seed = {args.seed}"
    )
    start = time.perf_counter()
    reports, published = [], []
    for (model, config), name in zip(models, names, strict=True):
        log = out / f"{name}.jsonl"
        _say(f"{name}: {config.model}, {config.metric}, defense {config.defense or 'none'}; "
             f"results are appended to {log} (rerun to resume)")  # fmt: skip
        report = robustness_report(
            model, inputs, labels, profile=profile, samples=args.samples, seed=args.seed,
            metric=config.metric, batch_size=args.batch_size, progress=not args.no_progress,
            results=log, name=name,
        )  # fmt: skip
        reports.append(report)
        setting = (spec.name, profile.name, config.model, config.metric, config.defense)
        published.append(find_published(*setting, loss=config.loss))
    wall = time.perf_counter() - start
    if not is_main_process():
        return 0  # rank 0 writes the tables and the figure of a torchrun job
    title = f"Robustness on {data.name}: profile {profile.name} " + (
        f"(eps = {profile.eps:.4g}, alpha = {profile.alpha:.4g}, {profile.steps} steps), "
        f"T = {reports[0].samples}, seed {args.seed}"
    )
    text = robustness_table(reports, published, title=title)
    _say(text)
    written = [out / "robustness.txt", out / "robustness.md", out / "robustness.json"]
    written[0].write_text(text + "\n")
    written[1].write_text(robustness_table(reports, published, markdown=True, title=title) + "\n")
    summary = {
        "dataset": spec.name,
        "dataset_record": spec.to_dict(),
        "profile": profile.to_dict(),
        "seed": args.seed,
        "command": " ".join(["rankattack", *args.argv]),
        "wall_seconds_this_run": wall,
        "models": [
            {"checkpoint": str(f), **r.to_dict(), "published": None if p is None else p.to_dict()}
            for f, r, p in zip(files, reports, published, strict=True)
        ],
    }
    written[2].write_text(json.dumps(summary, indent=1) + "\n")
    if not args.no_figures:
        from rankattack.plots import plot_robustness_terms

        fig_title = f"ERS terms on {data.name}, profile {profile.name}, T = {reports[0].samples}"
        written.append(plot_robustness_terms(reports, out / "robustness.png", title=fig_title))
    _say(f"wall time {wall:.0f}s; wrote " + ", ".join(str(p) for p in written))
    return 0
