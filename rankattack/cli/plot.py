"""``rankattack plot``: figures from results files.

A Fig. 2-style figure (rank vs eps per attack, one line per results file, plus the maximum
embedding shift) and one w/m figure per file with more than one size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rankattack.cli.common import _common, _say

__all__ = ["add_parser", "run"]


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``plot`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "plot",
        help="draw rank-vs-eps figures from results files",
        description="Fig. 2-style figure (rank vs eps per attack, one line per results file, "
        "plus the maximum embedding shift) and one w/m figure per file.",
    )
    _common(p, None)
    p.add_argument("results", nargs="+", help="results.jsonl or results.json files")
    p.add_argument("--labels", default=None, help="comma-separated legend labels")
    p.add_argument("--size", type=int, default=1, help="w / m of the comparison figure")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack plot``; returns the exit status."""
    from rankattack.evaluation import EvaluationResult
    from rankattack.plots import plot_attack_curves, plot_size_curves

    results = [EvaluationResult.load(p) for p in args.results]
    labels = args.labels.split(",") if args.labels else None
    out = Path(args.out)
    written = [plot_attack_curves(results, out / "curves.png", size=args.size, labels=labels)]
    for r, path in zip(results, args.results, strict=True):
        if len(r.sizes) > 1:
            written.append(plot_size_curves(r, out / f"sizes-{Path(path).parent.name}.png"))
    _say("wrote " + ", ".join(str(p) for p in written))
    return 0
