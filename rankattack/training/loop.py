"""The training loop: epochs of class-balanced batches, one defended optimizer step each.

[train][rankattack.training.loop.train] samples class-balanced batches (P classes x K images,
[ClassBalancedSampler][rankattack.training.samplers.ClassBalancedSampler]), mines one triplet
``(q, c_p, c_n)`` per image inside each batch
([batch_triplets][rankattack.training.samplers.batch_triplets], or the miner the config names), and
minimizes a ranking loss ([rankattack.losses][]) with Adam, optionally under one of the
defenses of [rankattack.defenses][] ([make_defense][rankattack.training.loop.make_defense] builds
the config's defense, [train_step][rankattack.training.loop.train_step] takes one step). After every
epoch, and every ``checkpoint_seconds`` inside a long epoch, it checkpoints the run
([rankattack.training.checkpoints][]), so an interrupted run resumes where it stopped.
With ``config.recipe="eccv2020"`` the batches come as triplets instead
([PerClassTripletSampler][rankattack.training.samplers.PerClassTripletSampler]): each step
embeds the images the triplets use, once each, and trains on those triplets.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rankattack._validation import (
    check_int,
    check_real,
    check_tensor,
    check_unit_range,
)
from rankattack.attacks.maxshiftattack import MaxShiftAttack
from rankattack.defenses import (
    Defense,
    Triplets,
    build_defense,
    embedding_shift_loss,
    madry_loss,
    shift_suppress_loss,
    vanilla_loss,
)
from rankattack.defenses.base import LossFn, apply_step, canonical_defense
from rankattack.defenses.miners import get_miner
from rankattack.distributed import barrier, distribute_defense, is_main_process
from rankattack.losses import get_loss
from rankattack.models import build_model
from rankattack.pgd import LinfPGD
from rankattack.training.checkpoints import (
    CHECKPOINT_NAME,
    _data_signature,
    _resume,
    _save_checkpoint,
)
from rankattack.training.config import TrainConfig, TrainResult
from rankattack.training.samplers import (
    ClassBalancedSampler,
    PerClassTripletSampler,
    recipe_sampler,
)

__all__ = ["build_adversary", "make_defense", "train", "train_step"]

logger = logging.getLogger(__name__)


def train(
    config: TrainConfig,
    train_x: Tensor,
    train_y: Tensor,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
    max_epochs_this_run: int | None = None,
    checkpoint_seconds: float | None = 600.0,
    snapshot_every: int | None = None,
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
    checkpoint_seconds : float or None, default 600
        Inside an epoch, also checkpoint after the first batch that ends this many
        seconds after the last checkpoint (``None``: only at the end of epochs). A run
        resumed from such a checkpoint continues with the epoch's next batch.
    snapshot_every : int, optional
        Also keep a copy of the end-of-epoch checkpoint of every ``snapshot_every``-th
        epoch as ``out_dir/epoch{N}.pt`` (``N`` counted from 1), to evaluate the model
        along the way; ``checkpoint.pt`` alone is resumed from. Needs ``out_dir``.

    Returns
    -------
    TrainResult

    Notes
    -----
    The run is deterministic for a given seed and device: the weights are initialized,
    the batches sampled and the adversary's noise drawn from RNGs seeded by
    ``config.seed`` inside ``torch.random.fork_rng`` (the caller's global RNG state
    is left untouched), and their states are checkpointed, so resuming reproduces an
    uninterrupted run bit for bit.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    _check_data(train_x, train_y)
    if max_epochs_this_run is not None:
        check_int(max_epochs_this_run, "max_epochs_this_run", low=0)
    if checkpoint_seconds is not None:
        check_real(checkpoint_seconds, "checkpoint_seconds", low=0.0)
    if snapshot_every is not None:
        check_int(snapshot_every, "snapshot_every", low=1)
        if out_dir is None:
            raise ValueError("snapshot_every needs out_dir, where the snapshots are written")
    labels = train_y.detach().cpu()
    sampler = recipe_sampler(config.recipe, labels, config.batch_size, config.samples_per_class)
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
        defense = make_defense(config, generator)
        history: list[dict[str, Any]] = []
        partial: dict[str, Any] | None = None
        if path is not None and resume and path.exists():
            history, partial = _resume(
                path, config, signature, model, optimizer, generator, device, defense
            )
        # under torchrun: DistributedDataParallel, every rank resumed alike; rank 0 saves
        defense = distribute_defense(model, optimizer, defense, [signature, history, partial])
        path = path if is_main_process() else None
        if history and not all(math.isfinite(h["loss"]) for h in history):
            return TrainResult(model.eval(), config, history, path, diverged=True)
        diverged = False
        stop = config.epochs
        if max_epochs_this_run is not None:
            stop = min(stop, len(history) + max_epochs_this_run)
        for epoch in range(len(history), stop):

            def save_partial(state: dict[str, Any]) -> None:
                if path is not None:
                    _save_checkpoint(
                        path,
                        model,
                        optimizer,
                        config,
                        history,
                        signature,
                        generator,
                        device,
                        defense,
                        partial=state,
                    )

            entry = _run_epoch(
                model,
                optimizer,
                defense,
                config,
                sampler,
                generator,
                train_x,
                labels,
                device,
                epoch,
                progress,
                resume_from=partial,
                save_partial=save_partial if path is not None else None,
                checkpoint_seconds=checkpoint_seconds,
            )
            partial = None
            history.append(entry)
            logger.info(
                "epoch %d/%d: loss %.4f, %.1f s",
                entry["epoch"],
                config.epochs,
                entry["loss"],
                entry["time"],
            )
            if path is not None:
                _save_checkpoint(
                    path, model, optimizer, config, history, signature, generator, device, defense
                )
                if snapshot_every is not None and len(history) % snapshot_every == 0:
                    _keep_snapshot(path, len(history))
            if not math.isfinite(entry["loss"]):
                logger.warning(
                    "training loss is %s at epoch %d: stopping", entry["loss"], entry["epoch"]
                )
                diverged = True
                break
    barrier()  # under torchrun: rank 0's checkpoint is written before any rank returns
    return TrainResult(model.eval(), config, history, path, diverged=diverged)


def _keep_snapshot(path: Path, epoch: int) -> None:
    """Copy the end-of-epoch checkpoint ``path`` to ``epoch{epoch}.pt`` beside it, atomically."""
    target = path.with_name(f"epoch{epoch}.pt")
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(path, tmp)
    os.replace(tmp, target)
    logger.info("kept the checkpoint of epoch %d as %s", epoch, target)


def _run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    defense: Defense,
    config: TrainConfig,
    sampler: ClassBalancedSampler | PerClassTripletSampler,
    generator: torch.Generator,
    train_x: Tensor,
    labels: Tensor,
    device: torch.device,
    epoch: int,
    progress: bool,
    resume_from: dict[str, Any] | None = None,
    save_partial: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_seconds: float | None = None,
) -> dict[str, Any]:
    if resume_from is not None:
        batches = resume_from["batches"]
        first = int(resume_from["next"])
        total = resume_from["total"].to(device)
        done_before = float(resume_from["elapsed"])
    else:
        batches = sampler.epoch(generator)
        first = 0
        total = torch.zeros((), device=device)
        done_before = 0.0
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(batches),
            initial=first,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
        )
    model.train()
    start = time.perf_counter()
    last_save = start
    for i in range(first, len(batches)):
        idx, triplets = _batch_images(batches[i], device)
        x = train_x[idx.to(train_x.device)].to(device, non_blocking=True)
        loss = train_step(model, None, optimizer, x, triplets, defense, labels=labels[idx])
        total += loss
        if bar is not None:
            bar.update(1)
            if (i + 1) % 10 == 0 or i + 1 == len(batches):
                bar.set_postfix(loss=f"{float(total) / (i + 1):.4f}")
        now = time.perf_counter()
        if (
            save_partial is not None
            and checkpoint_seconds is not None
            and i + 1 < len(batches)
            and now - last_save >= checkpoint_seconds
        ):
            save_partial(
                {
                    "epoch": epoch,
                    "batches": batches,
                    "next": i + 1,
                    "total": total.detach().cpu(),
                    "elapsed": done_before + now - start,
                }
            )
            last_save = time.perf_counter()
    mean_loss = float(total) / len(batches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = done_before + time.perf_counter() - start
    if bar is not None:
        bar.close()
    return {"epoch": epoch + 1, "loss": mean_loss, "time": elapsed, "batches": len(batches)}


def _batch_images(batch: Tensor, device: torch.device) -> tuple[Tensor, Triplets | None]:
    """A sampler's batch as its image indices and its triplets (positions among the images).

    ``[B]`` image indices come without triplets (the defense's miner picks them); ``[3, T]``
    triplets of image indices give each image once and the triplets' positions among them.
    """
    if batch.ndim == 1:
        return batch, None
    images, positions = torch.unique(batch, return_inverse=True)
    a, p, n = positions.to(device, non_blocking=True)
    return images, (a, p, n)


def make_defense(config: TrainConfig, generator: torch.Generator | None = None) -> Defense:
    """The defense ``config`` trains with (a [VanillaDefense][rankattack.defenses.VanillaDefense]
    without one): its ranking loss, its miner (drawing from ``generator``) and its adversary's
    settings ([TrainConfig.pgd_eps][rankattack.training.config.TrainConfig.pgd_eps], ``pgd_alpha``,
    ``pgd_steps``)."""
    kwargs: dict[str, Any] = {
        "metric": config.metric,
        "margin": config.margin,
        "ranking_loss": get_loss(config.loss, config.metric, config.margin),
        "miner": get_miner(config.triplet_miner, config.metric, generator),
    }
    if config.defense is not None:
        kwargs.update(eps=config.pgd_eps, alpha=config.pgd_alpha, steps=config.pgd_steps)
    return build_defense(config.defense, **kwargs)


def build_adversary(config: TrainConfig, model: nn.Module) -> MaxShiftAttack | LinfPGD | None:
    """The adversary of ``config.defense`` bound to ``model`` (``None`` for vanilla).

    A [MaxShiftAttack][rankattack.MaxShiftAttack] for "est" and "shift-suppress", a
    [LinfPGD][rankattack.LinfPGD] for the others (for
    [train_step][rankattack.training.loop.train_step] with a defense name).
    """
    if config.defense is None:
        return None
    if config.defense in ("est", "shift-suppress"):
        return MaxShiftAttack(
            model, eps=config.pgd_eps, alpha=config.pgd_alpha, steps=config.pgd_steps,
            metric=config.metric,
        )  # fmt: skip
    return LinfPGD(eps=config.pgd_eps, alpha=config.pgd_alpha, steps=config.pgd_steps)


def train_step(
    model: nn.Module,
    loss_fn: LossFn | None,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    triplets: Triplets | None,
    defense: str | Defense | None = None,
    adversary: MaxShiftAttack | LinfPGD | None = None,
    metric: str = "cosine",
    *,
    labels: Tensor | None = None,
) -> Tensor:
    """One optimizer step on a batch and its in-batch triplets; returns the detached loss.

    Parameters
    ----------
    model : nn.Module
        In train mode.
    loss_fn : callable
        Ranking loss on embeddings ``(anchors, positives, negatives) -> scalar`` (unused
        when ``defense`` is a [Defense][rankattack.defenses.Defense], which has its own).
    optimizer : torch.optim.Optimizer
    inputs : Tensor
        ``[B, *S]`` batch on the model's device.
    triplets : (Tensor, Tensor, Tensor) or None
        Indices ``[M]`` into the batch ([batch_triplets][rankattack.training.batch_triplets]);
        ``None`` with a [Defense][rankattack.defenses.Defense] and ``labels``: its miner picks them.
    defense : Defense, or {None, "est", "embedding-shift", "madry", "shift-suppress"}
        A defense object (e.g. [make_defense][rankattack.training.loop.make_defense]), or the name
        of a stateless defense with its ``adversary``.
    adversary : MaxShiftAttack or LinfPGD, optional
        Required by a defense name ([build_adversary][rankattack.training.loop.build_adversary]).
    metric : str
        The loss's distance (used by "madry").
    labels : Tensor, optional
        ``[B]`` labels of the batch, for a defense object's miner.
    """
    loss: Tensor
    if isinstance(defense, Defense):
        if triplets is not None:
            loss = defense.triplet_loss(model, inputs, triplets)
        elif labels is None:
            raise ValueError("labels: a defense without triplets needs the batch's labels")
        else:
            loss = defense.loss(model, inputs, labels, check=False)
        return apply_step(optimizer, loss)
    if loss_fn is None or triplets is None:
        raise ValueError("loss_fn and triplets are needed unless defense is a Defense object")
    if defense is not None:
        defense = canonical_defense(defense)
    if defense is None:
        loss = vanilla_loss(model, loss_fn, inputs, triplets)
    elif defense in ("act", "hm"):
        raise ValueError(
            f"defense={defense!r} by name is not supported here: pass the defense object "
            f"(rankattack.defenses.build_defense({defense!r}, ...)), which keeps its state"
        )
    elif defense == "madry":
        if not isinstance(adversary, LinfPGD):
            raise TypeError(
                f"defense='madry' needs a LinfPGD adversary, got {type(adversary).__name__}"
            )
        loss = madry_loss(model, loss_fn, inputs, triplets, adversary, metric)
    else:
        if not isinstance(adversary, MaxShiftAttack):
            raise TypeError(
                f"defense={defense!r} needs a MaxShiftAttack adversary, "
                f"got {type(adversary).__name__}"
            )
        fn = embedding_shift_loss if defense == "est" else shift_suppress_loss
        loss = fn(model, loss_fn, inputs, triplets, adversary)
    return apply_step(optimizer, loss)


def _resolve_device(config: TrainConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_data(train_x: Any, train_y: Any) -> None:
    check_tensor(train_x, "train_x", min_ndim=2, floating=True)
    check_tensor(train_y, "train_y", ndim=1, integer=True)
    if train_y.shape[0] != train_x.shape[0]:
        raise ValueError(
            f"train_y must have one label per training input ({train_x.shape[0]}), "
            f"got {train_y.shape[0]}"
        )
    check_unit_range(train_x, "train_x")
