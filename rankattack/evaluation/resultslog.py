"""The JSON-lines results log that lets a killed evaluation resume where it stopped.

One ``meta`` record (model name, gallery size, dimension, metric, R@1), then one line
per finished cell, appended and flushed as the cell ends. A rerun of
[rankattack.evaluation.evaluate][] with the same file skips the cells already there
(matched on [rankattack.evaluation.cells.CellResult.key][]), so an interrupted run
resumes and ends with the table an uninterrupted run gives.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from rankattack.evaluation.cells import CellResult

__all__ = ["ResultsLog"]

logger = logging.getLogger(__name__)


class ResultsLog:
    """A JSON-lines file of cell results: one ``meta`` record, then one line per cell.

    Lines are appended (and flushed) as cells finish, so an interrupted run loses at
    most the cell in progress; a line cut short by the interruption is dropped when the
    file is opened again.

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` file (created with its parent directories when missing).
    """

    def __init__(self, path: str | Path) -> None:
        if not isinstance(path, str | Path):
            raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
        self.path = Path(path)

    def read(self) -> tuple[dict[str, Any] | None, list[CellResult]]:
        """The meta record (or ``None``) and the cells, in file order (last one wins)."""
        if not self.path.exists():
            return None, []
        meta: dict[str, Any] | None = None
        cells: dict[str, CellResult] = {}
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: skipping an unreadable (cut-off) line", self.path, n)
                continue
            if record.get("type") == "meta":
                meta = {k: v for k, v in record.items() if k != "type"}
            elif record.get("type") == "cell":
                cell = CellResult.from_dict(record)
                cells[cell.key] = cell
        return meta, list(cells.values())

    def _repair(self) -> None:
        """Drop a trailing partial line so that appends start on a fresh line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            self.path.write_bytes(data[:cut])

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()

    def write_meta(self, meta: dict[str, Any]) -> None:
        self._append({"type": "meta", **meta})

    def append(self, cell: CellResult) -> None:
        self._append({"type": "cell", **cell.to_dict()})
