"""The JSON-lines file every resumable run appends its results to and resumes from.

A log holds one ``meta`` record (what the numbers depend on), then one record per finished
piece of work (a cell, a chunk of queries), each a JSON object on a line of its own whose
``"type"`` says which. Records are appended and flushed as the work finishes, so a killed run
loses at most the piece in progress. A line cut short by the kill is skipped, with a warning,
when the file is read, and dropped before the next append, so that appends start on a fresh
line; a rerun that skips the pieces already logged ends with the numbers an uninterrupted run
gives.

[JsonLinesLog][rankattack.evaluation.jsonlines.JsonLinesLog] is that file;
the protocol's [ResultsLog][rankattack.evaluation.resultslog.ResultsLog], the robustness
benchmark's [RobustnessLog][rankattack.evaluation.robustness.log.RobustnessLog] and the black-box
runs' [BlackBoxLog][rankattack.blackbox.report.BlackBoxLog] build on it, each with its own record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = ["JsonLinesLog"]

R = TypeVar("R")


class JsonLinesLog:
    """A JSON-lines file: one ``meta`` record, then one record per finished piece of work.

    A subclass names its record's ``"type"`` and turns the record into an object and back:
    its ``read`` returns ``_read(type, parse)``, its ``append`` calls ``_append(type, fields)``.

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` file (created with its parent directories when missing).
    """

    #: How a ``TypeError`` names ``path`` when it is not a str or Path (``None``: not checked).
    path_argument: ClassVar[str | None] = "path"

    def __init__(self, path: str | Path) -> None:
        if self.path_argument is not None and not isinstance(path, str | Path):
            raise TypeError(
                f"{self.path_argument} must be a str or Path, got {type(path).__name__}"
            )
        self.path = Path(path)

    def records(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        """``(type, the other fields)`` of each readable line, in file order.

        Blank lines are passed over; a line that is not JSON (cut short by a kill) is
        skipped with a warning from the logger of the subclass's module.
        """
        if not self.path.exists():
            return
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logging.getLogger(type(self).__module__).warning(
                    "%s:%d: skipping an unreadable (cut-off) line", self.path, n
                )
                continue
            yield record.get("type"), {k: v for k, v in record.items() if k != "type"}

    def _read(
        self, kind: str, parse: Callable[[dict[str, Any]], R]
    ) -> tuple[dict[str, Any] | None, list[R]]:
        """The last ``meta`` record (or ``None``) and the records of type ``kind``, parsed, in
        file order."""
        meta: dict[str, Any] | None = None
        parsed: list[R] = []
        for record_kind, fields in self.records():
            if record_kind == "meta":
                meta = fields
            elif record_kind == kind:
                parsed.append(parse(fields))
        return meta, parsed

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Append the ``meta`` record."""
        self._append("meta", meta)

    def _append(self, kind: str, fields: dict[str, Any]) -> None:
        """Append one record of type ``kind`` as a line, flushed; drop a cut-off last line
        first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_cut_off_line()
        with self.path.open("a") as fh:
            fh.write(json.dumps({"type": kind, **fields}, sort_keys=True) + "\n")
            fh.flush()

    def _drop_cut_off_line(self) -> None:
        """Truncate the file after its last newline when it does not end with one."""
        if not self.path.exists():
            return
        with self.path.open("rb+") as fh:
            size = fh.seek(0, 2)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            fh.truncate(fh.read().rfind(b"\n") + 1)
