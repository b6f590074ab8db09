"""What the subcommands share: argument groups, parsing helpers, loading and writing.

The argument groups (``_common``, ``_data_args``, ``_protocol_args``, ``_train_args``)
add the options several subcommands take; ``_floats`` and ``_ints`` parse comma-separated
lists; ``_device``, ``_load_data`` and ``_load_model`` resolve the device, the dataset and
a checkpoint; ``_write_outputs`` and ``_ranking_figures`` write an evaluation's tables and
figures. Heavy modules (datasets, training, evaluation, plots) are imported inside the
functions, so that the command starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

ATTACK_CHOICES = ("CA+", "CA-", "QA+", "QA-")


def _say(text: str = "") -> None:
    """Write a line of the command's output to stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _device(name: str) -> torch.device:
    from rankattack.distributed import local_device  # under torchrun: cuda:LOCAL_RANK

    if name == "auto":
        return local_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise SystemExit(f"rankattack: --device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("rankattack: --device cuda requested but CUDA is not available")
    return local_device(dev)


# --------------------------------------------------------------------------------------
# argument groups
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


def _number(text: str | None, name: str) -> float | None:
    """A number or a fraction such as ``77/255`` given to option ``name`` (None stays None)."""
    if text is None:
        return None
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(
            f"{name} must be a number or a fraction such as 8/255, got {text!r}"
        ) from None


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="c2f1", help="c2f1, c2f2, lenet or resnet18 (default: c2f1)")
    p.add_argument("--embedding-dim", type=int, default=None)
    p.add_argument("--loss", default="triplet", help="triplet or contrastive (default: triplet)")
    p.add_argument(
        "--metric",
        default="cosine",
        help="cosine, euclidean or normalized-euclidean (default: cosine)",
    )
    p.add_argument("--margin", type=float, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument(
        "--defense",
        default="none",
        help="none; est (embedding shift, Eq. 13; also embedding-shift), act (anti-collapse "
        "triplet), hm (hardness manipulation); madry, shift-suppress (Appendix H) "
        "(default: none)",
    )
    p.add_argument(
        "--defense-eps", default=None,
        help="defense's L-inf radius, e.g. 77/255 (default: the defense's 28x28 setting, "
        "77/255 for est, act and hm)",
    )  # fmt: skip
    p.add_argument(
        "--defense-alpha", default=None,
        help="defense's PGD step (default: 3/255 for est, act and hm)",
    )  # fmt: skip
    p.add_argument(
        "--defense-steps", type=int, default=None,
        help="defense's PGD iterations (default: 32 for est, act and hm)",
    )  # fmt: skip
    p.add_argument(
        "--miner", default=None,
        help="random (one triplet per image), spc2 (robrank's: every other image an anchor) "
        "or softhard (default: the defense's own: spc2 for act, softhard for hm, else random)",
    )  # fmt: skip
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")


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
# loading and writing
def _load_data(args: argparse.Namespace) -> Any:
    from rankattack.data import load_dataset

    kw = {} if args.image_size is None else {"image_size": args.image_size}
    data = load_dataset(args.dataset, args.data_dir, **kw)
    if args.train_size is not None or args.test_size is not None:
        data = data.subset(args.train_size, args.test_size, seed=args.seed)
    return data


def _load_model(path: str, device: torch.device) -> tuple[Any, Any]:
    from rankattack.training import load_checkpoint

    model, config = load_checkpoint(path, map_location=device)
    return model.to(device).eval(), config


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
