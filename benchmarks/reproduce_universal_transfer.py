"""Transfer and universal ranking attacks on Fashion-MNIST (paper Tables 11 and 14).

Loads the vanilla Fashion-MNIST models trained by ``rankattack.training`` (one
``<checkpoints>/fmnist-<model>-vanilla/checkpoint.pt`` per model), uses the 10,000
test images as the candidate set X, and prints, beside the paper's numbers:

* Table 11 -- transfer: CA+, CA- (w = 1) and SP-QA+, SP-QA- (m = 1) adversarial
  examples made white-box on each model (eps = 0.3, the paper's PGD schedule) and
  ranked by every model in its own gallery;
* Table 14 -- universal: one perturbation (eps = 0.3, 100 steps of 2/255) per attack
  I-CA+, I-CA-, I-QA+, I-QA-, fitted on "seen" inputs and applied to disjoint
  "unseen" ones. As in Eq. 14, the target set is shared by all inputs: one query for
  the I-CA attacks, one candidate for the I-QA attacks (w = m = 1, xi = 0); the
  "lower" attacks use the inputs whose target starts in the top 1%.

Ranks are normalized ranks in percent (0 = top of the list).

Example::

    python benchmarks/reproduce_universal_transfer.py --checkpoints runs \\
        --paper-tables rankattack/evaluation/paper_tables.json \\
        --n-transfer 200 --n-universal 500 --trials 3
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rankattack import Gallery
from rankattack.attacks.universalrankattack import UniversalRankAttack, evaluate_seen_unseen
from rankattack.transfer import TransferResult, attack_factory, transfer_matrix

#: Checkpoint names (as trained) -> the paper's column names.
PAPER_NAMES = {"lenet": "LeNet", "c2f1": "C2F1", "resnet18": "Res18"}
TOP = 0.01  # "lower" attacks start from the top 1% (paper Sec. 4 and 5.2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=Path("runs"),
        help="directory holding fmnist-<model>-vanilla/checkpoint.pt",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=Path("/usr/share/datasets/fashion-mnist"),
        help="directory of the Fashion-MNIST IDX files",
    )
    p.add_argument(
        "--models", nargs="+", default=["lenet", "c2f1", "resnet18"], choices=sorted(PAPER_NAMES)
    )
    p.add_argument(
        "--universal-models",
        nargs="+",
        default=["c2f1"],
        choices=sorted(PAPER_NAMES),
        help="models to fit universal perturbations on (Table 14 is C2F1)",
    )
    p.add_argument(
        "--n-transfer", type=int, default=200, help="attacked inputs per transfer matrix"
    )
    p.add_argument(
        "--n-universal",
        type=int,
        default=500,
        help="seen (and as many unseen) inputs for the + universal attacks "
        "(the paper: 5%% of X = 500)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=3,
        help="universal perturbations per attack (each with its own shared target)",
    )
    p.add_argument(
        "--pairing",
        choices=["shared", "per-input"],
        default="shared",
        help="universal attacks: one target shared by all inputs (Eq. 14), or "
        "a target per input (random; in its top 1%% for the - attacks)",
    )
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--universal-steps", type=int, default=100)
    p.add_argument("--universal-alpha", type=float, default=2 / 255)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--skip-transfer", action="store_true")
    p.add_argument("--skip-universal", action="store_true")
    p.add_argument(
        "--paper-tables",
        type=Path,
        default=None,
        help="JSON of the paper's Fashion-MNIST tables to print beside ours",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write all numbers as JSON here")
    return p.parse_args(argv)  # fmt: skip


def cfg_get(config: Any, key: str, default: Any) -> Any:
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


def load_models(args: argparse.Namespace) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    from rankattack.training import load_checkpoint

    models: dict[str, nn.Module] = {}
    configs: dict[str, Any] = {}
    for name in args.models:
        path = args.checkpoints / f"fmnist-{name}-vanilla" / "checkpoint.pt"
        if not path.is_file():
            print(f"[skip] {name}: no checkpoint at {path}")
            continue
        model, config = load_checkpoint(path, map_location=args.device)
        models[PAPER_NAMES[name]] = model.to(args.device).eval()
        configs[PAPER_NAMES[name]] = config
        loss, metric = cfg_get(config, "loss", "?"), cfg_get(config, "metric", "?")
        print(f"[model] {PAPER_NAMES[name]}: {path} (loss={loss}, metric={metric})")
    return models, configs


def top_choice(gallery: Gallery, queries: Tensor, gen: torch.Generator) -> Tensor:
    """For each query index, a random gallery item from its top 1% (itself excluded)."""
    k = max(1, math.ceil(TOP * len(gallery)) - 1)
    _, idx = gallery.topk(gallery.embeddings[queries], k, exclude_indices=queries.unsqueeze(1))
    col = torch.randint(0, k, (queries.shape[0],), generator=gen).to(idx.device)
    return idx[torch.arange(queries.shape[0], device=idx.device), col]


# -- Table 11 ------------------------------------------------------------------------------


def run_transfer(
    args: argparse.Namespace, models: dict[str, nn.Module], galleries: dict[str, Gallery],
    x: Tensor, gen: torch.Generator,
) -> dict[str, TransferResult]:  # fmt: skip
    n, size = args.n_transfer, x.shape[0]
    reference = galleries["C2F1"] if "C2F1" in galleries else next(iter(galleries.values()))
    dev = x.device
    results = {}
    for name in ("CA+", "CA-", "QA+", "QA-"):
        t0 = time.time()
        q = torch.randperm(size, generator=gen)[:n].to(dev)
        if name == "CA+":
            c = torch.randint(0, size, (n,), generator=gen).to(dev)
        else:
            c = top_choice(reference, q, gen) if name.endswith("-") else None
        factory = attack_factory(name, eps=args.eps)
        if name.startswith("CA"):
            assert c is not None
            res = transfer_matrix(models, factory, x[c], queries=x[q].unsqueeze(1),
                                  galleries=galleries, batch_size=args.batch_size,
                                  progress=True)  # fmt: skip
        else:
            ci = torch.randint(0, size, (n,), generator=gen).to(dev) if c is None else c
            res = transfer_matrix(models, factory, x[q], candidate_indices=ci.unsqueeze(1),
                                  query_indices=q, galleries=galleries,
                                  batch_size=args.batch_size, progress=True)  # fmt: skip
        results[name] = res
        print(f"[transfer {name}] {time.time() - t0:.0f} s")
    return results


def print_transfer(results: dict[str, TransferResult], paper: dict[str, Any] | None) -> None:
    print("\n=== Table 11: transfer (rows: made on; columns: ranked by), ours [paper] ===")
    for name, res in results.items():
        key = name if name.startswith("CA") else "SP-" + name
        print(f"\n{key} transfer, w = m = 1, eps = 0.3")
        ours = res.cells()
        ref = None
        if paper is not None:
            order = paper["models"]
            ref = {(order[i], order[j]): paper[key][i][j]
                   for i in range(len(order)) for j in range(len(order))}  # fmt: skip
        width = 24 if ref else 14
        print("From \\ To".ljust(8) + "".join(t.rjust(width) for t in res.names))
        for i, s in enumerate(res.names):
            cells = []
            for j, t in enumerate(res.names):
                cell = ours[i][j]
                if ref is not None and (s, t) in ref:
                    cell += f" [{ref[s, t]}]"
                cells.append(cell.rjust(width))
            print(s.ljust(8) + "".join(cells))


# -- Table 14 ------------------------------------------------------------------------------


def universal_sets(
    name: str, gallery: Gallery, x: Tensor, n: int, gen: torch.Generator
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Seen and unseen inputs with one shared target (Eq. 14)."""
    size, dev = x.shape[0], x.device
    perm = torch.randperm(size, generator=gen).to(dev)
    shared = perm[0]
    if name.endswith("+"):  # random candidates (queries), one random query (candidate)
        seen_i, unseen_i = perm[1 : n + 1], perm[n + 1 : 2 * n + 1]
    elif name == "I-CA-":  # the shared query's top-1% candidates, split in halves
        k = max(2, math.ceil(TOP * size) - 1)
        _, top = gallery.topk(gallery.embeddings[shared].unsqueeze(0), k,
                              exclude_indices=shared.view(1, 1))  # fmt: skip
        top = top[0][torch.randperm(k, generator=gen).to(dev)]
        seen_i, unseen_i = top[: k // 2], top[k // 2 :]
    else:  # I-QA-: the queries that rank the shared candidate in their top 1%
        while True:
            emb = gallery.embeddings
            ranks = gallery.rank(emb, emb[shared].expand(size, 1, -1))[:, 0]
            ok = torch.nonzero((ranks < TOP) & (torch.arange(size, device=dev) != shared))[:, 0]
            if ok.numel() >= 10:
                break
            shared = perm[int(torch.randint(1, size, (1,), generator=gen))]
        ok = ok[torch.randperm(ok.numel(), generator=gen).to(dev)]
        seen_i, unseen_i = ok[: ok.numel() // 2], ok[ok.numel() // 2 :]
    if name.startswith("I-CA"):
        q = gallery.embeddings[shared]
        return (
            {"inputs": x[seen_i], "query_embeddings": q.expand(seen_i.numel(), 1, -1)},
            {"inputs": x[unseen_i], "query_embeddings": q.expand(unseen_i.numel(), 1, -1)},
        )
    return (
        {"inputs": x[seen_i], "candidate_indices": shared.expand(seen_i.numel(), 1),
         "query_indices": seen_i},
        {"inputs": x[unseen_i], "candidate_indices": shared.expand(unseen_i.numel(), 1),
         "query_indices": unseen_i},
    )  # fmt: skip


def per_input_sets(
    name: str, gallery: Gallery, x: Tensor, n: int, gen: torch.Generator
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Seen and unseen inputs, each with its own target (random, or in its top 1%)."""
    size, dev = x.shape[0], x.device
    perm = torch.randperm(size, generator=gen).to(dev)[: 2 * n]
    if name.endswith("+"):
        other = torch.randint(0, size, (2 * n,), generator=gen).to(dev)
    else:  # queries perm, each with a candidate from its top 1%
        other = top_choice(gallery, perm, gen)
    parts = []
    for h in (slice(0, n), slice(n, 2 * n)):
        if name == "I-CA+":  # candidates perm, each with a random query
            parts.append(
                {"inputs": x[perm[h]], "query_embeddings": gallery.embeddings[other[h]][:, None]}
            )
        elif name == "I-CA-":  # queries perm, each with a candidate in its top 1%
            parts.append(
                {"inputs": x[other[h]], "query_embeddings": gallery.embeddings[perm[h]][:, None]}
            )
        else:  # queries perm, each with its own candidate
            parts.append(
                {
                    "inputs": x[perm[h]],
                    "candidate_indices": other[h][:, None],
                    "query_indices": perm[h],
                }
            )
    return parts[0], parts[1]  # fmt: skip


def run_universal(
    args: argparse.Namespace, model: nn.Module, gallery: Gallery, x: Tensor, gen: torch.Generator
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in ("I-CA+", "I-CA-", "I-QA+", "I-QA-"):
        t0 = time.time()
        atk = UniversalRankAttack(
            model, gallery, target="candidate" if "CA" in name else "query",
            direction="raise" if name.endswith("+") else "lower", eps=args.eps,
            alpha=args.universal_alpha, steps=args.universal_steps,
            batch_size=args.batch_size,
        )  # fmt: skip
        rows = []
        for _ in range(args.trials):
            make_sets = universal_sets if args.pairing == "shared" else per_input_sets
            seen, unseen = make_sets(name, gallery, x, args.n_universal, gen)
            res = evaluate_seen_unseen(atk, seen, unseen, progress=True)
            rows.append(
                [(p.mean_before, p.mean_after, p.n_counted) for p in (res.seen, res.unseen)]
            )
        mean = [[sum(r[k][i] for r in rows) / len(rows) for i in range(3)] for k in range(2)]
        out[name] = {"seen": mean[0], "unseen": mean[1], "trials": rows,
                     "seconds": time.time() - t0, "attack": repr(atk)}  # fmt: skip
        print(f"[universal {name}] {time.time() - t0:.0f} s: seen {mean[0][0] * 100:.1f}->"
              f"{mean[0][1] * 100:.1f} (n={mean[0][2]:.0f}), unseen {mean[1][0] * 100:.1f}->"
              f"{mean[1][1] * 100:.1f} (n={mean[1][2]:.0f})")  # fmt: skip
    return out


def print_universal(
    results: dict[str, dict[str, dict[str, Any]]], configs: dict[str, Any],
    paper: dict[str, Any] | None, pairing: str,
) -> None:  # fmt: skip
    print("\n=== Table 14: universal perturbation (w = m = 1, eps = 0.3), ours [paper] ===")
    print(f"(targets: {pairing})")
    attacks = ("I-CA+", "I-CA-", "I-QA+", "I-QA-")
    width = 26 if paper is not None else 14
    print("model".ljust(18) + "".join(a.rjust(width) for a in attacks))
    for model, res in results.items():
        config = configs[model]
        code = ("E" if cfg_get(config, "metric", "cosine") == "euclidean" else "C") + (
            "C" if cfg_get(config, "loss", "triplet") == "contrastive" else "T"
        )
        for k, part in enumerate(("seen", "unseen")):
            cells = []
            for a in attacks:
                b, af, _ = res[a][part]
                cell = f"{b * 100:.1f}->{af * 100:.1f}"
                if paper is not None and code in paper:
                    cell += f" [{paper[code][a][k]}]"
                cells.append(cell.rjust(width))
            print(f"{model} ({code}) {part}".ljust(18) + "".join(cells))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.time()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    paper = json.loads(args.paper_tables.read_text()) if args.paper_tables else None

    from rankattack.data import load_mnist

    data = load_mnist(args.data, kind="fashion-mnist")
    x, y = data.test_x.to(args.device), data.test_y.to(args.device)
    models, configs = load_models(args)
    if not models:
        raise SystemExit(f"no checkpoints found under {args.checkpoints}")
    galleries = {
        name: Gallery.from_inputs(m, x, y, cfg_get(configs[name], "metric", "cosine"),
                                  args.batch_size)
        for name, m in models.items()
    }  # fmt: skip
    print(f"[setup] |X| = {x.shape[0]}, models {list(models)}, {time.time() - start:.0f} s")
    record: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}

    if not args.skip_transfer and len(models) >= 1:
        transfer = run_transfer(args, models, galleries, x, gen)
        print_transfer(transfer, paper["table11_transfer"] if paper else None)
        record["table11"] = {
            k: {"names": r.names, "before": r.mean_before.tolist(), "after": r.mean_after.tolist()}
            for k, r in transfer.items()
        }
    if not args.skip_universal:
        universal = {}
        for key in args.universal_models:
            name = PAPER_NAMES[key]
            if name not in models:
                print(f"[skip] universal on {name}: not loaded")
                continue
            universal[name] = run_universal(args, models[name], galleries[name], x, gen)
        if universal:
            paper14 = paper["table14_universal"] if paper else None
            print_universal(universal, configs, paper14, args.pairing)
            record["table14"] = universal
    wall = time.time() - start
    print(f"\nwall time: {wall:.0f} s")
    record["wall_seconds"] = wall
    if args.out is not None:
        args.out.write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
