"""What the subcommands share: argument groups, argument checks, loading and writing.

The argument groups (``_common``, ``_data_args``, ``_checkpoint_args``, ``_protocol_args``,
``_train_args``) add the options several subcommands take, each with its help and default.
The checks (``_number``, ``_floats``, ``_ints``, ``_one``, ``_choices``, ``_at_least``) turn
an option's text into values or raise a ``ValueError`` that names the option (``--eps must
be ...``), so every command checks all its arguments before it does any work and every bad
argument ends the same way: one line on stderr and exit status 2 (``app.main``). Lists are
comma-separated or space-separated, for every list option alike (``--eps 0,0.1`` or
``--eps 0 0.1``). ``_device``, ``_dataset_spec``, ``_load_data`` and ``_load_model``
resolve the device, the dataset (by default the one the checkpoint records) and a
checkpoint; ``_load_checkpoints`` loads the checkpoints a command attacks with the test set
of their dataset. ``_write_outputs`` and ``_ranking_figures`` write an evaluation's tables
and figures. Heavy modules (datasets, training, evaluation, plots) are imported inside the
functions, so that the command starts fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

logger = logging.getLogger("rankattack.cli")

ATTACK_CHOICES = ("CA+", "CA-", "QA+", "QA-")

#: The dataset of the evaluating commands when the checkpoint records none (older
#: checkpoints): what they used before checkpoints recorded their data.
LEGACY_DATASET = "fashion-mnist"


def _say(text: str = "") -> None:
    """Write a line of the command's output to stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _note(text: str) -> None:
    """Write a note (not an error) to stderr: ``rankattack: note: ...``."""
    sys.stderr.write(f"rankattack: note: {text}\n")
    sys.stderr.flush()


