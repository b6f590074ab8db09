"""The ``rankattack`` command: demo, train, evaluate, universal, transfer, plot.

``rankattack demo`` trains a vanilla and a defended model on scikit-learn's bundled
digits, runs the paper's protocol (Sec. 4) on both, prints the tables and saves the
figures. ``rankattack evaluate`` runs the full protocol on a trained checkpoint,
resumably. Run ``rankattack <command> --help`` for each command's options; the same
entry point is ``python -m rankattack``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

ATTACK_CHOICES = ("CA+", "CA-", "QA+", "QA-")


def _say(text: str = "") -> None:
    """Write a line of the command's output to stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise SystemExit(f"rankattack: --device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("rankattack: --device cuda requested but CUDA is not available")
    return dev


# --------------------------------------------------------------------------------------
# argument parsing
def _common(p: argparse.ArgumentParser, out_default: str | None) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda when available, else cpu)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--out",
        default=out_default,
        required=out_default is None,
        help="output directory" + (f" (default: {out_default})" if out_default else ""),
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step")


def _data_args(p: argparse.ArgumentParser, default: str = "digits") -> None:
    p.add_argument(
        "--dataset",
        default=default,
        help=f"digits (bundled), mnist or fashion-mnist (default: {default})",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory with the IDX files (mnist, fashion-mnist; default for fashion-mnist: "
        "/usr/share/datasets/fashion-mnist)",
    )
    p.add_argument(
        "--image-size", type=int, default=None, help="digits only: side of the images (28)"
    )
    p.add_argument("--train-size", type=int, default=None, help="use a stratified subset")
    p.add_argument(
        "--test-size", type=int, default=None, help="use a stratified subset of the test set"
    )


def _protocol_args(p: argparse.ArgumentParser, eps: str, sizes: str, samples: int) -> None:
    p.add_argument(
        "--attacks", nargs="+", default=list(ATTACK_CHOICES), choices=ATTACK_CHOICES,
        metavar="ATTACK", help="attacks among CA+ CA- QA+ QA- (default: all four)",
    )  # fmt: skip
    p.add_argument("--eps", default=eps, help=f"comma-separated L-inf radii (default: {eps})")
    p.add_argument(
        "--sizes", default=sizes, help=f"comma-separated w (CA) / m (QA) (default: {sizes})"
    )
    p.add_argument(
        "--samples", type=int, default=samples, help=f"T, attacks per cell (default: {samples})"
    )
    p.add_argument(
        "--batch-size", type=int, default=250, help="attacks per vectorized call (default: 250)"
    )


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="c2f1", help="c2f1, lenet or resnet18 (default: c2f1)")
    p.add_argument("--embedding-dim", type=int, default=None)
    p.add_argument("--loss", default="triplet", help="triplet or contrastive (default: triplet)")
    p.add_argument("--metric", default="cosine", help="cosine or euclidean (default: cosine)")
    p.add_argument("--margin", type=float, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument(
        "--defense", default="none", help="none or embedding-shift (Eq. 13) (default: none)"
    )
    p.add_argument("--defense-eps", type=float, default=None, help="defense's L-inf radius")
    p.add_argument("--defense-alpha", type=float, default=None, help="defense's PGD step")
    p.add_argument("--defense-steps", type=int, default=None, help="defense's PGD iterations")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rankattack`` command."""
    parser = argparse.ArgumentParser(
        prog="rankattack",
        description="Adversarial ranking attacks and defenses (Zhou et al., ECCV 2020).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "demo",
        help="train vanilla and defended models on digits, attack them, print and plot",
        description="Train a small vanilla and a defended (embedding-shift, Eq. 13) C2F1 "
        "on scikit-learn's bundled digits, run CA+/CA-/QA+/QA- at a few eps with w = m = 1, "
        "print the tables in the paper's layout and save the figures.",
    )
    _common(p, "rankattack-demo")
    p.add_argument("--samples", type=int, default=None, help="T per cell (default: 100)")
    p.add_argument("--epochs", type=int, default=None, help="vanilla training epochs")
    p.add_argument("--eps", default=None, help="comma-separated radii (default: 0,0.03,0.1,0.3)")
    p.add_argument(
        "--tiny", action="store_true", help="a seconds-long configuration (for smoke tests)"
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "train",
        help="train a ranking model (optionally with the embedding-shift defense)",
        description="Train an embedding model with a ranking loss; writes checkpoint.pt "
        "into --out and resumes from it unless --no-resume.",
    )
    _common(p, None)
    _data_args(p)
    _train_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
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
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
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
    p.set_defaults(func=_cmd_universal)

    p = sub.add_parser(
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
    p.set_defaults(func=_cmd_transfer)

    p = sub.add_parser(
        "plot",
        help="draw rank-vs-eps figures from results files",
        description="Fig. 2-style figure (rank vs eps per attack, one line per results file, "
        "plus the maximum embedding shift) and one w/m figure per file.",
    )
    _common(p, None)
    p.add_argument("results", nargs="+", help="results.jsonl or results.json files")
    p.add_argument("--labels", default=None, help="comma-separated legend labels")
    p.add_argument("--size", type=int, default=1, help="w / m of the comparison figure")
    p.set_defaults(func=_cmd_plot)
    return parser


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(
            f"rankattack: {name} must be comma-separated numbers, got {text!r}"
        ) from None


def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(
            f"rankattack: {name} must be comma-separated integers, got {text!r}"
        ) from None


# --------------------------------------------------------------------------------------
# helpers
def _load_data(args: argparse.Namespace) -> Any:
    from rankattack.datasets import load_dataset

    kw = {} if args.image_size is None else {"image_size": args.image_size}
    data = load_dataset(args.dataset, args.data_dir, **kw)
    if args.train_size is not None or args.test_size is not None:
        data = data.subset(args.train_size, args.test_size, seed=args.seed)
    return data


def _train_config(args: argparse.Namespace, device: torch.device, **override: Any) -> Any:
    from rankattack.training import TrainConfig

    values: dict[str, Any] = {
        "model": args.model,
        "embedding_dim": args.embedding_dim,
        "loss": args.loss,
        "metric": args.metric,
        "margin": args.margin,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "device": str(device),
        "defense": None if args.defense in (None, "none") else args.defense,
        "eps": args.defense_eps,
        "alpha": args.defense_alpha,
        "steps": args.defense_steps,
    }
    values.update(override)
    return TrainConfig(**{k: v for k, v in values.items() if v is not None or k == "defense"})


def _paper(choice: str, dataset: str, defended: bool) -> Any:
    from rankattack.evaluation import load_paper_table

    if choice == "none":
        return None
    if choice == "auto":
        if dataset.strip().lower().replace("_", "-") != "fashion-mnist":
            return None
        choice = "CTD" if defended else "CT"
    return load_paper_table(choice)


def _write_outputs(
    result: Any, out: Path, paper: Any, stem: str = "", figures: bool = True
) -> list[Path]:
    """Table (txt, md), CSV, JSON and the per-size figure of one evaluation."""
    written = []
    text = result.table(paper=paper)
    (out / f"{stem}table.txt").write_text(text + "\n")
    (out / f"{stem}table.md").write_text(result.table(paper=paper, markdown=True) + "\n")
    written += [out / f"{stem}table.txt", out / f"{stem}table.md"]
    written.append(result.save_csv(out / f"{stem}results.csv"))
    written.append(result.save_json(out / f"{stem}results.json"))
    if figures:
        from rankattack.plots import plot_attack_curves, plot_size_curves

        written.append(plot_attack_curves(result, out / f"{stem}curves.png"))
        if len(result.sizes) > 1:
            written.append(plot_size_curves(result, out / f"{stem}sizes.png"))
    return written


def _ranking_figures(
    model: Any,
    gallery: Any,
    inputs: Any,
    out: Path,
    eps: float,
    seed: int,
    attacks: Sequence[str] = ATTACK_CHOICES,
) -> list[Path]:
    """One Fig. 1-style ranking list per attack: ``<out>/ranking-CAplus.png`` etc."""
    from rankattack.evaluation import ranking_example
    from rankattack.plots import plot_ranking_example

    paths = []
    k = min(8, len(gallery) - 2)
    for attack in attacks:
        ex = ranking_example(model, gallery, inputs, attack, eps, k=k, seed=seed)
        name = attack.replace("+", "plus").replace("-", "minus")
        paths.append(plot_ranking_example(ex, out / f"ranking-{name}.png"))
    return paths


# --------------------------------------------------------------------------------------
# commands
def _cmd_train(args: argparse.Namespace) -> int:
    from rankattack.evaluation import recall_at_1
    from rankattack.gallery import Gallery
    from rankattack.training import train

    device = _device(args.device)
    data = _load_data(args)
    config = _train_config(args, device)
    out = Path(args.out)
    start = time.perf_counter()
    res = train(
        config, data.train_x.to(device), data.train_y.to(device), out_dir=out,
        resume=not args.no_resume, progress=not args.no_progress,
    )  # fmt: skip
    gallery = Gallery.from_inputs(
        res.model, data.test_x.to(device), data.test_y.to(device), metric=config.metric
    )
    r1 = recall_at_1(gallery)
    _say(f"trained {config.model} on {data.name} in {time.perf_counter() - start:.0f}s")
    _say(f"R@1 on the test set ({len(gallery)} items): {r1:.1f}%")
    _say(f"checkpoint: {res.checkpoint}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
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


def _cmd_plot(args: argparse.Namespace) -> int:
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


def _load_model(path: str, device: torch.device) -> tuple[Any, Any]:
    from rankattack.training import load_checkpoint

    model, config = load_checkpoint(path, map_location=device)
    return model.to(device).eval(), config


def _targets(gallery: Any, inputs: Any, attack: str, sample: Any, sl: slice) -> dict[str, Any]:
    """Keyword arguments naming the inputs and targets of the anchors in ``sl``."""
    device = gallery.embeddings.device
    a, p = sample.anchors[sl].to(device), sample.partners[sl].to(device)
    if attack.startswith("CA"):
        return {"inputs": inputs[a], "query_embeddings": gallery.embeddings[p]}
    return {"inputs": inputs[a], "candidate_indices": p, "query_indices": a}


def _cmd_universal(args: argparse.Namespace) -> int:
    from rankattack.attacks.universalrankattack import UniversalRankAttack, evaluate_seen_unseen
    from rankattack.gallery import Gallery
    from rankattack.sampling import cell_seed, sample_cell

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


def _cmd_transfer(args: argparse.Namespace) -> int:
    from rankattack.gallery import Gallery
    from rankattack.sampling import cell_seed, sample_cell
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


def _cmd_demo(args: argparse.Namespace) -> int:
    from rankattack.datasets import load_digits
    from rankattack.evaluation import evaluate, recall_at_1
    from rankattack.gallery import Gallery
    from rankattack.plots import plot_attack_curves
    from rankattack.training import TrainConfig, train

    device = _device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    progress = not args.no_progress
    if args.tiny:
        data = load_digits(image_size=8, seed=args.seed).subset(200, 100, seed=args.seed)
        epochs, def_epochs, samples, eps, def_steps = 2, 1, 10, [0.0, 0.1], 2
    else:
        data = load_digits(image_size=16, seed=args.seed)
        epochs, def_epochs, samples, eps, def_steps = 10, 4, 100, [0.0, 0.03, 0.1, 0.3], 5
    epochs = args.epochs if args.epochs is not None else epochs
    samples = args.samples if args.samples is not None else samples
    eps = _floats(args.eps, "--eps") if args.eps else eps
    _say(
        f"rankattack demo: {data.name} ({data.train_x.shape[0]} train, {data.test_x.shape[0]} "
        f"test images), device {device}"
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
            defense="embedding-shift",
            eps=0.3,
            steps=def_steps,
            alpha=0.75 / def_steps,
        ),
    }
    results = []
    models = {}
    for label, config in configs.items():
        t0 = time.perf_counter()
        _say(f"training the {label} model ({config.epochs} epochs) ...")
        res = train(config, x_tr, y_tr, out_dir=out / label, resume=False, progress=progress)
        models[label] = res.model
        gallery = Gallery.from_inputs(res.model, x_te, y_te, metric="cosine")
        _say(f"  R@1 {recall_at_1(gallery):.1f}% after {time.perf_counter() - t0:.0f}s")
        _say(f"attacking the {label} model: T = {samples} per cell, eps = {eps}, w = m = 1 ...")
        log = out / label / "results.jsonl"
        log.unlink(missing_ok=True)  # the model was just retrained: old cells are stale
        result = evaluate(
            res.model, x_te, y_te, eps=eps, sizes=[1], samples=samples, seed=args.seed,
            gallery=gallery, results=log, name=label,
            progress=progress,
        )  # fmt: skip
        results.append(result)
        _say()
        _say(result.table())
        _say()
        _write_outputs(result, out / label, None, figures=False)
        if not args.tiny or label == "vanilla":
            figs = ["CA+"] if args.tiny else ATTACK_CHOICES
            _ranking_figures(res.model, gallery, x_te, out / label, max(eps), args.seed, figs)
    curves = plot_attack_curves(results, out / "vanilla-vs-defended.png")
    _say(f"done in {time.perf_counter() - start:.0f}s. Figures and tables are in {out}/:")
    _say(f"  {curves}  rank vs eps per attack, vanilla vs defended, and max embedding shift")
    for label in configs:
        _say(f"  {out / label}/ranking-*.png  ranking lists before/after each attack ({label})")
        _say(f"  {out / label}/table.txt, results.csv, results.json, results.jsonl")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rankattack`` command (and ``python -m rankattack``)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"rankattack {args.command}: error: {exc}\n")
    return code
