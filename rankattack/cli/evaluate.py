"""``rankattack evaluate``: the paper's attack protocol on a checkpoint, resumably.

Runs CA+/CA-/QA+/QA- for each eps and w/m on the test set (Sec. 4) with 95% CIs, the C_SP
ranks, R@1 and the maximum embedding shift; cells are appended to ``<out>/results.jsonl``
so that a rerun resumes. Writes the tables (beside the paper's Table 3 when asked), CSV,
JSON, figures and ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rankattack.cli.common import (
    _common,
    _data_args,
    _device,
    _floats,
    _ints,
    _load_data,
    _load_model,
    _protocol_args,
    _ranking_figures,
    _say,
    _write_outputs,
)

__all__ = ["add_parser", "run"]


def _paper(choice: str, dataset: str, defended: bool) -> Any:
    from rankattack.evaluation import load_paper_table

    if choice == "none":
        return None
    if choice == "auto":
        if dataset.strip().lower().replace("_", "-") != "fashion-mnist":
            return None
        choice = "CTD" if defended else "CT"
    return load_paper_table(choice)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "evaluate",
        help="run the paper's attack protocol on a checkpoint (resumable)",
        description="Run CA+/CA-/QA+/QA- for each eps and w/m on the test set (Sec. 4), "
        "with 95%% CIs, the C_SP ranks, R@1 and the maximum embedding shift. Cells are "
        "appended to <out>/results.jsonl; rerunning resumes.",
    )
    _common(p, None)
    _data_args(p, "fashion-mnist")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by `train`")
    _protocol_args(p, "0,0.01,0.03,0.1,0.3", "1,2,5,10", 1000)
    p.add_argument("--name", default=None, help="model name in tables (default: from --out)")
    p.add_argument(
        "--paper", default="auto", choices=("auto", "none", "CT", "CTD"),
        help="print the paper's Table 3 beside ours: CT (vanilla), CTD (defended); auto picks "
        "by the checkpoint's defense on fashion-mnist (default: auto)",
    )  # fmt: skip
    p.add_argument("--no-shift", action="store_true", help="skip the maximum-shift cells")
    p.add_argument("--no-figures", action="store_true", help="do not draw figures")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack evaluate``; returns the exit status."""
    from rankattack.distributed import is_main_process
    from rankattack.evaluation import evaluate

    device = _device(args.device)
    model, config = _load_model(args.checkpoint, device)
    data = _load_data(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or out.name
    eps = _floats(args.eps, "--eps")
    sizes = _ints(args.sizes, "--sizes")
    inputs, labels = data.test_x.to(device), data.test_y.to(device)
    metric = getattr(config, "metric", "cosine")
    defended = getattr(config, "defense", None) not in (None, "none")
    _say(
        f"evaluating {args.checkpoint} ({name}) on {data.name}: |X| = {inputs.shape[0]}, "
        f"T = {args.samples}, eps = {eps}, w/m = {sizes}, seed = {args.seed}"
    )
    _say(f"results are appended to {out / 'results.jsonl'} (rerun to resume)")
    start = time.perf_counter()
    result = evaluate(
        model, inputs, labels, attacks=args.attacks, eps=eps, sizes=sizes,
        samples=args.samples, seed=args.seed, shift=not args.no_shift, metric=metric,
        results=out / "results.jsonl", name=name, batch_size=args.batch_size,
        progress=not args.no_progress,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if not is_main_process():
        return 0  # rank 0 writes the tables and figures of a torchrun job
    paper = _paper(args.paper, args.dataset, defended)
    _say(result.table(paper=paper))
    written = _write_outputs(result, out, paper, figures=not args.no_figures)
    if not args.no_figures:
        from rankattack.gallery import Gallery

        gallery = Gallery.from_inputs(model, inputs, labels, metric=metric)
        fig_eps = max(eps)
        written += _ranking_figures(model, gallery, inputs, out, fig_eps, args.seed)
    meta = {
        "checkpoint": str(args.checkpoint),
        "dataset": data.name,
        "command": " ".join(["rankattack", *args.argv]),
        "wall_seconds_this_run": wall,
        "cell_seconds_total": sum(c.seconds for c in result.cells),
    }
    (out / "run.json").write_text(json.dumps(meta, indent=1) + "\n")
    _say(f"wall time {wall:.0f}s; wrote " + ", ".join(str(p) for p in written))
    return 0