def _device(name: str) -> torch.device:
    """The device ``--device`` names (``auto``: CUDA when available, else the CPU)."""
    from rankattack.distributed import local_device  # under torchrun: cuda:LOCAL_RANK

    if name == "auto":
        return local_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(
            f"--device must name a torch device such as cpu or cuda:0 ({exc})"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    return local_device(dev)


# --------------------------------------------------------------------------------------
# argument checks: text -> values, or a ValueError naming the option
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


def _items(value: str | Sequence[str]) -> list[str]:
    """The items of a list option given comma-separated, space-separated or both."""
    parts = [value] if isinstance(value, str) else list(value)
    return [item.strip() for part in parts for item in part.split(",") if item.strip()]


def _floats(value: str | Sequence[str], name: str, low: float | None = 0.0) -> list[float]:
    """Numbers (or fractions such as 8/255), comma- or space-separated, each ``>= low``."""
    items = _items(value)
    if not items:
        raise ValueError(f"{name} must give at least one number, got {value!r}")
    out = []
    for item in items:
        try:
            number = _number(item, name)
        except ValueError:
            raise ValueError(
                f"{name} must be numbers or fractions such as 8/255, comma-separated, got {item!r}"
            ) from None
        assert number is not None
        if low is not None and not number >= low:
            raise ValueError(f"{name} must be >= {low:g}, got {item}")
        out.append(number)
    return out


def _ints(value: str | Sequence[str], name: str, low: int | None = 1) -> list[int]:
    """Integers, comma- or space-separated, each ``>= low``."""
    items = _items(value)
    if not items:
        raise ValueError(f"{name} must give at least one integer, got {value!r}")
    out = []
    for item in items:
        try:
            number = int(item)
        except ValueError:
            raise ValueError(f"{name} must be integers, comma-separated, got {item!r}") from None
        if low is not None and number < low:
            raise ValueError(f"{name} must be >= {low}, got {number}")
        out.append(number)
    return out


def _one(values: list[float], name: str) -> float:
    """The one number an option that takes a single value was given."""
    if len(values) != 1:
        raise ValueError(f"{name} must be one number, got {len(values)}")
    return values[0]


def _choices(value: str | Sequence[str], name: str, choices: Sequence[str]) -> list[str]:
    """Names among ``choices``, comma- or space-separated, in the order given, no repeats."""
    items = _items(value)
    if not items:
        raise ValueError(f"{name} must name at least one of {', '.join(choices)}")
    out: list[str] = []
    for item in items:
        if item not in choices:
            raise ValueError(f"{name} must be among {', '.join(choices)}, got {item!r}")
        if item not in out:
            out.append(item)
    return out


def _at_least(value: Any, name: str, low: float, high: float | None = None) -> None:
    """``value`` (a number already parsed, or None) must be ``>= low`` (and ``<= high``)."""
    if value is None:
        return
    if not value >= low:
        raise ValueError(f"{name} must be >= {low:g}, got {value:g}")
    if high is not None and not value <= high:
        raise ValueError(f"{name} must be <= {high:g}, got {value:g}")


def _int_option(text: str) -> int:
    """argparse type of the integer options (argparse reports its failure as ``--x ...``)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _float_option(text: str) -> float:
    """argparse type of the single-number options: a number or a fraction such as 8/255."""
    try:
        value = _number(text, "")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number or a fraction such as 8/255, got {text!r}"
        ) from None
    assert value is not None
    return value


# --------------------------------------------------------------------------------------
# argument groups
def _common(p: argparse.ArgumentParser, out_default: str | None) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda when available, else cpu)",
    )
    p.add_argument("--seed", type=_int_option, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--out",
        default=out_default,
        required=out_default is None,
        help="output directory" + (f" (default: {out_default})" if out_default else " (required)"),
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars (default: shown)")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log each step (default: warnings only)"
    )


def _data_args(p: argparse.ArgumentParser, default: str | None = "digits") -> None:
    """The dataset options; ``default=None``: the dataset the checkpoint records."""
    if default is None:
        dataset_help = (
            "digits (bundled), mnist, fashion-mnist, or your data: a folder of images with "
            "one subfolder per class, or a .npz / .pt file of tensors (default: the dataset "
            f"the checkpoint was trained on; {LEGACY_DATASET} for checkpoints that do not "
            "record it). A different dataset than the checkpoint's is refused"
        )
    else:
        dataset_help = (
            "digits (bundled), mnist, fashion-mnist, or your data: a folder of images with "
            "one subfolder per class (or train/ and test/ folders of them), or a .npz / .pt "
            f"file of tensors (default: {default})"
        )
    p.add_argument("--dataset", default=default, help=dataset_help)
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory with the IDX files of mnist or fashion-mnist (default: "
        "/usr/share/datasets/fashion-mnist for fashion-mnist"
        + ("; the checkpoint's for its dataset)" if default is None else ")"),
    )
    p.add_argument(
        "--image-size", type=_int_option, default=None,
        help="side the images are resized to: digits and image folders only (default: 28 for "
        "digits, the images' own size for a folder"
        + ("; the checkpoint's)" if default is None else ")"),
    )  # fmt: skip
    p.add_argument(
        "--test-fraction", type=_float_option, default=None,
        help="share of each class held out as the test set, for data without a split of its "
        "own (default: 0.5 for digits, 0.2 for your data"
        + ("; the checkpoint's)" if default is None else ")"),
    )  # fmt: skip
    p.add_argument(
        "--train-size", type=_int_option, default=None,
        help="use a stratified subset of the training set of this size (default: all of it)",
    )  # fmt: skip
    p.add_argument(
        "--test-size", type=_int_option, default=None,
        help="use a stratified subset of the test set of this size (default: all of it"
        + (", or the subset the checkpoint was trained with)" if default is None else ")"),
    )  # fmt: skip


def _checkpoint_args(p: argparse.ArgumentParser, **checkpoint: Any) -> None:
    """The options of a command that attacks checkpoints on their test set: ``_common``
    (``--out`` required), the dataset options (default: the checkpoint's) and a required
    ``--checkpoint``, one file or folder unless ``checkpoint`` (argparse's keywords) says
    otherwise."""
    _common(p, None)
    _data_args(p, None)
    checkpoint.setdefault("help", "checkpoint.pt written by `train` (or its directory) (required)")
    p.add_argument("--checkpoint", required=True, **checkpoint)


def _protocol_args(p: argparse.ArgumentParser, eps: str, sizes: str, samples: int) -> None:
    p.add_argument(
        "--attacks", nargs="+", default=list(ATTACK_CHOICES), metavar="ATTACK",
        help="attacks among CA+ CA- QA+ QA-, comma- or space-separated (default: all four)",
    )  # fmt: skip
    p.add_argument(
        "--eps", nargs="+", default=eps, metavar="EPS",
        help=f"L-inf radii, numbers or fractions such as 8/255, comma- or space-separated "
        f"(default: {eps})",
    )  # fmt: skip
    p.add_argument(
        "--sizes", nargs="+", default=sizes, metavar="SIZE",
        help=f"w (CA) / m (QA), comma- or space-separated (default: {sizes})",
    )  # fmt: skip
    p.add_argument(
        "--samples", type=_int_option, default=samples,
        help=f"T, attacks per cell (default: {samples})",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=_int_option, default=250,
        help="attacks per vectorized call (default: 250)",
    )  # fmt: skip


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default=None,
        help="c2f1, c2f2, lenet or resnet18 (default: the recipe's; c2f1 for the default recipe)",
    )  # fmt: skip
    p.add_argument(
        "--embedding-dim", type=_int_option, default=None,
        help="embedding dimension D (default: the model's own: 1024 for c2f1, 512 for c2f2 "
        "and resnet18, 128 for lenet)",
    )  # fmt: skip
    p.add_argument(
        "--loss", default=None,
        help="triplet or contrastive (default: the recipe's; triplet for every recipe)",
    )  # fmt: skip
    p.add_argument(
        "--metric", default=None,
        help="cosine, euclidean or normalized-euclidean (default: the recipe's; cosine for "
        "every recipe)",
    )  # fmt: skip
    p.add_argument(
        "--margin", type=_float_option, default=None,
        help="margin of the ranking loss (default: 0.2 for cosine and normalized-euclidean, "
        "1.0 for euclidean)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", type=_int_option, default=None,
        help="training epochs, each drawing len(train set) / batch size batches (default: the "
        "recipe's; 8 for the default recipe)",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=_int_option, default=None,
        help="images per batch (default: the recipe's; 128 for the default recipe)",
    )  # fmt: skip
    p.add_argument(
        "--lr", type=_float_option, default=None,
        help="Adam learning rate (default: the recipe's; 0.001 for every recipe)",
    )  # fmt: skip
    p.add_argument(
        "--weight-decay", type=_float_option, default=None,
        help="Adam (L2) weight decay (default: the recipe's; 1e-6 for the default recipe)",
    )  # fmt: skip
    p.add_argument(
        "--defense",
        default="none",
        help="none; est (embedding shift, Eq. 13; also embedding-shift), act (anti-collapse "
        "triplet), hm (hardness manipulation); madry, shift-suppress (Appendix H). A defense "
        "makes an epoch about 1 + defense steps times as costly (default: none)",
    )
    p.add_argument(
        "--defense-eps", default=None,
        help="defense's L-inf radius, e.g. 77/255 (default: the defense's 28x28 setting, "
        "77/255 for est, act and hm; 0.3 for madry and shift-suppress)",
    )  # fmt: skip
    p.add_argument(
        "--defense-alpha", default=None,
        help="defense's PGD step (default: 3/255 for est, act and hm; the paper's schedule "
        "for madry and shift-suppress)",
    )  # fmt: skip
    p.add_argument(
        "--defense-steps", type=_int_option, default=None,
        help="defense's PGD iterations (default: 32 for est, act and hm; the paper's schedule "
        "for madry and shift-suppress)",
    )  # fmt: skip
    p.add_argument(
        "--miner", default=None,
        help="random (one triplet per image), spc2 (robrank's: every other image an anchor) "
        "or softhard (default: the defense's own: spc2 for act, softhard for hm, else random)",
    )  # fmt: skip
    p.add_argument(
        "--no-resume", action="store_true",
        help="start over, ignoring a checkpoint in --out (default: resume from it)",
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# datasets and checkpoints
def _checkpoint_file(path: str) -> Path:
    """The checkpoint file ``--checkpoint`` names (a file, or a directory holding one)."""
    p = Path(path)
    file = p / "checkpoint.pt" if p.is_dir() else p
    if not file.is_file():
        raise FileNotFoundError(f"--checkpoint: no checkpoint at {path}")
    return file


def _requested_spec(args: argparse.Namespace, default: str) -> Any:
    """The dataset the options name, ``default`` when ``--dataset`` is not given."""
    from rankattack.data.spec import DatasetSpec, dataset_kind

    name = args.dataset if args.dataset is not None else default
    kind, path = dataset_kind(name)
    if kind in ("mnist", "fashion-mnist") and args.data_dir is not None:
        path = args.data_dir
    elif args.data_dir is not None and kind not in ("mnist", "fashion-mnist"):
        raise ValueError(f"--data-dir applies to mnist and fashion-mnist only, not to {name}")
    try:
        return DatasetSpec(
            kind,
            path=path,
            image_size=args.image_size,
            test_fraction=getattr(args, "test_fraction", None),
            split_seed=0,
            train_size=args.train_size,
            test_size=args.test_size,
            subset_seed=args.seed,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--{_option_of(str(exc))}") from None


def _option_of(message: str) -> str:
    """``"image_size must be ..."`` -> ``"image-size must be ..."`` (the option's name)."""
    head, _, rest = message.partition(" ")
    known = ("image_size", "test_fraction", "train_size", "test_size", "name")
    if head in known:
        head = "dataset" if head == "name" else head.replace("_", "-")
        return f"{head} {rest}"
    return f"dataset: {message}"


def _dataset_spec(args: argparse.Namespace, records: Sequence[dict[str, Any] | None]) -> Any:
    """The dataset of an evaluating command: the checkpoints' own, or a refusal.

    ``records`` are the dataset records of the checkpoints (``None`` for a checkpoint
    written without one). When some checkpoint records its dataset, that dataset is used
    (the subsets and, for mnist-like data, the file directory may be overridden), and
    options naming other data (dataset, image size, test fraction) raise a one-line
    ``ValueError``. Without any record, the options and ``LEGACY_DATASET`` decide.
    """
    import dataclasses

    from rankattack.data.spec import DatasetSpec

    given = [DatasetSpec.from_dict(r) for r in records if r is not None]
    if not given:
        if records:
            _note(
                "the checkpoint does not record its dataset (it was written by an earlier "
                f"version); using --dataset {args.dataset or LEGACY_DATASET}"
            )
        return _requested_spec(args, LEGACY_DATASET)
    recorded = given[0]
    for other in given[1:]:
        if recorded.conflicts(other):
            raise ValueError(
                f"--checkpoint: the checkpoints were trained on different data "
                f"({recorded.describe()} and {other.describe()})"
            )
    if args.dataset is not None or args.image_size is not None or args.test_fraction is not None:
        # options left out mean the checkpoint's: only what is given is compared
        given_args = {
            "dataset": args.dataset or recorded.source,
            "image_size": args.image_size,
            "test_fraction": args.test_fraction,
        }
        if _same_kind(given_args["dataset"], recorded):
            if args.image_size is None:
                given_args["image_size"] = recorded.image_size
            if args.test_fraction is None:
                given_args["test_fraction"] = recorded.test_fraction
        requested = _requested_spec(
            argparse.Namespace(**{**vars(args), **given_args, "data_dir": None}), recorded.source
        )
        requested = dataclasses.replace(requested, split_seed=recorded.split_seed)
        conflicts = recorded.conflicts(requested)
        if conflicts:
            raise ValueError(
                f"--dataset: the checkpoint was trained on {recorded.describe()}; asked for "
                f"{', '.join(conflicts)}. Leave out --dataset, --image-size and "
                "--test-fraction to use the checkpoint's"
            )
    changes: dict[str, Any] = {}
    if args.data_dir is not None:
        if recorded.name not in ("mnist", "fashion-mnist"):
            raise ValueError(
                f"--data-dir applies to mnist and fashion-mnist only; the checkpoint was "
                f"trained on {recorded.describe()}"
            )
        changes["path"] = args.data_dir
    if args.test_size is not None or args.train_size is not None:
        changes.update(train_size=args.train_size, test_size=args.test_size, subset_seed=args.seed)
    return dataclasses.replace(recorded, **changes) if changes else recorded


def _same_kind(dataset: str, recorded: Any) -> bool:
    """Whether ``--dataset`` names the kind of data the record describes."""
    from rankattack.data.spec import dataset_kind

    try:
        kind, _ = dataset_kind(dataset)
    except ValueError:
        return False
    return bool(kind == recorded.name)


def _checkpoint_records(files: Sequence[Path]) -> list[dict[str, Any] | None]:
    """The dataset record of each checkpoint (``None`` where there is none)."""
    from rankattack.training.checkpoints import checkpoint_dataset

    return [checkpoint_dataset(f) for f in files]


def _load_data(args: argparse.Namespace, spec: Any = None) -> Any:
    """The dataset ``spec`` describes (default: the one the options name)."""
    if spec is None:
        spec = _requested_spec(args, args.dataset or LEGACY_DATASET)
    return spec.load()


def _load_model(path: str, device: torch.device) -> tuple[Any, Any]:
    from rankattack.training import load_checkpoint

    model, config = load_checkpoint(path, map_location=device)
    return model.to(device).eval(), config


class _Loaded(NamedTuple):
    """Checkpoints and the test set they are attacked on."""

    spec: Any
    models: list[tuple[Any, Any]]
    data: Any
    inputs: torch.Tensor
    labels: torch.Tensor


def _load_checkpoints(
    args: argparse.Namespace, files: Sequence[Path], device: torch.device
) -> _Loaded:
    """The dataset of the checkpoints ``files`` (``_dataset_spec``), each checkpoint's model
    (in eval mode) and config, the data, and its test inputs and labels on ``device``."""
    spec = _dataset_spec(args, _checkpoint_records(files))
    models = [_load_model(str(f), device) for f in files]
    data = spec.load()
    return _Loaded(spec, models, data, data.test_x.to(device), data.test_y.to(device))


# --------------------------------------------------------------------------------------
# reporting and writing
def _cell_name(cell: Any) -> str:
    if cell.attack == "shift":
        return f"shift eps={cell.eps:g}"
    which = "w" if cell.attack.startswith("CA") else "m"
    return f"{cell.attack} eps={cell.eps:g} {which}={cell.size}"


def _on_resume(log: Path) -> Any:
    def report(done: list[Any], total: int) -> None:
        if not done:
            return
        names = ", ".join(_cell_name(c) for c in done)
        _say(
            f"resuming from {log}: {len(done)} of {total} cells already done, skipped "
            f"({names}); computing the other {total - len(done)}"
        )

    return report


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
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """One Fig. 1-style ranking list per attack: ``<out>/ranking-CAplus.png`` etc."""
    from rankattack.evaluation import ranking_example
    from rankattack.plots import plot_ranking_example

    paths = []
    k = min(8, len(gallery) - 2)
    for attack in attacks:
        ex = ranking_example(model, gallery, inputs, attack, eps, k=k, seed=seed)
        name = attack.replace("+", "plus").replace("-", "minus")
        paths.append(plot_ranking_example(ex, out / f"ranking-{name}.png", class_names=class_names))
    return paths
