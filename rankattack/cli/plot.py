"""``rankattack plot``: figures from results files.

A Fig. 2-style figure (rank vs eps per attack, one line per results file, plus the maximum
embedding shift) and one w/m figure per file with more than one size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rankattack.cli.common import _common, _int_option, _say

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
    p.add_argument(
        "results", nargs="+", help="results.jsonl or results.json files written by evaluate"
    )
    p.add_argument(
        "--labels", default=None,
        help="comma-separated legend labels, one per results file (default: the model names)",
    )  # fmt: skip
    p.add_argument(
        "--size", type=_int_option, default=1,
        help="w / m of the comparison figure (default: 1)",
    )  # fmt: skip
    p.add_argument(
        "--title", default=None,
        help="title of the comparison figure (default: what is plotted and T)",
    )  # fmt: skip
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack plot``; returns the exit status."""
    from rankattack.evaluation import EvaluationResult
    from rankattack.plots import plot_attack_curves, plot_size_curves

    # every argument is checked before any work starts
    if args.size < 1:
        raise ValueError(f"--size must be >= 1, got {args.size}")
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    if labels is not None and len(labels) != len(args.results):
        raise ValueError(
            f"--labels must give {len(args.results)} comma-separated labels (one per results "
            f"file), got {len(labels)}"
        )
    for path in args.results:
        if not Path(path).is_file():
            raise FileNotFoundError(f"results: no results file at {path}")
    try:
        results = [EvaluationResult.load(p) for p in args.results]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"results: not a results file written by evaluate ({exc!r})") from None
    out = Path(args.out)
    written = [
        plot_attack_curves(
            results, out / "curves.png", size=args.size, labels=labels, title=args.title
        )
    ]
    for r, path in zip(results, args.results, strict=True):
        if len(r.sizes) > 1:
            written.append(plot_size_curves(r, out / f"sizes-{Path(path).parent.name}.png"))
    _say("wrote " + ", ".join(str(p) for p in written))
    return 0
