"""What torch.distributed changes, and nothing else: scale out with torchrun.

Three ways to use several processes (one per GPU, or per CPU core with gloo), each giving
the numbers of one process:

- **Sharded evaluation** (``torchrun --nproc_per_node=N -m rankattack evaluate ...``, also
  ``robustness``): the batches of T attacks of each cell are split across ranks in turn
  ([map_batches][rankattack.distributed.map_batches]), every batch computed as one process computes
  it; rank 0 alone reads and writes the results file
  ([main_process_log][rankattack.distributed.main_process_log]), so a killed job resumes from it.
- **DDP training** (``torchrun ... -m rankattack train ...``): every rank draws the same
  global batch; each forwards its share ([ShardedForward][rankattack.distributed.ShardedForward])
  and DistributedDataParallel sums the gradients
  ([DistributedDefense][rankattack.distributed.DistributedDefense]); rank 0 writes the checkpoints.
- **Sharded gallery** ([ShardedGallery][rankattack.distributed.ShardedGallery]): the candidate set's
  rows split across ranks, ranks, top-k and hinge sums combined with ``[B, k]`` collectives.

Nothing here starts torch.distributed unless the launcher's environment asks for it
(``RANK`` and ``WORLD_SIZE`` set, [init_distributed][rankattack.distributed.init_distributed]);
without a job every function is its single-process self.

Modules
-------
environment
    ``init_distributed``, ``environment``, ``distributed_session``, ``local_device``.
sharding
    ``shard_range``, ``shard_sizes``, ``batch_ranges``, ``check_world_size``.
collectives
    ``map_batches``, ``from_main``, ``check_same``, ``barrier``, ``RankFailedError``.
mainprocesslog
    ``main_process_log``: results files read and written by rank 0.
shardedgallery
    ``ShardedGallery``, ``LocalRows``.
shardedforward
    ``ShardedForward``, ``gather_rows``.
distributeddefense
    ``DistributedDefense``, ``distribute_defense``.
"""

from __future__ import annotations

from rankattack.distributed.collectives import (
    RankFailedError,
    all_gather_objects,
    barrier,
    check_same,
    from_main,
    map_batches,
    tensor_digest,
)
from rankattack.distributed.distributeddefense import (
    DistributedDefense,
    distribute_defense,
    state_digest,
)
from rankattack.distributed.environment import (
    DEFAULT_TIMEOUT,
    TIMEOUT_VARIABLE,
    DistributedEnv,
    distributed_session,
    environment,
    init_distributed,
    is_main_process,
    launched,
    local_device,
)
from rankattack.distributed.mainprocesslog import MainProcessLog, main_process_log
from rankattack.distributed.shardedforward import ShardedForward, gather_rows
from rankattack.distributed.shardedgallery import LocalRows, ShardedGallery
from rankattack.distributed.sharding import (
    batch_ranges,
    check_world_size,
    shard_range,
    shard_sizes,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_VARIABLE",
    "DistributedDefense",
    "DistributedEnv",
    "LocalRows",
    "MainProcessLog",
    "RankFailedError",
    "ShardedForward",
    "ShardedGallery",
    "all_gather_objects",
    "barrier",
    "batch_ranges",
    "check_same",
    "check_world_size",
    "distribute_defense",
    "distributed_session",
    "environment",
    "from_main",
    "gather_rows",
    "init_distributed",
    "is_main_process",
    "launched",
    "local_device",
    "main_process_log",
    "map_batches",
    "shard_range",
    "shard_sizes",
    "state_digest",
    "tensor_digest",
]
