"""How work is split across ranks: contiguous row shards, batch ranges, the world-size check.

Two splits, both fixed by the sizes alone (never by timing), so that every rank computes
the same plan without talking to the others:

- [shard_range][rankattack.distributed.sharding.shard_range]: rows ``[lo, hi)`` of this rank in a
  block of ``n`` rows, as even as possible and in rank order (the rows of a
  [ShardedGallery][rankattack.distributed.ShardedGallery], the share of a global training batch each
  rank forwards).
- [batch_ranges][rankattack.distributed.sharding.batch_ranges]: the ``[start, stop)`` batches a
  single process would run; the ranks take whole batches of it in turn
  ([map_batches][rankattack.distributed.map_batches]), so every batch is computed exactly as one
  process computes it.
"""

from __future__ import annotations

from rankattack._validation import check_int
from rankattack.distributed.environment import environment

__all__ = ["batch_ranges", "check_world_size", "shard_range", "shard_sizes"]


def shard_sizes(n: int, world_size: int) -> list[int]:
    """Rows of each rank when ``n`` rows are split into ``world_size`` contiguous shards.

    The first ``n % world_size`` ranks hold one row more than the others.
    """
    n = check_int(n, "n", low=0)
    world_size = check_int(world_size, "world_size", low=1)
    base, extra = divmod(n, world_size)
    return [base + (1 if r < extra else 0) for r in range(world_size)]


def shard_range(n: int, rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``rank`` (default: this process) among ``n`` split in order.

    Examples
    --------
    >>> shard_range(10, 0, 3), shard_range(10, 1, 3), shard_range(10, 2, 3)
    ((0, 4), (4, 7), (7, 10))
    """
    env = environment()
    world_size = env.world_size if world_size is None else world_size
    rank = env.rank if rank is None else check_int(rank, "rank", low=0)
    sizes = shard_sizes(n, world_size)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size = {world_size}, got {rank}")
    lo = sum(sizes[:rank])
    return lo, lo + sizes[rank]


def batch_ranges(total: int, size: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` batches of ``size`` items that cover ``range(total)``.

    Examples
    --------
    >>> batch_ranges(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    total = check_int(total, "total", low=0)
    size = check_int(size, "size", low=1)
    return [(s, min(s + size, total)) for s in range(0, total, size)]


def check_world_size(samples: int, name: str = "samples") -> None:
    """Raise ``ValueError`` (on every rank alike) when the job has more ranks than attacks.

    Parameters
    ----------
    samples : int
        T, the attacks to split.
    name : str
        The argument's name in the message.
    """
    world = environment().world_size
    if world > samples:
        raise ValueError(
            f"{name}: T = {samples} attacks cannot be split across {world} ranks; start at "
            f"most {samples} processes or raise T"
        )
