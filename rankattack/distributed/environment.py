"""Where this process stands in a torch.distributed job, and starting the job when launched.

torchrun (and Slurm scripts built on it) start one process per device and describe the
job in environment variables: ``RANK`` (this process among all), ``WORLD_SIZE`` (how
many), ``LOCAL_RANK`` (this process on its node: its GPU), ``MASTER_ADDR`` and
``MASTER_PORT`` (where rank 0 listens).
[init_distributed][rankattack.distributed.environment.init_distributed] starts the process group
only when ``RANK`` and ``WORLD_SIZE`` are set, so plain single-process use never touches
torch.distributed; [environment][rankattack.distributed.environment.environment] answers "which rank
am I, among how many" either way (rank 0 of 1 without a job).

The process group uses NCCL for CUDA tensors and gloo for CPU tensors
(``"cpu:gloo,cuda:nccl"``) when CUDA is available, gloo alone otherwise. Every
collective gives up after a timeout (``TIMEOUT_VARIABLE``, default
``DEFAULT_TIMEOUT`` seconds), so a rank that died cannot leave the others waiting
forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = [
    "DEFAULT_TIMEOUT",
    "LAUNCH_VARIABLES",
    "TIMEOUT_VARIABLE",
    "DistributedEnv",
    "distributed_session",
    "environment",
    "init_distributed",
    "is_main_process",
    "launched",
    "local_device",
]

logger = logging.getLogger(__name__)

#: The variables a launcher sets; the job starts only when RANK and WORLD_SIZE are set.
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

#: Environment variable holding the collectives' timeout in seconds.
TIMEOUT_VARIABLE = "RANKATTACK_DIST_TIMEOUT"

#: Default timeout of a collective, in seconds: a rank waits at most this long for the
#: others (they wait for each other at most one batch of attacks apart, see
#: [rankattack.distributed.collectives.map_batches][]).
DEFAULT_TIMEOUT = 1800.0


@dataclass(frozen=True)
class DistributedEnv:
    """This process's place in the job.

    Attributes
    ----------
    rank : int
        Global rank, in ``[0, world_size)``; rank 0 writes the results.
    world_size : int
        Number of processes (1 without a job).
    local_rank : int
        Rank on this node: the index of this process's GPU.
    backend : str or None
        The process group's backend, ``None`` when no group is running.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that reads and writes results files and checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """A process group of more than one rank is running."""
        return self.backend is not None and self.world_size > 1


def launched() -> bool:
    """Whether a launcher (torchrun, a Slurm script) asked for a distributed job."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _env_int(name: str, default: int | None = None) -> int:
    text = os.environ.get(name)
    if text is None:
        if default is None:
            raise ValueError(f"environment variable {name} must be set by the launcher")
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None


def environment() -> DistributedEnv:
    """This process's rank, world size, local rank and backend (rank 0 of 1 without a job)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedEnv()
    rank = dist.get_rank()
    return DistributedEnv(
        rank=rank,
        world_size=dist.get_world_size(),
        local_rank=_env_int("LOCAL_RANK", rank),
        backend=str(dist.get_backend()),
    )


def is_main_process() -> bool:
    """True on rank 0 and in a plain single process."""
    return environment().is_main


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        value = float(timeout)
        source = "timeout"
    else:
        text = os.environ.get(TIMEOUT_VARIABLE, str(DEFAULT_TIMEOUT))
        source = TIMEOUT_VARIABLE
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{source} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{source} must be > 0 seconds, got {value!r}")
    return value


def init_distributed(timeout: float | None = None) -> DistributedEnv:
    """Start the process group the launcher's environment describes; a no-op without one.

    Parameters
    ----------
    timeout : float, optional
        Seconds a collective waits for the other ranks before failing; default the value
        of ``RANKATTACK_DIST_TIMEOUT``, else ``DEFAULT_TIMEOUT``.

    Returns
    -------
    DistributedEnv
        This process's place in the job (rank 0 of 1 when nothing was launched).

    Raises
    ------
    ValueError
        If the launcher's variables are malformed (``RANK`` outside ``[0, WORLD_SIZE)``,
        ``LOCAL_RANK`` naming a GPU this node does not have).
    """
    if not launched() or not dist.is_available():
        return environment()
    if dist.is_initialized():
        return environment()
    seconds = _timeout(timeout)
    rank = _env_int("RANK")
    world = _env_int("WORLD_SIZE")
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE), got RANK={rank}, WORLD_SIZE={world}")
    if torch.cuda.is_available():
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local} names a GPU this node does not have "
                f"({torch.cuda.device_count()} visible); start at most that many processes per node"
            )
        torch.cuda.set_device(local)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=seconds))
    logger.info("rank %d of %d started (%s, timeout %gs)", rank, world, backend, seconds)
    return environment()


def local_device(device: torch.device) -> torch.device:
    """The device this rank should use for ``device``: ``cuda`` becomes ``cuda:LOCAL_RANK``.

    An explicit index (``cuda:1``) and other device types are kept; without a job the
    device is returned unchanged.
    """
    if device.type == "cuda" and device.index is None and environment().backend is not None:
        return torch.device("cuda", environment().local_rank)
    return device


@contextlib.contextmanager
def distributed_session(
    name: str = "this command", supported: bool = True, timeout: float | None = None
) -> Iterator[DistributedEnv]:
    """Run a command as one rank of the launched job, or as a plain process.

    Starts the process group when launched
    ([init_distributed][rankattack.distributed.environment.init_distributed]) and ends it on exit.
    On ranks other than 0, standard output and tqdm progress bars are silenced (rank 0 speaks for
    the job; errors still reach standard error on every rank).

    Parameters
    ----------
    name : str
        The command, for messages.
    supported : bool
        Whether the command splits its work across ranks; a job of several ranks running
        one that does not is refused (``ValueError`` on every rank), instead of every rank
        computing and writing the same files.
    timeout : float, optional
        See [init_distributed][rankattack.distributed.environment.init_distributed].
    """
    if launched() and not supported and _env_int("WORLD_SIZE") > 1:
        raise ValueError(
            f"{name} runs in one process: start it without torchrun (or with "
            f"--nproc_per_node=1); evaluate, robustness and train split across ranks"
        )
    started = launched() and not (dist.is_available() and dist.is_initialized())
    env = init_distributed(timeout)
    try:
        if env.is_main:
            yield env
        else:
            previous = os.environ.get("TQDM_DISABLE")
            os.environ["TQDM_DISABLE"] = "1"
            try:
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                    yield env
            finally:
                if previous is None:
                    os.environ.pop("TQDM_DISABLE", None)
                else:
                    os.environ["TQDM_DISABLE"] = previous
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()
