"""``rankattack blackbox`` and ``serve``: outputs, resume with identical numbers, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from rankattack.cli import main

DATA = ["--dataset", "digits", "--image-size", "8", "--test-size", "60", "--device", "cpu",
        "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt")
    argv = ["train", *DATA, "--train-size", "200", "--epochs", "2", "--batch-size", "50",
            "--embedding-dim", "16", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out / "checkpoint.pt"


def run(args: list[str]) -> int:
    return main(["blackbox", *DATA, "--samples", "6", "--chunk", "2", "--k", "3",
                 "--eps", "16/255", *args])  # fmt: skip


def test_blackbox_writes_a_summary_and_resumes_identically(checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "order"
    args = ["--checkpoint", str(checkpoint), "--out", str(out), "--optimizer", "nes",
            "--budget", "40,80", "--population", "10"]  # fmt: skip
    assert run(args) == 0
    text = capsys.readouterr().out
    assert "order:nes:k=3:eps=16/255:N=all:Q=40:P=10" in text
    first = json.loads((out / "summary.json").read_text())
    assert [r["T"] for r in first] == [6, 6] and [r["budget"] for r in first] == [40, 80]
    assert all(r["queries_max"] <= r["budget"] for r in first)
    assert (out / "budget-curve.png").stat().st_size > 0 and (out / "summary.md").exists()
    # a kill after two chunks, mid-way through writing a third line
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])
    assert run(args) == 0
    again = json.loads((out / "summary.json").read_text())
    for a, b in zip(first, again, strict=True):
        a.pop("seconds"), b.pop("seconds")
        assert a == b
    meta = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "meta" for r in meta) == 1
    # a run with other settings in the same directory is refused
    with pytest.raises(SystemExit) as exc:
        run([*args, "--seed", "1"])
    assert exc.value.code == 2 and "holds a run with other settings" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--attack", "whitebox"],
        ["--attack", "removal", "--optimizer", "square", "--top-n", "10", "--budget", "30"],
        ["--attack", "QA+", "--budget", "40", "--population", "10"],
        [
            "--attack",
            "order",
            "--optimizer",
            "rand",
            "--top-n",
            "10",
            "--budget",
            "40",
            "--population",
            "10",
        ],
    ],
)
def test_blackbox_attacks_from_the_command_line(checkpoint, tmp_path, capsys, extra) -> None:
    out = tmp_path / "run"
    assert run(["--checkpoint", str(checkpoint), "--out", str(out), *extra]) == 0
    rows = json.loads((out / "summary.json").read_text())
    assert rows[0]["T"] == 6 and rows[0]["linf_mean"] <= 16 / 255 + 1e-6
    if extra[1] == "removal":
        assert "success_rate" in rows[0]


def test_blackbox_bad_arguments_exit_2(checkpoint, tmp_path, capsys) -> None:
    base = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "x")]
    with pytest.raises(SystemExit) as exc:
        run([*base, "--top-n", "2"])
    assert exc.value.code == 2
    assert "k must be <= the oracle's visible list length 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run([*base, "--budget", "20", "--population", "50"])
    assert exc.value.code == 2 and "budget must be >= 52" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run([*base, "--eps", "four"])
    assert exc.value.code == 2 and "--eps must be a number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run(["--out", str(tmp_path / "y")])
    assert exc.value.code == 2 and "exactly one of --checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--checkpoint", str(checkpoint), "--port", "70000", *DATA[:-1]])
    assert exc.value.code == 2 and "--port must be in [0, 65535]" in capsys.readouterr().err


def test_blackbox_against_a_served_checkpoint(checkpoint, tmp_path, capsys) -> None:
    from rankattack.blackbox.server import SearchService, make_server
    from rankattack.data import load_dataset
    from rankattack.gallery import Gallery
    from rankattack.training import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    data = load_dataset("digits", image_size=8).subset(None, 60, seed=0)
    gallery = Gallery.from_inputs(model.eval(), data.test_x)
    server = make_server(SearchService(model, gallery, (1, 8, 8)), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/search"
        common = ["--optimizer", "nes", "--budget", "40", "--population", "10", "--top-n", "20"]
        assert run(["--url", url, "--out", str(tmp_path / "http"), *common]) == 0
        assert run(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "sim"), *common]) == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    remote = json.loads((tmp_path / "http" / "summary.json").read_text())[0]
    local = json.loads((tmp_path / "sim" / "summary.json").read_text())[0]
    assert remote["tau_mean"] == pytest.approx(local["tau_mean"])
    assert remote["queries_mean"] == local["queries_mean"]


def test_serve_command_answers_until_stopped(checkpoint) -> None:
    from rankattack.blackbox import HTTPOracle

    argv = [sys.executable, "-m", "rankattack", "serve", "--checkpoint", str(checkpoint),
            "--port", "0", *DATA[:-1]]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(120, proc.kill)  # never hang the suite on a stuck server
    guard.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints its address once it listens
        match = re.search(r"(http://127\.0\.0\.1:\d+/search)", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None else "")
        oracle = HTTPOracle(match.group(1), top_n=5, budget=None, timeout=30)
        assert oracle.gallery_size == 60
        assert oracle(torch.rand(2, 1, 8, 8)).shape == (2, 5)
    finally:
        guard.cancel()
        proc.terminate()
        proc.wait(timeout=30)
