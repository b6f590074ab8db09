"""Training ranking models, vanilla or defended, with atomic checkpoints and exact resume.

:func:`train` samples class-balanced batches (P classes x K images), mines one triplet
``(q, c_p, c_n)`` per image inside each batch (:func:`batch_triplets`), and minimizes a
ranking loss (:mod:`rankattack.losses`) with Adam, optionally under one of the defenses
of :mod:`rankattack.defense` (the paper's embedding-shift defense, Eq. 13, or the less
stable Appendix H alternatives). After every epoch it writes ``checkpoint.pt`` (model and
optimizer state, the config, the history and every random-number state) atomically, so
an interrupted run resumes where it stopped and ends with the weights an uninterrupted
run would have produced.

Examples
--------
>>> import torch
>>> from rankattack.training import TrainConfig, train
>>> x, y = torch.rand(64, 1, 16, 16), torch.arange(64) % 4
>>> cfg = TrainConfig(model="c2f1", embedding_dim=16, epochs=1, batch_size=16)
>>> result = train(cfg, x, y, progress=False)
>>> len(result.history)
1
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rankattack._validation import (
    check_choice,
    check_int,
    check_real,
    check_tensor,
    check_unit_range,
)
from rankattack.attacks.maxshiftattack import MaxShiftAttack
from rankattack.defense import (
    DEFENSES,
    Triplets,
    embedding_shift_loss,
    madry_loss,
    shift_suppress_loss,
    vanilla_loss,
)
from rankattack.distances import get_distance
from rankattack.losses import LOSS_NAMES, get_loss
from rankattack.models import MODEL_NAMES, build_model
from rankattack.pgd import LinfPGD, default_alpha, default_steps

__all__ = [
    "CHECKPOINT_NAME",
    "ClassBalancedSampler",
    "TrainConfig",
    "TrainResult",
    "batch_triplets",
    "build_adversary",
    "load_checkpoint",
    "train",
    "train_step",
]

logger = logging.getLogger(__name__)

#: File name of the checkpoint inside ``out_dir``.
CHECKPOINT_NAME = "checkpoint.pt"

_FORMAT_VERSION = 1

#: Config fields that may differ between a checkpoint and the run resuming it.
_RESUMABLE_CHANGES = ("epochs", "device")


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in every checkpoint).

    Parameters
    ----------
    model : {"c2f1", "lenet", "resnet18"}, default "c2f1"
    embedding_dim : int, optional
        Default the model's own (1024 / 128 / 512).
    in_channels : int, default 1
    loss : {"triplet", "contrastive"}, default "triplet"
    metric : {"cosine", "euclidean"}, default "cosine"
    margin : float, optional
        Default 0.2 (cosine) or 1.0 (Euclidean).
    epochs : int, default 8
        Total epochs; one epoch draws ``len(train_x) // batch_size`` batches.
    batch_size : int, default 128
    samples_per_class : int, default 2
        K images per class slot of a batch (every image then has a positive).
    lr : float, default 1e-3
        Adam learning rate.
    weight_decay : float, default 1e-6
        Adam (L2) weight decay.
    seed : int, default 0
        Seeds the weights, the sampling and the adversary's noise.
    device : str, optional
        Default ``"cuda"`` when available, else the CPU.
    defense : {None, "embedding-shift", "madry", "shift-suppress"}
        ``None`` trains a vanilla model; see :mod:`rankattack.defense`.
    eps : float, default 0.3
        L-inf radius of the defense's adversary.
    alpha, steps : optional
        PGD step size and iterations of the adversary; default the paper's schedule
        (:func:`rankattack.pgd.default_alpha`, :func:`~rankattack.pgd.default_steps`:
        0.01 and 30 for eps = 0.3).
    """

    model: str = "c2f1"
    embedding_dim: int | None = None
    in_channels: int = 1
    loss: str = "triplet"
    metric: str = "cosine"
    margin: float | None = None
    epochs: int = 8
    batch_size: int = 128
    samples_per_class: int = 2
    lr: float = 1e-3
    weight_decay: float = 1e-6
    seed: int = 0
    device: str | None = None
    defense: str | None = None
    eps: float = 0.3
    alpha: float | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.model, "model", MODEL_NAMES)
        if self.embedding_dim is not None:
            check_int(self.embedding_dim, "embedding_dim", low=1)
        check_int(self.in_channels, "in_channels", low=1)
        check_choice(self.loss, "loss", LOSS_NAMES)
        get_distance(self.metric)
        if self.margin is not None:
            check_real(self.margin, "margin", low=0.0)
        check_int(self.epochs, "epochs", low=1)
        check_int(self.samples_per_class, "samples_per_class", low=2)
        check_int(self.batch_size, "batch_size", low=1)
        if self.batch_size < 2 * self.samples_per_class:
            raise ValueError(
                f"batch_size must hold at least two classes of samples_per_class="
                f"{self.samples_per_class} images (>= {2 * self.samples_per_class}), "
                f"got {self.batch_size}"
            )
        check_real(self.lr, "lr", low=0.0, low_open=True)
        check_real(self.weight_decay, "weight_decay", low=0.0)
        check_int(self.seed, "seed", low=0)
        if self.device is not None:
            torch.device(self.device)  # raises on a malformed device string
        if self.defense is not None:
            check_choice(self.defense, "defense", DEFENSES)
        check_real(self.eps, "eps", low=0.0)
        if self.alpha is not None:
            check_real(self.alpha, "alpha", low=0.0, low_open=True)
        if self.steps is not None:
            check_int(self.steps, "steps", low=1)

    @property
    def pgd_alpha(self) -> float:
        """The adversary's step size actually used."""
        return default_alpha(self.eps) if self.alpha is None else float(self.alpha)

    @property
    def pgd_steps(self) -> int:
        """The adversary's number of iterations actually used."""
        return default_steps(self.eps, self.pgd_alpha) if self.steps is None else self.steps

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain JSON-serializable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config from :meth:`to_dict` output (unknown keys are an error)."""
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : nn.Module
        The trained model (in eval mode).
    config : TrainConfig
    history : list of dict
        One entry per finished epoch: ``epoch`` (1-based), ``loss`` (mean training loss),
        ``time`` (wall seconds of the epoch), ``batches``.
    checkpoint : Path or None
        The checkpoint file (``None`` without ``out_dir``).
    diverged : bool
        The training loss became NaN or infinite (training stopped there).
    """

    model: nn.Module
    config: TrainConfig
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    diverged: bool = False

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    @property
    def complete(self) -> bool:
        """All ``config.epochs`` epochs are done."""
        return self.epochs_done >= self.config.epochs


