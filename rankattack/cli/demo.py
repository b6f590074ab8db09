"""``rankattack demo``: vanilla vs defended on the bundled digits, end to end.

Trains a small vanilla C2F1 and one defended with ACT (the anti-collapse triplet defense
of robrank, a PGD adversary of 5 steps at eps 0.3 inside training) on scikit-learn's
bundled digits, runs CA+/CA-/QA+/QA- at a few eps with w = m = 1 (the paper's protocol,
Sec. 4), prints the tables in the paper's layout, says at the largest eps against which
attacks the defended model holds up better than the vanilla one (beyond the 95%
intervals) and saves the figures. The maximum embedding shift is reported raw and
divided by the embedding spread: the paper's embedding-shift defense (Eq. 13), run this
briefly at eps 0.3 on digits, shrinks the whole embedding space (its raw shift drops
thirtyfold while the shift relative to the spread does not), which is why the demo uses
ACT, built to prevent that collapse.

Each model's checkpoint records the dataset, so ``rankattack evaluate --checkpoint
rankattack-demo/vanilla`` evaluates on the same images. A rerun of the same command
resumes (finished epochs and cells are kept). ``--tiny`` is a seconds-long configuration
for smoke tests.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rankattack.cli.common import (
    ATTACK_CHOICES,
    _common,
    _device,
    _floats,
    _int_option,
    _on_resume,
    _ranking_figures,
    _say,
    _write_outputs,
)

__all__ = ["add_parser", "interrupted", "run"]

#: The demo's settings: vanilla epochs, defended epochs, T, eps, the defense's PGD steps.
_FULL: dict[str, Any] = {
    "epochs": 10, "def_epochs": 20, "samples": 100, "eps": "0,0.03,0.1,0.3", "steps": 5,
}  # fmt: skip
_TINY: dict[str, Any] = {"epochs": 2, "def_epochs": 1, "samples": 10, "eps": "0,0.1", "steps": 2}

#: The defense and its adversary's radius.
_DEFENSE, _DEFENSE_EPS = "act", 0.3

#: What the full demo costs: CPU seconds of one thread, measured (see docs/evaluation.md).
_EXPECTED_SECONDS = 70


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "demo",
        help="train vanilla and defended models on digits, attack them, print and plot",
        description="Train a small vanilla and a defended (embedding-shift, Eq. 13) C2F1 "
        "on scikit-learn's bundled digits, run CA+/CA-/QA+/QA- at a few eps with w = m = 1, "
        "print the tables in the paper's layout and save the figures. Rerunning the same "
        "command resumes.",
    )
    _common(p, "rankattack-demo")
    p.add_argument(
        "--samples", type=_int_option, default=None,
        help=f"T, attacks per cell (default: {_FULL['samples']}; {_TINY['samples']} with --tiny)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", type=_int_option, default=None,
        help=f"vanilla training epochs (default: {_FULL['epochs']}; {_TINY['epochs']} with "
        "--tiny)",
    )  # fmt: skip
    p.add_argument(
        "--eps", nargs="+", default=None, metavar="EPS",
        help=f"L-inf radii, comma- or space-separated (default: {_FULL['eps']}; "
        f"{_TINY['eps']} with --tiny)",
    )  # fmt: skip
    p.add_argument(
        "--tiny", action="store_true",
        help="a seconds-long configuration, for smoke tests (default: the full demo)",
    )  # fmt: skip
    p.set_defaults(func=run)
    return p


def interrupted(args: argparse.Namespace) -> str:
    """What to tell a user who stopped the command with Ctrl-C."""
    return (
        f"the finished training epochs and attack cells are kept in {args.out}/; run the "
        "same command to resume"
    )


def _train(config: Any, x: Any, y: Any, out: Path, spec: Any, progress: bool) -> tuple[Any, bool]:
    """Train (resuming a matching checkpoint); returns the result and whether the weights
    changed in this run (the attack cells of older weights are then stale)."""
    from rankattack.training import train
    from rankattack.training.checkpoints import ResumeMismatchError, record_dataset

    ckpt = out / "checkpoint.pt"
    before = ckpt.stat().st_mtime_ns if ckpt.exists() else None
    with record_dataset(spec):
        try:
            res = train(config, x, y, out_dir=out, resume=True, progress=progress)
        except ResumeMismatchError:  # other settings than last time: start over
            res = train(config, x, y, out_dir=out, resume=False, progress=progress)
    after = ckpt.stat().st_mtime_ns if ckpt.exists() else None
    return res, before is None or before != after


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack demo``; returns the exit status."""
    # every argument is checked before any work starts
    defaults = _TINY if args.tiny else _FULL
    eps = _floats(args.eps if args.eps is not None else defaults["eps"], "--eps")
    for name in ("samples", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be >= 1, got {value}")
    device = _device(args.device)

    from rankattack.data import DatasetSpec
    from rankattack.evaluation import evaluate, recall_at_1
    from rankattack.gallery import Gallery
    from rankattack.plots import plot_attack_curves
    from rankattack.training import TrainConfig

    out = Path(args.out)
    start = time.perf_counter()
    progress = not args.no_progress
    if args.tiny:
        spec = DatasetSpec(
            "digits", image_size=8, split_seed=args.seed, train_size=200, test_size=100,
            subset_seed=args.seed,
        )  # fmt: skip
    else:
        spec = DatasetSpec("digits", image_size=16, split_seed=args.seed)
    epochs = args.epochs if args.epochs is not None else defaults["epochs"]
    samples = args.samples if args.samples is not None else defaults["samples"]
    def_epochs, def_steps = defaults["def_epochs"], defaults["steps"]
    data = spec.load()
    spec = spec.loaded(data)
    out.mkdir(parents=True, exist_ok=True)
    _say(
        f"rankattack demo: {data.name} ({data.train_x.shape[0]} train, {data.test_x.shape[0]} "
        f"test images of {'x'.join(map(str, data.input_shape[1:]))}), device {device}"
    )
    if not args.tiny:
        _say(
            f"about {_EXPECTED_SECONDS} s of computing (one CPU core, idle); longer on a busy "
            "machine. Ctrl-C stops it, and the same command resumes."
        )
    x_tr, y_tr = data.train_x.to(device), data.train_y.to(device)
    x_te, y_te = data.test_x.to(device), data.test_y.to(device)
    base: dict[str, Any] = {
        "model": "c2f1", "embedding_dim": 128, "loss": "triplet", "metric": "cosine",
        "batch_size": 64 if args.tiny else 128, "seed": args.seed, "device": str(device),
    }  # fmt: skip
    configs = {
        "vanilla": TrainConfig(**base, epochs=epochs),
        "defended": TrainConfig(
            **base,
            epochs=def_epochs,
            defense=_DEFENSE,
            eps=_DEFENSE_EPS,
            steps=def_steps,
            alpha=1.25 * _DEFENSE_EPS / def_steps,
        ),
    }
    (out / "demo.json").write_text(
        json.dumps({"dataset": spec.to_dict(), "samples": samples, "eps": eps}, indent=1) + "\n"
    )
    results = []
    for label, config in configs.items():
        t0 = time.perf_counter()
        what = (
            f"{config.defense.upper()}, {config.pgd_steps} PGD steps at eps {config.pgd_eps:g} "
            "per batch"
            if config.defense
            else "no defense"
        )
        _say(f"training the {label} model ({config.epochs} epochs, {what}) ...")
        res, retrained = _train(config, x_tr, y_tr, out / label, spec, progress)
        gallery = Gallery.from_inputs(res.model, x_te, y_te, metric="cosine")
        _say(f"  R@1 {recall_at_1(gallery):.1f}% after {time.perf_counter() - t0:.0f}s")
        _say(f"attacking the {label} model: T = {samples} per cell, eps = {eps}, w = m = 1 ...")
        log = out / label / "results.jsonl"
        if retrained:
            log.unlink(missing_ok=True)  # cells of the previous weights are stale
        result = evaluate(
            res.model, x_te, y_te, eps=eps, sizes=[1], samples=samples, seed=args.seed,
            gallery=gallery, results=log, name=label, progress=progress,
            on_resume=_on_resume(log),
        )  # fmt: skip
        results.append(result)
        _say()
        _say(result.table())
        _say()
        _write_outputs(result, out / label, None, figures=False)
        if not args.tiny or label == "vanilla":
            figs = ["CA+"] if args.tiny else ATTACK_CHOICES
            _ranking_figures(res.model, gallery, x_te, out / label, max(eps), args.seed, figs)
    for line in _verdict(results[0], results[1], eps):
        _say(line)
    curves = plot_attack_curves(
        results,
        out / "vanilla-vs-defended.png",
        title=f"{data.name} {'x'.join(map(str, data.input_shape[1:]))}, C2F1, w = m = 1, "
        f"T = {samples}",
    )
    _say(f"done in {time.perf_counter() - start:.0f}s. Figures and tables are in {out}/:")
    _say(f"  {curves}  rank vs eps per attack, vanilla vs defended, and max embedding shift")
    for label in configs:
        _say(f"  {out / label}/ranking-*.png  ranking lists before/after each attack ({label})")
        _say(f"  {out / label}/table.txt, results.csv, results.json, results.jsonl")
    _say(f"evaluate a model again: rankattack evaluate --checkpoint {out / 'vanilla'} --out DIR")
    return 0


def _verdict(vanilla: Any, defended: Any, eps: list[float]) -> list[str]:
    """Per eps > 0: which attacks the defended model resists better than the vanilla one
    (the 95% intervals apart), and the shift relative to the embedding spread."""
    lines = [
        "defended vs vanilla, mean rank after the attack (%): 'better' when the defended "
        "model's rank moved less, the 95% intervals apart"
    ]
    for e in (e for e in eps if e > 0):
        better: list[str] = []
        not_better: list[str] = []
        for attack in ATTACK_CHOICES:
            v, d = vanilla.get(attack, e, 1), defended.get(attack, e, 1)
            if v is None or d is None:
                continue
            v_ci = 0.0 if v.ci != v.ci else v.ci  # nan with T = 1
            d_ci = 0.0 if d.ci != d.ci else d.ci
            # "+" attacks push the rank down (towards 0), "-" attacks up
            held = d.mean - d_ci > v.mean + v_ci if attack.endswith("+") else (
                d.mean + d_ci < v.mean - v_ci
            )  # fmt: skip
            (better if held else not_better).append(f"{attack} {d.mean:.1f} vs {v.mean:.1f}")
        text = f"  eps {e:g}: better against {', '.join(better) or 'none'}"
        if not_better:
            text += f"; not against {', '.join(not_better)}"
        rel_v, rel_d = vanilla.relative_shift(e), defended.relative_shift(e)
        if rel_v is not None and rel_d is not None:
            text += f"; shift / spread {rel_d:.2f} vs {rel_v:.2f}"
        lines.append(text)
    if vanilla.spread and defended.spread:
        lines.append(
            f"  embedding spread (median distance of two items): {defended.spread:.3f} vs "
            f"{vanilla.spread:.3f}; the raw shift is in the tables"
        )
    return lines
