"""Training checkpoints: atomic writes, random-number states, exact resume, safe reading.

After every epoch [train][rankattack.training.train] writes ``checkpoint.pt``
(``CHECKPOINT_NAME``) atomically: the model and optimizer state, the config, the
history, a signature of the training data, every random-number state and the state the
defense carries between steps (the gradual adversary's previous loss of HM). A run that
finds it resumes where it stopped (when the config and data match) and ends with the
weights an uninterrupted run would have produced.
[load_checkpoint][rankattack.training.checkpoints.load_checkpoint] rebuilds the trained model.

A checkpoint also records the dataset the model was trained on (its name, files, image size,
normalization and train/test split: [DatasetSpec][rankattack.data.spec.DatasetSpec]) when the
training runs inside [record_dataset][rankattack.training.checkpoints.record_dataset];
[checkpoint_dataset][rankattack.training.checkpoints.checkpoint_dataset] reads it back, so that an
evaluation finds the same test part again. Checkpoints written without it still load.

Checkpoints are read with torch's safe loader (``weights_only=True``: tensors and plain
Python values only); a file it cannot read, or that is not a rankattack checkpoint, is
reported with a one-line ``ValueError`` naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rankattack._safeload import safe_load
from rankattack.defenses import Defense
from rankattack.models import build_model
from rankattack.training.config import TrainConfig

__all__ = [
    "CHECKPOINT_NAME",
    "ResumeMismatchError",
    "checkpoint_dataset",
    "load_checkpoint",
    "record_dataset",
    "write_dataset_record",
]

logger = logging.getLogger(__name__)

#: File name of the checkpoint inside ``out_dir``.
CHECKPOINT_NAME = "checkpoint.pt"

_FORMAT_VERSION = 1

#: Config fields that may differ between a checkpoint and the run resuming it.
_RESUMABLE_CHANGES = ("epochs", "device")

#: The dataset record the checkpoints written now carry (set by
#: [record_dataset][rankattack.training.checkpoints.record_dataset]).
_DATASET: ContextVar[dict[str, Any] | None] = ContextVar("rankattack_dataset", default=None)


class ResumeMismatchError(ValueError):
    """A checkpoint cannot be resumed: it was made with another config or other data.

    Attributes
    ----------
    path : Path
        The checkpoint.
    reason : str
        What differs, e.g. ``"a different config (lr: 0.001 -> 0.01)"``.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"the checkpoint {path} was made with {reason}; use another out_dir or "
            f"resume=False to start over"
        )


@contextlib.contextmanager
def record_dataset(record: Any) -> Iterator[None]:
    """Checkpoints written inside the block record the dataset the model is trained on.

    Parameters
    ----------
    record : DatasetSpec or mapping
        A [DatasetSpec][rankattack.data.spec.DatasetSpec] (or its ``to_dict()``): the data's
        name, files, image size, normalization and train/test split.

    Examples
    --------
    >>> import torch
    >>> from rankattack.data import DatasetSpec
    >>> from rankattack.training import TrainConfig, train
    >>> from rankattack.training.checkpoints import checkpoint_dataset, record_dataset
    >>> spec = DatasetSpec("digits", image_size=8, train_size=64, test_size=20)
    >>> data = spec.load()
    >>> cfg = TrainConfig(embedding_dim=8, epochs=1, batch_size=32)
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> with record_dataset(spec.loaded(data)):
    ...     _ = train(cfg, data.train_x, data.train_y, out_dir=out, progress=False)
    >>> checkpoint_dataset(out)["name"]
    'digits'
    """
    as_dict = record.to_dict() if hasattr(record, "to_dict") else record
    if not isinstance(as_dict, Mapping):
        raise TypeError(f"record must be a DatasetSpec or a mapping, got {type(record).__name__}")
    token = _DATASET.set(dict(as_dict))
    try:
        yield
    finally:
        _DATASET.reset(token)


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
    what = f"rankattack training checkpoint (format {_FORMAT_VERSION})"
    data = safe_load(path, what, map_location=map_location)
    if not isinstance(data, dict) or data.get("format") != _FORMAT_VERSION:
        raise ValueError(
            f"{path} is not a rankattack training checkpoint (format {_FORMAT_VERSION})"
        )
    return data


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    history: list[dict[str, Any]],
    signature: dict[str, Any],
    generator: torch.Generator,
    device: torch.device,
    defense: Defense,
    partial: dict[str, Any] | None = None,
) -> None:
    """Write the state after ``len(history)`` epochs atomically to ``path``.

    ``partial`` is the state of an epoch in progress (its batches, the next batch, the
    running loss and time), saved by a long epoch so that a kill loses little work.
    """
    state: dict[str, Any] = {
        "format": _FORMAT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": config.to_dict(),
        "epoch": len(history),
        "history": history,
        "data": signature,
        "rng": _rng_states(generator, device),
        "defense": defense.state_dict(),
    }
    if partial is not None:
        state["partial"] = partial
    dataset = _DATASET.get()
    if dataset is not None:
        state["dataset"] = dataset
    _save_atomic(state, path)


