"""Peak memory per rank of a sharded gallery against one process holding all of it.

Target (issue "scale out on torch.distributed"): a 1,000,000 x 512 gallery split across
two ranks (:class:`rankattack.distributed.ShardedGallery`) costs each rank about half the
memory of one process holding it, and the attack on it gives the same results.

Setup: |X| random 512-d embeddings (cosine metric: the gallery keeps the raw rows and
their L2-normalized copy, 2 x 4 bytes x |X| x D), generated in fixed blocks of rows with a
seed per block so that every layout holds the same rows; each rank generates only its
own. On it, a semantics-preserving query attack (QA+, m = 1, G = 5; ``--steps`` PGD
steps) of ``--queries`` queries through a linear 512 -> 512 model. Once in one process,
once in a two-rank job (torch.multiprocessing, gloo on 127.0.0.1), one thread each.
Reported per rank: resident memory after start-up (torch imported), after building the
gallery, and the peak (``ru_maxrss``: building the gallery and the attack); the attack's
wall and CPU time; whether the adversarial queries and ranks are identical.

Run: ``nice -n 10 python benchmarks/distributed_gallery_memory.py`` (about 9 GB of
memory in total and a few minutes; ``--size 200000`` for a quicker look).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

_BLOCK = 50_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000, help="|X| (default: 1,000,000)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--json", default=None, help="write the figures to this file")
    return p.parse_args(argv)


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _rows(lo: int, hi: int, dim: int) -> torch.Tensor:
    """Rows ``[lo, hi)`` of the benchmark's gallery (the same whatever the layout)."""
    out = torch.empty(hi - lo, dim)
    for b in range(lo // _BLOCK, -(-hi // _BLOCK)):
        s, e = max(lo, b * _BLOCK), min(hi, (b + 1) * _BLOCK)
        block = torch.empty(_BLOCK, dim).normal_(generator=torch.Generator().manual_seed(b))
        out[s - lo : e - lo] = block[s - b * _BLOCK : e - b * _BLOCK]
    return out


def _worker(rank: int, world: int, port: int, tmp: str, args: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    from rankattack import Gallery, QueryAttack
    from rankattack.distributed import ShardedGallery, init_distributed, shard_range

    if world > 1:
        os.environ.update(
            RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANKATTACK_DIST_TIMEOUT="3600",
        )  # fmt: skip
        init_distributed()
    start = _rss_mib()
    n, dim = args["size"], args["dim"]
    lo, hi = shard_range(n)
    shard = Gallery(_rows(lo, hi, dim))
    gallery = ShardedGallery(shard) if world > 1 else shard
    built = _rss_mib()
    torch.manual_seed(0)
    model = torch.nn.Linear(dim, dim)
    gen = torch.Generator().manual_seed(1)
    queries = torch.rand(args["queries"], dim, generator=gen)
    targets = torch.randint(0, n, (args["queries"], 1), generator=gen)
    wall, cpu = time.perf_counter(), time.process_time()
    res = QueryAttack(model, gallery, "raise", eps=0.05, steps=args["steps"], sp_size=5).run(
        queries, candidate_indices=targets
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    record = {
        "rank": rank,
        "rows": hi - lo,
        "rss_start_mib": start,
        "rss_gallery_mib": built,
        "peak_mib": _peak_mib(),
        "attack_s": wall,
        "attack_cpu_s": cpu,
    }
    Path(tmp, f"world{world}-rank{rank}.json").write_text(json.dumps(record))
    result = (res.adversarial, res.rank_after, res.sp_rank_after)
    torch.save(result, Path(tmp, f"res{world}-{rank}.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(world: int, tmp: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    mp.start_processes(
        _worker, args=(world, _free_port(), tmp, args), nprocs=world, start_method="spawn"
    )
    return [json.loads(Path(tmp, f"world{world}-rank{r}.json").read_text()) for r in range(world)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = {"size": args.size, "dim": args.dim, "queries": args.queries, "steps": args.steps}
    need = 2 * 4 * args.size * args.dim / 2**20
    print(
        f"gallery {args.size:,} x {args.dim} (cosine: raw + normalized rows, {need:,.0f} MiB "
        f"in all); QA+ of {args.queries} queries, {args.steps} PGD steps; load "
        f"{os.getloadavg()[0]:.1f}"
    )
    out: dict[str, Any] = {"settings": settings}
    with tempfile.TemporaryDirectory() as tmp:
        for world in (1, 2):
            records = _run(world, tmp, settings)
            out[f"world{world}"] = records
            for r in records:
                print(
                    f"{world} process(es), rank {r['rank']}: {r['rows']:,} rows; RSS "
                    f"{r['rss_start_mib']:,.0f} MiB at start, {r['rss_gallery_mib']:,.0f} MiB "
                    f"with the gallery, peak {r['peak_mib']:,.0f} MiB; attack "
                    f"{r['attack_s']:.1f} s ({r['attack_cpu_s']:.1f} CPU s)"
                )
        one = torch.load(Path(tmp, "res1-0.pt"))
        two = [torch.load(Path(tmp, f"res2-{r}.pt")) for r in range(2)]
        same = all(torch.equal(a, b) for res in two for a, b in zip(one, res, strict=True))
    peak1 = out["world1"][0]["peak_mib"]
    peak2 = max(r["peak_mib"] for r in out["world2"])
    out["peak_ratio"] = peak2 / peak1
    out["identical"] = same
    ratio = peak2 / peak1
    print(f"peak per rank, sharded / unsharded: {peak2:,.0f} / {peak1:,.0f} MiB = {ratio:.2f}")
    print(f"adversarial queries, ranks and C_SP ranks identical: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
