"""The few collectives the library needs, each failing on every rank when one rank fails.

- [map_batches][rankattack.distributed.collectives.map_batches]: the batches of a job split across
  ranks in turn, the results gathered in order on every rank (the T attacks of an evaluation cell,
  the chunks of the robustness benchmark).
- [from_main][rankattack.distributed.collectives.from_main]: a value computed on rank 0 (reading a
  results file) given to all.
- [check_same][rankattack.distributed.collectives.check_same]: compare a fingerprint across ranks
  (resumed checkpoints).

An exception on one rank is caught there, sent with the results, and raised as
[RankFailedError][rankattack.distributed.collectives.RankFailedError] on every rank, instead of
leaving the others waiting at the next collective. A rank that dies outright (killed, out of memory)
is noticed by the others at their next collective: gloo reports the lost connection, or the
collective times out after ``DEFAULT_TIMEOUT`` seconds (set by ``RANKATTACK_DIST_TIMEOUT``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from rankattack.distributed.environment import environment

__all__ = [
    "RankFailedError",
    "all_gather_objects",
    "barrier",
    "check_same",
    "from_main",
    "map_batches",
    "tensor_digest",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")


class RankFailedError(RuntimeError):
    """One or more ranks of the job failed; raised on every rank alike."""


def all_gather_objects(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` without a job). Picklable values."""
    env = environment()
    if not env.active:
        return [value]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, value)
    return out


def _to_cpu(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, tuple | list):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple | list):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def _raise_failures(failures: list[tuple[int, str]], cause: BaseException | None) -> None:
    if not failures:
        return
    text = "; ".join(f"rank {rank}: {message}" for rank, message in failures)
    raise RankFailedError(f"{len(failures)} rank(s) failed: {text}") from cause


def map_batches(
    fn: Callable[[_T], _R],
    items: Sequence[_T],
    *,
    skip: Callable[[_T], object] | None = None,
    device: torch.device | None = None,
    per_rank: int | None = None,
) -> Iterator[_R]:
    """``fn(item)`` for every item, in order, computed by the ranks in turn.

    Without a job this is ``(fn(item) for item in items)``. In a job of N ranks, item i
    is computed by rank ``i % N`` and the results are gathered (through the CPU) after
    every ``per_rank`` items per rank (default: all at once), then yielded in item order
    on every rank. Since each item is computed as one process computes it, the results
    do not depend on N.

    Parameters
    ----------
    fn : callable
        Computes one item (a batch of attacks); returns tensors, or tuples, lists or
        dicts of them (moved through the CPU, so keep them small: per-sample numbers,
        not adversarial images).
    items : sequence
        The work, e.g. [batch_ranges][rankattack.distributed.batch_ranges].
    skip : callable, optional
        Called instead of ``fn`` on the items of the other ranks, in order: to draw what
        ``fn`` would have drawn from a shared random stream, so that the next item of
        this rank starts from the state one process would have.
    device : torch.device, optional
        Move gathered tensors there (default: leave them on the CPU).
    per_rank : int, optional
        Items per rank between gathers; smaller values let the caller save results
        sooner (resume granularity), at one collective per round.

    Raises
    ------
    RankFailedError
        On every rank, if ``fn`` raised on any rank (chained to the local exception).
    """
    env = environment()
    if not env.active:
        for item in items:
            yield fn(item)
        return
    n, world = len(items), env.world_size
    round_size = n if per_rank is None else max(1, per_rank) * world
    for start in range(0, n, max(round_size, 1)):
        mine: list[tuple[int, Any]] = []
        failure: str | None = None
        cause: BaseException | None = None
        for i in range(start, min(start + round_size, n)):
            if failure is not None:
                break
            try:
                if i % world == env.rank:
                    mine.append((i, _to_cpu(fn(items[i]))))
                elif skip is not None:
                    skip(items[i])
            except Exception as exc:  # sent to every rank below
                failure, cause = f"{type(exc).__name__}: {exc}", exc
                logger.error("rank %d failed on item %d: %s", env.rank, i, failure)
        gathered = all_gather_objects((mine, failure))
        _raise_failures(
            [(r, f) for r, (_, f) in enumerate(gathered) if f is not None],
            cause,
        )
        results = sorted((pair for part, _ in gathered for pair in part), key=lambda p: p[0])
        for _, value in results:
            yield value if device is None else _to_device(value, device)


def barrier() -> None:
    """Wait until every rank got here (nothing without a job): e.g. until rank 0 has
    written a file the others will read."""
    if environment().active:
        dist.barrier()


def from_main(fn: Callable[[], _R]) -> _R:
    """``fn()`` computed on rank 0 and given to every rank (its exception raised on all).

    Without a job, ``fn()``. Used to read a results file once: the other ranks need not
    see the file system rank 0 writes to.
    """
    env = environment()
    if not env.active:
        return fn()
    payload: list[Any] = [None]
    if env.is_main:
        try:
            payload = [("ok", fn())]
        except Exception as exc:
            payload = [("error", exc)]
    dist.broadcast_object_list(payload, src=0)
    kind, value = payload[0]
    if kind == "error":
        raise value
    result: _R = value
    return result


def check_same(fingerprint: str, what: str) -> None:
    """Raise ``ValueError`` on every rank unless all ranks hold the same ``fingerprint``.

    Parameters
    ----------
    fingerprint : str
        A digest of what must agree (see
        [tensor_digest][rankattack.distributed.collectives.tensor_digest]).
    what : str
        What it describes, for the message ("the resumed checkpoint").
    """
    values = all_gather_objects(fingerprint)
    if len(set(values)) > 1:
        groups: dict[str, list[int]] = {}
        for rank, value in enumerate(values):
            groups.setdefault(value, []).append(rank)
        detail = "; ".join(f"ranks {ranks}: {value[:12]}" for value, ranks in groups.items())
        raise ValueError(
            f"{what} differs across ranks ({detail}); every rank must start from the same "
            f"state (a checkpoint on a file system all ranks see, the same data)"
        )


def tensor_digest(tensors: Sequence[Tensor], extra: str = "") -> str:
    """SHA-256 of the bytes, shapes and dtypes of ``tensors`` (moved to the CPU) and ``extra``."""
    h = hashlib.sha256(extra.encode())
    for t in tensors:
        cpu = t.detach().cpu().contiguous()
        h.update(f"{tuple(cpu.shape)}{cpu.dtype}".encode())
        h.update(cpu.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