def _check_resumable(saved: TrainConfig, config: TrainConfig, path: Path) -> None:
    old, new = saved.effective(), config.effective()
    diff = [
        f"{f.name}: {old[f.name]!r} -> {new[f.name]!r}"
        for f in dataclasses.fields(TrainConfig)
        if f.name not in _RESUMABLE_CHANGES and old[f.name] != new[f.name]
    ]
    if diff:
        raise ResumeMismatchError(path, f"a different config ({'; '.join(diff)})")


def _resume(
    path: Path,
    config: TrainConfig,
    signature: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
    defense: Defense,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Restore a run from its checkpoint: the finished epochs' history and the epoch in
    progress (``None`` when the checkpoint was written at the end of an epoch).

    The checkpoint's config must match ``config`` (except ``epochs`` and ``device``, and
    settings left at their default that resolve to the same values) and its data signature
    ``signature``; the model, the optimizer, the defense's state, the sampler's
    ``generator`` and the global random-number states continue where they stopped.
    """
    data = _read_checkpoint(path, map_location=device)
    _check_resumable(TrainConfig.from_dict(data["config"]), config, path)
    if data["data"] != signature:
        raise ResumeMismatchError(path, f"other data ({data['data']}, now {signature})")
    model.load_state_dict(data["model"])
    optimizer.load_state_dict(data["optimizer"])
    defense.load_state_dict(data.get("defense", {}))
    history = list(data["history"])
    rng = data["rng"]
    rng["sampler"] = rng["sampler"].cpu()
    rng["torch"] = rng["torch"].cpu()
    if "cuda" in rng:
        rng["cuda"] = [s.cpu() for s in rng["cuda"]]
    _set_rng_states(rng, generator, device)
    partial = data.get("partial")
    if partial is not None:
        logger.info(
            "resuming %s in epoch %d at batch %d", path, len(history) + 1, partial["next"] + 1
        )
    else:
        logger.info("resuming %s after epoch %d", path, len(history))
    return history, partial


def load_checkpoint(
    path: str | os.PathLike[str], map_location: Any = None
) -> tuple[nn.Module, TrainConfig]:
    """Rebuild the model a [train][rankattack.training.train] checkpoint holds.

    Parameters
    ----------
    path : str or PathLike
        The ``checkpoint.pt`` file or the ``out_dir`` holding it.
    map_location : optional
        As in ``torch.load``; a device moves the model there.

    Returns
    -------
    (model, config)
        The model in eval mode and the [TrainConfig][rankattack.training.checkpoints.TrainConfig]
        that trained it.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not a rankattack training checkpoint, including a file torch's
        safe loader (``weights_only=True``) cannot read.
    """
    data = _read_checkpoint(_checkpoint_file(path), map_location)
    config = TrainConfig.from_dict(data["config"])
    model = build_model(config.model, config.embedding_dim, config.in_channels)
    model.load_state_dict(data["model"])
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    return model.eval(), config


def checkpoint_dataset(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The dataset record of a checkpoint, or ``None`` for one written without it.

    Parameters
    ----------
    path : str or PathLike
        The ``checkpoint.pt`` file or the ``out_dir`` holding it.

    Returns
    -------
    dict or None
        The ``to_dict()`` of the [DatasetSpec][rankattack.data.spec.DatasetSpec] the model
        was trained on (rebuild it with ``DatasetSpec.from_dict``), or ``None`` when the
        checkpoint does not record one (training outside
        [record_dataset][rankattack.training.checkpoints.record_dataset], or a checkpoint of an
        earlier version).
    """
    data = _read_checkpoint(_checkpoint_file(path), map_location="cpu")
    record = data.get("dataset")
    return dict(record) if isinstance(record, Mapping) else None


def write_dataset_record(path: str | os.PathLike[str], record: Any) -> None:
    """Add (or replace) the dataset record of an existing checkpoint, atomically."""
    file = _checkpoint_file(path)
    data = _read_checkpoint(file, map_location="cpu")
    as_dict = record.to_dict() if hasattr(record, "to_dict") else dict(record)
    if data.get("dataset") != as_dict:
        data["dataset"] = as_dict
        _save_atomic(data, file)
