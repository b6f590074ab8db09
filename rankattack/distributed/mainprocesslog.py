"""A results log that only rank 0 reads and writes: one file per job, resumable under torchrun.

The evaluation's [ResultsLog][rankattack.evaluation.ResultsLog] and the robustness
benchmark's [RobustnessLog][rankattack.evaluation.robustness.log.RobustnessLog] append a line per
finished cell or chunk. In a job of N ranks,
[main_process_log][rankattack.distributed.mainprocesslog.main_process_log] wraps such a log so that
rank 0 alone reads it (and hands what it read to every rank, so they all skip the same finished work
and raise the same error on a mismatched file) and rank 0 alone appends to it, after the results of
every rank were gathered. A line is written only for work that is complete on all ranks, so a killed
job leaves no half-written cell, and a rerun resumes from the file like a single process does.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, cast

from rankattack.distributed.collectives import from_main
from rankattack.distributed.environment import environment

__all__ = ["MainProcessLog", "main_process_log"]


class _Log(Protocol):
    def read(self) -> tuple[dict[str, Any] | None, list[Any]]: ...

    def write_meta(self, meta: dict[str, Any]) -> None: ...

    def append(self, record: Any) -> None: ...


_L = TypeVar("_L", bound=_Log)


class MainProcessLog:
    """Proxy of a results log: reads on rank 0 given to all ranks, writes on rank 0 only.

    Other attributes (``path``, ``check_meta``) are those of the wrapped log.

    Parameters
    ----------
    log : ResultsLog or RobustnessLog
        The log rank 0 reads and writes.
    """

    def __init__(self, log: _Log) -> None:
        self._log = log

    def read(self) -> tuple[dict[str, Any] | None, list[Any]]:
        """The wrapped log's ``read()`` on rank 0, on every rank."""
        return from_main(self._log.read)

    def write_meta(self, meta: dict[str, Any]) -> None:
        if environment().is_main:
            self._log.write_meta(meta)

    def append(self, record: Any) -> None:
        if environment().is_main:
            self._log.append(record)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def __repr__(self) -> str:
        return f"MainProcessLog({self._log!r})"


def main_process_log(log: _L) -> _L:
    """``log`` itself without a job; in a job, a
    [MainProcessLog][rankattack.distributed.mainprocesslog.MainProcessLog] standing in for it."""
    if not environment().active:
        return log
    return cast(_L, MainProcessLog(log))
