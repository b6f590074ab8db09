"""The JSON-lines results log that lets a killed evaluation resume where it stopped.

One ``meta`` record (model name, gallery size, dimension, metric, R@1), then one line
per finished cell, appended and flushed as the cell ends. A rerun of
[rankattack.evaluation.evaluate][] with the same file skips the cells already there
(matched on [rankattack.evaluation.cells.CellResult.key][]), so an interrupted run
resumes and ends with the table an uninterrupted run gives.
"""

from __future__ import annotations

from typing import Any

from rankattack.evaluation.cells import CellResult
from rankattack.evaluation.jsonlines import JsonLinesLog

__all__ = ["ResultsLog"]


class ResultsLog(JsonLinesLog):
    """A JSON-lines file of cell results: one ``meta`` record, then one line per cell.

    Lines are appended (and flushed) as cells finish, so an interrupted run loses at
    most the cell in progress; a line cut short by the interruption is dropped when the
    file is opened again ([JsonLinesLog][rankattack.evaluation.jsonlines.JsonLinesLog]).

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` file (created with its parent directories when missing).
    """

    def read(self) -> tuple[dict[str, Any] | None, list[CellResult]]:
        """The meta record (or ``None``) and the cells, in file order (last one wins)."""
        meta, cells = self._read("cell", CellResult.from_dict)
        return meta, list({cell.key: cell for cell in cells}.values())

    def append(self, cell: CellResult) -> None:
        self._append("cell", cell.to_dict())
