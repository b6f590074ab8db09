"""``torchrun --nproc_per_node=2 -m rankattack ...``: the command's numbers and files of one
process, written once by rank 0, resumable; gloo on the CPU, rendezvous on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rankattack.cli import main
from rankattack.evaluation import ResultsLog
from rankattack.training import load_checkpoint

pytest.importorskip("sklearn")

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")

DATA = ["--dataset", "digits", "--image-size", "8", "--train-size", "100", "--test-size", "40"]
COMMON = ["--no-progress", "--device", "cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    assert TORCHRUN is not None
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    root = str(Path(__file__).resolve().parents[1])
    env.update(
        PYTHONPATH=os.pathsep.join([root, env.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
        RANKATTACK_DIST_TIMEOUT="60",
    )  # fmt: skip
    cmd = [
        TORCHRUN, "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}", "-m", "rankattack", *argv,
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt")
    argv = ["train", *DATA, "--epochs", "1", "--batch-size", "50", "--embedding-dim", "16"]
    assert main([*argv, "--out", str(out), *COMMON]) == 0
    return out / "checkpoint.pt"


def _cells(path: Path) -> list[dict[str, object]]:
    meta, cells = ResultsLog(path).read()
    assert meta is not None
    return sorted(
        ({k: v for k, v in c.to_dict().items() if k != "seconds"} for c in cells), key=str
    )


def test_torchrun_evaluate_equals_one_process_and_resumes(checkpoint: Path, tmp_path: Path) -> None:
    argv = [
        "evaluate", *DATA, "--checkpoint", str(checkpoint), "--attacks", "CA+", "QA-",
        "--eps", "0,0.1", "--sizes", "1,2", "--samples", "10", "--batch-size", "3",
        "--no-figures", "--name", "v", *COMMON,
    ]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    want = _cells(tmp_path / "one" / "results.jsonl")
    done = _torchrun([*argv, "--out", str(tmp_path / "two")], tmp_path)
    assert done.stdout.count("v: mean normalized rank") == 1  # rank 0 speaks for the job
    assert _cells(tmp_path / "two" / "results.jsonl") == want
    table = (tmp_path / "two" / "table.txt").read_text()
    assert table == (tmp_path / "one" / "table.txt").read_text()
    # a job killed in its fourth cell: three cells and a cut line; the rerun completes it
    log = tmp_path / "two" / "results.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:4]) + lines[4][:25])
    done = _torchrun([*argv, "--out", str(tmp_path / "two")], tmp_path)
    assert _cells(log) == want
    assert len(log.read_text().splitlines()) == len(lines)
    assert json.loads((tmp_path / "two" / "run.json").read_text())["command"].startswith(
        "rankattack evaluate"
    )


def test_torchrun_robustness_equals_one_process(checkpoint: Path, tmp_path: Path) -> None:
    argv = [
        "robustness", *DATA, "--checkpoint", str(checkpoint), "--steps", "2", "--samples",
        "12", "--batch-size", "4", "--names", "m", "--no-figures", *COMMON,
    ]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    _torchrun([*argv, "--out", str(tmp_path / "two")], tmp_path)
    one = json.loads((tmp_path / "one" / "robustness.json").read_text())["models"][0]
    two = json.loads((tmp_path / "two" / "robustness.json").read_text())["models"][0]
    for key in ("raw", "raw_ci", "scores", "ers", "recall_at_1", "mean_average_precision"):
        assert two[key] == one[key]


def test_torchrun_train_equals_one_process(tmp_path: Path) -> None:
    argv = [
        "train", *DATA, "--epochs", "1", "--batch-size", "20", "--embedding-dim", "16",
        "--defense", "act", "--defense-steps", "2", *COMMON,
    ]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    done = _torchrun([*argv, "--out", str(tmp_path / "two")], tmp_path)
    assert done.stdout.count("R@1 on the test set") == 1
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["checkpoint.pt"]
    one, _ = load_checkpoint(tmp_path / "one")
    two, config = load_checkpoint(tmp_path / "two")
    assert config.defense == "act"
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        # 5 Adam steps of lr 1e-3 with ACT's adversary: float tolerance
        assert float((a - b).abs().max()) < 1e-4, name
    assert torch.equal(two(torch.zeros(1, 1, 8, 8)), two(torch.zeros(1, 1, 8, 8)))
