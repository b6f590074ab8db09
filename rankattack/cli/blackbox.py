"""``rankattack blackbox``: query-based attacks on a checkpoint or on an HTTP search service.

Attacks the first T test images as queries (their own copies stay in the gallery, as in
AdvOrder), chunk by chunk; each finished chunk is appended to ``<out>/results.jsonl``,
so a killed run resumes with identical numbers. Several ``--budget`` values give a
budget curve (``<out>/budget-curve.png``). Writes ``summary.md``, ``summary.json`` and
``run.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from rankattack.cli.common import _common, _data_args, _device, _ints, _load_data, _load_model, _say

__all__ = ["add_parser", "run"]

ATTACKS = ("order", "whitebox", "removal", "QA+", "QA-")


def _eps(text: str) -> float:
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(
            f"--eps must be a number or a fraction such as 4/255, got {text!r}"
        ) from None


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``blackbox`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "blackbox",
        help="query-based (black-box) ranking attacks, resumable",
        description="Run a black-box attack (order: AdvOrder's Order Attack; removal: "
        "top-k removal; QA+/QA-: score-based NES) or the white-box Order Attack on the "
        "first T test images. Chunks are appended to <out>/results.jsonl; rerunning resumes.",
    )
    _common(p, None)
    _data_args(p, "fashion-mnist")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint.pt written by `train` (required unless --url is given; "
                   "default: none)")  # fmt: skip
    p.add_argument("--url", default=None,
                   help="attack this search endpoint (rankattack serve) instead of a "
                   "simulated service; the dataset still gives the queries "
                   "(default: none)")  # fmt: skip
    p.add_argument("--attack", default="order", choices=ATTACKS, help="default: order")
    p.add_argument("--optimizer", default="spsa",
                   choices=("spsa", "nes", "rand", "square", "pso", "beta"),
                   help="default: spsa (removal: nes or square)")  # fmt: skip
    p.add_argument("--k", type=int, default=5, help="items reordered / removed (default: 5)")
    p.add_argument("--eps", default="4/255", help="L-inf radius (default: 4/255)")
    p.add_argument("--top-n", type=int, default=0,
                   help="visible list length; 0: the whole list (default: 0)")  # fmt: skip
    p.add_argument("--budget", default="1000",
                   help="queries per attacked query; comma-separated: a budget curve "
                   "(default: 1000)")  # fmt: skip
    p.add_argument("--population", type=int, default=None,
                   help="candidates per oracle call (default: 50; square: 1; pso: 40)")  # fmt: skip
    p.add_argument("--samples", type=int, default=500, help="T, queries attacked (default: 500)")
    p.add_argument("--chunk", type=int, default=50, help="queries per chunk (default: 50)")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="HTTP timeout in seconds (default: 30)"
    )
    p.set_defaults(func=run)
    return p


def _cell(args: argparse.Namespace, eps: float, budget: int, population: int) -> str:
    n = "all" if args.top_n == 0 else str(args.top_n)
    e = f"{eps * 255:g}/255"
    if args.attack == "whitebox":
        return f"whitebox:k={args.k}:eps={e}"
    opt = "nes" if args.attack in ("QA+", "QA-") else args.optimizer
    return f"{args.attack}:{opt}:k={args.k}:eps={e}:N={n}:Q={budget}:P={population}"


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack blackbox``; returns the exit status."""
    from rankattack.blackbox.report import BlackBoxLog, summarize, summary_table

    if (args.checkpoint is None) == (args.url is None):
        raise ValueError("give exactly one of --checkpoint (simulated service) and --url")
    for name in ("k", "samples", "chunk"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.top_n < 0:
        raise ValueError(f"--top-n must be >= 0 (0: the whole list), got {args.top_n}")
    eps = _eps(args.eps)
    budgets = _ints(args.budget, "--budget")
    if not budgets or min(budgets) < 1:
        raise ValueError(f"--budget must be positive integers, got {args.budget!r}")
    population = args.population or {"square": 1, "pso": 40}.get(args.optimizer, 50)
    device = _device(args.device)
    torch.manual_seed(args.seed)
    data = _load_data(args)
    inputs = data.test_x.to(device)
    if args.samples > inputs.shape[0]:
        raise ValueError(f"--samples must be <= the test set size {inputs.shape[0]}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = BlackBoxLog(out / "results.jsonl")
    meta, done = log.read()
    want = {"chunk": args.chunk, "seed": args.seed, "dataset": data.name,
            "source": args.checkpoint or args.url}  # fmt: skip
    if meta is None:
        log.write_meta(want)
    elif any(meta.get(k) != v for k, v in want.items()):
        raise ValueError(
            f"{log.path} holds a run with other settings ({meta}); use another --out or the "
            f"same --chunk/--seed/--dataset/source"
        )
    model = gallery = None
    if args.checkpoint is not None:
        from rankattack.gallery import Gallery

        model, config = _load_model(args.checkpoint, device)
        metric = getattr(config, "metric", "cosine")
        gallery = Gallery.from_inputs(model, inputs, data.test_y.to(device), metric=metric)
    elif args.attack == "whitebox":
        raise ValueError("--attack whitebox needs --checkpoint (the model's gradients)")
    cells = [budgets[0]] if args.attack == "whitebox" else budgets
    _say(f"attacking the first {args.samples} test images of {data.name} ({args.attack}, "
         f"k = {args.k}, eps = {eps:.5f}, budgets = {cells}); results: {log.path}")  # fmt: skip
    start_all = time.perf_counter()
    summaries = []
    for budget in cells:
        cell = _cell(args, eps, budget, population)
        attack = _build(args, model, gallery, eps, budget, population)
        starts = range(0, args.samples, args.chunk)
        todo = [s for s in starts if (cell, s) not in done]
        progress: Any = todo
        if not args.no_progress and todo:
            from tqdm.auto import tqdm

            progress = tqdm(todo, desc=cell, unit="chunk")
        for s in progress:
            e = min(s + args.chunk, args.samples)
            rec = _run_chunk(attack, args, cell, inputs, s, e, model, gallery)
            log.append(rec)
            done[(cell, s)] = rec
        chunks = [done[(cell, s)] for s in starts]
        summaries.append(summarize(chunks, None if args.attack == "whitebox" else budget))
    score = {"removal": "1-relevance", "QA+": "-loss", "QA-": "-loss"}.get(args.attack, "tau_S")
    _say(summary_table(summaries, markdown=False, score=score))
    (out / "summary.md").write_text(summary_table(summaries, score=score) + "\n")
    (out / "summary.json").write_text(json.dumps(summaries, indent=1) + "\n")
    written = [out / "summary.md", out / "summary.json"]
    if len(summaries) > 1:
        from rankattack.blackbox.report import plot_budget_curve

        pts = [(int(r["budget"]), r["tau_mean"], r["tau_ci95"]) for r in summaries]
        label = f"{args.attack} {args.optimizer}"
        written.append(plot_budget_curve({label: pts}, out / "budget-curve.png"))
    wall = time.perf_counter() - start_all
    run_meta = {"command": " ".join(["rankattack", *args.argv]), "wall_seconds_this_run": wall}
    (out / "run.json").write_text(json.dumps(run_meta, indent=1) + "\n")
    _say(f"wall time {wall:.0f}s; wrote " + ", ".join(str(p) for p in written))
    return 0


def _build(args: argparse.Namespace, model: Any, gallery: Any, eps: float, budget: int,
           population: int) -> Any:  # fmt: skip
    top_n = None if args.top_n == 0 else args.top_n
    if args.attack == "whitebox":
        from rankattack.attacks import WhiteBoxOrderAttack

        return WhiteBoxOrderAttack(model, gallery, k=args.k, eps=eps, seed=args.seed)
    if args.url is not None:
        from rankattack.blackbox import HTTPOracle

        oracle: Any = HTTPOracle(args.url, top_n=top_n, budget=budget, timeout=args.timeout,
                                 return_scores=args.attack in ("QA+", "QA-"))  # fmt: skip
    else:
        from rankattack.blackbox import ModelOracle

        oracle = ModelOracle(model, gallery, top_n=top_n, budget=budget,
                             return_scores=args.attack in ("QA+", "QA-"))  # fmt: skip
    if args.attack == "order":
        from rankattack.blackbox import OrderAttack

        return OrderAttack(oracle, k=args.k, eps=eps, optimizer=args.optimizer, budget=budget,
                           population=population, seed=args.seed)  # fmt: skip
    if args.attack == "removal":
        from rankattack.blackbox.removal import RemovalAttack

        return RemovalAttack(oracle, k=args.k, eps=eps, optimizer=args.optimizer, budget=budget,
                             population=population, seed=args.seed)  # fmt: skip
    from rankattack.blackbox.scorebased import ScoreQueryAttack

    direction = "raise" if args.attack == "QA+" else "lower"
    return ScoreQueryAttack(oracle, direction=direction, m=args.k, eps=eps, budget=budget,
                            population=population, seed=args.seed)  # fmt: skip


def _run_chunk(attack: Any, args: argparse.Namespace, cell: str, inputs: torch.Tensor, s: int,
               e: int, model: Any, gallery: Any) -> Any:  # fmt: skip
    from rankattack.blackbox.report import ChunkRecord, perturbation_norms

    x = inputs[s:e]
    ids = torch.arange(s, e, device=inputs.device)
    t0 = time.perf_counter()
    result = attack.run(x, query_ids=ids)
    seconds = time.perf_counter() - t0
    linf, l2 = perturbation_norms(result.adversarial, x)
    tau_before, tau = result_taus(result, args, model, gallery, x)
    success = [bool(v) for v in getattr(result, "success", torch.zeros(0)).tolist()]
    rank: list[float] = []
    if args.top_n == 0 and args.attack in ("order", "whitebox") and model is not None:
        from rankattack.blackbox import ModelOracle

        # mean position of the wanted items in the full list (AdvOrder's mR), measured
        # outside the attack's budget on the simulated service
        evaluator = ModelOracle(model, gallery, top_n=None, budget=None)
        pos = evaluator.locate(result.adversarial, result.target_order)
        rank = [float(v) for v in pos.float().mean(1).tolist()]
    return ChunkRecord(
        cell=cell, start=s, query_ids=ids.tolist(), tau_before=tau_before, tau=tau,
        queries_used=[int(v) for v in result.queries_used.tolist()],
        linf=linf.tolist(), l2=l2.tolist(), success=success, mean_rank=rank, seconds=seconds,
    )  # fmt: skip


def result_taus(
    result: Any, args: argparse.Namespace, model: Any, gallery: Any, x: torch.Tensor
) -> tuple[list[float], list[float]]:
    """tau_S before / after; the white-box attack's are measured like the black-box ones."""
    if args.attack != "whitebox":
        before = getattr(result, "tau_before", None)
        after = getattr(result, "tau", None)
        if before is None or after is None:
            return [], []
        return before.tolist(), after.tolist()
    from rankattack.blackbox import ModelOracle
    from rankattack.objectives import order_agreement

    oracle = ModelOracle(model, gallery, top_n=None, budget=None)
    pos0 = oracle.locate(x, result.target_order)
    pos = oracle.locate(result.adversarial, result.target_order)
    return order_agreement(pos0).tolist(), order_agreement(pos).tolist()