# --- sampling --------------------------------------------------------------------------


def batch_triplets(labels: Tensor, generator: torch.Generator | None = None) -> Triplets:
    """Mine one triplet per image of a labelled batch: ``(i, random positive, random negative)``.

    Every image that has another image of its class in the batch is an anchor; its
    positive is a uniformly drawn other image of its class and its negative a uniformly
    drawn image of another class.

    Parameters
    ----------
    labels : Tensor
        ``[B]`` integer labels of the batch.
    generator : torch.Generator, optional
        On the labels' device.

    Returns
    -------
    (anchors, positives, negatives) : tuple of Tensor
        int64 indices ``[M]`` into the batch.

    Raises
    ------
    ValueError
        If the batch holds a single class or no class with two images.

    Examples
    --------
    >>> import torch
    >>> a, p, n = batch_triplets(torch.tensor([0, 0, 1, 1]))
    >>> a.tolist()
    [0, 1, 2, 3]
    >>> p.tolist()
    [1, 0, 3, 2]
    """
    check_tensor(labels, "labels", ndim=1, integer=True)
    b = labels.shape[0]
    same = labels.unsqueeze(1) == labels.unsqueeze(0)
    pos_mask = same & ~torch.eye(b, dtype=torch.bool, device=labels.device)
    neg_mask = ~same
    if b == 0 or not bool(neg_mask.any()):
        classes = labels.unique().tolist() if b else []
        raise ValueError(
            f"labels: a batch must hold at least two classes to form triplets, got "
            f"{b} labels of classes {classes}"
        )
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not bool(valid.any()):
        raise ValueError(
            "labels: no class has two images in the batch, so no anchor has a positive"
        )
    scores = torch.rand(b, b, generator=generator, device=labels.device)
    pos = torch.where(pos_mask, scores, -1.0).argmax(1)
    neg = torch.where(neg_mask, scores, -1.0).argmax(1)
    anchors = valid.nonzero().squeeze(1)
    return anchors, pos[anchors], neg[anchors]


