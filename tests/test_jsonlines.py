"""The JSON-lines file the resumable runs share: reading, appending, a line cut off by a kill."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from rankattack.blackbox.report import BlackBoxLog
from rankattack.evaluation import ResultsLog
from rankattack.evaluation.jsonlines import JsonLinesLog
from rankattack.evaluation.robustness import RobustnessLog


class _PairLog(JsonLinesLog):
    def read(self) -> tuple[dict[str, Any] | None, list[tuple[int, int]]]:
        return self._read("pair", lambda f: (f["a"], f["b"]))

    def append(self, a: int, b: int) -> None:
        self._append("pair", {"a": a, "b": b})


def test_records_round_trip_in_file_order(tmp_path: Path) -> None:
    log = _PairLog(tmp_path / "deep" / "er" / "log.jsonl")
    assert log.read() == (None, [])
    log.write_meta({"seed": 3})
    log.append(1, 2)
    log.append(0, 5)
    assert log.read() == ({"seed": 3}, [(1, 2), (0, 5)])
    assert log.path.read_text().splitlines() == [
        '{"seed": 3, "type": "meta"}',
        '{"a": 1, "b": 2, "type": "pair"}',
        '{"a": 0, "b": 5, "type": "pair"}',
    ]


def test_blank_lines_other_types_and_a_later_meta(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"type": "meta", "v": 1}\n\n  \n{"type": "other", "a": 9, "b": 9}\n'
        '{"type": "pair", "a": 1, "b": 1}\n{"type": "meta", "v": 2}\n'
    )
    assert _PairLog(path).read() == ({"v": 2}, [(1, 1)])


def test_a_cut_off_last_line_is_skipped_then_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = _PairLog(tmp_path / "log.jsonl")
    log.write_meta({"v": 1})
    log.append(1, 2)
    with log.path.open("a") as fh:
        fh.write('{"a": 3, "b"')  # a kill while writing
    with caplog.at_level(logging.WARNING, logger=__name__):
        assert log.read() == ({"v": 1}, [(1, 2)])
    assert "log.jsonl:3: skipping an unreadable (cut-off) line" in caplog.text
    assert caplog.records[0].name == __name__  # the logger of the log's module
    log.append(4, 5)
    assert log.path.read_text().endswith('"type": "pair"}\n{"a": 4, "b": 5, "type": "pair"}\n')
    assert log.read() == ({"v": 1}, [(1, 2), (4, 5)])


def test_a_file_that_is_one_cut_off_line_starts_over(tmp_path: Path) -> None:
    log = _PairLog(tmp_path / "log.jsonl")
    log.path.write_text('{"type": "me')
    assert log.read() == (None, [])
    log.write_meta({"v": 1})
    assert log.path.read_text() == '{"type": "meta", "v": 1}\n'


@pytest.mark.parametrize(
    ("cls", "name"), [(ResultsLog, "path"), (RobustnessLog, "results"), (_PairLog, "path")]
)
def test_the_path_is_checked(cls: type[JsonLinesLog], name: str) -> None:
    with pytest.raises(TypeError, match=f"^{name} must be a str or Path, got int$"):
        cls(3)  # type: ignore[arg-type]


def test_the_logs_of_the_runs_share_it() -> None:
    for cls in (ResultsLog, RobustnessLog, BlackBoxLog):
        assert issubclass(cls, JsonLinesLog)
