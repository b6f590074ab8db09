"""Evaluation throughput of one process against a job of two (gloo, one thread each).

Target (issue "scale out on torch.distributed"): two processes of one thread each attack
about 1.8x as many samples per second as one process of one thread, with identical cells.

Setup: the paper's protocol (:func:`rankattack.evaluation.evaluate`) on a C2F2 network
(random weights: the cost of an attack does not depend on them) over 28x28 digits (|X|
test images), cells CA+ (w = 1) and QA- (m = 1) at eps 0.1 with the paper's PGD schedule,
T attacks per cell in batches of ``--batch-size``. One process and a two-rank job
(torch.multiprocessing, gloo on 127.0.0.1) are started alike and take turns for
``--rounds`` rounds; each times its ``evaluate`` call (wall clock, after start-up) and its
own CPU time. Reported per round: attacks per second of each, the speed-up, the CPU
seconds of every process (their ratio is the speed-up when each process has a core of
its own), the machine's load average (other jobs share the two cores), and whether the
cells are identical.

Run: ``nice -n 10 python benchmarks/distributed_evaluation.py`` (a few minutes;
``--samples 100`` for a quicker look, ``--json FILE`` to keep the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--gallery", type=int, default=360, help="|X| (default: 360)")
    p.add_argument("--samples", type=int, default=240, help="T per cell (default: 240)")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--attacks", default="CA+,QA-")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=None, help="write the figures to this file")
    return p.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, tmp: str, args: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(
            RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
        )  # fmt: skip
        from rankattack.distributed import init_distributed

        init_distributed()
    from rankattack.evaluation import evaluate

    model = torch.load(Path(tmp, "model.pt"), weights_only=False)
    x, y = torch.load(Path(tmp, "data.pt"))
    cpu, wall = time.process_time(), time.perf_counter()
    result = evaluate(
        model, x, y, attacks=args["attacks"], eps=[args["eps"]], sizes=[1],
        samples=args["samples"], batch_size=args["batch_size"], shift=False,
    )  # fmt: skip
    record = {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "cells": [{k: v for k, v in c.to_dict().items() if k != "seconds"} for c in result.cells],
    }
    Path(tmp, f"world{world}-rank{rank}.json").write_text(json.dumps(record))


def _run(world: int, tmp: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    mp.start_processes(
        _worker, args=(world, _free_port(), tmp, args), nprocs=world, start_method="spawn"
    )
    return [json.loads(Path(tmp, f"world{world}-rank{r}.json").read_text()) for r in range(world)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rankattack.data import load_dataset
    from rankattack.models import build_model

    data = load_dataset("digits", None, image_size=28)
    x, y = data.test_x[: args.gallery], data.test_y[: args.gallery]
    torch.manual_seed(0)
    model = build_model("c2f2").eval()
    settings = {
        "attacks": [a for a in args.attacks.split(",") if a],
        "eps": args.eps,
        "samples": args.samples,
        "batch_size": args.batch_size,
    }
    total = args.samples * len(settings["attacks"])
    print(
        f"|X| = {len(x)}, T = {args.samples} per cell, cells {settings['attacks']} at eps "
        f"{args.eps}, batches of {args.batch_size}; one thread per process"
    )
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(model, Path(tmp, "model.pt"))
        torch.save((x, y), Path(tmp, "data.pt"))
        for r in range(args.rounds):
            load = os.getloadavg()[0]
            one = _run(1, tmp, settings)
            two = _run(2, tmp, settings)
            load = (load + os.getloadavg()[0]) / 2
            same = all(rank["cells"] == one[0]["cells"] for rank in two)
            rate1 = total / one[0]["wall"]
            rate2 = total / max(rank["wall"] for rank in two)
            row = {
                "round": r + 1,
                "load": load,
                "one_process_attacks_per_s": rate1,
                "two_processes_attacks_per_s": rate2,
                "speedup": rate2 / rate1,
                # what the speed-up is when each process has a core of its own
                "cpu_speedup": one[0]["cpu"] / max(rank["cpu"] for rank in two),
                "cpu_s": {"one": one[0]["cpu"], "two": [rank["cpu"] for rank in two]},
                "identical_cells": same,
            }
            rounds.append(row)
            cpus = ", ".join(f"{rank['cpu']:.1f}" for rank in two)
            print(
                f"round {r + 1}: load {load:.1f}; 1 process {rate1:.2f} attacks/s "
                f"({one[0]['cpu']:.1f} CPU s), 2 processes {rate2:.2f} attacks/s "
                f"({cpus} CPU s): speed-up {rate2 / rate1:.2f}x (CPU time: "
                f"{row['cpu_speedup']:.2f}x); cells identical: {same}"
            )
    best = max(row["speedup"] for row in rounds)
    median = statistics.median(row["speedup"] for row in rounds)
    cpu = statistics.median(row["cpu_speedup"] for row in rounds)
    print(
        f"speed-up (wall clock): best {best:.2f}x, median {median:.2f}x; in CPU time per "
        f"process: median {cpu:.2f}x (target about 1.8x on an idle machine)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "rounds": rounds}, indent=1))
    return 0 if all(row["identical_cells"] for row in rounds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