class ClassBalancedSampler:
    """Batches of P classes x K images (``P = batch_size // K``).

    Each batch draws its P class slots as distinct classes (or, with fewer classes than
    slots, concatenated random permutations of the classes, so every batch holds at least
    two classes), then K images per slot from per-class random streams, so every image
    is seen about once per epoch. Classes with fewer than K images are left out.

    Parameters
    ----------
    labels : Tensor
        ``[N]`` integer labels (kept on the CPU).
    batch_size : int
    samples_per_class : int
        K.
    """

    def __init__(self, labels: Tensor, batch_size: int, samples_per_class: int = 2) -> None:
        check_tensor(labels, "labels", ndim=1, integer=True)
        self.k = check_int(samples_per_class, "samples_per_class", low=2)
        self.batch_size = check_int(batch_size, "batch_size", low=2 * self.k)
        labels = labels.detach().cpu()
        classes, counts = labels.unique(return_counts=True)
        kept = classes[counts >= self.k]
        if kept.numel() < 2:
            raise ValueError(
                f"labels must hold at least two classes with at least samples_per_class="
                f"{self.k} samples each, got classes {classes.tolist()} with counts "
                f"{counts.tolist()}"
            )
        dropped = int(counts[counts < self.k].sum())
        if dropped:
            logger.warning(
                "%d samples of classes with fewer than %d samples are not used", dropped, self.k
            )
        self.members = [(labels == c).nonzero().squeeze(1) for c in kept.tolist()]
        self.num_used = sum(int(m.numel()) for m in self.members)
        self.slots = self.batch_size // self.k
        self.num_batches = max(1, self.num_used // self.batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def epoch(self, generator: torch.Generator) -> Tensor:
        """The epoch's batches as dataset indices ``[num_batches, slots * K]`` (CPU)."""
        c = len(self.members)
        reps = math.ceil(self.slots / c)
        slot_class = torch.stack(
            [
                torch.cat([torch.randperm(c, generator=generator) for _ in range(reps)])[
                    : self.slots
                ]
                for _ in range(self.num_batches)
            ]
        ).flatten()
        picks = torch.empty(slot_class.numel(), self.k, dtype=torch.long)
        needed = torch.bincount(slot_class, minlength=c).tolist()
        for ci, need in enumerate(needed):
            if need == 0:
                continue
            members = self.members[ci]
            total = need * self.k
            perms = math.ceil(total / members.numel())
            stream = torch.cat(
                [
                    members[torch.randperm(members.numel(), generator=generator)]
                    for _ in range(perms)
                ]
            )[:total]
            picks[slot_class == ci] = stream.view(need, self.k)
        return picks.view(self.num_batches, self.slots * self.k)


# --- one step ----------------------------------------------------------------------------


def build_adversary(config: TrainConfig, model: nn.Module) -> MaxShiftAttack | LinfPGD | None:
    """The adversary of ``config.defense`` bound to ``model`` (``None`` for vanilla)."""
    if config.defense is None:
        return None
    if config.defense == "madry":
        return LinfPGD(eps=config.eps, alpha=config.pgd_alpha, steps=config.pgd_steps)
    return MaxShiftAttack(
        model, eps=config.eps, alpha=config.pgd_alpha, steps=config.pgd_steps, metric=config.metric
    )


def train_step(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor, Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    triplets: Triplets,
    defense: str | None = None,
    adversary: MaxShiftAttack | LinfPGD | None = None,
    metric: str = "cosine",
) -> Tensor:
    """One optimizer step on a batch and its in-batch triplets; returns the detached loss.

    Parameters
    ----------
    model : nn.Module
        In train mode.
    loss_fn : callable
        Ranking loss on embeddings ``(anchors, positives, negatives) -> scalar``.
    optimizer : torch.optim.Optimizer
    inputs : Tensor
        ``[B, *S]`` batch on the model's device.
    triplets : (Tensor, Tensor, Tensor)
        Indices ``[M]`` into the batch (:func:`batch_triplets`).
    defense : {None, "embedding-shift", "madry", "shift-suppress"}
    adversary : MaxShiftAttack or LinfPGD, optional
        Required by a defense (:func:`build_adversary`).
    metric : str
        The loss's distance (used by "madry").
    """
    loss: Tensor
    if defense is None:
        loss = vanilla_loss(model, loss_fn, inputs, triplets)
    elif defense == "madry":
        if not isinstance(adversary, LinfPGD):
            raise TypeError(
                f"defense='madry' needs a LinfPGD adversary, got {type(adversary).__name__}"
            )
        loss = madry_loss(model, loss_fn, inputs, triplets, adversary, metric)
    else:
        check_choice(defense, "defense", DEFENSES)
        if not isinstance(adversary, MaxShiftAttack):
            raise TypeError(
                f"defense={defense!r} needs a MaxShiftAttack adversary, "
                f"got {type(adversary).__name__}"
            )
        fn = embedding_shift_loss if defense == "embedding-shift" else shift_suppress_loss
        loss = fn(model, loss_fn, inputs, triplets, adversary)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


# --- checkpoints -----------------------------------------------------------------------


def _resolve_device(config: TrainConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _checkpoint_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p / CHECKPOINT_NAME if p.is_dir() else p


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _rng_states(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    states: dict[str, Any] = {"sampler": generator.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(
    states: dict[str, Any], generator: torch.Generator, device: torch.device
) -> None:
    generator.set_state(states["sampler"])
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


def _data_signature(train_x: Tensor, labels: Tensor) -> dict[str, Any]:
    weights = torch.arange(1, labels.numel() + 1, dtype=torch.long)
    return {
        "n": int(train_x.shape[0]),
        "shape": list(train_x.shape[1:]),
        "labels": int((labels.long() * weights).sum()),
    }


def _read_checkpoint(path: Path, map_location: Any = None) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    data: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != _FORMAT_VERSION:
        raise ValueError(
            f"{path} is not a rankattack training checkpoint (format {_FORMAT_VERSION})"
        )
    return data


def load_checkpoint(
    path: str | os.PathLike[str], map_location: Any = None
) -> tuple[nn.Module, TrainConfig]:
    """Rebuild the model a :func:`train` checkpoint holds.

    Parameters
    ----------
    path : str or PathLike
        The ``checkpoint.pt`` file or the ``out_dir`` holding it.
    map_location : optional
        As in :func:`torch.load`; a device moves the model there.

    Returns
    -------
    (model, config)
        The model in eval mode and the :class:`TrainConfig` that trained it.
    """
    data = _read_checkpoint(_checkpoint_file(path), map_location)
    config = TrainConfig.from_dict(data["config"])
    model = build_model(config.model, config.embedding_dim, config.in_channels)
    model.load_state_dict(data["model"])
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    return model.eval(), config


def _check_resumable(saved: TrainConfig, config: TrainConfig, path: Path) -> None:
    diff = [
        f"{f.name}: {getattr(saved, f.name)!r} -> {getattr(config, f.name)!r}"
        for f in dataclasses.fields(TrainConfig)
        if f.name not in _RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(config, f.name)
    ]
    if diff:
        raise ValueError(
            f"the checkpoint {path} was made with a different config ({'; '.join(diff)}); "
            f"use another out_dir or resume=False to start over"
        )


# --- the loop --------------------------------------------------------------------------


def _check_data(train_x: Any, train_y: Any) -> None:
    check_tensor(train_x, "train_x", min_ndim=2, floating=True)
    check_tensor(train_y, "train_y", ndim=1, integer=True)
    if train_y.shape[0] != train_x.shape[0]:
        raise ValueError(
            f"train_y must have one label per training input ({train_x.shape[0]}), "
            f"got {train_y.shape[0]}"
        )
    check_unit_range(train_x, "train_x")


def train(
    config: TrainConfig,
    train_x: Tensor,
    train_y: Tensor,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
    max_epochs_this_run: int | None = None,
) -> TrainResult:
    """Train a ranking model (vanilla or defended) and checkpoint it after every epoch.

    Parameters
    ----------
    config : TrainConfig
    train_x : Tensor
        ``[N, C, H, W]`` inputs in ``[0, 1]`` (any device; batches are moved to the
        config's device).
    train_y : Tensor
        ``[N]`` integer labels.
    out_dir : str or PathLike, optional
        Directory of ``checkpoint.pt`` (created if needed). Without it nothing is saved.
    resume : bool, default True
        Continue from ``out_dir/checkpoint.pt`` when it exists (its config must match,
        except ``epochs`` and ``device``); finished epochs are not redone.
    progress : bool, default True
        Show a tqdm bar per epoch with the running loss.
    max_epochs_this_run : int, optional
        Stop after this many epochs in this call (the checkpoint lets a later call
        continue).

    Returns
    -------
    TrainResult

    Notes
    -----
    The run is deterministic for a given seed and device: the weights are initialized,
    the batches sampled and the adversary's noise drawn from RNGs seeded by
    ``config.seed`` inside :func:`torch.random.fork_rng` (the caller's global RNG state
    is left untouched), and their states are checkpointed, so resuming reproduces an
    uninterrupted run bit for bit.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    _check_data(train_x, train_y)
    if max_epochs_this_run is not None:
        check_int(max_epochs_this_run, "max_epochs_this_run", low=0)
    labels = train_y.detach().cpu()
    sampler = ClassBalancedSampler(labels, config.batch_size, config.samples_per_class)
    device = _resolve_device(config)
    path = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        path = Path(out_dir) / CHECKPOINT_NAME
    signature = _data_signature(train_x, labels)
    cuda_devices = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.embedding_dim, config.in_channels).to(device)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        generator = torch.Generator().manual_seed(config.seed)
        history: list[dict[str, Any]] = []
        if path is not None and resume and path.exists():
            data = _read_checkpoint(path, map_location=device)
            _check_resumable(TrainConfig.from_dict(data["config"]), config, path)
            if data["data"] != signature:
                raise ValueError(
                    f"the checkpoint {path} was trained on other data ({data['data']}, now "
                    f"{signature}); use another out_dir or resume=False"
                )
            model.load_state_dict(data["model"])
            optimizer.load_state_dict(data["optimizer"])
            history = list(data["history"])
            rng = data["rng"]
            rng["sampler"] = rng["sampler"].cpu()
            rng["torch"] = rng["torch"].cpu()
            if "cuda" in rng:
                rng["cuda"] = [s.cpu() for s in rng["cuda"]]
            _set_rng_states(rng, generator, device)
            logger.info("resuming %s after epoch %d", path, len(history))
        if history and not all(math.isfinite(h["loss"]) for h in history):
            return TrainResult(model.eval(), config, history, path, diverged=True)
        loss_fn = get_loss(config.loss, config.metric, config.margin)
        adversary = build_adversary(config, model)
        diverged = False
        stop = config.epochs
        if max_epochs_this_run is not None:
            stop = min(stop, len(history) + max_epochs_this_run)
        for epoch in range(len(history), stop):
            entry = _run_epoch(
                model,
                loss_fn,
                optimizer,
                adversary,
                config,
                sampler,
                generator,
                train_x,
                labels,
                device,
                epoch,
                progress,
            )
            history.append(entry)
            logger.info(
                "epoch %d/%d: loss %.4f, %.1f s",
                entry["epoch"],
                config.epochs,
                entry["loss"],
                entry["time"],
            )
            if path is not None:
                _save_atomic(
                    {
                        "format": _FORMAT_VERSION,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "config": config.to_dict(),
                        "epoch": len(history),
                        "history": history,
                        "data": signature,
                        "rng": _rng_states(generator, device),
                    },
                    path,
                )
            if not math.isfinite(entry["loss"]):
                logger.warning(
                    "training loss is %s at epoch %d: stopping", entry["loss"], entry["epoch"]
                )
                diverged = True
                break
    return TrainResult(model.eval(), config, history, path, diverged=diverged)


def _run_epoch(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor, Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    adversary: MaxShiftAttack | LinfPGD | None,
    config: TrainConfig,
    sampler: ClassBalancedSampler,
    generator: torch.Generator,
    train_x: Tensor,
    labels: Tensor,
    device: torch.device,
    epoch: int,
    progress: bool,
) -> dict[str, Any]:
    batches = sampler.epoch(generator)
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch")
    model.train()
    start = time.perf_counter()
    total = torch.zeros((), device=device)
    for i, idx in enumerate(batches):
        a, p, n = batch_triplets(labels[idx], generator)
        triplets = (a.to(device), p.to(device), n.to(device))
        x = train_x[idx.to(train_x.device)].to(device, non_blocking=True)
        loss = train_step(
            model, loss_fn, optimizer, x, triplets, config.defense, adversary, config.metric
        )
        total += loss
        if bar is not None:
            bar.update(1)
            if (i + 1) % 10 == 0 or i + 1 == len(batches):
                bar.set_postfix(loss=f"{float(total) / (i + 1):.4f}")
    mean_loss = float(total) / len(batches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    if bar is not None:
        bar.close()
    return {"epoch": epoch + 1, "loss": mean_loss, "time": elapsed, "batches": len(batches)}
