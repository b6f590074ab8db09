"""``rankattack evaluate``: the paper's attack protocol on a checkpoint, resumably.

Runs CA+/CA-/QA+/QA- for each eps and w/m on the test set (Sec. 4) with 95% CIs, the C_SP
ranks, R@1, R@k, mAP and the maximum embedding shift (raw and relative to the embedding
spread), on the dataset the checkpoint was trained on unless told otherwise (another one
is refused). Cells are appended to ``<out>/results.jsonl`` so that a rerun resumes; each
cell's T attacks are kept in ``<out>/samples/`` (indices, ranks before and after,
perturbation norms; the adversarial inputs with ``--save-adversarial``) and listed in
``<out>/samples.csv``. Writes the tables (beside the paper's Table 3 when asked), CSV,
JSON, figures and ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rankattack.cli.common import (
    ATTACK_CHOICES,
    _checkpoint_args,
    _checkpoint_file,
    _choices,
    _device,
    _floats,
    _ints,
    _load_checkpoints,
    _on_resume,
    _protocol_args,
    _ranking_figures,
    _say,
    _write_outputs,
)

__all__ = ["add_parser", "interrupted", "run"]


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
        "with 95% CIs, the C_SP ranks, R@1, R@k, mAP and the maximum embedding shift, on "
        "the dataset the checkpoint was trained on. Cells are appended to "
        "<out>/results.jsonl; rerunning the same command resumes. Each cell's attacks are "
        "kept in <out>/samples/ and <out>/samples.csv.",
    )
    _checkpoint_args(p)
    _protocol_args(p, "0,0.01,0.03,0.1,0.3", "1,2,5,10", 1000)
    p.add_argument(
        "--name", default=None, help="model name in tables (default: the --out folder's name)"
    )
    p.add_argument(
        "--paper", default="auto", choices=("auto", "none", "CT", "CTD"),
        help="print the paper's Table 3 beside ours: CT (vanilla), CTD (defended); auto picks "
        "by the checkpoint's defense on fashion-mnist (default: auto)",
    )  # fmt: skip
    p.add_argument(
        "--no-shift", action="store_true",
        help="skip the maximum-shift cells (default: measured at every eps)",
    )  # fmt: skip
    p.add_argument(
        "--save-adversarial", action="store_true",
        help="also keep the adversarial inputs in <out>/samples/ (torch .pt files, read back "
        "with rankattack.evaluation.CellSamples.load; default: indices, ranks and norms only)",
    )  # fmt: skip
    p.add_argument("--no-figures", action="store_true", help="do not draw figures (default: drawn)")
    p.set_defaults(func=run)
    return p


def interrupted(args: argparse.Namespace) -> str:
    """What to tell a user who stopped the command with Ctrl-C."""
    log = Path(args.out) / "results.jsonl"
    return (
        f"the finished cells are kept in {log} (the cell in progress was discarded); run "
        "the same command to resume"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack evaluate``; returns the exit status."""
    from rankattack.distributed import is_main_process
    from rankattack.evaluation import evaluate, load_samples, write_samples_csv

    # every argument is checked before any work starts
    eps = _floats(args.eps, "--eps")
    sizes = _ints(args.sizes, "--sizes")
    attacks = _choices(args.attacks, "--attacks", ATTACK_CHOICES)
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = _device(args.device)
    checkpoint = _checkpoint_file(args.checkpoint)
    spec, [(model, config)], data, inputs, labels = _load_checkpoints(args, [checkpoint], device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or out.name
    metric = getattr(config, "metric", "cosine")
    defended = getattr(config, "defense", None) not in (None, "none")
    _say(
        f"evaluating {args.checkpoint} ({name}) on {spec.describe()}: |X| = "
        f"{inputs.shape[0]}, T = {args.samples}, eps = {eps}, w/m = {sizes}, seed = {args.seed}"
    )
    _say(f"results are appended to {out / 'results.jsonl'} (rerun the same command to resume)")
    start = time.perf_counter()
    result = evaluate(
        model, inputs, labels, attacks=attacks, eps=eps, sizes=sizes,
        samples=args.samples, seed=args.seed, shift=not args.no_shift, metric=metric,
        results=out / "results.jsonl", name=name, batch_size=args.batch_size,
        progress=not args.no_progress, samples_dir=out / "samples",
        adversarial=args.save_adversarial, on_resume=_on_resume(out / "results.jsonl"),
    )  # fmt: skip
    wall = time.perf_counter() - start
    if not is_main_process():
        return 0  # rank 0 writes the tables and figures of a torchrun job
    paper = _paper(args.paper, spec.name, defended)
    _say(result.table(paper=paper))
    written = _write_outputs(result, out, paper, figures=not args.no_figures)
    wanted = {(c.attack, c.eps, c.size, c.samples, c.seed) for c in result.cells}
    kept = [
        c for c in load_samples(out / "samples")
        if (c.attack, c.eps, c.size, c.samples, c.seed) in wanted
    ]  # fmt: skip
    written.append(write_samples_csv(kept, out / "samples.csv"))
    if not args.no_figures:
        from rankattack.gallery import Gallery

        gallery = Gallery.from_inputs(model, inputs, labels, metric=metric)
        fig_eps = max(eps)
        written += _ranking_figures(
            model, gallery, inputs, out, fig_eps, args.seed, attacks, data.class_names
        )
    meta = {
        "checkpoint": str(args.checkpoint),
        "dataset": spec.name,
        "dataset_record": spec.to_dict(),
        "command": " ".join(["rankattack", *args.argv]),
        "wall_seconds_this_run": wall,
        "cell_seconds_total": sum(c.seconds for c in result.cells),
        "units": "ranks in percent of |X| (tables, results.*), fractions of |X| "
        "(samples/, samples.csv)",
    }
    (out / "run.json").write_text(json.dumps(meta, indent=1) + "\n")
    _say(f"wall time {wall:.0f}s; wrote " + ", ".join(str(p) for p in written))
    return 0
