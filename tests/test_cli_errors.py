"""Bad input and interrupts at the command line: checked first, one line, one exit status.

Every bad argument of every command ends the same way before any work starts: one line
``rankattack <command>: error: ...`` on stderr, exit status 2, no output folder. Ctrl-C
(SIGINT) keeps the finished cells, says how to resume and exits with 130; the rerun says
which cells it skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rankattack.cli import main

pytest.importorskip("sklearn")

FAST = ["--no-progress", "--device", "cpu"]
DIGITS = ["--dataset", "digits", "--image-size", "8", "--train-size", "120", "--test-size", "60"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("errors") / "model"
    argv = ["train", *DIGITS, "--epochs", "1", "--batch-size", "40", "--embedding-dim", "8",
            "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    return out


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], out: Path) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    command = argv[0]
    assert err.startswith(f"rankattack {command}: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists(), "no work may start before the arguments are checked"
    return err


EVALUATE_BAD = [
    (["--eps", "abc"], "--eps must be numbers or fractions such as 8/255, comma-separated"),
    (["--eps", "-1"], "--eps must be >= 0, got -1"),
    (["--eps", "0,0.1,x"], "got 'x'"),
    (["--sizes", "0"], "--sizes must be >= 1, got 0"),
    (["--sizes", "two"], "--sizes must be integers, comma-separated, got 'two'"),
    (["--attacks", "CA+,XX"], "--attacks must be among CA+, CA-, QA+, QA-, got 'XX'"),
    (["--samples", "0"], "--samples must be >= 1, got 0"),
    (["--samples", "ten"], "--samples must be an integer, got 'ten'"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--device", "gpu9"], "--device must name a torch device"),
    (["--paper", "XY"], "--paper invalid choice: 'XY'"),
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--image-size", "16"], "image size 16 (trained on 8)"),
    (["--unknown-option"], "unrecognized arguments: --unknown-option"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "message"), EVALUATE_BAD)
def test_evaluate_bad_input(ckpt, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "out"
    err = _fails(["evaluate", "--checkpoint", str(ckpt), *extra, "--out", str(out)], capsys, out)
    assert message in err


def test_evaluate_missing_checkpoint(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["evaluate", "--checkpoint", str(tmp_path / "nope"), "--out", str(out)]
    assert "--checkpoint: no checkpoint at" in _fails(argv, capsys, out)


@pytest.mark.parametrize("command", ["universal", "transfer", "robustness"])
def test_eps_abc_is_the_same_everywhere(ckpt, tmp_path, capsys, command) -> None:
    out = tmp_path / "out"
    checkpoints = [str(ckpt), str(ckpt)] if command == "transfer" else [str(ckpt)]
    argv = [command, "--checkpoint", *checkpoints, "--eps", "abc", "--out", str(out)]
    err = _fails(argv, capsys, out)
    assert "--eps must be numbers or fractions such as 8/255, comma-separated, got 'abc'" in err


OTHER_BAD = [
    (["universal", "--fraction", "0.7"], "--fraction must be in (0, 0.5]"),
    (["universal", "--attack", "CA*"], "--attack must be among CA+, CA-, QA+, QA-"),
    (["universal", "--steps", "-1"], "--steps must be >= 0, got -1"),
    (["universal", "--alpha", "0"], "--alpha must be > 0"),
    (["transfer", "--samples", "0"], "--samples must be >= 1"),
    (["transfer", "--names", "a,a"], "--names must give 2 distinct names"),
    (["robustness", "--profile", "rob32"], "--profile must be one of"),
    (["robustness", "--attacks", "CA+", "XYZ"], "--attacks must be among"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), OTHER_BAD)
def test_other_commands_bad_input(ckpt, tmp_path, capsys, argv, message) -> None:
    out = tmp_path / "out"
    checkpoints = [str(ckpt), str(ckpt)] if argv[0] == "transfer" else [str(ckpt)]
    full = [argv[0], "--checkpoint", *checkpoints, *argv[1:], "--out", str(out)]
    assert message in _fails(full, capsys, out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--eps", "-1"], "--eps must be >= 0, got -1"),
        (["demo", "--eps", "abc"], "--eps must be numbers or fractions"),
        (["demo", "--samples", "0"], "--samples must be >= 1"),
        (["demo", "--epochs", "0"], "--epochs must be >= 1"),
        (["train", "--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["train", "--lr", "-1"], "--lr must be > 0"),
        (["train", "--embedding-dim", "0"], "--embedding-dim must be >= 1"),
        (["train", "--dataset", "mnist", "--image-size", "16"], "--image-size applies to digits"),
        (["train", "--dataset", "digits", "--data-dir", "/tmp"], "--data-dir applies to mnist"),
        (["train", "--test-fraction", "2"], "--test-fraction must be in (0, 1)"),
        (["train", "--epochs", "1.5"], "--epochs must be an integer, got '1.5'"),
        (["train", "--snapshot-every", "0"], "--snapshot-every must be >= 1, got 0"),
        (["train", "--snapshot-every", "x"], "--snapshot-every must be an integer, got 'x'"),
        (["plot", "missing.jsonl"], "results: no results file at missing.jsonl"),
    ],
)
def test_demo_train_plot_bad_input(tmp_path, capsys, argv, message) -> None:
    out = tmp_path / "out"
    assert message in _fails([*argv, "--out", str(out)], capsys, out)


def test_version_and_no_literal_percent(capsys) -> None:
    from rankattack import __version__
    from rankattack.cli.app import COMMANDS

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"rankattack {__version__}"
    for command in COMMANDS:
        name = command.__name__.rsplit(".", 1)[-1]
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert "%%" not in text, name


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the command ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"{path} did not reach {n} lines in {timeout}s")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_keeps_finished_cells_and_says_how_to_resume(ckpt, tmp_path) -> None:
    out = tmp_path / "ev"
    eps = ",".join(f"{0.01 * i:g}" for i in range(40))  # far more cells than are reached

    def command(eps: str) -> list[str]:
        return [sys.executable, "-m", "rankattack", "evaluate", "--checkpoint", str(ckpt),
                "--attacks", "CA+", "--sizes", "1", "--samples", "60", "--eps", eps,
                "--no-shift", "--no-figures", "--out", str(out), *FAST]  # fmt: skip

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # Ctrl-C as in a terminal: a suite started in the background (``cmd &`` without job
    # control) passes SIGINT on ignored, and Python then installs no handler for it
    proc = subprocess.Popen(
        command(eps), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    log = out / "results.jsonl"
    _wait_for_lines(log, 3, proc, timeout=120)  # the meta line and two finished cells
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert f"rankattack evaluate: interrupted: the finished cells are kept in {log}" in stderr
    assert "run the same command to resume" in stderr
    lines = log.read_text().splitlines()
    assert all(line.endswith("}") for line in lines)  # no half-written cell
    done = len(lines) - 1
    assert 2 <= done < 40
    # the rerun of the first two cells skips both and says so
    result = subprocess.run(command("0,0.01"), capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert (
        f"resuming from {log}: 2 of 2 cells already done, skipped (CA+ eps=0 w=1, "
        "CA+ eps=0.01 w=1); computing the other 0" in result.stdout
    )


def test_every_option_says_its_default() -> None:
    """Each option's help names its default (or says it is required, or is a flag that
    says what it changes from), and every command has a description."""
    import argparse

    from rankattack.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, p in sub.choices.items():
        assert p.description, f"{name} has no description"
        for action in p._actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            text = action.help or ""
            if "default" not in text and "required" not in text:
                missing.append(f"{name} {action.option_strings[-1]}")
    assert missing == []
